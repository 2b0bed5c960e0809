"""The two-stage framework end to end, and the seed paper's variants of it (Tables II-IV).

`strategy="sequential"` (Table IV's "Sequential (Ours)"): spatial prune ->
retrain -> temporal prune -> retrain, the activity loss in the temporal (final)
retraining only, also when a run has no spatial stage, never in the spatial
one (issue 24: the paper adds it "during this final step"). `strategy="joint"` (Table IV's "Pruning + Joint
Retraining"): spatial and temporal post-training pruning both applied to the
model as given (independently, as the paper finds its masks and timestep
lists), then one retraining with the AC penalty, the activity loss and PCA
reallocation together. `adaptive_scale` adds the paper's last stage (Table
III's "adaptive threshold" columns): the pruned timestep list scaled down
(t^l x scale, rounded up) and retrained with a learnable threshold per layer.

`prune(model, ...)` returns a pruned copy and a plain-data record of every
decision (scores summary, masks, M, c^l, t^l, retraining logs), which
`save.save_pruned` writes into the checkpoint and its model card. The
record's `structural_ratio` is M(h, n, t) / M(1, 1, T_conv) (rate-free);
eq. 14 proper needs spiking rates measured on sentences (`eq14`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..cost import analytic
from .activity import spike_stats
from .budget import masked_m, model_masks, structure, unit_costs
from .constants import (DEFAULT_B, DEFAULT_BUDGET, DEFAULT_VARIANCE, DEFAULT_VARIANT, GRANULARITY, STRATEGIES)
from .fisher import importance, mask_gradients
from .retrain import RetrainConfig, clone_encoder, retrain
from .select import apply_masks, select_and_refine
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
    granularity: str = "sublayer"    # constants.GRANULARITY: t^l per spiking sublayer (the paper's) or per block
    strategy: str = "sequential"     # constants.STRATEGIES (Table IV)
    adaptive_scale: float | None = None  # final adaptive-threshold stage at t^l x scale (needs retraining)
    retrain_epochs: int = 0          # per stage; 0 = post-training pruning only
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    seed: int = 0

    def check(self) -> None:
        if self.granularity not in GRANULARITY:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITY)}, got {self.granularity!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.strategy == "joint" and not (self.spatial and self.temporal and self.retrain_epochs):
            raise ValueError("the joint strategy needs spatial and temporal pruning and retraining epochs")
        if self.adaptive_scale is not None and not (0 < self.adaptive_scale <= 1 and self.retrain_epochs):
            raise ValueError(f"adaptive_scale must be in (0, 1] and needs retraining, got {self.adaptive_scale}")


def baseline_m(model, t_conv: int) -> int:
    """M(1, 1, T_conv): every head and neuron at T_conv steps, from cost.analytic."""
    return analytic.paper_m(structure(model), timesteps=t_conv, unpruned=True)


def structural_ratio(model, t_conv: int) -> float:
    """M(h, n, t) / M(1, 1, T_conv) of a SpikingEncoder (rate-free; the table's "ACs %, structural")."""
    return analytic.paper_m(structure(model)) / baseline_m(model, t_conv)


@torch.no_grad()
def eq14(model, tokens: torch.Tensor, t_conv: int, mode: str = "stochastic", seed: int = 1, batch: int = 256) -> float:
    """Eq. 14 of a SpikingEncoder: its Appendix B ACs weighted by the spiking rates it shows on `tokens` in
    `mode` (default `stochastic`: each sublayer at its own t^l, the sequential dataflow the paper runs), over
    M(1, 1, T_conv) of the unpruned model (`cost.analytic.eq14_normalized_c`)."""
    net = structure(model)
    sums: dict[str, torch.Tensor] = {}
    was = model.training
    model.eval()
    for i in range(0, len(tokens), batch):
        x = tokens[i:i + batch].to(model.device)
        model(x, mode=mode, seed=seed + i)
        for name, a in model.last_asr.items():
            sums[name] = sums.get(name, 0) + a.double().cpu() * len(x)
    model.train(was)
    from ..frontend.extract import live_neurons

    for layer in net.layers:
        if layer.spiking and layer.name in sums:
            live = live_neurons(net, layer)
            layer.rate = float((sums[layer.name].numpy() / len(tokens))[live].mean()) if live.any() else 0.0
    return analytic.eq14_normalized_c(net, t_conv)


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
    res = temporal_allocation(stats, len(model.blocks), opts.variance, opts.b, opts.pca_data, opts.granularity)
    model.timesteps = res.timesteps
    log(f"temporal: PCA ({opts.pca_data}, per {opts.granularity}) at T_conv = {t_conv}, variance {opts.variance:g}: "
        f"c^l = {res.components}, t^l = {res.timesteps}, mean {res.mean_t:.2f} ({time.time() - t:.1f} s)")
    return dict(components=res.components, timesteps=res.timesteps, mean_t=res.mean_t, t_conv=t_conv, b=opts.b,
                variance=opts.variance, data=opts.pca_data, granularity=opts.granularity)


def scaled_timesteps(table: list[list[int]], scale: float) -> list[list[int]]:
    """The adaptive-threshold stage's timestep list: every t^l x scale, rounded up, at least 1."""
    return [[max(1, math.ceil(t * scale - 1e-9)) for t in row] for row in table]


def prune(model, calib: tuple[torch.Tensor, torch.Tensor], opts: PruneOptions,
          train: tuple[torch.Tensor, torch.Tensor] | None = None, val: tuple[torch.Tensor, torch.Tensor] | None = None,
          teacher=None, log=print) -> tuple[object, dict]:
    """The stages that `opts` turns on, in the order its strategy gives (module docstring)."""
    opts.check()
    model = clone_encoder(model)
    model.eval()
    t_conv = int(opts.t_conv or max(model.timesteps))
    m0 = baseline_m(model, t_conv)
    record: dict = dict(options={k: v for k, v in asdict(opts).items() if k != "retrain"}, t_conv=t_conv, m0=int(m0))
    if opts.retrain_epochs:
        if train is None or val is None:
            raise ValueError("retraining needs the training and validation sets")
        record["options"]["retrain"] = asdict(opts.retrain)
    temporal_kw = dict(t_conv=t_conv, variance=opts.variance, b=opts.b, data=opts.pca_data,
                       granularity=opts.granularity)

    def retrain_stage(stage: str, train_masks: bool, pca: bool, final: bool, **more):
        nonlocal model
        cfg = RetrainConfig(**{**asdict(opts.retrain), "epochs": opts.retrain_epochs, "train_masks": train_masks,
                               "budget": opts.budget if train_masks else None, "activity": final,
                               "pca_every": opts.retrain.pca_every if pca else None, **more})
        log(f"retraining after {stage} pruning: {cfg.epochs} epochs (penalty for {cfg.penalty_epochs}), "
            f"mode {cfg.mode}")
        model, rlog = retrain(model, train, val, cfg, m0, calib=calib[0], temporal=temporal_kw if pca else None,
                              teacher=teacher, log=log)
        record.setdefault("retraining", {})[stage] = dict(epochs=rlog.epochs, seconds=rlog.seconds,
                                                          activity=cfg.activity, mode=cfg.mode)

    retraining = bool(opts.retrain_epochs)
    if opts.strategy == "joint":
        timing = clone_encoder(model)   # the temporal post-training stage sees the model as given, not pruned
        record["temporal"] = temporal_stage(timing, calib[0], opts, t_conv, log)
        record["spatial"] = spatial_stage(model, calib, opts, m0, log)
        model.timesteps = timing.sublayer_timesteps
        retrain_stage("joint", True, True, True)
    else:
        if opts.spatial:
            record["spatial"] = spatial_stage(model, calib, opts, m0, log)
            if retraining:
                retrain_stage("spatial", True, False, False)   # the activity loss: temporal stage only
        if opts.temporal:
            record["temporal"] = temporal_stage(model, calib[0], opts, t_conv, log)
            if retraining:
                retrain_stage("temporal", False, True, True)
    if opts.adaptive_scale is not None:
        model.timesteps = scaled_timesteps(model.sublayer_timesteps, opts.adaptive_scale)
        record["adaptive"] = dict(scale=opts.adaptive_scale, timesteps=model.sublayer_timesteps)
        log(f"adaptive thresholds: t^l x {opts.adaptive_scale:g} = {model.sublayer_timesteps}")
        retrain_stage("adaptive", False, False, True, adaptive_threshold=True)
    net = structure(model)
    hk, nk = model_masks(model)
    steps = model.sublayer_timesteps
    record.update(m=int(analytic.paper_m(net)), structural_ratio=analytic.paper_m(net) / m0,
                  timesteps=model.timesteps_config(), mean_t=float(np.mean(steps)),
                  heads_kept=hk.sum(1).tolist(), neurons_kept=nk.sum(1).tolist(),
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
