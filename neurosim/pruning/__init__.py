"""The seed paper's spatio-temporal pruning (Jiang et al. 2025) for the SpikingBERT-style encoder.

Modules: `fisher` (per-sample mask gradients, Fisher x ASR scores),
`select` (budgeted selection, greedy swap refinement), `temporal` (PCA of
per-timestep ASR per spiking sublayer, eq. 10), `retrain` (at each
sublayer's t^l: AC penalty with relaxed masks, activity loss in the final
stage, adaptive thresholds, optional 1-bit + distillation), `budget` (M(h, n,
t) from cost.analytic, as numbers and as a torch expression), `activity`
(spike-mode ASR statistics), `pipeline` (the stages in the order a strategy
gives, eq. 14 on measured rates), `save` (pruned checkpoint + model card),
`data` (the shipped task), `constants` (defaults and the paper's Table I),
`cli` (`neurosim prune`).
"""

import importlib

# Imported on first use, so that `neurosim.pruning.cli` (and the `neurosim` command) does not load torch.
_EXPORTS = {"UnitCosts": "budget", "m_torch": "budget", "masked_m": "budget", "unit_costs": "budget",
            "VARIANTS": "constants", "importance": "fisher", "mask_gradients": "fisher",
            "PruneOptions": "pipeline", "prune": "pipeline", "eq14": "pipeline", "structural_ratio": "pipeline", "RetrainConfig": "retrain", "retrain": "retrain",
            "greedy_swap": "select", "pruned_importance": "select", "select_and_refine": "select",
            "select_masks": "select", "allocate_timesteps": "temporal", "pca_components": "temporal",
            "temporal_prune": "temporal"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'neurosim.pruning' has no attribute {name!r}")
