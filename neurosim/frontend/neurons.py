"""Spiking neuron modules for PyTorch, in the style of snnTorch's (small, plain).

They run `ir.Neuron`'s step exactly, with all its conventions (reset by
subtraction or to v_reset, the reset landing before or after the next leak,
firing on u >= vth or u > vth, an optional synaptic current). The defaults are
docs/design.md eq. 1-3:

    u_t = leak * u_{t-1} + I_t - s_{t-1} * vth        (reset by subtraction)
    s_t = H(u_t - vth)                                  (LIF: spike when u >= vth)
    s_t = clamp(floor(u_t / vth), 0, levels)            (GIF: multi-level spike)

`I_t` is the input current of step t (weights x input spikes + bias). leak = 1
is IF. A module is called once per timestep, snnTorch fashion:
`spk, mem = lif(current, mem)`, with `mem=None` at the first step (CubaLIF's
state is the pair (syn, mem)). Only the membrane is carried: s_{t-1} is
recomputed from u_{t-1} by the firing rule, which gives exactly the spike
emitted one step before (u_0 = 0 < vth, so s_0 = 0). The float32 operations
are those of the spike engine's kernel, in the same order.

`rate` is the equilibrium model of the same neuron (see its docstring).
`neuron_module(ir_neuron)` builds the module of any IR neuron.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ir import NEURON_RULES, Neuron


class _FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward (x >= 0, or x > 0 when strict); fast-sigmoid surrogate 1 / (1 + slope*|x|)^2 backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float, strict: bool = False) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.slope = slope
        return ((x > 0) if strict else (x >= 0)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad / (1 + ctx.slope * x.abs()) ** 2, None, None


def spike_fn(x: torch.Tensor, slope: float = 25.0, strict: bool = False) -> torch.Tensor:
    """H(x) (1 where x >= 0; where x > 0 when `strict`), differentiable through a fast-sigmoid surrogate
    (snnTorch's default slope)."""
    return _FastSigmoidSpike.apply(x, slope, strict)


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


def _value(value, name: str, where: str) -> torch.Tensor:
    """A neuron parameter as a float32 tensor: a scalar, or one value per neuron (checked by the IR's rule)."""
    t = torch.as_tensor(value, dtype=torch.float32).detach()
    NEURON_RULES[name].check(float(t) if t.dim() == 0 else t.flatten().tolist(), where, name)
    return t


class LIF(nn.Module):
    """Leaky integrate-and-fire neuron: ir.Neuron's step (docs/design.md eq. 1-3 by default).

    `threshold` is a scalar or one value per neuron, an nn.Parameter when
    `learn_threshold`; `leak` (gamma) likewise in (0, 1] (1 is IF), a buffer.
    `reset` ("subtract" | "hard", to `v_reset`), `reset_order` ("leak_first" |
    "reset_first") and `fire` (">=" | ">") are ir.Neuron's conventions.
    """

    levels = 1  # spike value range 0..levels; read by extraction

    def __init__(self, threshold=1.0, leak=1.0, learn_threshold: bool = False, slope: float = 25.0, *,
                 reset: str = "subtract", v_reset: float = 0.0, reset_order: str = "leak_first", fire: str = ">="):
        super().__init__()
        where = type(self).__name__
        vth, gamma = _value(threshold, "vth", where), _value(leak, "leak", where)
        for name, value in (("reset", reset), ("v_reset", v_reset), ("reset_order", reset_order), ("fire", fire)):
            NEURON_RULES[name].check(value, where, name)   # the IR neuron's rules
        if learn_threshold:
            self.threshold = nn.Parameter(vth)
        else:
            self.register_buffer("threshold", vth)
        # a layer-wide leak stays a Python float: the encoder and its checkpoints read it as one
        self.leak = float(torch.as_tensor(leak, dtype=torch.float64)) if gamma.dim() == 0 else None
        if self.leak is None:
            self.register_buffer("leak_per_neuron", gamma)
        self.slope = slope
        self.reset, self.v_reset, self.reset_order, self.fire_rule = reset, float(v_reset), reset_order, fire

    @property
    def gamma(self):
        return self.leak if self.leak is not None else self.leak_per_neuron

    @property
    def strict(self) -> bool:
        return self.fire_rule == ">"

    def spike_value(self, mem: torch.Tensor) -> torch.Tensor:
        """s as a function of u, without gradient (used for the reset)."""
        return ((mem > self.threshold) if self.strict else (mem >= self.threshold)).to(mem.dtype).detach()

    def fire(self, mem: torch.Tensor) -> torch.Tensor:
        return spike_fn(mem - self.threshold, self.slope, self.strict)

    def _reset(self, mem: torch.Tensor, spk: torch.Tensor) -> torch.Tensor:
        if self.reset == "hard":
            return torch.where(spk != 0, torch.full_like(mem, self.v_reset), mem)
        return mem - spk * self.threshold

    def integrate(self, current: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """The membrane after one step: the last spike's reset, the leak and the current, in ir.Neuron's order."""
        # s_{t-1} from u_{t-1}; detached, as usual for reset terms, so gradients
        # flow through the membrane and the spike, not through the reset.
        reset = self.spike_value(mem)
        if self.reset_order == "reset_first":
            return self.gamma * self._reset(mem, reset) + current
        return self._reset(self.gamma * mem + current, reset)

    def forward(self, current: torch.Tensor, mem: torch.Tensor | None = None):
        if mem is None:
            mem = torch.zeros_like(current)
        mem = self.integrate(current, mem)
        return self.fire(mem), mem

    def rate(self, current: torch.Tensor) -> torch.Tensor:
        """Equilibrium mean output per step for a constant current (see `rate`)."""
        return rate(current, self.threshold, self.levels)

    def to_ir(self) -> Neuron:
        """The IR neuron this module runs."""
        per = lambda t: float(t) if t.dim() == 0 else t.double().flatten().numpy().copy()  # noqa: E731
        vth, leak = per(self.threshold.detach()), self.leak if self.leak is not None else per(self.leak_per_neuron)
        levels = self.levels
        model = "gif" if levels > 1 else ("if" if bool((torch.as_tensor(leak) == 1).all()) else "lif")
        return Neuron(model=model, vth=vth, leak=leak, levels=levels, reset=self.reset,
                      v_reset=self.v_reset, reset_order=self.reset_order, fire=self.fire_rule)

    def extra_repr(self) -> str:
        shown = lambda t: f"{float(t):g}" if torch.as_tensor(t).numel() == 1 else "per neuron"  # noqa: E731
        return (f"threshold={shown(self.threshold.detach())}, leak={shown(self.gamma)}, levels={self.levels}, "
                f"reset={self.reset}, reset_order={self.reset_order}, fire='{self.fire_rule}'")


class GIF(LIF):
    """Multi-level integrate-and-fire neuron (SpikeLLM style).

    One step emits s_t = clamp(floor(u_t / vth), 0, levels) (fire ">": the
    multiples of vth that u exceeds) and subtracts s_t * vth at the next step,
    so a large input is sent as one spike of value up to `levels` instead of
    several binary spikes. `levels` is read by extraction (the IR's
    Neuron.levels; spike_bits = ceil(log2(levels + 1))).

    SpikeLLM's GIF (`frontend.spikellm`, as its reference code runs it) is this
    neuron with threshold 1 in integer units and levels 2^n - 1, fed its whole
    quantized input as one impulse at the first step and nothing after, for
    T = 2^addbit steps; fed a constant current per step instead, this neuron
    sends a different train (tests/test_spikellm.py shows both).
    """

    def __init__(self, levels: int, threshold=1.0, leak=1.0, learn_threshold: bool = False, **conventions):
        super().__init__(threshold, leak, learn_threshold, **conventions)
        NEURON_RULES["levels"].check(levels, "GIF", "levels")
        self.levels = levels

    def _count(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ceil(x) - 1 if self.strict else torch.floor(x)

    def spike_value(self, mem: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self._count(mem / self.threshold), 0, self.levels).detach()

    def fire(self, mem: torch.Tensor) -> torch.Tensor:
        # Straight-through estimator: the forward value is the quantized spike,
        # the gradient that of clamp(u / vth, 0, levels).
        x = torch.clamp(mem / self.threshold, 0, self.levels)
        return self.spike_value(mem) + (x - x.detach())  # exact integer value, x's gradient


class CubaLIF(LIF):
    """LIF fed through a synaptic current: i <- syn_decay * i + I, then the membrane integrates i.

    Called as `spk, (syn, mem) = neuron(current, state)`, state None at the first step.
    """

    def __init__(self, syn_decay, threshold=1.0, leak=1.0, learn_threshold: bool = False, **conventions):
        super().__init__(threshold, leak, learn_threshold, **conventions)
        self.register_buffer("syn_decay", _value(syn_decay, "syn_decay", "CubaLIF"))

    def forward(self, current: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        syn, mem = (torch.zeros_like(current), torch.zeros_like(current)) if state is None else state
        syn = self.syn_decay * syn + current
        mem = self.integrate(syn, mem)
        return self.fire(mem), (syn, mem)

    def to_ir(self) -> Neuron:
        ir = super().to_ir()
        d = self.syn_decay.double()
        ir.model, ir.syn_decay = "cubalif", float(d) if d.dim() == 0 else d.flatten().numpy().copy()
        return ir


class RecurrentNeuron(nn.Module):
    """A neuron module fed its own last spikes through `weight` (out, out) and `bias` as well (ir.Recurrent):
    called as `spk, state = m(current, state)`, state (the neuron's own, last spikes)."""

    def __init__(self, neuron: LIF, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.neuron = neuron
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32))
        self.register_buffer("bias", None if bias is None else torch.as_tensor(bias, dtype=torch.float32))

    def forward(self, current: torch.Tensor, state=None):
        inner, spk = (None, torch.zeros_like(current)) if state is None else state
        fed = spk @ self.weight.T
        spk, inner = self.neuron(current + (fed if self.bias is None else fed + self.bias), inner)
        return spk, (inner, spk)


def neuron_module(neuron: Neuron, unit_shape: tuple[int, ...] = (-1,)) -> LIF:
    """The torch module that runs an IR neuron (LIF, GIF or CubaLIF). Per-neuron values take `unit_shape`
    so that they broadcast over the layer's output: (-1,) for (batch, features), (-1, 1, 1) for conv maps."""
    conventions = dict(reset=neuron.reset, v_reset=neuron.v_reset, reset_order=neuron.reset_order, fire=neuron.fire)

    def shaped(value):
        t = torch.as_tensor(value, dtype=torch.float64)
        return t if t.dim() == 0 else t.reshape(unit_shape)
    vth, leak = shaped(neuron.vth), neuron.leak if isinstance(neuron.leak, float) else shaped(neuron.leak)
    if neuron.synaptic:
        return CubaLIF(shaped(neuron.syn_decay), vth, leak, **conventions)
    if neuron.levels > 1:
        return GIF(neuron.levels, vth, leak, **conventions)
    return LIF(vth, leak, **conventions)
