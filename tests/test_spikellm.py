"""SpikeLLM's GIF neuron (neurosim.frontend.spikellm) against hand computations and the dense product."""

from __future__ import annotations

import pytest
import torch

from neurosim.errors import NeurosimError
from neurosim.frontend.neurons import GIF
from neurosim.frontend.spikellm import (SpikeCount, gif_linear, gif_neuron, gif_spikes, gif_values, quantize, residue,
                                        two_path_fake_quant)

# One token, four channels; with 3 bits (n = 2, addbit = 1): scale = (2 - -1) / 7 = 3/7,
# zero point = round(7/3) = 2, codes = round([-7/3, 0, 7/6, 14/3]) + 2 = [0, 2, 3, 7].
X = torch.tensor([[-1.0, 0.0, 0.5, 2.0]])
W = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, -1.0]])


def test_per_token_quantization_matches_a_hand_computation():
    q = quantize(X, 2)            # 2 bits: scale (2 - -1) / 3 = 1, zero point 1
    assert q.scale.item() == 1.0 and q.zero_point.item() == 1.0
    # round(0.5) ties to even (0), as torch.round does in the reference
    assert q.ints.tolist() == [[0.0, 1.0, 1.0, 3.0]]
    assert q.dequantize().tolist() == [[-1.0, 0.0, 0.0, 2.0]]
    q3 = quantize(X, 3)
    assert q3.scale.item() == pytest.approx(3 / 7) and q3.zero_point.item() == 2.0
    assert q3.ints.tolist() == [[0.0, 2.0, 3.0, 7.0]]


def test_gif_emits_at_most_two_to_the_n_minus_one_per_step_and_drops_what_is_left():
    codes = torch.tensor([0.0, 1.0, 3.0, 5.0, 6.0, 7.0])
    spikes = gif_spikes(codes, n_bits=2, addbit=1)          # T = 2 steps of spikes 0..3
    assert spikes.tolist() == [[0, 1, 3, 3, 3, 3], [0, 0, 0, 2, 3, 3]]
    # 7 = 3 + 3 + 1: the last unit stays in the membrane after T = 2 steps, as in the reference
    assert residue(codes, 2, 1).tolist() == [0, 0, 0, 0, 0, 1]
    assert (spikes.sum(0) + residue(codes, 2, 1)).tolist() == codes.tolist()


def test_spikes_sum_to_the_code_whenever_it_fits_in_t_steps():
    torch.manual_seed(0)
    for n_bits, addbit in ((2, 0), (2, 2), (4, 1), (3, 3)):
        codes = torch.randint(0, 2 ** addbit * (2 ** n_bits - 1) + 1, (50,)).float()
        spikes = gif_spikes(codes, n_bits, addbit)
        assert spikes.shape[0] == 2 ** addbit and spikes.max() <= 2 ** n_bits - 1
        assert torch.equal(spikes.sum(0), codes)


def test_gif_linear_matches_the_hand_computed_spike_matmul():
    count = SpikeCount()
    out = gif_linear(X, W, None, n_bits=2, addbit=1, count=count)
    # spikes [0,2,3,3] then [0,0,0,3]: sums [0,2,3,6] (1 unit of 7 dropped);
    # ((sums W^T) - 2 * rowsum(W)) * 3/7 = ([11, -6] - [8, 0]) * 3/7
    assert out[0].tolist() == pytest.approx([9 / 7, -18 / 7])
    # the quantized matmul without the dropped unit: codes - zero point = [-2, 0, 1, 5]
    assert (two_path_fake_quant(X, 2, 1) @ W.T)[0].tolist() == pytest.approx([12 / 7, -3.0])
    assert count.events == [3.0, 1.0] and count.values == 11.0
    assert count.bit_events == 7.0 and count.residue == 1.0       # popcounts 1 + 2 + 2 + 2
    assert count.rate() == pytest.approx(4 / 8) and (count.steps, count.spike_bits, count.vectors) == (2, 2, 1)
    assert count.elements == 4 and count.dense_rate() == pytest.approx(4 / 8)
    assert count.acs == 4 * 2                                     # 4 events, each to both outputs


