"""Spatial importance: diagonal Fisher information of the head and neuron masks, times ASR (eq. 7-8).

For a mask variable m_i (1 = kept), the empirical Fisher information on a
calibration set of S samples is F_i = sum_s (dL_s / dm_i)^2, the gradient
taken at m = 1 (Kwon et al. 2022: the loss increase from zeroing a mask is
about F_i / 2). Per-sample gradients come from one backward pass per batch:
each sample gets its own gate of ones (`EncoderBlock.head_gate` /
`neuron_gate`, shape (batch, units)), and sample s's loss depends only on its
own row, so row s of the gate's gradient is exactly dL_s/dm.

The seed paper weighs F by the unit's average spiking rate: a head by the ASR
of its attention-output neurons, an intermediate neuron by its own ASR.
`VARIANTS` names the four combinations of Table II.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .activity import SpikeStats
from .constants import VARIANT_LABELS, VARIANTS  # noqa: F401  (re-exported)


@dataclass
class MaskGradients:
    """Per-sample gradients of the loss w.r.t. the masks, at the model's current masks x gate 1."""

    heads: np.ndarray    # (samples, blocks, heads)
    neurons: np.ndarray  # (samples, blocks, intermediate)

    def fisher(self) -> tuple[np.ndarray, np.ndarray]:
        """Diagonal Fisher information: squared per-sample gradients, summed over samples."""
        return (self.heads ** 2).sum(axis=0), (self.neurons ** 2).sum(axis=0)


def mask_gradients(model, tokens: torch.Tensor, labels: torch.Tensor, batch: int = 64, mode: str = "rate",
                   seed: int = 0) -> MaskGradients:
    """dL_s/dm for every calibration sample s, every head and every intermediate neuron.

    `mode`: the encoder mode the loss is computed in; `rate` (the equilibrium
    model the network was trained in) by default, `spike` backpropagates
    through time with the neurons' surrogate gradient.
    """
    was_training = model.training
    model.eval()
    heads, neurons = [], []
    dev = model.device
    try:
        for i in range(0, len(tokens), batch):
            x, y = tokens[i:i + batch].to(dev), labels[i:i + batch].to(dev)
            gates = []
            for blk in model.blocks:
                blk.head_gate = torch.ones(len(x), blk.heads, requires_grad=True, device=dev)
                blk.neuron_gate = torch.ones(len(x), blk.neuron_mask.numel(), requires_grad=True, device=dev)
                gates += [blk.head_gate, blk.neuron_gate]
            loss = F.cross_entropy(model(x, mode=mode, seed=seed + i), y, reduction="sum")
            grads = torch.autograd.grad(loss, gates)
            heads.append(torch.stack(grads[0::2], dim=1).double().cpu())
            neurons.append(torch.stack(grads[1::2], dim=1).double().cpu())
    finally:
        for blk in model.blocks:
            blk.head_gate = blk.neuron_gate = None
        model.train(was_training)
    return MaskGradients(torch.cat(heads).numpy(), torch.cat(neurons).numpy())


@dataclass
class Importance:
    """Scores (Fisher x weight) and the weights (ASR, or 1) of every head and intermediate neuron."""

    variant: str
    heads: np.ndarray           # (blocks, heads)
    neurons: np.ndarray         # (blocks, intermediate)
    head_weight: np.ndarray     # (blocks, heads)
    neuron_weight: np.ndarray   # (blocks, intermediate)
    grads: MaskGradients

    def head_vectors(self, block: int) -> np.ndarray:
        """(samples, heads): per-sample gradients scaled by sqrt(weight), so that the squared sum of a
        column is the head's score; the swap refinement works on these (block-diagonal Fisher)."""
        return self.grads.heads[:, block, :] * np.sqrt(self.head_weight[block])

    def neuron_vectors(self, block: int) -> np.ndarray:
        return self.grads.neurons[:, block, :] * np.sqrt(self.neuron_weight[block])


def importance(grads: MaskGradients, stats: SpikeStats | None, model, variant: str = "fim_asr") -> Importance:
    """Fisher scores of `variant` (see VARIANTS): F, F x attention ASR (heads), F x neuron ASR, or both."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    by_attn, by_neuron = VARIANTS[variant]
    fh, fn = grads.fisher()
    if (by_attn or by_neuron) and stats is None:
        raise ValueError(f"variant {variant!r} needs the ASRs (spike_stats)")
    wh = stats.head_asr(model) if by_attn else np.ones_like(fh)
    wn = stats.neuron_asr(model) if by_neuron else np.ones_like(fn)
    return Importance(variant, fh * wh, fn * wn, wh, wn, grads)
