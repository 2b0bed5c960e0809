"""Temporal pruning: timesteps per spiking sublayer from PCA of its per-timestep ASR (eq. 10).

The seed paper gives every spiking sublayer its own timesteps (Appendix B:
t_K, t_V, t_Attn, t_FC, t_Inter, t_Output, with t_Q = t_Attn; Table III's
latencies, the mean over 4 x 6 sublayers + 1, are multiples of 1/25). For
sublayer l, X^l is the temporal sequence of its ASR: row t (t = 1..T_conv)
holds every neuron's ASR after t steps (its spike count so far / t), averaged
over the calibration sentences and tokens (`data="running"`, the default).
PCA of X^l (timesteps as observations, columns centred) gives c^l, the number
of components whose explained variance reaches `variance` (default 0.99999):
a sublayer whose ASR settles quickly is described by few components and needs
fewer steps. Eq. 10 then gives

    t^l = ceil( b^(c^l) / max_j b^(c^j) x T_conv ),   b = 1.02 by default,

the max running over every sublayer of every block, so the sublayer with the
most components keeps T_conv and the others shrink by b per component fewer.
A sublayer with no temporal variance at all (constant ASR) has c^l = 0.
`granularity="block"` pools a block's six sublayers into one X^l and one t^l
(this project's earlier reading, kept for comparison). Layers then run their
own t^l (the encoder's `stochastic` and `rate_t` modes, the sequential
mapping carrying rates).

The seed paper's text does not pin down the matrix further; two other
readings are kept as options and compared in analysis/pruning_table.md:
`data="step"` (row t = each neuron's spike fraction *at* step t, not
cumulative) and `data="samples"` (one row per calibration sentence, columns =
the layer's mean ASR at each step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activity import SpikeStats, spike_stats
from ..frontend.encoder import ROLES
from .constants import DEFAULT_B, DEFAULT_VARIANCE, GRANULARITY, PCA_DATA


def pca_components(x: np.ndarray, variance: float = DEFAULT_VARIANCE) -> int:
    """Fewest principal components of the rows of `x` (samples x steps) explaining `variance` of the total."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    sv = np.linalg.svd(centred, compute_uv=False)
    var = sv ** 2
    total = var.sum()
    if total <= 0:
        return 0
    explained = np.cumsum(var) / total
    return int(np.searchsorted(explained, variance - 1e-12) + 1)


def allocate_timesteps(components: list[int] | np.ndarray, t_conv: int, b: float = DEFAULT_B) -> list[int]:
    """Eq. 10: t^l = ceil(b^(c^l) / max_j b^(c^j) x T_conv), at least 1.

    Computed as b^(c^l - max c) (the same ratio, without overflow); a product
    within 1e-9 of an integer is taken as that integer, so float rounding
    cannot add a step.
    """
    c = np.asarray(components, dtype=np.float64)
    top = c.max()
    out = []
    for cl in c:
        x = b ** (cl - top) * t_conv
        out.append(max(1, math.ceil(x - 1e-9 * max(1.0, x))))
    return out


@dataclass
class TemporalResult:
    components: list             # c^l: per block, an int (granularity "block") or 6 ints (ROLES order)
    timesteps: list              # t^l, the same shape: what `model.timesteps` accepts
    t_conv: int
    b: float
    variance: float
    data: str
    explained: list[list[float]]  # per layer (block, or sublayer in block-major ROLES order): cumulative explained
                                  # variance ratio, for plots
    granularity: str = "sublayer"

    @property
    def mean_t(self) -> float:
        """Mean timesteps over the spiking sublayers (the paper's latency: Table III)."""
        flat = [t for entry in self.timesteps for t in (entry if isinstance(entry, list) else [entry] * len(ROLES))]
        return sum(flat) / len(flat)


def layer_sequence(stats: SpikeStats, block: int, data: str = "running", role: str | None = None) -> np.ndarray:
    """X^l for PCA (observations x features) of one sublayer (`role`) or a whole block; see the module
    docstring for the three readings."""
    if data == "running":
        per_step = stats.layer_neuron_steps(block, role)
        return np.cumsum(per_step, axis=0) / np.arange(1, len(per_step) + 1)[:, None]
    if data == "step":
        return stats.layer_neuron_steps(block, role)
    if data == "samples":
        return stats.layer_step_asr(block, role)
    raise ValueError(f"data must be one of {', '.join(PCA_DATA)}, got {data!r}")


def explained_curve(x: np.ndarray) -> list[float]:
    centred = x - x.mean(axis=0, keepdims=True)
    var = np.linalg.svd(centred, compute_uv=False) ** 2
    return (np.cumsum(var) / var.sum()).tolist() if var.sum() > 0 else [1.0]


def temporal_allocation(stats: SpikeStats, blocks: int, variance: float = DEFAULT_VARIANCE, b: float = DEFAULT_B,
                        data: str = "running", granularity: str = "sublayer") -> TemporalResult:
    """c^l and eq. 10's t^l for every sublayer (or every block) from the spike statistics."""
    if granularity not in GRANULARITY:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITY)}, got {granularity!r}")
    units = [(blk, role) for blk in range(blocks) for role in (ROLES if granularity == "sublayer" else (None,))]
    xs = [layer_sequence(stats, blk, data, role) for blk, role in units]
    comps = [pca_components(x, variance) for x in xs]
    steps = allocate_timesteps(comps, stats.timesteps, b)
    if granularity == "sublayer":
        k = len(ROLES)
        comps = [comps[i:i + k] for i in range(0, len(comps), k)]
        steps = [steps[i:i + k] for i in range(0, len(steps), k)]
    return TemporalResult(comps, steps, stats.timesteps, b, variance, data, [explained_curve(x) for x in xs],
                          granularity)


def temporal_prune(model, tokens, t_conv: int | None = None, variance: float = DEFAULT_VARIANCE,
                   b: float = DEFAULT_B, data: str = "running", batch: int = 64,
                   granularity: str = "sublayer") -> TemporalResult:
    """Record per-step ASR on `tokens` at T_conv (default the model's max timesteps), set model.timesteps = t^l."""
    stats = spike_stats(model, tokens, t_conv, batch)
    result = temporal_allocation(stats, len(model.blocks), variance, b, data, granularity)
    model.timesteps = result.timesteps
    return result
