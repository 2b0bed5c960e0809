"""The two-stage framework end to end: spatial prune -> retrain -> temporal prune -> retrain (Table IV's order).

`prune(model, ...)` returns a pruned copy and a plain-data record of every
decision (scores summary, masks, M, c^l, t^l, retraining logs), which
`save.save_pruned` writes into the checkpoint and its model card.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..cost import analytic
from .activity import spike_stats
from .budget import masked_m, model_masks, structure, unit_costs
from .fisher import importance, mask_gradients
from .retrain import RetrainConfig, clone_encoder, retrain
from .select import apply_masks, select_and_refine
from .constants import DEFAULT_B, DEFAULT_BUDGET, DEFAULT_VARIANCE, DEFAULT_VARIANT
from .temporal import temporal_allocation


@dataclass
class PruneOptions:
    spatial: bool = True
    temporal: bool = True
    budget: float = DEFAULT_BUDGET   # M_c as a fraction of M(1, 1, T)
    variant: str = DEFAULT_VARIANT   # constants.VARIANTS
    method: str = "search"           # select.select_masks
    swap: bool = True                # greedy swap refinement
    grad_mode: str = "rate"          # encoder mode of the Fisher gradients
    t_conv: int | None = None        # default: the model's max timesteps (its converged T)
    variance: float = DEFAULT_VARIANCE
    b: float = DEFAULT_B
    pca_data: str = "running"
    retrain_epochs: int = 0          # per stage; 0 = post-training pruning only
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    seed: int = 0


def baseline_m(model, t_conv: int) -> int:
    """M(1, 1, T_conv): every head and neuron at T_conv steps (eq. 14's denominator), from cost.analytic."""
    return analytic.paper_m(structure(model), timesteps=t_conv, unpruned=True)


def normalized_c(model, t_conv: int) -> float:
    """Eq. 14 for a SpikingEncoder: paper_m(its IR) / M(1, 1, T_conv)."""
    return analytic.paper_m(structure(model)) / baseline_m(model, t_conv)


def spatial_stage(model, calib: tuple[torch.Tensor, torch.Tensor], opts: PruneOptions, m0: int, log=print) -> dict:
    """Fisher (x ASR) scores on the calibration set, budgeted selection, swaps; writes the masks into `model`."""
    x, y = calib
    t = time.time()
    grads = mask_gradients(model, x, y, mode=opts.grad_mode, seed=opts.seed)
    stats = spike_stats(model, x) if opts.variant != "fim" else None
    imp = importance(grads, stats, model, opts.variant)
    costs = unit_costs(structure(model))
    allowed = model_masks(model)
    sel = select_and_refine(imp, costs, opts.budget * m0, opts.method, opts.swap, allowed)
    apply_masks(model, sel.head_keep, sel.neuron_keep)
    log(f"spatial: {opts.variant}, budget {opts.budget:g} x M(1,1,T): kept heads {sel.head_keep.sum(1).tolist()}, "
        f"neurons {sel.neuron_keep.sum(1).tolist()}, M/M0 {sel.m / m0:.4f}, {sel.swaps} swaps "
        f"({time.time() - t:.1f} s)")
    return dict(variant=opts.variant, method=opts.method, swap=opts.swap, grad_mode=opts.grad_mode,
                budget=opts.budget, calibration=len(x), m=int(sel.m), m_over_m0=sel.m / m0, swaps=sel.swaps,
                pruned_importance={k: list(v) for k, v in sel.pruned_importance.items()},
                head_scores=imp.heads.tolist(), heads_kept=sel.head_keep.sum(1).tolist(),
                neurons_kept=sel.neuron_keep.sum(1).tolist())


def temporal_stage(model, calib_x: torch.Tensor, opts: PruneOptions, t_conv: int, log=print) -> dict:
    t = time.time()
    stats = spike_stats(model, calib_x, t_conv)
    res = temporal_allocation(stats, len(model.blocks), opts.variance, opts.b, opts.pca_data)
    model.timesteps = list(res.timesteps)
    log(f"temporal: PCA ({opts.pca_data}) at T_conv = {t_conv}, variance {opts.variance:g}: c^l = {res.components}, "
        f"t^l = {res.timesteps} ({time.time() - t:.1f} s)")
    return dict(components=res.components, timesteps=res.timesteps, t_conv=t_conv, b=opts.b,
                variance=opts.variance, data=opts.pca_data)


def prune(model, calib: tuple[torch.Tensor, torch.Tensor], opts: PruneOptions,
          train: tuple[torch.Tensor, torch.Tensor] | None = None, val: tuple[torch.Tensor, torch.Tensor] | None = None,
          teacher=None, log=print) -> tuple[object, dict]:
    """Spatial prune -> retrain -> temporal prune -> retrain (the stages that `opts` turns on)."""
    model = clone_encoder(model)
    model.eval()
    t_conv = int(opts.t_conv or max(model.timesteps))
    m0 = baseline_m(model, t_conv)
    record: dict = dict(options={k: v for k, v in asdict(opts).items() if k != "retrain"}, t_conv=t_conv, m0=int(m0))
    if opts.retrain_epochs:
        if train is None or val is None:
            raise ValueError("retraining needs the training and validation sets")
        record["options"]["retrain"] = asdict(opts.retrain)
    temporal_kw = dict(t_conv=t_conv, variance=opts.variance, b=opts.b, data=opts.pca_data)

    def retrain_stage(stage: str, train_masks: bool, pca: bool):
        nonlocal model
        cfg = RetrainConfig(**{**asdict(opts.retrain), "epochs": opts.retrain_epochs, "train_masks": train_masks,
                               "budget": opts.budget if train_masks else None,
                               "pca_every": opts.retrain.pca_every if pca else None})
        log(f"retraining after {stage} pruning: {cfg.epochs} epochs (penalty for {cfg.penalty_epochs})")
        model, rlog = retrain(model, train, val, cfg, m0, calib=calib[0], temporal=temporal_kw if pca else None,
                              teacher=teacher, log=log)
        record.setdefault("retraining", {})[stage] = dict(epochs=rlog.epochs, seconds=rlog.seconds)

    if opts.spatial:
        record["spatial"] = spatial_stage(model, calib, opts, m0, log)
        if opts.retrain_epochs:
            retrain_stage("spatial", True, False)
    if opts.temporal:
        record["temporal"] = temporal_stage(model, calib[0], opts, t_conv, log)
        if opts.retrain_epochs:
            retrain_stage("temporal", False, True)
    net = structure(model)
    hk, nk = model_masks(model)
    record.update(m=int(analytic.paper_m(net)), normalized_c=analytic.paper_m(net) / m0,
                  timesteps=list(model.timesteps), heads_kept=hk.sum(1).tolist(), neurons_kept=nk.sum(1).tolist(),
                  thresholds={f"block{b}.{r}": float(l.threshold.detach()) for b, blk in enumerate(model.blocks)
                              for r, l in blk.lif.items()})
    assert masked_m(unit_costs(net), hk, nk) == record["m"]
    return model, record


def plain(obj):
    """Nested data as plain Python types (numpy scalars and arrays converted), for torch.save / JSON."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj
