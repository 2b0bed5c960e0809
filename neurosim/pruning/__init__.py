"""The seed paper's spatio-temporal pruning (Jiang et al. 2025) for the SpikingBERT-style encoder.

Modules: `fisher` (per-sample mask gradients, Fisher x ASR scores),
`select` (budgeted selection, greedy swap refinement), `temporal` (PCA of
per-timestep ASR, eq. 10), `retrain` (AC penalty + activity loss with relaxed
masks, adaptive thresholds, optional 1-bit + distillation), `budget` (M(h, n,
t) from cost.analytic, as numbers and as a torch expression), `activity`
(spike-mode ASR statistics), `pipeline` (the stages in order), `save`
(pruned checkpoint + model card), `data` (the shipped task), `cli`
(`neurosim prune`).
"""

from .budget import UnitCosts, m_torch, masked_m, unit_costs
from .fisher import VARIANTS, importance, mask_gradients
from .pipeline import PruneOptions, prune
from .retrain import RetrainConfig, retrain
from .select import greedy_swap, pruned_importance, select_and_refine, select_masks
from .temporal import allocate_timesteps, pca_components, temporal_prune

__all__ = ["PruneOptions", "RetrainConfig", "UnitCosts", "VARIANTS", "allocate_timesteps", "greedy_swap",
           "importance", "m_torch", "mask_gradients", "masked_m", "pca_components", "prune", "pruned_importance",
           "retrain", "select_and_refine", "select_masks", "temporal_prune", "unit_costs"]
