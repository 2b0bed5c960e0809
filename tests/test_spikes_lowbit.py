"""Low-bit weights in the spike engine: int8 codes and packed signs give the fp32 engine's spikes."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurosim.ir import Layer, Network, Neuron
from neurosim.spikes import kernels, lowbit, run
from neurosim.spikes.lowbit import SIGN_TABLE, dequantized, quantize


def assert_same_trace(a, b):
    """Every per-layer count and raster of two traces is equal."""
    assert a.layers.keys() == b.layers.keys()
    for name, la in a.layers.items():
        lb = b.layers[name]
        np.testing.assert_array_equal(la.raster, lb.raster, err_msg=name)
        np.testing.assert_array_equal(la.acs_per_step, lb.acs_per_step, err_msg=name)
        np.testing.assert_array_equal(la.effective_acs_per_step, lb.effective_acs_per_step, err_msg=name)
        np.testing.assert_array_equal(la.neuron_totals, lb.neuron_totals, err_msg=name)
        np.testing.assert_array_equal(la.value_totals, lb.value_totals, err_msg=name)
        assert (la.macs, la.other_ops, la.neuron_updates, la.input_events) == \
            (lb.macs, lb.other_ops, lb.neuron_updates, lb.input_events), name


def low_bit_weights(rng, out, inp, bits, per_row: bool, zeros: float = 0.2):
    """Codes x a power-of-two scale (one per output row, or one for the layer): the dequantized weights."""
    if bits == 1:
        codes = np.where(rng.random((out, inp)) < 0.5, 1, -1)
    else:
        top = 2 ** (bits - 1) - 1
        codes = rng.integers(-top, top + 1, (out, inp)) * (rng.random((out, inp)) >= zeros)
    scale = 2.0 ** rng.integers(-6, 2, (out, 1) if per_row else (1, 1))
    return (codes * scale).astype(np.float32)


@st.composite
def low_bit_chains(draw):
    """A chain of spiking linear layers whose weights are b-bit codes x power-of-two scales."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    n, steps = draw(st.integers(1, 4)), draw(st.integers(1, 12))
    sizes = draw(st.lists(st.integers(1, 40), min_size=2, max_size=4))
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        bits = draw(st.sampled_from([1, 2, 4, 8]))
        w = low_bit_weights(rng, b, a, bits, per_row=draw(st.booleans()))
        neuron = Neuron("lif", vth=float(2.0 ** draw(st.integers(-4, 1))), leak=draw(st.sampled_from([1.0, 0.5])),
                        levels=draw(st.sampled_from([1, 1, 3])))
        bias = (rng.integers(-2, 3, b) / 8).astype(float) if draw(st.booleans()) else None
        layers.append(Layer(f"l{i}", "linear", a, b, inputs=[f"l{i - 1}"] if i else [], seq_len=n,
                            timesteps=steps, neuron=neuron, weights=w, bias=bias, weight_bits=bits))
    spikes = (rng.random((steps, n, sizes[0])) < draw(st.floats(0.05, 0.9))).astype(np.uint8)
    return Network("low-bit", layers, input_size=sizes[0]), spikes


def as_fp32(net: Network) -> Network:
    return Network(net.name, [replace(layer, weight_bits=32) for layer in net.layers], net.input_size,
                   net.input_rate, net.input_spiking, net.metadata)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(low_bit_chains(), st.booleans(), st.booleans())
def test_low_bit_engines_give_the_fp32_engines_spikes_on_the_dequantized_weights(case, threaded, packed):
    net, spikes = case
    saved = kernels.PARALLEL_WORK, lowbit.PACK_SIGNS
    kernels.PARALLEL_WORK = 0 if threaded else saved[0]
    lowbit.PACK_SIGNS = packed   # 1-bit layers: packed signs, or +-1 int8 codes
    try:
        low = run(net, spikes, record_rasters=True)
        fp32 = run(as_fp32(net), spikes, record_rasters=True)
    finally:
        kernels.PARALLEL_WORK, lowbit.PACK_SIGNS = saved
    assert low.notes == []
    assert_same_trace(low, fp32)


def test_codes_and_scales_reproduce_the_weights_exactly():
    rng = np.random.default_rng(3)
    for bits, per_row in [(8, True), (8, False), (4, True), (2, False), (1, True)]:
        w = low_bit_weights(rng, 21, 30, bits, per_row)
        low = quantize(w.T, bits)
        assert low.exact
        np.testing.assert_array_equal(dequantized(low), w.T)
        assert np.abs(low.codes).max() <= max(1, 2 ** (bits - 1) - 1)
        if not per_row:
            assert len(np.unique(low.scale)) == 1   # one scale for the layer


def test_integer_weights_get_scale_one_and_their_own_values_as_codes():
    low = quantize(np.array([[2.0, 3.0], [3.0, -1.0]]), 8)
    np.testing.assert_array_equal(low.codes, [[2, 3], [3, -1]])
    np.testing.assert_array_equal(low.scale, [1.0, 1.0])


