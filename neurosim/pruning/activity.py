"""Spiking activity on a calibration set: per-neuron ASR and per-timestep ASR, from one `spike`-mode pass.

Both pruning stages read the spiking activity the model shows on real input:
the spatial stage weighs Fisher scores by each unit's average spiking rate
(ASR), the temporal stage runs PCA over each spiking sublayer's (or each
encoder layer's) ASR at every timestep.
One time-stepped pass of the encoder (`spike` mode, all layers lock-step for
`timesteps` steps: the converged T_conv of the paper) gives both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..frontend.encoder import ROLES


@dataclass
class SpikeStats:
    """asr[name]: per-neuron ASR (neurons,), mean over samples and tokens.
    sample_steps[name]: (samples, steps) spike fraction at each step, mean over tokens and neurons.
    neuron_steps[name]: (steps, neurons) spike fraction at each step, mean over samples and tokens."""

    asr: dict[str, np.ndarray]
    sample_steps: dict[str, np.ndarray]
    neuron_steps: dict[str, np.ndarray]
    timesteps: int
    samples: int

    def head_asr(self, model) -> np.ndarray:
        """(blocks, heads): ASR of each head's attention-output neurons (the attention sublayer's spikes)."""
        return np.stack([self.asr[f"block{b}.attention"].reshape(blk.heads, blk.head_dim).mean(axis=1)
                         for b, blk in enumerate(model.blocks)])

    def neuron_asr(self, model) -> np.ndarray:
        """(blocks, intermediate): each intermediate neuron's own ASR."""
        return np.stack([self.asr[f"block{b}.intermediate"] for b in range(len(model.blocks))])

    def layer_step_asr(self, block: int, role: str | None = None) -> np.ndarray:
        """(samples, steps): the ASR at each step of one spiking sublayer (`role`), or of the whole encoder
        layer (all six sublayers k, v, attention, attn_out, intermediate, output; each weighted by its size)."""
        roles = ROLES if role is None else (role,)
        sizes = {r: self.neuron_steps[f"block{block}.{r}"].shape[1] for r in roles}
        total = sum(sizes.values())
        return sum(self.sample_steps[f"block{block}.{r}"] * sizes[r] for r in roles) / total

    def layer_neuron_steps(self, block: int, role: str | None = None) -> np.ndarray:
        """(steps, neurons): every neuron's ASR at each step, mean over samples, of one spiking sublayer
        (`role`) or of all six of the encoder layer."""
        roles = ROLES if role is None else (role,)
        return np.concatenate([self.neuron_steps[f"block{block}.{r}"] for r in roles], axis=1)


@torch.no_grad()
def spike_stats(model, tokens: torch.Tensor, timesteps: int | None = None, batch: int = 64) -> SpikeStats:
    """Run `tokens` in spike mode for `timesteps` steps (default: the model's max) and collect the ASRs."""
    saved_t, saved_rec = model.sublayer_timesteps, model.record_steps
    steps = int(timesteps or max(model.timesteps))
    model.timesteps = [steps] * len(saved_t)
    model.record_steps = True
    was_training = model.training
    model.eval()
    asr_sum: dict[str, torch.Tensor] = {}
    neuron_sum: dict[str, torch.Tensor] = {}
    steps_out: dict[str, list[torch.Tensor]] = {}
    dev = model.device
    try:
        for i in range(0, len(tokens), batch):
            x = tokens[i:i + batch].to(dev)
            model(x, mode="spike")
            for name, a in model.last_asr.items():
                asr_sum[name] = asr_sum.get(name, 0) + a.double().cpu() * len(x)
            for name, s in model.step_asr.items():  # (batch, steps, neurons)
                s = s.double().cpu()
                steps_out.setdefault(name, []).append(s.mean(dim=2))
                neuron_sum[name] = neuron_sum.get(name, 0) + s.sum(dim=0)
    finally:
        model.timesteps, model.record_steps = saved_t, saved_rec
        model.step_asr = {}
        model.train(was_training)
    n = len(tokens)
    return SpikeStats({k: (v / n).numpy() for k, v in asr_sum.items()},
                      {k: torch.cat(v).numpy() for k, v in steps_out.items()},
                      {k: (v / n).numpy() for k, v in neuron_sum.items()}, steps, n)
