"""Spiking neuron modules for PyTorch, in the style of snnTorch's (small, plain).

Both neurons follow docs/design.md eq. 1-3 exactly:

    u_t = leak * u_{t-1} + I_t - s_{t-1} * vth        (reset by subtraction)
    s_t = H(u_t - vth)                                  (LIF: spike when u >= vth)
    s_t = clamp(floor(u_t / vth), 0, levels)            (GIF: multi-level spike)

`I_t` is the input current of step t (weights x input spikes + bias). leak = 1
is IF. A module is called once per timestep, snnTorch fashion:
`spk, mem = lif(current, mem)`, with `mem=None` at the first step. Only the
membrane is carried: s_{t-1} is recomputed from u_{t-1}, which gives exactly
the spike emitted one step before (u_0 = 0 < vth, so s_0 = 0).

`rate` is the equilibrium model of the same neuron (see its docstring).
"""

from __future__ import annotations

import torch
from torch import nn

from ..ir import NEURON_RULES


class _FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward; fast-sigmoid surrogate gradient 1 / (1 + slope*|x|)^2 backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad / (1 + ctx.slope * x.abs()) ** 2, None


def spike_fn(x: torch.Tensor, slope: float = 25.0) -> torch.Tensor:
    """H(x) (1 where x >= 0), differentiable through a fast-sigmoid surrogate (snnTorch's default slope)."""
    return _FastSigmoidSpike.apply(x, slope)


def rate(current: torch.Tensor, threshold: float | torch.Tensor = 1.0, levels: int = 1) -> torch.Tensor:
    """Equilibrium output of an IF neuron driven by a constant current: clamp(I / vth, 0, levels).

    With subtract reset, u_T = T*I - vth * (sum of spike values), and u stays
    bounded while 0 <= I <= levels*vth, so the mean spike value per step tends
    to I / vth; below 0 the neuron is silent, above levels*vth it saturates.
    For a binary neuron (levels = 1) this is the spike rate (the ASR). For a
    GIF neuron it is the mean spike *value* (0..levels), because that is what
    the next layer integrates; divide by `levels` for the fraction of the
    neuron's maximum output. Exact for leak = 1 only: a leak < 1 loses charge,
    so this is then an upper bound. Differentiable (gradient 1/vth inside the
    range, 0 outside).
    """
    return torch.clamp(current / threshold, 0.0, float(levels))


class LIF(nn.Module):
    """Leaky integrate-and-fire neuron with subtract reset (docs/design.md eq. 1-3).

    `threshold` is a per-layer scalar, an nn.Parameter when `learn_threshold`.
    `leak` (gamma) is a plain float in (0, 1]; 1 is IF.
    """

    levels = 1  # spike value range 0..levels; read by extraction

    def __init__(self, threshold: float = 1.0, leak: float = 1.0, learn_threshold: bool = False,
                 slope: float = 25.0):
        super().__init__()
        threshold, leak = float(threshold), float(leak)
        NEURON_RULES["vth"].check(threshold, type(self).__name__, "threshold")   # the IR neuron's rules
        NEURON_RULES["leak"].check(leak, type(self).__name__, "leak")
        vth = torch.tensor(threshold)
        if learn_threshold:
            self.threshold = nn.Parameter(vth)
        else:
            self.register_buffer("threshold", vth)
        self.leak = leak
        self.slope = slope

    def spike_value(self, mem: torch.Tensor) -> torch.Tensor:
        """s as a function of u, without gradient (used for the reset)."""
        return (mem >= self.threshold).to(mem.dtype)

    def fire(self, mem: torch.Tensor) -> torch.Tensor:
        return spike_fn(mem - self.threshold, self.slope)

    def forward(self, current: torch.Tensor, mem: torch.Tensor | None = None):
        if mem is None:
            mem = torch.zeros_like(current)
        # s_{t-1} from u_{t-1}; detached, as usual for reset terms, so gradients
        # flow through the membrane and the spike, not through the reset.
        reset = self.spike_value(mem).detach()
        mem = self.leak * mem + current - reset * self.threshold
        return self.fire(mem), mem

    def rate(self, current: torch.Tensor) -> torch.Tensor:
        """Equilibrium mean output per step for a constant current (see `rate`)."""
        return rate(current, self.threshold, self.levels)

    def extra_repr(self) -> str:
        return f"threshold={float(self.threshold.detach()):g}, leak={self.leak:g}, levels={self.levels}"


class GIF(LIF):
    """Multi-level integrate-and-fire neuron (SpikeLLM style).

    One step emits s_t = clamp(floor(u_t / vth), 0, levels) and subtracts
    s_t * vth at the next step, so a large input is sent as one spike of value
    up to `levels` instead of several binary spikes. `levels` is read by
    extraction (the IR's Neuron.levels; spike_bits = ceil(log2(levels + 1))).
    """

    def __init__(self, levels: int, threshold: float = 1.0, leak: float = 1.0, learn_threshold: bool = False):
        super().__init__(threshold, leak, learn_threshold)
        NEURON_RULES["levels"].check(levels, "GIF", "levels")
        self.levels = levels

    def spike_value(self, mem: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.floor(mem / self.threshold), 0, self.levels).detach()

    def fire(self, mem: torch.Tensor) -> torch.Tensor:
        # Straight-through estimator: the forward value is the quantized spike,
        # the gradient that of clamp(u / vth, 0, levels).
        x = torch.clamp(mem / self.threshold, 0, self.levels)
        return torch.floor(x).detach() + (x - x.detach())  # exact integer value, x's gradient
