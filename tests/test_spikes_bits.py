"""The popcount path of 1-bit layers (kernels_bits) and the engine's layer-major blocks."""

import numpy as np
import pytest

from neurosim.ir import Layer, Network
from neurosim.spikes import engine, kernels_bits, run


def _signs_sum(spikes, codes, threaded):
    rows = kernels_bits.packed_rows(spikes)
    plus = kernels_bits.packed_signs(codes)
    cur = np.zeros((len(spikes), codes.shape[1]), np.float32)
    fired = np.zeros(len(spikes), np.int64)
    if len(spikes) < kernels_bits.ROWS:
        kernels_bits.sign_sums(rows, plus, cur, fired)
    else:
        L = codes.shape[1]
        kernels_bits.accumulate_signs(10**9 if threaded else 0, rows, plus, np.ones(L, np.float32),
                                      np.zeros(L, np.float32), cur, fired)
    return cur, fired


def test_sign_popcounts_of_a_hand_example():
    # inputs 0 and 2 fire; output 0 has weights (+1, -1, +1), output 1 (-1, -1, -1)
    spikes = np.array([[1, 0, 1]], np.uint8)
    codes = np.array([[1, -1], [-1, -1], [1, -1]], np.int8)
    cur, fired = _signs_sum(spikes, codes, threaded=False)
    assert cur.tolist() == [[2.0, -2.0]] and fired.tolist() == [2]


@pytest.mark.parametrize("n_in, rows, outputs", [(100, 37, 45), (128, 37, 45), (768, 37, 45), (768, 2, 64),
                                                 (70, 9, 7)])
@pytest.mark.parametrize("threaded", [False, True])
def test_sign_popcounts_equal_the_integer_sums_of_the_fired_inputs(n_in, rows, outputs, threaded):
    """Whole blocks of rows and vectors of outputs, a last block that overlaps, a tail of outputs, and fewer
    rows than a block (padded), against integer matrix products."""
    rng = np.random.default_rng(n_in)
    spikes = (rng.random((rows, n_in)) < 0.2).astype(np.uint8)
    codes = np.where(rng.random((n_in, outputs)) < 0.5, 1, -1).astype(np.int8)
    cur, fired = _signs_sum(spikes, codes, threaded)
    assert np.array_equal(cur, spikes.astype(np.int64) @ codes.astype(np.int64))
    assert np.array_equal(fired, spikes.sum(axis=1))


def test_sign_popcounts_of_a_real_valued_layer_come_scaled_and_biased():
    """A real-valued 1-bit layer's output straight from the popcounts: float32(sum) * scale + bias, in the
    vectors (outputs 0-15) and the tail (16-18)."""
    rng = np.random.default_rng(2)
    spikes = (rng.random((9, 130)) < 0.3).astype(np.uint8)
    codes = np.where(rng.random((130, 19)) < 0.5, 1, -1).astype(np.int8)
    scale, bias = rng.uniform(0.1, 1, 19).astype(np.float32), rng.normal(0, 1, 19).astype(np.float32)
    cur, fired = np.empty((9, 19), np.float32), np.empty(9, np.int64)
    kernels_bits.sign_sums(kernels_bits.packed_rows(spikes), kernels_bits.packed_signs(codes), cur, fired, scale, bias)
    sums = (spikes.astype(np.int64) @ codes.astype(np.int64)).astype(np.float32)
    assert np.array_equal(cur, sums * scale + bias)


def test_packed_rows_put_input_k_at_bit_k():
    spikes = np.zeros((2, 72), np.uint8)
    spikes[0, 3] = spikes[1, 70] = 1
    words = kernels_bits.packed_rows(spikes)
    assert words.shape == (2, 2)
    assert words[0].tolist() == [1 << 3, 0] and words[1].tolist() == [0, 1 << 6]


def _two_layer_net(bits, timesteps):
    rng = np.random.default_rng(3)
    w1 = np.where(rng.random((48, 64)) < 0.5, 0.25, -0.25)
    w2 = np.where(rng.random((32, 48)) < 0.5, 0.5, -0.5)
    layers = [Layer("a", "linear", 64, 48, seq_len=5, weights=w1, weight_bits=bits, timesteps=timesteps),
              Layer("b", "linear", 48, 32, inputs=["a"], seq_len=5, weights=w2, weight_bits=bits,
                    timesteps=timesteps)]
    return Network("bits", layers, input_size=64, input_rate=0.3)


