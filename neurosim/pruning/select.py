"""Selecting heads and neurons under the AC budget M(h, n) <= M_c, then refining by greedy swaps.

Selection (`select_masks`):

* `search` (default; Kwon et al. 2022, "A Fast Post-Training Pruning
  Framework for Transformers", Algorithm 1): heads and neurons are ranked
  globally by score; for every number k of kept heads, keep the top k heads
  and fill the rest of the budget with the top neurons; keep the (k, neurons)
  pair that keeps the most total score. Unit prices come from `budget.UnitCosts`
  (the project's Appendix B count), so blocks with fewer timesteps are cheaper.
* `rank`: the literal "prune the lowest until the budget holds": units sorted
  by score per AC (ascending) are pruned one by one until M <= M_c.

Refinement (`greedy_swap`, after Kwon et al.'s mask rearrangement): the
diagonal Fisher treats units as independent; the block-diagonal one does not.
With v_i,s the per-sample gradient of unit i scaled by sqrt(its weight), the
importance of a pruned set P of one group (the heads, or the neurons, of one
block) is I(P) = sum_s (sum_{i in P} v_i,s)^2, whose diagonal terms are the
units' scores. A swap of one pruned and one kept unit of the same group keeps
the budget (same price) and is taken when it lowers I(P); the best swap is
taken until none lowers it, so I never increases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .budget import UnitCosts, masked_m
from .fisher import Importance


@dataclass
class Selection:
    head_keep: np.ndarray     # (blocks, heads) bool
    neuron_keep: np.ndarray   # (blocks, intermediate) bool
    m: int                    # M(h, n, t) of these masks
    budget: float             # M_c
    swaps: int = 0
    pruned_importance: dict[str, tuple[float, float]] = field(default_factory=dict)  # group -> (before, after)


def _prefix_fit(costs_sorted: np.ndarray, room: float) -> int:
    """How many of the units (in this order) fit in `room` ACs, taken as a prefix."""
    return int(np.searchsorted(np.cumsum(costs_sorted), room, side="right"))


def select_masks(head_scores: np.ndarray, neuron_scores: np.ndarray, costs: UnitCosts, budget: float,
                 method: str = "search", allowed: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Boolean keep-masks (blocks, heads), (blocks, neurons) with M <= budget.

    `allowed`: (heads, neurons) boolean masks of units that may be kept (e.g.
    the model's current masks, so that pruned units stay pruned); default all.
    """
    nb, nh = head_scores.shape
    ni = neuron_scores.shape[1]
    hc = np.repeat(costs.head, nh).astype(np.float64)      # per-head price, flattened like head_scores
    nc = np.repeat(costs.neuron, ni).astype(np.float64)
    hs, ns = head_scores.ravel().astype(np.float64), neuron_scores.ravel().astype(np.float64)
    ha = np.ones(hs.size, bool) if allowed is None else np.asarray(allowed[0], bool).ravel()
    na = np.ones(ns.size, bool) if allowed is None else np.asarray(allowed[1], bool).ravel()
    if method == "search":
        # allowed units first (by score, descending), the others after them and never taken
        h_order = np.lexsort((-hs, ~ha))[: int(ha.sum())]
        n_order = np.lexsort((-ns, ~na))[: int(na.sum())]
        h_cum = np.concatenate([[0.0], np.cumsum(hc[h_order])])
        n_cum_score = np.concatenate([[0.0], np.cumsum(ns[n_order])])
        h_cum_score = np.concatenate([[0.0], np.cumsum(hs[h_order])])
        best, best_k = -np.inf, None
        for k in range(len(h_order) + 1):
            room = budget - h_cum[k]
            if room < 0:
                break
            j = _prefix_fit(nc[n_order], room)
            total = h_cum_score[k] + n_cum_score[j]
            if total > best:
                best, best_k = total, (k, j)
        if best_k is None:
            raise ValueError(f"budget {budget:g} is below zero ACs")
        k, j = best_k
        hk, nk = np.zeros(len(hs), bool), np.zeros(len(ns), bool)
        hk[h_order[:k]], nk[n_order[:j]] = True, True
    elif method == "rank":
        scores = np.concatenate([hs, ns])
        prices = np.concatenate([hc, nc])
        keep = np.concatenate([ha, na])
        total = prices[keep].sum()
        for u in np.argsort(np.where(keep, scores / prices, -np.inf), kind="stable"):
            if not keep[u]:
                continue
            if total <= budget:
                break
            keep[u] = False
            total -= prices[u]
        hk, nk = keep[:len(hs)], keep[len(hs):]
    else:
        raise ValueError(f"method must be 'search' or 'rank', got {method!r}")
    hk, nk = hk.reshape(nb, nh), nk.reshape(nb, ni)
    assert masked_m(costs, hk, nk) <= budget
    return hk, nk


