"""SpikeLLM's GIF neuron, as its reference code defines it (Xing et al., ICLR 2025;
github.com/Xingrun-Xing2/SpikeLLM, spike_driven_quant/quantizer.py and spike_linear.py).

What the reference does, in our words:

* **Per-token quantization** (its `UniformAffineQuantizer`, asymmetric,
  per token): for each token (the last axis holds the channels) the range
  [min, max] is cut into 2^n - 1 steps, scale = (max - min) / (2^n - 1)
  clamped to [1e-5, 1e4], zero point z = round(-min / scale) (clamped to
  +-1e4), and x_int = clamp(round(x / scale) + z, 0, 2^n - 1). torch's
  round ties to even. The value it stands for is (x_int - z) * scale.
* **GIF emission** (`SpikeQuantLinear`, mode "real_multibit_simulate"): a
  channel on the multi-step path is quantized with n + addbit bits and sent
  over T = 2^addbit steps. The membrane starts at x_int and receives nothing
  more; each step emits s_t = min(mem_t, 2^n - 1) (a spike of value
  0..2^n - 1, i.e. n bits) and subtracts it: mem_{t+1} = mem_t - s_t.
  What is left after T steps is dropped: T (2^n - 1) = 2^(n+addbit) - 2^addbit,
  so an x_int above that (at most 2^addbit - 1 of the 2^(n+addbit) codes, and
  in practice the largest channel of nearly every token) loses the
  difference. `residue` counts it.
* **Layer output**: (sum_t s_t W^T - z * rowsum(W)) * scale + bias, i.e. the
  quantized matmul computed from spikes: sum_t s_t W^T is accumulates only
  (each spike of value s adds s * W's row: one shift-add, or n bit-serial ACs),
  the zero-point term is one multiply per output and token with a
  precomputed row sum, the scale one more.
* **Two paths per layer** (Optimal Brain Spiking, `neurosim.frontend.obs`):
  channels on the low-saliency path are quantized with n bits (their own
  per-token scale over the whole token) and sent in one step; the others
  take the n + addbit-bit multi-step GIF path above. For training and
  evaluation the reference uses the same two quantizers without spikes
  (its default mode "fake_binary_simulate"), which equals the spike path
  except where the residue is dropped.

Where this module departs from the reference, on purpose and tested:
the reference's spike path subtracts the zero-point term over every input
channel, also the low-path channels whose integers it set to 0, which adds
z * scale * W[:, j] for each low channel j (`gif_linear` takes the row sum
over the multi-step channels only). Its "fake_multibit_simulate" mode returns
the unquantized product, and its matmul module's spike mode reads attributes
it never sets; neither is reproduced.

How this neuron maps onto neurosim's own GIF (`neurons.GIF`, `ir.Neuron`
with levels > 1): `gif_neuron(n_bits)` is that GIF with vth = 1 (integer
units), levels = 2^n - 1, leak 1, subtract reset, fire ">=", driven by one
impulse x_int at its first step and nothing after (tests/test_spikellm.py
steps neurons.GIF and gets the same spikes). Fed a constant current per step
instead, as neurosim's encoder feeds its input, neurosim's GIF emits a
different train; the zero point and the scale live outside the neuron, in
the layer (one more multiply per output and token).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import NeurosimError
from ..gif_quant import SCALE_MAX, SCALE_MIN, ZERO_POINT_MAX
from ..ir import Neuron

BITS_MIN, BITS_MAX = 2, 16         # the reference asserts 2 <= bits <= 16 (after adding addbit)


def check_bits(n_bits, addbit, where: str = "spikellm") -> None:
    """Refuse bit widths the reference refuses (2 <= n and n + addbit <= 16)."""
    for name, value, low in (("n_bits", n_bits, BITS_MIN), ("addbit", addbit, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise NeurosimError(where, name, f"must be an integer >= {low}, got {value!r}",
                                "use n_bits >= 2 (4 in SpikeLLM's W4A4 runs) and addbit >= 0 (1 or 2 there)")
    if n_bits + addbit > BITS_MAX:
        raise NeurosimError(where, "addbit", f"n_bits + addbit = {n_bits + addbit} exceeds {BITS_MAX}",
                            f"keep n_bits + addbit <= {BITS_MAX} (SpikeLLM's quantizer refuses more)")


def steps(addbit: int) -> int:
    """T, the GIF's steps on the multi-step path."""
    return 2 ** addbit


def _round(x: torch.Tensor, ste: bool) -> torch.Tensor:
    """Round half to even; with `ste` the gradient passes straight through (training)."""
    return x + (x.round() - x).detach() if ste else x.round()


