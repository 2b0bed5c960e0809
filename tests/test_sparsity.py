"""Zeroed weights: all-zero rows and unread columns become structured masks (from_torch), and the spike
engine's effective ACs count nonzero input x nonzero weight beside the dense-synapse ACs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurosim.frontend import LIF, from_torch
from neurosim.spikes import run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pruned_mlp() -> nn.Sequential:
    """3 -> 4 -> 2. Hidden unit 3 has an all-zero row (and bias): it can never spike. Hidden unit 2 is read
    by no output (an all-zero column): nothing downstream depends on it."""
    seq = nn.Sequential(nn.Linear(3, 4), LIF(1.0), nn.Linear(4, 2), LIF(1.0))
    with torch.no_grad():
        seq[0].weight.copy_(torch.tensor([[1.0, 0, 1], [1, 1, 0], [1, 1, 1], [0, 0, 0]]))
        seq[0].bias.zero_()
        seq[2].weight.copy_(torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]]))
        seq[2].bias.zero_()
    return seq


def test_zero_rows_and_unread_columns_become_masks():
    net = from_torch(pruned_mlp(), torch.tensor([[[1.0, 1, 0]]]), time_major=True)
    assert net["0"].neuron_mask.tolist() == [True, True, False, False]
    assert net["2"].neuron_mask is None
    assert "0 2" in net.metadata["zero_masks"]
    assert from_torch(pruned_mlp(), torch.tensor([[[1.0, 1, 0]]]), time_major=True, masks=False)["0"].neuron_mask \
        is None


def test_effective_acs_of_a_pruned_mlp_counted_by_hand():
    # one step, inputs 0 and 1 spike. Hidden: the two live units get currents 1 and 2, both fire.
    # layer 0: 2 events x 2 live units = 4 ACs; nonzero weights in columns 0 and 1 of rows 0-1: 2 + 1 = 3.
    # layer 2: 2 events (hidden 0, 1) x 2 outputs = 4 ACs; nonzero weights of columns 0 and 1: 1 + 1 = 2.
    x = torch.tensor([[[1.0, 1, 0]]])
    net = from_torch(pruned_mlp(), x, time_major=True)
    trace = run(net, x.numpy().astype(np.uint8))
    assert [(trace[n].acs, trace[n].effective_acs) for n in ("0", "2")] == [(4, 3), (4, 2)]
    assert (trace.acs, trace.effective_acs) == (8, 5)
    dense = run(from_torch(pruned_mlp(), x, time_major=True, masks=False), x.numpy().astype(np.uint8))
    # unmasked: 2 events x 4 units = 8 ACs, of which unit 2's (read by no one) add 2 effective ones
    assert (dense["0"].acs, dense["0"].effective_acs) == (8, 5)
    assert trace.to_frame().set_index("layer").loc["0", "effective_acs"] == 3


def test_masks_leave_the_spikes_that_matter_unchanged():
    rng = np.random.default_rng(0)
    seq = nn.Sequential(nn.Linear(10, 12), LIF(0.5, 0.5), nn.Linear(12, 6), LIF(0.5))
    with torch.no_grad():
        for lin in (seq[0], seq[2]):
            lin.weight.copy_(torch.from_numpy(rng.integers(-2, 4, size=lin.weight.shape) / 4))
            lin.bias.zero_()
        seq[0].weight[::2] = 0      # half the hidden units: all-zero rows
        seq[2].weight[:, 1::4] = 0  # some hidden units read by no output
    x = (torch.rand(40, 1, 10, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    masked, dense = (from_torch(seq, x, time_major=True, masks=m) for m in (True, False))
    assert (~masked["0"].neuron_mask).sum() == 6 + 3
    a, b = (run(n, x.numpy().astype(np.uint8), record_rasters=True) for n in (masked, dense))
    np.testing.assert_array_equal(a["2"].raster, b["2"].raster)   # the outputs, spike for spike
    assert a["0"].acs < b["0"].acs and a["0"].effective_acs < b["0"].effective_acs   # unread units not computed
    assert a["2"].effective_acs == b["2"].effective_acs   # same spikes in, same nonzero weights
