"""Temporal pruning: per-layer timesteps from PCA of each layer's per-timestep ASR (eq. 10).

For encoder layer l, X^l is the temporal sequence of the layer's ASR: row t
(t = 1..T_conv) holds every neuron's ASR after t steps (its spike count so far
/ t), averaged over the calibration sentences and tokens, for all neurons of
the layer's spiking sublayers (`data="running"`, the default). PCA of X^l
(timesteps as observations, columns centred) gives c^l, the number of
components whose explained variance reaches `variance` (default 0.99999): a
layer whose ASR settles quickly is described by few components and needs
fewer steps. Eq. 10 then gives

    t^l = ceil( b^(c^l) / max_j b^(c^j) x T_conv ),   b = 1.02 by default,

so the layer with the most components keeps T_conv and the others shrink by
b per component fewer. A layer with no temporal variance at all (constant
ASR) has c^l = 0. Layers then run their own t^l (the encoder's `stochastic`
mode, the sequential mapping carrying rates).

The seed paper's text does not pin down the matrix further; two other
readings are kept as options and compared in analysis/pruning_table.md:
`data="step"` (row t = each neuron's spike fraction *at* step t, not
cumulative) and `data="samples"` (one row per calibration sentence, columns =
the layer's mean ASR at each step). On the shipped model at the default
variance both give c^l = T_conv - 1 or T_conv for every layer, i.e. no
temporal pruning; the running ASR is the reading under which eq. 10 separates
the layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activity import SpikeStats, spike_stats
from .constants import DEFAULT_B, DEFAULT_VARIANCE, PCA_DATA


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
    components: list[int]        # c^l
    timesteps: list[int]         # t^l
    t_conv: int
    b: float
    variance: float
    data: str
    explained: list[list[float]]  # per layer: cumulative explained variance ratio, for plots


def layer_sequence(stats: SpikeStats, block: int, data: str = "running") -> np.ndarray:
    """X^l for PCA (observations x features); see the module docstring for the three readings."""
    if data == "running":
        per_step = stats.layer_neuron_steps(block)
        return np.cumsum(per_step, axis=0) / np.arange(1, len(per_step) + 1)[:, None]
    if data == "step":
        return stats.layer_neuron_steps(block)
    if data == "samples":
        return stats.layer_step_asr(block)
    raise ValueError(f"data must be one of {', '.join(PCA_DATA)}, got {data!r}")


def temporal_allocation(stats: SpikeStats, blocks: int, variance: float = DEFAULT_VARIANCE, b: float = DEFAULT_B,
                        data: str = "running") -> TemporalResult:
    comps, curves = [], []
    for layer in range(blocks):
        x = layer_sequence(stats, layer, data)
        comps.append(pca_components(x, variance))
        centred = x - x.mean(axis=0, keepdims=True)
        var = np.linalg.svd(centred, compute_uv=False) ** 2
        curves.append((np.cumsum(var) / var.sum()).tolist() if var.sum() > 0 else [1.0])
    return TemporalResult(comps, allocate_timesteps(comps, stats.timesteps, b), stats.timesteps, b, variance,
                          data, curves)


def temporal_prune(model, tokens, t_conv: int | None = None, variance: float = DEFAULT_VARIANCE,
                   b: float = DEFAULT_B, data: str = "running", batch: int = 64) -> TemporalResult:
    """Record per-step ASR on `tokens` at T_conv (default the model's max timesteps), set model.timesteps = t^l."""
    stats = spike_stats(model, tokens, t_conv, batch)
    result = temporal_allocation(stats, len(model.blocks), variance, b, data)
    model.timesteps = list(result.timesteps)
    return result
