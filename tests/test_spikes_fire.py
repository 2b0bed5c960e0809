"""The engine's `fire` kernel against the neuron step it documents, written out in numpy float32."""

import numpy as np
import pytest

from neurosim.spikes import kernels


def reference_step(cur, scale, bias, u, s, syn, leak, vth, decay, v_reset, flags, levels):
    """kernels.fire's docstring in numpy float32, one operation at a time: returns (u, spike values, syn)."""
    f32 = np.float32
    x = cur * scale + bias
    if flags & kernels.SYNAPTIC:
        syn = decay * syn + x
        x = syn
    reset = np.full_like(u, f32(v_reset)) if flags & kernels.HARD_RESET else u - s.astype(f32) * vth
    if flags & kernels.RESET_FIRST:
        u = leak * np.where(s != 0, reset, u) + x
    else:
        u = leak * u + x
        reset = np.full_like(u, f32(v_reset)) if flags & kernels.HARD_RESET else u - s.astype(f32) * vth
        u = np.where(s != 0, reset, u)
    up = u > vth if flags & kernels.STRICT else u >= vth
    k = np.ceil(u / vth) - 1 if flags & kernels.STRICT else np.floor(u / vth)
    spikes = np.where(up, np.minimum(k, levels) if levels > 1 else 1, 0).astype(np.uint8)
    return u.astype(f32), spikes, syn


@pytest.mark.parametrize("flags", range(16))
@pytest.mark.parametrize("levels", [1, 4])
@pytest.mark.parametrize("threaded", [False, True])
def test_fire_gives_the_documented_neuron_step_for_every_convention(flags, levels, threaded):
    """Every combination of reset (soft / hard), reset order, threshold (>= / >) and synaptic current, binary
    and 4-level neurons, 12 steps on random currents: membranes bit for bit, spikes, totals and counts."""
    rng = np.random.default_rng(flags * 10 + levels)
    n, L = 5, 37                                  # not a multiple of any vector width
    f32 = np.float32
    scale, bias = rng.uniform(0.5, 2, L).astype(f32), rng.uniform(-0.2, 0.3, L).astype(f32)
    leak, vth = rng.uniform(0.5, 1, L).astype(f32), rng.uniform(0.5, 1.5, L).astype(f32)
    decay = rng.uniform(0, 0.9, L).astype(f32)
    u, spk = np.zeros((n, L), f32), np.zeros((n, L), np.uint8)
    syn = np.zeros((n, L), f32)
    totals, values, counts = np.zeros((n, L), np.int32), np.zeros((n, L), np.int32), np.zeros(n, np.int64)
    ru, rs, rsyn = u.copy(), spk.copy(), syn.copy()
    r_totals, r_values = np.zeros((n, L), np.int64), np.zeros((n, L), np.int64)
    work = 10**9 if threaded else 0
    for _ in range(12):
        cur = rng.uniform(-0.5, 2.5, (n, L)).astype(f32)
        events = kernels.fire(work, cur, scale, bias, u, spk, syn, leak, vth, decay, f32(-0.25), flags, levels,
                              totals, values if levels > 1 else totals, counts)
        ru, rs, rsyn = reference_step(cur, scale, bias, ru, rs, rsyn, leak, vth, decay, -0.25, flags, levels)
        r_totals += rs != 0
        r_values += rs
        np.testing.assert_array_equal(u, ru)
        np.testing.assert_array_equal(spk, rs)
        np.testing.assert_array_equal(counts, (rs != 0).sum(axis=1))
        assert events == (rs != 0).sum()
    np.testing.assert_array_equal(totals, r_totals)
    if levels > 1:
        np.testing.assert_array_equal(values, r_values)
        assert (spk > 1).any()                    # the multi-level branch was taken



@pytest.mark.parametrize("flags", range(16))
@pytest.mark.parametrize("levels", [1, 4])
@pytest.mark.parametrize("threaded", [False, True])
def test_fire_steps_gives_the_documented_step_at_every_step_of_a_block(flags, levels, threaded):
    """fire_steps over 9 steps (outputs in chunks: 2 x FIRE_CHUNK + 77) against the reference step run
    9 times: membranes, every step's spikes and counts, totals and values."""
    rng = np.random.default_rng(100 + flags * 10 + levels)
    K, n, L = 9, 3, 2 * kernels.FIRE_CHUNK + 77
    f32 = np.float32
    scale, bias = rng.uniform(0.5, 2, L).astype(f32), rng.uniform(-0.2, 0.3, L).astype(f32)
    leak, vth = rng.uniform(0.5, 1, L).astype(f32), rng.uniform(0.5, 1.5, L).astype(f32)
    decay = rng.uniform(0, 0.9, L).astype(f32)
    cur = rng.uniform(-0.5, 2.5, (K, n, L)).astype(f32)
    u, spk, syn = np.zeros((n, L), f32), np.zeros((n, L), np.uint8), np.zeros((n, L), f32)
    totals, values = np.zeros((n, L), np.int32), np.zeros((n, L), np.int32)
    out, counts = np.zeros((K, n, L), np.uint8), np.zeros((K, n), np.int64)
    kernels.fire_steps(10**9 if threaded else 0, cur, scale, bias, u, spk, syn, leak, vth, decay, f32(-0.25), flags,
                       levels, totals, values if levels > 1 else totals, out, counts)
    ru, rs, rsyn = np.zeros((n, L), f32), np.zeros((n, L), np.uint8), np.zeros((n, L), f32)
    r_totals, r_values = np.zeros((n, L), np.int64), np.zeros((n, L), np.int64)
    for t in range(K):
        ru, rs, rsyn = reference_step(cur[t], scale, bias, ru, rs, rsyn, leak, vth, decay, -0.25, flags, levels)
        r_totals += rs != 0
        r_values += rs
        np.testing.assert_array_equal(out[t], rs)
        np.testing.assert_array_equal(counts[t], (rs != 0).sum(axis=1))
    np.testing.assert_array_equal(u, ru)
    np.testing.assert_array_equal(spk, rs)
    np.testing.assert_array_equal(totals, r_totals)
    if levels > 1:
        np.testing.assert_array_equal(values, r_values)
        assert (out > 1).any()
