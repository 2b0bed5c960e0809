"""Retraining after pruning: L = L_pred + lambda * M(h, n, t) + eta * sum_l ||a_l||_2 (eq. 12-13).

* The forward pass runs in `cfg.mode`, by default `rate_t`: the rate model at
  each sublayer's own t^l (quantised outputs, sampled inputs; see
  frontend/encoder.py), so the model is fine-tuned "with the newly constrained
  temporal structure" (Section IV-C): with t^l = 1 it learns something else
  than with t^l = 32 (tests/test_pruning_retrain.py). `rate` (blind to t^l)
  is kept for comparison. Validation (best epoch) uses the same mode, seeded.

* Masks relaxed with a sigmoid surrogate: each head and intermediate neuron
  has a logit alpha; the gate is the hard mask H(alpha) in the forward pass
  and sigmoid(alpha) in the backward pass (straight-through, like the spike
  surrogate), so masks can switch off and back on while they train. alpha
  starts at +`mask_init` for kept units and -`mask_init` for pruned ones.
* M(h, n, t) is `budget.m_torch` over those gates (the project's Appendix B
  count, divided by the unpruned M(1, 1, T) so that lambda is scale free); its
  forward value is the exact M of the current hard masks.
* a_l (eq. 13): the rate of the output of encoder layer l (its `output`
  sublayer), averaged over tokens; ||a_l||_2 per sentence, averaged over the
  batch, summed over the L layers. It is on (`activity`) in the final stage
  only (the temporal stage, the joint retraining, the adaptive-threshold
  stage), in every epoch of it, as the paper adds it "during this final step".
* Staged: the AC penalty for the first `penalty_epochs` epochs; then the
  masks are frozen as H(alpha) (cut further, lowest sigmoid(alpha) first, if
  they exceed the budget) and the plain loss trains the weights; the epoch
  with the best validation accuracy is kept.
* PCA reallocation: every `pca_every` epochs t^l is recomputed from the
  current weights (temporal.temporal_prune on the calibration set), and the
  next epoch trains at the new t^l.
* Adaptive thresholds: every LIF threshold becomes a learnable per-layer
  parameter (`learn_threshold`), the paper's final stage at a scaled-down
  timestep list (pipeline). Optional 1-bit weights (`binary`) with knowledge
  distillation from a full-precision teacher:
  L_pred = (1 - w) CE + w tau^2 KL(teacher/tau || student/tau).
* Reproducible: the run is seeded (weights' optimiser order, batch order,
  the draws of `rate_t`), torch's deterministic algorithms are on while it
  runs, and nothing reads the global random state, so the same call gives the
  same epoch logs and weights whatever ran before it in the process.
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..frontend.encoder import SpikingEncoder
from .budget import UnitCosts, m_torch, masked_m, model_masks, structure, unit_costs
from .constants import (DEFAULT_ETA, DEFAULT_LAMBDA, DEFAULT_LR, DEFAULT_PENALTY_EPOCHS, DEFAULT_RETRAIN_EPOCHS,
                        DEFAULT_TRAIN_BATCH, DEFAULT_TRAIN_MODE)
from .evaluate import accuracy
from .select import apply_masks, select_masks


TRAIN_MODES = ("rate_t", "rate")   # one differentiable pass; rate_t at each sublayer's t^l, rate blind to it


@dataclass
class RetrainConfig:
    epochs: int = DEFAULT_RETRAIN_EPOCHS
    penalty_epochs: int = DEFAULT_PENALTY_EPOCHS
    lam: float = DEFAULT_LAMBDA  # lambda, on M / M(1, 1, T) (Table I's, converted: constants.py)
    eta: float = DEFAULT_ETA     # eta, on sum over encoder layers of ||a_l||_2 (Table I)
    activity: bool = False       # add the activity loss (the final stage only)
    lr: float = DEFAULT_LR
    mask_lr: float = 2.5         # SGD on the mask logits (plain SGD keeps lambda meaningful); ours: 10 at batch 64
                                 # before, scaled to Table I's batch of 16 so an epoch pushes the masks as far
    mask_init: float = 2.0
    train_masks: bool = True     # False: masks stay as given (e.g. a temporal-only stage)
    batch: int = DEFAULT_TRAIN_BATCH
    mode: str = DEFAULT_TRAIN_MODE  # encoder mode of the training forward pass and of validation
    adaptive_threshold: bool = False
    binary: bool = False
    kd_weight: float = 0.5
    kd_temperature: float = 2.0
    pca_every: int | None = 1    # temporal stage: reallocate t^l after every this many epochs
    budget: float | None = None  # final M <= budget x M(1, 1, T) when the masks are frozen
    seed: int = 0
    max_batches: int | None = None  # per epoch (tests)


@dataclass
class RetrainLog:
    config: dict
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def encoder_config(model: SpikingEncoder, **overrides) -> dict:
    """SpikingEncoder arguments that rebuild `model` (thresholds come with its state_dict)."""
    lif = model.blocks[0].lif["k"]
    cfg = dict(vocab_size=model.embed.num_embeddings, hidden=model.hidden, heads=model.heads,
               intermediate=model.intermediate_size, layers=len(model.blocks), seq_len=model.seq_len,
               classes=model.classifier.out_features, timesteps=model.timesteps_config(),
               binary_weights=model.binary_weights, leak=lif.leak,
               learn_threshold=isinstance(lif.threshold, nn.Parameter), layernorm=model.layernorm)
    cfg.update(overrides)
    return cfg


def clone_encoder(model: SpikingEncoder, **overrides) -> SpikingEncoder:
    new = SpikingEncoder(**encoder_config(model, **overrides))
    new.load_state_dict(model.state_dict())
    new.timesteps = model.sublayer_timesteps
    return new.to(model.device)


def activity_norm(model: SpikingEncoder) -> torch.Tensor:
    """Eq. 13: sum over encoder layers of ||a_l||_2, a_l the rates of the layer's output (its `output`
    sublayer) averaged over tokens; mean over the batch."""
    return sum(model.last_rates[f"block{b}.output"].mean(dim=1).norm(dim=-1).mean() for b in range(len(model.blocks)))


@contextlib.contextmanager
def deterministic(seed: int):
    """Seed torch, numpy and random, and turn torch's deterministic algorithms on, for the block; restored after."""
    was = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