def pruned_importance(vectors: np.ndarray, keep: np.ndarray) -> float:
    """I(P) = sum_s (sum_{i pruned} v_i,s)^2 for per-sample vectors (samples, units)."""
    return float((vectors[:, ~keep].sum(axis=1) ** 2).sum())


def greedy_swap(vectors: np.ndarray, keep: np.ndarray, max_swaps: int | None = None, tol: float = 1e-12,
                allowed: np.ndarray | None = None) -> tuple[np.ndarray, list[float]]:
    """Swap pruned and kept units of one group while a swap lowers I(P); returns the mask and I after each step.

    Only units in `allowed` (default all) may be brought back.

    With F = V^T V and z the pruned indicator, swapping pruned p for kept k
    changes I by -2 (Fz)_p + 2 (Fz)_k + F_pp + F_kk - 2 F_pk.
    """
    keep = np.asarray(keep, bool).copy()
    fm = vectors.T @ vectors
    z = (~keep).astype(np.float64)
    fz = fm @ z
    history = [float(z @ fz)]
    diag = np.diag(fm)
    allowed = np.ones(keep.size, bool) if allowed is None else np.asarray(allowed, bool)
    limit = keep.size if max_swaps is None else max_swaps
    for _ in range(limit):
        pruned, kept = np.flatnonzero(~keep & allowed), np.flatnonzero(keep)
        if len(pruned) == 0 or len(kept) == 0:
            break
        delta = ((-2 * fz[pruned] + diag[pruned])[:, None] + (2 * fz[kept] + diag[kept])[None, :]
                 - 2 * fm[np.ix_(pruned, kept)])
        p_i, k_i = np.unravel_index(np.argmin(delta), delta.shape)
        if delta[p_i, k_i] >= -tol * max(1.0, abs(history[-1])):
            break
        p, k = pruned[p_i], kept[k_i]
        keep[p], keep[k] = True, False
        fz += fm[:, k] - fm[:, p]
        history.append(float(history[-1] + delta[p_i, k_i]))
    return keep, history


def select_and_refine(imp: Importance, costs: UnitCosts, budget: float, method: str = "search",
                      swap: bool = True, allowed: tuple[np.ndarray, np.ndarray] | None = None) -> Selection:
    """Budgeted selection on the diagonal scores, then greedy swaps within every (block, heads|neurons) group."""
    hk, nk = select_masks(imp.heads, imp.neurons, costs, budget, method, allowed)
    sel = Selection(hk, nk, masked_m(costs, hk, nk), budget)
    ha, na = allowed if allowed is not None else (np.ones_like(hk), np.ones_like(nk))
    for b in range(costs.blocks):
        for kind, keep, vec, ok in (("heads", sel.head_keep, imp.head_vectors(b), ha[b]),
                                    ("neurons", sel.neuron_keep, imp.neuron_vectors(b), na[b])):
            before = pruned_importance(vec, keep[b])
            if swap:
                keep[b], hist = greedy_swap(vec, keep[b], allowed=ok)
                sel.swaps += len(hist) - 1
            sel.pruned_importance[f"block{b}.{kind}"] = (before, pruned_importance(vec, keep[b]))
    sel.m = masked_m(costs, sel.head_keep, sel.neuron_keep)
    return sel


def apply_masks(model, head_keep: np.ndarray, neuron_keep: np.ndarray) -> None:
    """Write boolean keep-masks into the model's head_mask / neuron_mask buffers."""
    import torch

    for b, blk in enumerate(model.blocks):
        blk.head_mask.copy_(torch.as_tensor(head_keep[b], dtype=blk.head_mask.dtype))
        blk.neuron_mask.copy_(torch.as_tensor(neuron_keep[b], dtype=blk.neuron_mask.dtype))
