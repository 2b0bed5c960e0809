"""The AC budget M(h, n, t): the project's Appendix B count, per unit, as numbers and as a torch expression.

`cost.analytic.paper_m` sums, over every encoder block, live heads x (eq. 17
+ eq. 19 + eq. 20) and live intermediate neurons x eq. 21, each term at its
sublayer's timesteps. Pruning needs the same sum as a function of the masks,
so this module takes the per-unit prices from `cost.analytic` itself (its
`encoder_blocks` reader and their `head_acs` / `neuron_acs`, nothing
re-derived) and
multiplies them by the masks: `masked_m` with 0/1 masks equals `paper_m` of
the network carrying those masks exactly (tests/test_pruning.py checks it),
and `m_torch` is the same sum over relaxed (real-valued) gates, differentiable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cost import analytic
from ..ir import Network


@dataclass(frozen=True)
class UnitCosts:
    """ACs of one head and of one intermediate neuron, per block, as `paper_m` prices them."""

    head: np.ndarray    # (blocks,) int64: eq. 16-20, each term at its sublayer's timesteps
    neuron: np.ndarray  # (blocks,) int64: eq. 21 at t_Inter and t_Output
    heads: int          # heads per block
    neurons: int        # intermediate neurons per block

    @property
    def blocks(self) -> int:
        return len(self.head)

    def full(self) -> int:
        """M with every unit kept (at these timesteps)."""
        return int(self.heads * self.head.sum() + self.neurons * self.neuron.sum())


def unit_costs(net: Network, timesteps: list[int] | None = None) -> UnitCosts:
    """Per-unit prices of every block of `net` (each Appendix B term at its sublayer's t^l); `timesteps` (one per
    block) prices every sublayer of a block at that one count instead."""
    blocks = analytic.encoder_blocks(net)
    if timesteps is not None and len(timesteps) != len(blocks):
        raise ValueError(f"one timestep count per block ({len(blocks)}), got {timesteps}")
    at = timesteps or [None] * len(blocks)
    head = [b.head_acs(t) for b, t in zip(blocks, at)]
    neuron = [b.neuron_acs(t) for b, t in zip(blocks, at)]
    return UnitCosts(np.array(head, dtype=np.int64), np.array(neuron, dtype=np.int64),
                     len(blocks[0].head_mask), len(blocks[0].neuron_mask))


def masked_m(costs: UnitCosts, head_keep: np.ndarray, neuron_keep: np.ndarray) -> int:
    """M(h, n, t) for 0/1 masks of shape (blocks, heads) and (blocks, neurons): an exact integer."""
    h = np.asarray(head_keep).astype(np.int64).sum(axis=1)
    n = np.asarray(neuron_keep).astype(np.int64).sum(axis=1)
    return int((h * costs.head).sum() + (n * costs.neuron).sum())


def m_torch(costs: UnitCosts, head_gates: list[torch.Tensor], neuron_gates: list[torch.Tensor]) -> torch.Tensor:
    """The same sum over real-valued gates (float64, differentiable): sum_b cost_h[b] sum h_b + cost_n[b] sum n_b."""
    total = torch.zeros((), dtype=torch.float64, device=head_gates[0].device)
    for b in range(costs.blocks):
        total = total + float(costs.head[b]) * head_gates[b].double().sum()
        total = total + float(costs.neuron[b]) * neuron_gates[b].double().sum()
    return total


def structure(model) -> Network:
    """The IR of a SpikingEncoder for counting (its masks and timesteps); rates come from one all-padding
    sentence and mean nothing: use `frontend.from_torch` with real tokens for rates."""
    from ..frontend.extract import from_torch

    return from_torch(model, torch.zeros(1, model.seq_len, dtype=torch.long), name="structure")


def model_masks(model) -> tuple[np.ndarray, np.ndarray]:
    """The model's head and neuron masks as boolean arrays (blocks, heads), (blocks, neurons)."""
    heads = np.stack([blk.head_mask.detach().cpu().numpy() > 0.5 for blk in model.blocks])
    neurons = np.stack([blk.neuron_mask.detach().cpu().numpy() > 0.5 for blk in model.blocks])
    return heads, neurons


def baseline_m(net: Network, timesteps: int | None = None) -> int:
    """M(1, 1, T): the unpruned count at the baseline T (eq. 14's denominator)."""
    t = timesteps or net.metadata.get("baseline_timesteps") or net.max_timesteps
    return analytic.paper_m(net, timesteps=t, unpruned=True)