def test_gif_linear_is_the_dense_product_within_quantization_error():
    torch.manual_seed(1)
    x, w, b = torch.randn(3, 5, 64), torch.randn(32, 64) / 8, torch.randn(32)
    for n_bits, addbit in ((4, 0), (4, 1), (4, 2), (6, 1)):
        out = gif_linear(x, w, b, n_bits, addbit)
        q = quantize(x, n_bits + addbit)
        lost = residue(q.ints, n_bits, addbit)
        # each channel is off by at most half a step, plus what the GIF dropped
        bound = (q.scale * (0.5 + lost)) @ w.abs().T + 1e-4
        assert ((out - (x @ w.T + b)).abs() <= bound).all()
        # and exactly the product of what the spikes carried
        sent = (q.ints - lost - q.zero_point) * q.scale
        assert torch.allclose(out, sent @ w.T + b, atol=1e-5)
    dense_error = lambda bits: (gif_linear(x, w, b, bits, 1) - (x @ w.T + b)).abs().mean()  # noqa: E731
    assert dense_error(6) < dense_error(4) / 2


def test_single_step_channels_carry_their_own_zero_point_only():
    x = torch.tensor([[3.0, -0.4, 0.1, 0.9, -1.0]])      # the largest channel (0) is on the single-step path
    multi = torch.tensor([False, True, True, True, True])
    out = gif_linear(x, W.repeat(1, 2)[:, :5], None, 2, 2, multi)
    w = W.repeat(1, 2)[:, :5]
    assert torch.allclose(out, two_path_fake_quant(x, 2, 2, multi) @ w.T, atol=1e-5)
    # the reference's spike mode subtracts the zero point over all channels, low ones too: it would differ
    high = quantize(x, 4)
    assert high.zero_point.item() != 0 and (high.zero_point * high.scale * w[:, 0]).abs().max() > 0.1


def test_spikellm_gif_is_neurosims_gif_driven_by_one_impulse():
    torch.manual_seed(2)
    n_bits, addbit = 3, 2
    codes = torch.randint(0, 2 ** (n_bits + addbit), (40,)).float()
    ir = gif_neuron(n_bits)
    assert ir.levels == 7 and ir.spike_bits == n_bits and ir.vth == 1.0
    neuron, mem, impulse = GIF(ir.levels, threshold=1.0), None, []
    for t in range(2 ** addbit):
        spk, mem = neuron(codes if t == 0 else torch.zeros_like(codes), mem)
        impulse.append(spk)
    assert torch.equal(torch.stack(impulse), gif_spikes(codes, n_bits, addbit))
    # fed the same charge as a constant current (codes / T each step), neurosim's GIF sends another train
    mem, steady = None, []
    for t in range(2 ** addbit):
        spk, mem = neuron(codes / 2 ** addbit, mem)
        steady.append(spk)
    assert not torch.equal(torch.stack(steady), gif_spikes(codes, n_bits, addbit))


@pytest.mark.parametrize("n_bits, addbit", [(1, 1), (4, -1), (12, 5), (4.0, 1), (True, 1)])
def test_bit_widths_the_reference_refuses_are_refused(n_bits, addbit):
    with pytest.raises(NeurosimError, match="n_bits|addbit"):
        gif_spikes(torch.zeros(3), n_bits, addbit)


def test_the_values_the_spikes_carry_give_the_same_layer_output():
    torch.manual_seed(3)
    x, w = torch.randn(6, 16), torch.randn(8, 16)
    multi = torch.rand(16) > 0.5
    assert torch.allclose(gif_values(x, 3, 2, multi) @ w.T, gif_linear(x, w, None, 3, 2, multi), atol=1e-4)
