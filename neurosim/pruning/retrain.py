"""Retraining after pruning: L = L_pred + lambda * M(h, n, t) + eta * sum_l ||a_l||_2 (eq. 12-13).

* Masks relaxed with a sigmoid surrogate: each head and intermediate neuron
  has a logit alpha; the gate is the hard mask H(alpha) in the forward pass
  and sigmoid(alpha) in the backward pass (straight-through, like the spike
  surrogate), so masks can switch off and back on while they train. alpha
  starts at +`mask_init` for kept units and -`mask_init` for pruned ones.
* M(h, n, t) is `budget.m_torch` over those gates (the project's Appendix B
  count, divided by the unpruned M(1, 1, T) so that lambda is scale free); its
  forward value is the exact M of the current hard masks.
* a_l: the rates of every spiking sublayer (rate mode), averaged over tokens;
  ||a_l||_2 per sentence, averaged over the batch, summed over sublayers.
* Staged: the penalty terms for the first `penalty_epochs` epochs; then the
  masks are frozen as H(alpha) (cut further, lowest sigmoid(alpha) first, if
  they exceed the budget) and the plain loss trains the weights; the epoch
  with the best validation accuracy (rate mode) is kept.
* PCA reallocation: every `pca_every` epochs t^l is recomputed from the
  current weights (temporal.temporal_prune on the calibration set); in this
  rate-mode training t^l enters the loss only through M's prices.
* Adaptive thresholds: every LIF threshold becomes a learnable per-layer
  parameter (`learn_threshold`). Optional 1-bit weights (`binary`) with
  knowledge distillation from a full-precision teacher:
  L_pred = (1 - w) CE + w tau^2 KL(teacher/tau || student/tau).

Training runs in `rate` mode, as the shipped model was trained.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..frontend.encoder import SpikingEncoder
from .budget import UnitCosts, m_torch, masked_m, model_masks, structure, unit_costs
from .constants import DEFAULT_ETA, DEFAULT_LAMBDA, DEFAULT_LR, DEFAULT_PENALTY_EPOCHS, DEFAULT_RETRAIN_EPOCHS
from .evaluate import accuracy
from .select import apply_masks, select_masks


@dataclass
class RetrainConfig:
    epochs: int = DEFAULT_RETRAIN_EPOCHS
    penalty_epochs: int = DEFAULT_PENALTY_EPOCHS
    lam: float = DEFAULT_LAMBDA  # lambda, on M / M(1, 1, T)
    eta: float = DEFAULT_ETA     # eta, on sum_l ||a_l||_2
    lr: float = DEFAULT_LR
    mask_lr: float = 10.0        # SGD on the mask logits (plain SGD keeps lambda meaningful)
    mask_init: float = 2.0
    train_masks: bool = True     # False: masks stay as given (e.g. a temporal-only stage)
    batch: int = 64
    adaptive_threshold: bool = True
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
               classes=model.classifier.out_features, timesteps=list(model.timesteps),
               binary_weights=model.binary_weights, leak=lif.leak,
               learn_threshold=isinstance(lif.threshold, nn.Parameter))
    cfg.update(overrides)
    return cfg


def clone_encoder(model: SpikingEncoder, **overrides) -> SpikingEncoder:
    new = SpikingEncoder(**encoder_config(model, **overrides))
    new.load_state_dict(model.state_dict())
    new.timesteps = list(model.timesteps)
    return new.to(model.device)


def activity_norm(model: SpikingEncoder) -> torch.Tensor:
    """sum over spiking sublayers of ||a_l||_2 (a_l: rates averaged over tokens), mean over the batch."""
    return sum(r.mean(dim=1).norm(dim=-1).mean() for r in model.last_rates.values())


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


def retrain(model: SpikingEncoder, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
            cfg: RetrainConfig, m0: float, calib: torch.Tensor | None = None, temporal: dict | None = None,
            teacher: SpikingEncoder | None = None, log=print) -> tuple[SpikingEncoder, RetrainLog]:
    """Retrain a (pruned) copy of `model`; returns the new model and what happened per epoch.

    `m0`: M(1, 1, T) of the unpruned model (eq. 14's denominator). `temporal`:
    keyword arguments of `temporal.temporal_prune` (t_conv, variance, b, data)
    for PCA reallocation every `cfg.pca_every` epochs, which needs `calib` tokens.
    """
    from .temporal import temporal_prune

    start = time.time()
    torch.manual_seed(cfg.seed)
    overrides = dict(binary_weights=cfg.binary)
    if cfg.adaptive_threshold:
        overrides["learn_threshold"] = True
    net = clone_encoder(model, **overrides)
    costs = unit_costs(structure(net))
    rlog = RetrainLog(asdict(cfg))
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
    gen = torch.Generator().manual_seed(cfg.seed)
    x_tr, y_tr = train
    dev = net.device
    best_val, best_state = -1.0, None
    net.keep_rates = True
    try:
        for epoch in range(cfg.epochs):
            penalty = epoch < cfg.penalty_epochs
            relaxed = masks is not None and penalty
            net.train()
            order = torch.randperm(len(x_tr), generator=gen)
            sums, batches = dict(loss=0.0, ce=0.0, m=0.0, act=0.0), 0
            for i in range(0, len(order), cfg.batch):
                if cfg.max_batches is not None and batches >= cfg.max_batches:
                    break
                idx = order[i:i + cfg.batch]
                x, y = x_tr[idx].to(dev), y_tr[idx].to(dev)
                if relaxed:
                    gh, gn = masks.install(net)
                else:
                    hk, nk = model_masks(net)
                    gh = [torch.as_tensor(k, dtype=torch.float32, device=dev) for k in hk]
                    gn = [torch.as_tensor(k, dtype=torch.float32, device=dev) for k in nk]
                logits = net(x, mode="rate")
                ce = F.cross_entropy(logits, y)
                loss = ce
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = teacher(x, mode="rate")
                    tau = cfg.kd_temperature
                    kd = F.kl_div(F.log_softmax(logits / tau, -1), F.log_softmax(t_logits / tau, -1),
                                  log_target=True, reduction="batchmean") * tau * tau
                    loss = (1 - cfg.kd_weight) * ce + cfg.kd_weight * kd
                m_rel = m_torch(costs, gh, gn) / m0
                act = activity_norm(net)
                if penalty:
                    loss = loss + cfg.lam * m_rel.float() + cfg.eta * act
                weight_opt.zero_grad()
                if mask_opt is not None:
                    mask_opt.zero_grad()
                loss.backward()
                weight_opt.step()
                if relaxed:
                    mask_opt.step()
                with torch.no_grad():  # learned thresholds stay positive
                    for blk in net.blocks:
                        for lif in blk.lif.values():
                            if isinstance(lif.threshold, nn.Parameter):
                                lif.threshold.clamp_(min=1e-2)
                for k, v in (("loss", loss), ("ce", ce), ("m", m_rel), ("act", act)):
                    sums[k] += float(v.detach())
                batches += 1
            _uninstall(net)
            if relaxed and epoch == cfg.penalty_epochs - 1:
                freeze_masks(net, masks, costs, cfg.budget * m0 if cfg.budget else None)
                relaxed = False
            if cfg.pca_every and temporal is not None and calib is not None and (epoch + 1) % cfg.pca_every == 0:
                res = temporal_prune(net, calib, **temporal)
                costs = unit_costs(structure(net))
                log(f"  PCA reallocation after epoch {epoch + 1}: c^l = {res.components}, t^l = {res.timesteps}")
            if relaxed:  # evaluate the hard masks the logits stand for
                masks.install(net, "hard")
                hk, nk = masks.hard()
            else:
                hk, nk = model_masks(net)
            val_acc = accuracy(net, *val, mode="rate", batch=512)
            _uninstall(net)
            row = {k: v / max(1, batches) for k, v in sums.items()}
            row.update(epoch=epoch + 1, stage="penalty" if penalty else "plain", val_rate=val_acc,
                       normalized_c=masked_m(costs, hk, nk) / m0, timesteps=list(net.timesteps),
                       heads_kept=hk.sum(axis=1).tolist(), neurons_kept=nk.sum(axis=1).tolist())
            rlog.epochs.append(row)
            log(f"  epoch {epoch + 1}/{cfg.epochs} ({row['stage']}): loss {row['loss']:.3f}, ce {row['ce']:.3f}, "
                f"M/M0 {row['normalized_c']:.3f}, activity {row['act']:.2f}, val acc (rate) {val_acc:.4f}, "
                f"heads {row['heads_kept']}, neurons {row['neurons_kept']}, t^l {row['timesteps']}")
            if not penalty and val_acc > best_val:
                best_val, best_state = val_acc, (copy.deepcopy(net.state_dict()), list(net.timesteps))
    finally:
        net.keep_rates = False
        net.last_rates = {}
        _uninstall(net)
    if best_state is not None:
        net.load_state_dict(best_state[0])
        net.timesteps = best_state[1]
    elif masks is not None and cfg.epochs < cfg.penalty_epochs:  # never reached the freeze
        freeze_masks(net, masks, costs, cfg.budget * m0 if cfg.budget else None)
    net.eval()
    rlog.seconds = round(time.time() - start, 1)
    return net, rlog