@dataclass
class Quantized:
    """Integer codes (as floats) with the scale and zero point of each token (shape (..., 1))."""

    ints: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    n_bits: int

    def dequantize(self) -> torch.Tensor:
        return (self.ints - self.zero_point) * self.scale


def quantize(x: torch.Tensor, n_bits: int, ste: bool = False) -> Quantized:
    """Asymmetric min-max quantization to n bits of each vector along the last axis (per token)."""
    check_bits(n_bits, 0)
    top = 2 ** n_bits - 1
    low, high = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    scale = ((high - low) / top).clamp(SCALE_MIN, SCALE_MAX)
    zero_point = (-low / scale).clamp(-ZERO_POINT_MAX, ZERO_POINT_MAX).round()
    ints = (_round(x / scale, ste) + zero_point).clamp(0, top)
    return Quantized(ints, scale, zero_point, n_bits)


def fake_quant(x: torch.Tensor, n_bits: int, ste: bool = True) -> torch.Tensor:
    """x quantized per token and mapped back to real values (the reference's training and evaluation path)."""
    return quantize(x, n_bits, ste).dequantize()


def gif_spikes(ints: torch.Tensor, n_bits: int, addbit: int) -> torch.Tensor:
    """The GIF's spike train for integer codes `ints` (n + addbit bits): shape (T, *ints.shape).

    mem_0 = ints; s_t = min(mem_t, 2^n - 1); mem_{t+1} = mem_t - s_t, for T = 2^addbit steps.
    """
    check_bits(n_bits, addbit)
    cap = 2 ** n_bits - 1
    mem, out = ints, []
    for _ in range(steps(addbit)):
        spike = torch.clamp(mem, max=cap)
        out.append(spike)
        mem = mem - spike
    return torch.stack(out)


def residue(ints: torch.Tensor, n_bits: int, addbit: int) -> torch.Tensor:
    """What the GIF leaves unsent after its T steps: max(0, ints - T (2^n - 1))."""
    return torch.clamp(ints - steps(addbit) * (2 ** n_bits - 1), min=0)


@dataclass
class SpikeCount:
    """What GIF inputs sent over a run, summed over vectors (tokens; for K and V, tokens x heads).

    `events[t]`: nonzero spikes at step t (step 0 includes the single-step path); `slots`: the spike
    slots (T per multi-step value, 1 per single-step value); `values`: the sum of spike values (the
    integers sent); `bit_events`: set bits over all spike values (what a bit-serial core accumulates
    when it skips zero bits); `residue`: the integer units dropped after T steps; `acs`: events x the
    outputs each reaches (`fan_out`: a linear's output features, or for a key or value the queries
    that attend it), the accumulates the spikes cause.
    """

    steps: int = 1
    spike_bits: int = 1
    vectors: int = 0
    elements: int = 0             # values quantized (vectors x channels)
    slots: float = 0.0
    events: list[float] = field(default_factory=list)
    values: float = 0.0
    bit_events: float = 0.0
    residue: float = 0.0
    acs: float = 0.0
    trains: list[torch.Tensor] | None = None   # a list: every call's spikes (T, *x.shape), single-step codes at step 0

    def add(self, sent: "Emission", fan_out: float | torch.Tensor = 1.0) -> None:
        spikes, multi = sent.spikes, sent.multi.expand(sent.spikes.shape[1:])
        if self.trains is not None:
            train = spikes.clone()
            if sent.single is not None:
                train[0] += sent.single.ints
            self.trains.append(train)
        self.steps, self.spike_bits = spikes.shape[0], sent.n_bits
        self.vectors += spikes[0, ..., 0].numel()
        self.elements += spikes[0].numel()
        self.slots += float(multi.sum()) * self.steps + float((~multi).sum())
        per_step = [float((s != 0).sum()) for s in spikes]
        trains = [spikes]
        if sent.single is not None:
            per_step[0] += float((sent.single.ints != 0).sum())
            trains.append(sent.single.ints)
        self.events = [a + b for a, b in zip(self.events, per_step)] if self.events else per_step
        self.values += sum(float(t.sum()) for t in trains)
        self.bit_events += sum(float(popcount(t).sum()) for t in trains)
        self.residue += float(sent.lost.sum())
        per_value = (spikes != 0).sum(0) + (0 if sent.single is None else (sent.single.ints != 0).to(torch.int64))
        self.acs += float((per_value * fan_out).sum())

    @property
    def total_events(self) -> float:
        return float(sum(self.events))

    def rate(self) -> float:
        """Events per spike slot: the fraction of slots that carry a (nonzero) spike."""
        return self.total_events / self.slots if self.slots else 0.0

    def dense_rate(self) -> float:
        """Events per (value, step) as if every channel ran all T steps: what makes rate x channels x T
        x tokens, the cost model's count of a GIF input over T steps, equal the events sent."""
        return self.total_events / (self.elements * self.steps) if self.elements else 0.0


