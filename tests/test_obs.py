"""Optimal Brain Spiking (neurosim.frontend.obs) on hand-made layers."""

from __future__ import annotations

import pytest
import torch

from neurosim.errors import NeurosimError
from neurosim.frontend.obs import channel_split, key_saliency, linear_saliency, split_cost, value_saliency
from neurosim.frontend.spikellm import SpikeCount, gif_linear


def test_linear_saliency_matches_a_hand_computation():
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # token 1: x W^T = [1, 3], (x W^T) W = [4, 3], times x = [4, 6]
    # token 2: x W^T = [2, 1], (x W^T) W = [3, 1], times x = [6, -1]
    x = torch.tensor([[1.0, 2.0], [2.0, -1.0]])
    assert linear_saliency(x[:1], w).tolist() == [4.0, 6.0]
    assert linear_saliency(x, w).tolist() == [5.0, 2.5]
    # each token's saliencies add up to |x W^T|^2 (the second-order term they share out)
    assert float(linear_saliency(x, w).sum()) * 2 == float(((x @ w.T) ** 2).sum())
    # samples are averaged like tokens: two samples of one token each give the same answer
    assert linear_saliency(x[:, None, :], w).tolist() == [5.0, 2.5]


def test_the_lowest_low_p_channels_take_the_single_step_path():
    assert channel_split(torch.tensor([4.0, 6.0]), 0.5).tolist() == [False, True]
    assert channel_split(torch.tensor([5.0, 2.5]), 0.5).tolist() == [True, False]
    s = torch.tensor([3.0, -1.0, 7.0, 0.5, 2.0, 9.0, 4.0, 1.0, 8.0, 6.0])
    assert channel_split(s, 0.9).tolist() == [False] * 5 + [True] + [False] * 4
    assert channel_split(s, 0.3).tolist() == [True, False, True, False, True, True, True, False, True, True]
    assert not channel_split(s, 1.0).any()
    # low_p = 0: every channel multi-step (the reference's index -1 would send all single-step)
    assert channel_split(s, 0.0).all()
    # ties at the threshold go single-step together
    assert channel_split(torch.tensor([1.0, 1.0, 1.0, 2.0]), 0.25).tolist() == [False, False, False, True]


def test_kv_cache_saliencies_match_a_hand_computation():
    q = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])          # one head, 2 tokens: Q^T Q = diag(1, 4)
    k = torch.tensor([[[1.0, 1.0], [2.0, -1.0]]])
    # K (Q^T Q) = [[1, 4], [2, -4]]; times K = [[1, 4], [4, 4]]; mean over tokens [2.5, 4]
    assert key_saliency(q, k).tolist() == [[2.5, 4.0]]
    p = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])          # P^T P = [[1.25, 0.25], [0.25, 0.25]]
    v = torch.tensor([[[1.0, 0.0], [2.0, 2.0]]])
    # (P^T P) V = [[1.75, 0.5], [0.75, 0.5]]; times V = [[1.75, 0], [1.5, 1]]; mean [1.625, 0.5]
    assert value_saliency(p, v).tolist() == [[1.625, 0.5]]
    # heads share one split over all their channels: here both of the second head's are the lowest
    both = torch.cat([key_saliency(q, k), value_saliency(p, v)])      # [[2.5, 4], [1.625, 0.5]]
    assert channel_split(both, 0.5).tolist() == [[True, True], [False, False]]


def test_single_step_channels_cost_what_the_split_says():
    # n = 2, addbit = 1: multi-step codes have 3 bits (scale 1, zero point 0 for x in [0, 7])
    x = torch.tensor([[0.0, 4.0, 5.0, 7.0]])
    multi = torch.tensor([True, True, True, False])
    cost = split_cost(multi, 2, 1)
    assert (cost.single, cost.multi, cost.steps, cost.slots, cost.bits) == (1, 3, 2, 7, 14)
    assert cost.mean_bits == 3.5 and cost.code_bits == 2.75
    count = SpikeCount()
    w = torch.tensor([[1.0, -2.0, 0.5, 1.0]])
    out = gif_linear(x, w, None, 2, 1, multi, count)
    # multi: [0, 4, 5] -> [0, 3, 3] then [0, 1, 2]; single: 7 at 2 bits, scale 7/3 -> one spike of 3
    assert count.events == [3.0, 2.0] and count.values == 12.0
    assert count.slots == cost.slots and count.rate() == pytest.approx(5 / 7)
    assert count.dense_rate() == pytest.approx(5 / 8)     # as if all 4 channels had 2 slots
    assert out.item() == pytest.approx(float(x @ w.T))     # every value sent exactly


@pytest.mark.parametrize("low_p", [-0.1, 1.5, "0.9", None, True])
def test_a_bad_low_p_is_refused(low_p):
    with pytest.raises(NeurosimError, match="low_p"):
        channel_split(torch.ones(4), low_p)


def test_inputs_of_the_wrong_shape_are_refused():
    with pytest.raises(NeurosimError, match="channels"):
        linear_saliency(torch.ones(3, 5), torch.ones(2, 4))
    with pytest.raises(NeurosimError, match="axes"):
        key_saliency(torch.ones(2), torch.ones(2))