@pytest.mark.parametrize("block", [1, 3, 64])
def test_layer_major_blocks_give_the_step_by_step_counts(block, monkeypatch):
    """Blocks of 1 step (step-major) and of several (layer-major, popcounts for the 1-bit layers) count alike,
    and the 1-bit layers spike as the fp32 engine on the same +-0.25 / +-0.5 weights."""
    traces = {}
    for bits in (32, 1):
        monkeypatch.setattr(engine, "TIME_BLOCK", block)
        traces[bits] = run(_two_layer_net(bits, 7), seed=4)
    monkeypatch.setattr(engine, "TIME_BLOCK", 1)
    ref = run(_two_layer_net(32, 7), seed=4)
    for tr in traces.values():
        for name in ("a", "b"):
            assert np.array_equal(tr[name].spikes_per_step, ref[name].spikes_per_step)
            assert np.array_equal(tr[name].acs_per_step, ref[name].acs_per_step)
            assert np.array_equal(tr[name].neuron_totals, ref[name].neuron_totals)
    assert ref["b"].spikes > 0 and ref["b"].acs == ref["b"].input_events["a"] * 32


def test_a_1_bit_layer_fed_spikes_of_value_2_adds_them_by_events():
    """A network input with values 2 is not binary (popcounts would read it wrong): the 1-bit layers still
    spike exactly as the fp32 engine on the same weights."""
    x = (np.random.default_rng(5).random((7, 5, 64)) < 0.3).astype(np.uint8) * 2
    one, fp32 = run(_two_layer_net(1, 7), x), run(_two_layer_net(32, 7), x)
    for name in ("a", "b"):
        assert np.array_equal(one[name].neuron_totals, fp32[name].neuron_totals)
        assert np.array_equal(one[name].acs_per_step, fp32[name].acs_per_step)
    assert one["a"].spikes > 0


def test_popcounts_fused_with_the_neuron_give_the_two_kernels_spikes_and_state():
    """sign_sums_fire = sign_sums, then fire_steps_plain on the currents: bit for bit, state included."""
    rng = np.random.default_rng(11)
    K, n, n_in, L = 5, 8, 200, 64
    codes = np.where(rng.random((n_in, L)) < 0.5, 1, -1).astype(np.int8)
    rows = kernels_bits.packed_rows((rng.random((K * n, n_in)) < 0.2).astype(np.uint8))
    plus = kernels_bits.packed_signs(codes)
    scale, bias = np.full(L, 0.25, np.float32), rng.normal(0, 0.3, L).astype(np.float32)
    leak, vth = rng.uniform(0.5, 1, L).astype(np.float32), rng.uniform(0.5, 2, L).astype(np.float32)
    start = (rng.random((n, L)).astype(np.float32), (rng.random((n, L)) < 0.3).astype(np.uint8),
             rng.integers(0, 4, (n, L)).astype(np.int32))
    for work in (0, 10**9):
        two, one = [x.copy() for x in start], [x.copy() for x in start]
        out2, out1 = np.zeros((K, n, L), np.uint8), np.zeros((K, n, L), np.uint8)
        c2, c1 = np.zeros((K, n), np.int64), np.zeros((K, n), np.int64)
        f2, f1 = np.empty(K * n, np.int64), np.empty(K * n, np.int64)
        cur = np.empty((K * n, L), np.float32)
        kernels_bits.sign_sums(rows, plus, cur, f2)
        engine.kernels.fire_steps_plain(work, cur.reshape(K, n, L), scale, bias, two[0], two[1], leak, vth, two[2],
                                        out2, c2)
        kernels_bits.sign_sums_fire(work, rows, plus, f1, scale, bias, leak, vth, one[0], one[1], one[2], out1, c1)
        assert out2.any() and not out2.all()
        for a, b in zip((out2, c2, f2) + tuple(two), (out1, c1, f1) + tuple(one)):
            assert np.array_equal(a, b)


def test_a_1_bit_layer_of_whole_token_blocks_fires_in_its_popcount_pass(monkeypatch):
    """8 tokens and 64 / 32 outputs: the fused pass runs (fires_with_sums), with the fp32 engine's spikes and
    the step-by-step counts."""
    def net(bits):
        rng = np.random.default_rng(3)
        w1 = np.where(rng.random((64, 64)) < 0.5, 0.25, -0.25)
        w2 = np.where(rng.random((32, 64)) < 0.5, 0.5, -0.5)
        return Network("bits", [Layer("a", "linear", 64, 64, seq_len=8, weights=w1, weight_bits=bits, timesteps=7),
                                Layer("b", "linear", 64, 32, inputs=["a"], seq_len=8, weights=w2, weight_bits=bits,
                                      timesteps=7)], input_size=64, input_rate=0.3)
    fused = []
    real_init = engine.LayerState.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        fused.append(self.fires_with_sums)
    monkeypatch.setattr(engine.LayerState, "__init__", spy)
    one = run(net(1), seed=4)
    monkeypatch.setattr(engine, "TIME_BLOCK", 1)
    fp32 = run(net(32), seed=4)
    assert fused[:2] == [True, True]
    for name in ("a", "b"):
        assert np.array_equal(one[name].spikes_per_step, fp32[name].spikes_per_step)
        assert np.array_equal(one[name].neuron_totals, fp32[name].neuron_totals)
        assert np.array_equal(one[name].acs_per_step, fp32[name].acs_per_step)
    assert one["b"].spikes > 0