def popcount(values: torch.Tensor) -> torch.Tensor:
    """Set bits of nonnegative integer values (as floats)."""
    v, count = values.to(torch.int64), torch.zeros_like(values, dtype=torch.int64)
    while bool((v > 0).any()):
        count += v & 1
        v = v >> 1
    return count


@dataclass
class Emission:
    """What the GIF inputs of one layer send: the multi-step train and the single-step codes."""

    spikes: torch.Tensor          # (T, *x.shape): multi-step channels' spikes (0 on single-step channels)
    high: Quantized               # the n + addbit-bit quantization of x (scale, zero point per token)
    multi: torch.Tensor           # bool per channel: on the multi-step path
    single: Quantized | None      # the n-bit quantization of x, codes kept on single-step channels only
    lost: torch.Tensor            # what each multi-step channel did not send (the residue)
    n_bits: int                   # bits of one spike


def emit(x: torch.Tensor, n_bits: int, addbit: int, multi: torch.Tensor | None = None,
         count: SpikeCount | None = None, fan_out: float | torch.Tensor = 1.0) -> Emission:
    """Quantize x per token and send it: multi-step channels over T steps, the others in one n-bit spike.

    `multi` (bool, one per channel of x's last axis; default all) is the Optimal Brain Spiking split.
    `count`, when given, accumulates the spikes sent, each reaching `fan_out` outputs (broadcast to x).
    """
    check_bits(n_bits, addbit)
    multi = torch.ones(x.shape[-1], dtype=torch.bool, device=x.device) if multi is None else multi
    high = quantize(x, n_bits + addbit)
    codes = high.ints * multi
    spikes = gif_spikes(codes, n_bits, addbit)
    single = None
    if not bool(multi.all()):
        low = quantize(x, n_bits)
        single = Quantized(low.ints * ~multi, low.scale, low.zero_point, n_bits)
    sent = Emission(spikes, high, multi, single, residue(codes, n_bits, addbit), n_bits)
    if count is not None:
        count.add(sent, fan_out)
    return sent


def gif_values(x: torch.Tensor, n_bits: int, addbit: int, multi: torch.Tensor | None = None,
               count: SpikeCount | None = None, fan_out: float | torch.Tensor = 1.0) -> torch.Tensor:
    """The real values the GIF inputs carry: (sum_t s_t - z) * scale on multi-step channels, the n-bit
    dequantized code on the others (for operands of a matmul with another activation, as K and V)."""
    sent = emit(x, n_bits, addbit, multi, count, fan_out)
    values = torch.where(sent.multi, (sent.spikes.sum(0) - sent.high.zero_point) * sent.high.scale, 0.0)
    return values if sent.single is None else torch.where(sent.multi, values, sent.single.dequantize())


def gif_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, n_bits: int, addbit: int,
               multi: torch.Tensor | None = None, count: SpikeCount | None = None) -> torch.Tensor:
    """A linear layer fed by SpikeLLM's GIF neurons, computed as the hardware would, from the spikes.

    Multi-step channels: (sum_t s_t W^T - z rowsum(W_multi)) * scale, the sum over steps accumulating
    spikes only; single-step channels: (c W^T - z' rowsum(W_single)) * scale' with their n-bit codes c;
    plus bias. `multi` and `count` as in `emit`.
    """
    sent = emit(x, n_bits, addbit, multi, count, weight.shape[0])
    high, single = sent.high, sent.single
    out = (sent.spikes.sum(0) @ weight.T - high.zero_point * (weight * sent.multi).sum(1)) * high.scale
    if single is not None:
        out = out + (single.ints @ weight.T - single.zero_point * (weight * ~sent.multi).sum(1)) * single.scale
    return out if bias is None else out + bias


def two_path_fake_quant(x: torch.Tensor, n_bits: int, addbit: int, multi: torch.Tensor | None = None,
                        ste: bool = True) -> torch.Tensor:
    """The reference's training path: n-bit codes on single-step channels, n + addbit bits on the others,
    each per token over all channels, mapped back to real values (no residue is dropped)."""
    check_bits(n_bits, addbit)
    high = fake_quant(x, n_bits + addbit, ste)
    if multi is None or bool(multi.all()):
        return high
    return torch.where(multi, high, fake_quant(x, n_bits, ste))


def gif_neuron(n_bits: int) -> Neuron:
    """SpikeLLM's GIF as neurosim's IR neuron: integer units (vth 1), spikes of 0..2^n - 1 (n bits)."""
    check_bits(n_bits, 0)
    return Neuron(model="gif", vth=1.0, leak=1.0, levels=2 ** n_bits - 1, reset="subtract", fire=">=")