def test_packed_signs_hold_output_k_of_byte_j_in_bit_k():
    w = np.array([[1.0, -1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0]])   # 1 input, 10 outputs
    low = quantize(w, 1)
    # outputs 0-7: + - - + + + - +  -> bits 0, 3, 4, 5, 7 -> 1 + 8 + 16 + 32 + 128 = 185; outputs 8, 9: - + -> 2
    np.testing.assert_array_equal(low.packed, [[185, 2]])
    np.testing.assert_array_equal(SIGN_TABLE[185], [1, -1, -1, 1, 1, 1, -1, 1])


def test_weights_off_every_grid_are_rounded_to_codes_with_a_note():
    layer = Layer("a", "linear", 3, 2, timesteps=2, weights=np.array([[0.3, -1.0, 0.7], [2.0, 0.5, 0.1]]),
                  weight_bits=2)
    trace = run(Network("b", [layer], input_size=3), np.ones((2, 1, 3), np.uint8), record_rasters=True)
    assert any("not +-scale x 2-bit codes" in note for note in trace.notes)
    # 2-bit codes are -1, 0, 1 x max|w| per row: row 0 -> (0, -1, 1) x 1.0 = 0 per step, never fires;
    # row 1 -> (1, 0, 0) x 2.0 = 2 per step: fires at both steps; its zero codes are not effective ACs
    np.testing.assert_array_equal(trace["a"].raster[:, 0], [[0, 1], [0, 1]])
    assert trace["a"].effective_acs == 2 * (2 + 1)   # per step: input 0 -> 2 nonzero codes, 1 and 2 -> 1 each


def test_low_bit_weights_with_any_scale_give_nearly_the_fp32_spikes():
    """Non-dyadic scales: the low-bit engine multiplies the code sum by the scale once, the fp32 engine
    adds rounded weights, so the membranes differ by float32 rounding. An integrate-and-fire neuron's
    spike count is then off by at most one, and only for the few that end within rounding of a threshold."""
    rng = np.random.default_rng(5)
    codes = rng.integers(-127, 128, (256, 128)).astype(np.float32)
    w = codes * rng.uniform(0.001, 0.02, (256, 1)).astype(np.float32)   # float32 codes x any scale
    layer = Layer("a", "linear", 128, 256, seq_len=16, timesteps=50, weights=w, bias=np.full(256, 0.1),
                  weight_bits=8)
    net = Network("any-scale", [layer], input_size=128)
    spikes = (rng.random((50, 16, 128)) < 0.2).astype(np.uint8)
    low, fp32 = run(net, spikes), run(as_fp32(net), spikes)
    assert low.notes == []
    diff = np.abs(low["a"].neuron_totals - fp32["a"].neuron_totals)
    assert diff.max() <= 1
    assert (diff != 0).mean() < 0.01
    assert low["a"].acs == fp32["a"].acs


@pytest.mark.parametrize("bits", [1, 8])
def test_low_bit_layers_fed_a_real_current_use_the_dequantized_weights(bits):
    rng = np.random.default_rng(2)
    w = low_bit_weights(rng, 12, 10, bits, per_row=True)
    layer = Layer("a", "linear", 10, 12, seq_len=3, timesteps=6, weights=w, weight_bits=bits)
    net = Network("current", [layer], input_size=10, input_spiking=False)
    x = rng.integers(-2, 3, (3, 10)).astype(np.float32)
    assert_same_trace(run(net, x, record_rasters=True), run(as_fp32(net), x, record_rasters=True))


@pytest.mark.parametrize("top", [1, 127])
@pytest.mark.parametrize("L", [5, 69])
def test_long_runs_of_binary_events_are_summed_exactly_in_narrow_integers(top, L):
    """accumulate sums int8 codes' runs of value-1 events in int16 (258 events at most, `CODE_RUN`) before widening
    to int32, by 512-bit vectors of 64 outputs (L = 69: one vector block and a tail of 5) and by loops (the
    tail). 600 events of the largest code overflow int16 unless the runs are cut: the sums must be 600 x 1 =
    600 and 600 x 127 = 76,200, by hand; a second token with some events of value 3 among them is checked
    against numpy's integer product."""
    n_in = 600
    codes = np.full((n_in, L), top, np.int8)
    codes[:, 4] = -top                                   # one output of negative codes
    spk = np.ones((2, n_in), np.uint8)
    spk[1, ::7] = 3                                      # token 1: every 7th event has value 3
    ptr, idx, val = kernels.events_csr(spk)
    cur = np.zeros((2, L), np.float32)
    kernels.accumulate(0, ptr, idx, val, kernels.tiles_of(codes, kernels.TILE_CODES), n_in, cur)
    np.testing.assert_array_equal(cur[0], [600 * top] * 4 + [-600 * top] + [600 * top] * (L - 5))
    np.testing.assert_array_equal(cur[1], spk[1].astype(np.int64) @ codes.astype(np.int64))
    fp32 = np.zeros((2, L), np.float32)
    kernels.accumulate(0, ptr, idx, val, kernels.tiles_of(codes.astype(np.float32), 2), codes.shape[0], fp32)   # tiles of 2
    np.testing.assert_array_equal(fp32, cur)