class RelaxedMasks:
    """Mask logits alpha per head and intermediate neuron; gate = H(alpha) forward, sigmoid(alpha) backward."""

    def __init__(self, keep_h: np.ndarray, keep_n: np.ndarray, init: float, device: torch.device | str = "cpu"):
        logit = lambda k: nn.Parameter(torch.where(torch.as_tensor(k), init, -init).float().to(device))  # noqa: E731
        self.h = [logit(k) for k in keep_h]
        self.n = [logit(k) for k in keep_n]
        self.device = device

    def parameters(self) -> list[nn.Parameter]:
        return self.h + self.n

    @staticmethod
    def _ste(a: torch.Tensor) -> torch.Tensor:
        soft = torch.sigmoid(a)
        return (a >= 0).float() + soft - soft.detach()

    def gates(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [self._ste(a) for a in self.h], [self._ste(a) for a in self.n]

    def hard(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([a.detach().cpu().numpy() >= 0 for a in self.h]),
                np.stack([a.detach().cpu().numpy() >= 0 for a in self.n]))

    def soft(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([torch.sigmoid(a.detach()).cpu().numpy() for a in self.h]),
                np.stack([torch.sigmoid(a.detach()).cpu().numpy() for a in self.n]))

    def install(self, net: SpikingEncoder, gates=None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Put gates on the blocks (the buffers hold ones while masks train); the hard ones if `gates` is 'hard'."""
        if gates == "hard":
            hk, nk = self.hard()
            gates = ([torch.as_tensor(k, dtype=torch.float32, device=self.device) for k in hk],
                     [torch.as_tensor(k, dtype=torch.float32, device=self.device) for k in nk])
        gh, gn = gates if gates is not None else self.gates()
        for blk, a, b in zip(net.blocks, gh, gn):
            blk.head_gate, blk.neuron_gate = a, b
        return gh, gn


def _uninstall(net: SpikingEncoder) -> None:
    for blk in net.blocks:
        blk.head_gate = blk.neuron_gate = None


def freeze_masks(net: SpikingEncoder, masks: RelaxedMasks, costs: UnitCosts, budget: float | None) -> None:
    """Masks = H(alpha) into the buffers; if that exceeds the budget, the kept units with the lowest
    sigmoid(alpha) are cut (`select_masks`, method 'rank') until it holds."""
    hk, nk = masks.hard()
    if budget is not None and masked_m(costs, hk, nk) > budget:
        sh, sn = masks.soft()
        hk, nk = select_masks(sh, sn, costs, budget, "rank", allowed=(hk, nk))
    _uninstall(net)
    apply_masks(net, hk, nk)


@dataclass
class _Run:
    """What one retraining call carries between its epochs."""

    net: SpikingEncoder
    cfg: RetrainConfig
    m0: float
    costs: UnitCosts
    masks: RelaxedMasks | None
    weight_opt: torch.optim.Optimizer
    mask_opt: torch.optim.Optimizer | None
    teacher: SpikingEncoder | None
    gen: torch.Generator
    step: int = 0   # batches so far: the seed of each batch's rate_t draws


def _loss(run: _Run, x: torch.Tensor, y: torch.Tensor, gh, gn, penalty: bool) -> tuple[torch.Tensor, dict]:
    cfg, net = run.cfg, run.net
    logits = net(x, mode=cfg.mode, seed=cfg.seed * 1_000_003 + run.step)
    ce = F.cross_entropy(logits, y)
    loss = ce
    if run.teacher is not None:
        with torch.no_grad():
            t_logits = run.teacher(x, mode="rate")
        tau = cfg.kd_temperature
        kd = F.kl_div(F.log_softmax(logits / tau, -1), F.log_softmax(t_logits / tau, -1),
                      log_target=True, reduction="batchmean") * tau * tau
        loss = (1 - cfg.kd_weight) * ce + cfg.kd_weight * kd
    m_rel = m_torch(run.costs, gh, gn) / run.m0
    act = activity_norm(net)
    if penalty:
        loss = loss + cfg.lam * m_rel.float()
    if cfg.activity:
        loss = loss + cfg.eta * act
    return loss, dict(loss=loss, ce=ce, m=m_rel, act=act)


def _train_epoch(run: _Run, data: tuple[torch.Tensor, torch.Tensor], penalty: bool, relaxed: bool) -> dict:
    """One pass over the training set; the mean of each loss term."""
    cfg, net = run.cfg, run.net
    x_tr, y_tr = data
    dev = net.device
    net.train()
    order = torch.randperm(len(x_tr), generator=run.gen)
    sums, batches = dict(loss=0.0, ce=0.0, m=0.0, act=0.0), 0
    for i in range(0, len(order), cfg.batch):
        if cfg.max_batches is not None and batches >= cfg.max_batches:
            break
        idx = order[i:i + cfg.batch]
        if relaxed:
            gh, gn = run.masks.install(net)
        else:
            hk, nk = model_masks(net)
            gh = [torch.as_tensor(k, dtype=torch.float32, device=dev) for k in hk]
            gn = [torch.as_tensor(k, dtype=torch.float32, device=dev) for k in nk]
        loss, terms = _loss(run, x_tr[idx].to(dev), y_tr[idx].to(dev), gh, gn, penalty)
        run.weight_opt.zero_grad()
        if run.mask_opt is not None:
            run.mask_opt.zero_grad()
        loss.backward()
        run.weight_opt.step()
        if relaxed:
            run.mask_opt.step()
        with torch.no_grad():  # learned thresholds stay positive
            for blk in net.blocks:
                for lif in blk.lif.values():
                    if isinstance(lif.threshold, nn.Parameter):
                        lif.threshold.clamp_(min=1e-2)
        for k, v in terms.items():
            sums[k] += float(v.detach())
        batches += 1
        run.step += 1
    return {k: v / max(1, batches) for k, v in sums.items()}


def _start(model: SpikingEncoder, cfg: RetrainConfig, m0: float, teacher) -> _Run:
    if cfg.mode not in TRAIN_MODES:   # the other modes keep no differentiable rates for the activity loss
        raise ValueError(f"retraining runs in one of the modes {', '.join(TRAIN_MODES)}, got {cfg.mode!r}")
    overrides = dict(binary_weights=cfg.binary)
    if cfg.adaptive_threshold:
        overrides["learn_threshold"] = True
    net = clone_encoder(model, **overrides)
    masks = None
    if cfg.train_masks and cfg.penalty_epochs > 0:
        masks = RelaxedMasks(*model_masks(net), cfg.mask_init, net.device)
        for blk in net.blocks:
            blk.head_mask.fill_(1.0)
            blk.neuron_mask.fill_(1.0)
    weight_opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01)
    mask_opt = torch.optim.SGD(masks.parameters(), lr=cfg.mask_lr) if masks is not None else None
    if teacher is not None:
        teacher.eval()
    return _Run(net, cfg, m0, unit_costs(structure(net)), masks, weight_opt, mask_opt, teacher,
                torch.Generator().manual_seed(cfg.seed))


def retrain(model: SpikingEncoder, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
            cfg: RetrainConfig, m0: float, calib: torch.Tensor | None = None, temporal: dict | None = None,
            teacher: SpikingEncoder | None = None, log=print) -> tuple[SpikingEncoder, RetrainLog]:
    """Retrain a (pruned) copy of `model`; returns the new model and what happened per epoch.

    `m0`: M(1, 1, T) of the unpruned model (the structural ratio's denominator). `temporal`: keyword
    arguments of `temporal.temporal_prune` (t_conv, variance, b, data, granularity) for PCA reallocation every
    `cfg.pca_every` epochs, which needs `calib` tokens.
    """
    start = time.time()
    with deterministic(cfg.seed):
        run = _start(model, cfg, m0, teacher)
        rlog = RetrainLog(asdict(cfg))
        best_val, best_state = -1.0, None
        run.net.keep_rates = True
        try:
            for epoch in range(cfg.epochs):
                penalty = epoch < cfg.penalty_epochs
                relaxed = run.masks is not None and penalty
                row = _train_epoch(run, train, penalty, relaxed)
                row.update(_end_epoch(run, epoch, relaxed, val, calib, temporal, log))
                row["stage"] = "penalty" if penalty else "plain"
                rlog.epochs.append(row)
                log(f"  epoch {epoch + 1}/{cfg.epochs} ({row['stage']}): loss {row['loss']:.3f}, ce {row['ce']:.3f}, "
                    f"M/M0 {row['normalized_c']:.3f}, activity {row['act']:.2f}, val acc ({cfg.mode}) "
                    f"{row['val']:.4f}, heads {row['heads_kept']}, neurons {row['neurons_kept']}, "
                    f"t^l {row['timesteps']}")
                if not penalty and row["val"] > best_val:
                    best_val, best_state = row["val"], (copy.deepcopy(run.net.state_dict()),
                                                        run.net.sublayer_timesteps)
        finally:
            run.net.keep_rates = False
            run.net.last_rates = {}
            _uninstall(run.net)
    net = run.net
    if best_state is not None:
        net.load_state_dict(best_state[0])
        net.timesteps = best_state[1]
    elif run.masks is not None and cfg.epochs < cfg.penalty_epochs:  # never reached the freeze
        freeze_masks(net, run.masks, run.costs, cfg.budget * m0 if cfg.budget else None)
    net.eval()
    rlog.seconds = round(time.time() - start, 1)
    return net, rlog


def _end_epoch(run: _Run, epoch: int, relaxed: bool, val, calib, temporal, log) -> dict:
    """Freeze the masks after the last penalty epoch, reallocate t^l by PCA when due, validate."""
    from .temporal import temporal_prune

    cfg, net = run.cfg, run.net
    _uninstall(net)
    if relaxed and epoch == cfg.penalty_epochs - 1:
        freeze_masks(net, run.masks, run.costs, cfg.budget * run.m0 if cfg.budget else None)
        relaxed = False
    if cfg.pca_every and temporal is not None and calib is not None and (epoch + 1) % cfg.pca_every == 0:
        res = temporal_prune(net, calib, **temporal)
        run.costs = unit_costs(structure(net))
        log(f"  PCA reallocation after epoch {epoch + 1}: c^l = {res.components}, t^l = {res.timesteps}")
    if relaxed:  # evaluate the hard masks the logits stand for
        run.masks.install(net, "hard")
        hk, nk = run.masks.hard()
    else:
        hk, nk = model_masks(net)
    val_acc = accuracy(net, *val, mode=cfg.mode, seed=cfg.seed + 1, batch=512)
    _uninstall(net)
    return dict(epoch=epoch + 1, val=val_acc, normalized_c=masked_m(run.costs, hk, nk) / run.m0,
                timesteps=net.sublayer_timesteps, heads_kept=hk.sum(axis=1).tolist(),
                neurons_kept=nk.sum(axis=1).tolist())
