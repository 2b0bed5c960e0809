"""The network IR: the one contract between the front ends and the back ends.

A `Network` is an ordered list of `Layer`s (each layer only reads layers
listed before it). A layer knows its shape, how many tokens it processes
(`seq_len`), how many timesteps it runs, its spiking neuron (or none, for a
real-valued output such as SpikingBERT's Query), its weights' bit width and
optionally the weights, its neuron mask, and its output spiking rate (assumed
by a model card, or measured).

What only one kind of layer has lives in that kind's spec, `Layer.spec`, one
small class per kind as NIR has one per node kind: `Linear`, `Attention`
(heads, head mask), `Conv2dShape`; for decoders `ElementOps` (RMSNorm, rotary,
SiLU x product, residual add) and `CausalAttention` (grouped-query, keys
distinct from queries). A new kind is a new `LayerSpec` subclass
in `LAYER_KINDS`, with its rules in its `validate`. Two optional parts are
not kinds: `Layer.norm` (`Norm`: a residual add and LayerNorm after the
layer) and `Layer.tag` (`EncoderTag`: where the layer sits in the seed
paper's encoder).

Everything is checked when a `Network` is built, and a bad field is refused
with the layer's name, the field's path and the fix. Each rule is written
once here (`RATE`, `NEURON_RULES`, `check_mask`); model cards and the
command line apply the same ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from numbers import Real
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from .errors import NeurosimError

NEURON_MODELS = ("if", "lif", "gif", "cubalif")
RESETS = ("subtract", "hard")               # subtract vth per spike value, or set u to v_reset
RESET_ORDERS = ("leak_first", "reset_first")  # when the reset of a spike lands: see Neuron
FIRE_RULES = (">=", ">")                     # the comparison of u with vth
COMPUTE_KINDS = ("ac", "mac")
ENCODER_ROLES = ("q", "k", "v", "attention", "attn_out", "intermediate", "output")
NORM_STATISTICS = ("step", "running_mean", "frozen")   # what a LayerNorm normalizes by (Norm.statistics)
NETWORK_INPUT = "<input>"   # the network input's name where a layer names its source (Norm.residual, traces)
FORMAT = 2                  # the JSON format to_dict writes; 1: every kind's fields flat on each layer, no "format"


def _fail(where: str, fld: str, problem: str, fix: str) -> None:
    raise NeurosimError(where, fld, problem, fix)


def _is_positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1


def _check_positive_int(value: Any, where: str, fld: str) -> None:
    if not _is_positive_int(value):
        _fail(where, fld, f"must be a positive integer, got {value!r}", f"set '{fld}' to an integer >= 1")


# -- the rules that model cards and the command line share with the IR --------------------
@dataclass(frozen=True)
class Rule:
    """One rule, stated once: what must hold, what is wrong otherwise, and the fix.

    The IR applies it with `check`; model cards (pydantic) and the command line
    (argparse) read `holds`, `problem` and `fix` to refuse the same values in
    their own error types.
    """

    holds: Callable[[Any], bool]
    problem: str
    fix: str

    def check(self, value: Any, where: str, fld: str) -> None:
        if not self.holds(value):
            shown = repr(value) if isinstance(value, str) else value
            _fail(where, fld, f"{self.problem}, got {shown}", self.fix)


RATE = Rule(lambda r: isinstance(r, Real) and 0 <= r <= 1, "a spiking rate is a fraction of timesteps",
            "give a rate in [0, 1]")


def _each(holds: Callable[[float], bool]) -> Callable[[Any], bool]:
    """A rule on one number that also takes a per-neuron array (every element must hold)."""
    def check(value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return False
        if isinstance(value, Real):
            return bool(holds(value))
        try:
            a = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return False
        return a.ndim == 1 and a.size > 0 and bool(all(holds(float(v)) for v in a))
    return check


NEURON_RULES = {
    "model": Rule(lambda m: m in NEURON_MODELS, "unknown neuron model", f"use one of {', '.join(NEURON_MODELS)}"),
    "vth": Rule(_each(lambda v: math.isfinite(v) and v > 0), "threshold must be > 0",
                "set a positive firing threshold (one value, or one per neuron)"),
    "leak": Rule(_each(lambda g: 0 < g <= 1), "leak (gamma) must be in (0, 1]",
                 "use 1.0 for IF, < 1 for LIF (one value, or one per neuron)"),
    "levels": Rule(_is_positive_int, "levels (the largest spike value) must be a positive integer",
                   "use 1 for binary spikes, k > 1 for spikes of value 0..k (GIF)"),
    "reset": Rule(lambda r: r in RESETS, "unknown reset", "use 'subtract' (u -= vth per spike) or 'hard' "
                  "(u = v_reset)"),
    "v_reset": Rule(lambda v: isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v),
                    "the reset potential must be a finite number", "give v_reset as a number (0 for reset to zero)"),
    "reset_order": Rule(lambda o: o in RESET_ORDERS, "unknown reset order",
                        "use 'leak_first' (snnTorch's default) or 'reset_first' (SpikingJelly, NIR, norse)"),
    "fire": Rule(lambda f: f in FIRE_RULES, "unknown firing comparison",
                 "use '>=' (spike when u >= vth) or '>' (spike when u > vth)"),
    "syn_decay": Rule(lambda a: a is None or _each(lambda x: 0 <= x <= 1)(a),
                      "the synaptic current's decay must be in [0, 1]",
                      "give syn_decay in [0, 1] (one value, or one per neuron), or None for no synaptic current"),
}
PER_NEURON = ("vth", "leak", "syn_decay")   # the fields that may hold one value per neuron


def check_mask(mask: Any, length: int, unit: str, where: str, fld: str) -> np.ndarray | None:
    """A keep-mask as booleans: 1-D, one 0 (pruned) or 1 (kept) per unit; None stays None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim != 1 or mask.shape[0] != length:
        _fail(where, fld, f"has shape {mask.shape}, but the layer has {length} {unit}",
              f"give a 1-D mask of length {length} (1 = keep, 0 = pruned)")
    if not np.isin(mask, (0, 1)).all():
        _fail(where, fld, "holds values other than 0 and 1", "use 1 for a kept unit and 0 for a pruned one")
    return mask.astype(bool)


@dataclass(eq=False)
class Neuron:
    """A spiking neuron: docs/design.md eq. 1-3, with the conventions of the other frameworks as fields.

    One step, with input current I = W s_in + b and the neuron's last spike s:

        i <- syn_decay * i + I;  I <- i               (a synaptic current, CubaLIF, only when syn_decay is set)
        leak_first:  u <- leak * u + I, then if s: u <- u - s * vth ("subtract") or u <- v_reset ("hard")
        reset_first: if s: u <- u - s * vth or u <- v_reset, then u <- leak * u + I
        s <- 1 if u >= vth (fire ">="), or if u > vth (fire ">")

    u starts at 0. The defaults are the design's neuron (leak_first, subtract, ">="), which is also
    snnTorch's Leaky but for its ">"; SpikingJelly, NIR and norse reset when the neuron fires
    (reset_first), NIR and norse to v_reset. `vth`, `leak` and `syn_decay` hold one value for the
    layer or one per unit (output neuron; conv2d: output channel). `levels` > 1 is a multi-level
    (SpikeLLM GIF) neuron: s is how many multiples of vth u reaches (">=") or exceeds (">"), at most
    `levels`, i.e. `spike_bits` bits per event; it subtracts s * vth.
    """

    model: str = "lif"
    vth: float | np.ndarray = 1.0
    leak: float | np.ndarray = 1.0
    levels: int = 1
    reset: str = "subtract"
    v_reset: float = 0.0
    reset_order: str = "leak_first"
    fire: str = ">="
    syn_decay: float | np.ndarray | None = None

    @property
    def spike_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.levels + 1)))

    @property
    def synaptic(self) -> bool:
        """Has a synaptic current (two state variables per neuron)."""
        return self.syn_decay is not None

    def values(self, name: str, units: int) -> np.ndarray:
        """A per-neuron field as one float64 value per unit (a layer-wide value repeated)."""
        value = getattr(self, name)
        return np.full(units, float(value)) if isinstance(value, Real) else np.asarray(value, dtype=float)

    def validate(self, where: str, fld: str = "neuron", units: int | None = None) -> None:
        for name, rule in NEURON_RULES.items():
            rule.check(getattr(self, name), where, f"{fld}.{name}")
        for name in PER_NEURON:
            value = getattr(self, name)
            if value is None or isinstance(value, Real):
                continue
            value = np.asarray(value, dtype=float)
            if units is not None and value.shape != (units,):
                _fail(where, f"{fld}.{name}", f"has {value.size} values, but the layer has {units} units",
                      f"give one value, or {units} (one per output neuron; conv2d: per output channel)")
            setattr(self, name, value)
        if (self.model == "cubalif") != self.synaptic:
            _fail(where, f"{fld}.syn_decay", "a CubaLIF neuron has a synaptic current and no other model has one",
                  "give model 'cubalif' with its syn_decay, or leave syn_decay unset for if/lif/gif")
        if self.synaptic and self.levels != 1:
            _fail(where, f"{fld}.levels", "a CubaLIF neuron emits binary spikes", "use levels 1, or a GIF without "
                  "a synaptic current")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Neuron:
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) if
                   isinstance(getattr(self, f.name), np.ndarray) or isinstance(getattr(other, f.name), np.ndarray)
                   else getattr(self, f.name) == getattr(other, f.name) for f in fields(self))


# -- layer kinds ------------------------------------------------------------------------------
class LayerSpec:
    """What one kind of layer adds to `Layer`: its own fields (a dataclass subclass), rules and shapes.

    The defaults describe a dense layer: one neuron (and bias) per output
    feature, (out, in) weights, every live input connected to every live output.
    """

    kind: ClassVar[str]
    weight_layout: ClassVar[str] = "(out, in)"

    def validate(self, layer: Layer, where: str) -> None:
        """Refuse what this kind does not allow, naming `where` and the field's path."""

    def units(self, layer: Layer) -> tuple[int, str]:
        """How many units the neuron mask, the bias and per-neuron parameters cover, and what they are."""
        return layer.out_features, "output neurons"

    def per_output(self, layer: Layer, per_unit: np.ndarray) -> np.ndarray:
        """One value per unit spread over the output features (a unit's outputs share its value)."""
        return per_unit

    def weight_shape(self, layer: Layer) -> tuple[int, ...] | None:
        return layer.out_features, layer.in_features

    def live_outputs(self, layer: Layer) -> np.ndarray:
        return np.ones(layer.out_features, bool) if layer.neuron_mask is None else layer.neuron_mask

    def connections(self, layer: Layer, live_in: int, live_out: int) -> float:
        """Synapses from `live_in` live inputs to `live_out` live outputs, per token and step."""
        return live_in * live_out

    def weights_between(self, layer: Layer, live_in: int, live_out: int) -> float:
        """Distinct weights that connect `live_in` live inputs to `live_out` live outputs."""
        return float(live_in * live_out)

    def source_shape(self, layer: Layer, position: int) -> tuple[int, int]:
        """(features, tokens) the layer expects of its `position`-th input: its own in_features and seq_len,
        but for kinds whose inputs differ (grouped-query attention's K and V, a last-token selection)."""
        return layer.in_features, layer.seq_len

    def nonzero_connections(self, layer: Layer, live_out: np.ndarray) -> float | None:
        """Synapses from every input to the `live_out` outputs (a boolean mask over out_features) whose
        weight is nonzero, per token and step: an input event's effective ACs summed over all inputs.
        With every input firing at rate r, the effective ACs are r x this per token and step. None:
        the layer has no weights to tell (dense, then)."""
        if layer.weights is None:
            return None
        return float(np.count_nonzero(np.asarray(layer.weights)[np.asarray(live_out, bool)]))


@dataclass
class Linear(LayerSpec):
    """Kind "linear": a dense layer, W s + b. It has no fields beyond the common ones."""

    kind: ClassVar[str] = "linear"


@dataclass
class Attention(LayerSpec):
    """Kind "attention": softmax(Q K^T / sqrt(head_dim)) V over `heads` heads of `head_dim` features.

    Its three inputs are the Q, K and V layers, in that order; it has no
    weights of its own. `head_mask` (1 = keep) prunes whole heads, so its
    outputs are masked per head, never per neuron.
    """

    heads: int
    head_dim: int
    head_mask: np.ndarray | None = None
    kind: ClassVar[str] = "attention"

    def live_heads(self) -> np.ndarray:
        return np.ones(self.heads, bool) if self.head_mask is None else self.head_mask

    def live_outputs(self, layer: Layer) -> np.ndarray:
        return np.repeat(self.live_heads(), self.head_dim)

    def weight_shape(self, layer: Layer) -> None:
        return None

    def connections(self, layer: Layer, live_in: int, live_out: int) -> float:
        return 0  # no synapses: its work is scores and sums per head (cost.analytic counts them)

    def weights_between(self, layer: Layer, live_in: int, live_out: int) -> float:
        return 0.0

    def nonzero_connections(self, layer: Layer, live_out: np.ndarray) -> None:
        return None   # its ACs are the weighted sum by V's events, whose weights (probabilities) are never 0

    def validate(self, layer: Layer, where: str) -> None:
        _check_positive_int(self.heads, where, "spec.heads")
        _check_positive_int(self.head_dim, where, "spec.head_dim")
        width = self.heads * self.head_dim
        if layer.in_features != width or layer.out_features != width:
            _fail(where, "in_features/out_features", f"an attention layer maps heads*head_dim = {width} features "
                  f"to {width}, got {layer.in_features} -> {layer.out_features}", f"set both to {width}")
        if len(layer.inputs) != 3:
            _fail(where, "inputs", f"attention reads exactly three layers (query, key, value), got {layer.inputs}",
                  "list the Q, K and V projection layers, in that order")
        if layer.weights is not None:
            _fail(where, "weights", "an attention layer has no weights of its own", "put weights on the Q/K/V layers")
        if layer.neuron_mask is not None:
            _fail(where, "neuron_mask", "attention outputs are masked per head", "use spec.head_mask instead")
        self.head_mask = check_mask(self.head_mask, self.heads, "heads", where, "spec.head_mask")


class _Window:
    """A square window sliding over a (height, width) map with a stride and zero padding: conv2d, pool2d."""

    in_height: int
    in_width: int
    kernel: int
    stride: int
    padding: int

    @property
    def out_height(self) -> int:
        return (self.in_height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.in_width + 2 * self.padding - self.kernel) // self.stride + 1

    def valid_taps(self, size: int, out_size: int) -> np.ndarray:
        """For each output position along one axis, the kernel taps that land inside the input."""
        starts = np.arange(out_size) * self.stride - self.padding
        taps = np.arange(self.kernel)
        pos = starts[:, None] + taps[None, :]
        return ((pos >= 0) & (pos < size)).sum(axis=1)

    def axis_fan_out(self, size: int, out_size: int) -> np.ndarray:
        """For each input position along one axis, the output positions whose window holds it."""
        pos = np.arange(size)[:, None] + self.padding - np.arange(self.kernel)[None, :]   # = out * stride
        return ((pos >= 0) & (pos % self.stride == 0) & (pos // self.stride < out_size)).sum(axis=1)

    def tap_positions(self, size: int, out_size: int) -> np.ndarray:
        """For each kernel tap along one axis, the output positions where it lands inside the input."""
        pos = (np.arange(out_size) * self.stride - self.padding)[None, :] + np.arange(self.kernel)[:, None]
        return ((pos >= 0) & (pos < size)).sum(axis=1)

    def input_fan_out(self) -> np.ndarray:
        """(in_height, in_width): the output positions each input position feeds, per output channel.

        Exact at the borders: a padded window's taps that fall on padding connect nothing. One input
        event at (c, y, x) costs input_fan_out()[y, x] ACs per live output channel (conv2d; pool2d:
        its own channel only), and input_fan_out().sum() == valid_taps(rows).sum() * valid_taps(cols).sum().
        With per-position input rates r[c, y, x] a layer's ACs per token and step are
        live_out_channels * (r * input_fan_out()).sum() (conv2d; pool2d: the sum over live channels).
        """
        return np.outer(self.axis_fan_out(self.in_height, self.out_height),
                        self.axis_fan_out(self.in_width, self.out_width))

    def window_taps(self) -> int:
        """Connections of one input channel to one output channel, summed over output positions."""
        return int(self.valid_taps(self.in_height, self.out_height).sum()
                   * self.valid_taps(self.in_width, self.out_width).sum())

    def check_window(self, layer: Layer, where: str, names: tuple[str, ...]) -> None:
        for name in names:
            _check_positive_int(getattr(self, name), where, f"spec.{name}")
        if isinstance(self.padding, bool) or not isinstance(self.padding, (int, np.integer)) or self.padding < 0:
            _fail(where, "spec.padding", f"must be an integer >= 0, got {self.padding!r}", "use a non-negative padding")
        if self.out_height < 1 or self.out_width < 1:
            _fail(where, "spec.kernel", "the kernel does not fit in the padded input",
                  "use a smaller kernel or more padding")

    def check_features(self, layer: Layer, where: str, in_channels: int, out_channels: int) -> None:
        if layer.in_features != in_channels * self.in_height * self.in_width:
            _fail(where, "in_features", f"{layer.in_features} != channels*in_height*in_width = "
                  f"{in_channels * self.in_height * self.in_width}", "make in_features match the input shape")
        if layer.out_features != out_channels * self.out_height * self.out_width:
            _fail(where, "out_features", f"{layer.out_features} != channels*out_height*out_width = "
                  f"{out_channels * self.out_height * self.out_width}", "make out_features match the output shape")


@dataclass
class Conv2dShape(_Window, LayerSpec):
    """Kind "conv2d": a square-kernel 2-D convolution; neuron mask and bias are per output channel."""

    in_channels: int
    out_channels: int
    in_height: int
    in_width: int
    kernel: int
    stride: int = 1
    padding: int = 0
    kind: ClassVar[str] = "conv2d"
    weight_layout: ClassVar[str] = "(out_c, in_c, k, k)"

    def units(self, layer: Layer) -> tuple[int, str]:
        return self.out_channels, "output channels"

    def per_output(self, layer: Layer, per_unit: np.ndarray) -> np.ndarray:
        return np.repeat(per_unit, self.out_height * self.out_width)

    def weight_shape(self, layer: Layer) -> tuple[int, ...]:
        return self.out_channels, self.in_channels, self.kernel, self.kernel

    def live_outputs(self, layer: Layer) -> np.ndarray:
        if layer.neuron_mask is None:
            return np.ones(layer.out_features, bool)
        return np.repeat(layer.neuron_mask, self.out_height * self.out_width)

    def connections(self, layer: Layer, live_in: int, live_out: int) -> float:
        # only the taps that fall inside the input connect (padding adds none)
        live_channels = live_out // (self.out_height * self.out_width)
        return live_channels * self.in_channels * self.window_taps() * live_in / layer.in_features

    def weights_between(self, layer: Layer, live_in: int, live_out: int) -> float:
        live_channels = live_out // (self.out_height * self.out_width)
        return live_channels * self.in_channels * self.kernel * self.kernel * live_in / layer.in_features

    def nonzero_connections(self, layer: Layer, live_out: np.ndarray) -> float | None:
        if layer.weights is None:
            return None
        channels = np.asarray(live_out, bool).reshape(self.out_channels, -1).any(axis=1)
        nonzero = (np.asarray(layer.weights)[channels] != 0).sum(axis=(0, 1))          # (k, k) taps
        rows = self.tap_positions(self.in_height, self.out_height)                       # per ky
        cols = self.tap_positions(self.in_width, self.out_width)                         # per kx
        return float((nonzero * np.outer(rows, cols)).sum())

    def validate(self, layer: Layer, where: str) -> None:
        self.check_window(layer, where, ("in_channels", "out_channels", "in_height", "in_width", "kernel", "stride"))
        self.check_features(layer, where, self.in_channels, self.out_channels)


POOL_MODES = ("sum", "avg")


@dataclass
class Pool2dShape(_Window, LayerSpec):
    """Kind "pool2d": sum or average pooling of each channel over square windows (NIR's SumPool2d,
    AvgPool2d). No weights and no bias; an average divides by kernel^2, padding included (torch's
    default). Without a neuron its output is real-valued (sums of spikes), so its readers do MACs."""

    channels: int
    in_height: int
    in_width: int
    kernel: int
    stride: int = 1
    padding: int = 0
    mode: str = "sum"
    kind: ClassVar[str] = "pool2d"
    weight_layout: ClassVar[str] = "(none)"

    @property
    def scale(self) -> float:
        return 1.0 if self.mode == "sum" else 1.0 / (self.kernel * self.kernel)

    def units(self, layer: Layer) -> tuple[int, str]:
        return self.channels, "channels"

    def per_output(self, layer: Layer, per_unit: np.ndarray) -> np.ndarray:
        return np.repeat(per_unit, self.out_height * self.out_width)

    def weight_shape(self, layer: Layer) -> None:
        return None

    def live_outputs(self, layer: Layer) -> np.ndarray:
        if layer.neuron_mask is None:
            return np.ones(layer.out_features, bool)
        return np.repeat(layer.neuron_mask, self.out_height * self.out_width)

    def connections(self, layer: Layer, live_in: int, live_out: int) -> float:
        live_channels = live_out // (self.out_height * self.out_width)   # each output reads its own channel
        return live_channels * self.window_taps() * live_in / layer.in_features

    def weights_between(self, layer: Layer, live_in: int, live_out: int) -> float:
        return 0.0

    def nonzero_connections(self, layer: Layer, live_out: np.ndarray) -> float:
        live_channels = int(np.asarray(live_out, bool).reshape(self.channels, -1).any(axis=1).sum())
        return float(live_channels * self.window_taps())   # its fixed weights are never 0

    def validate(self, layer: Layer, where: str) -> None:
        self.check_window(layer, where, ("channels", "in_height", "in_width", "kernel", "stride"))
        if self.mode not in POOL_MODES:
            _fail(where, "spec.mode", f"unknown pooling {self.mode!r}", "use 'sum' or 'avg'")
        self.check_features(layer, where, self.channels, self.channels)
        if layer.bias is not None:
            _fail(where, "bias", "a pooling layer has no bias", "drop it")


# -- decoder (LLM) kinds: what a LLaMA-style block adds to the linear layers -----------------------
# Real-valued work per output element of an elementwise layer, a first-order convention (cost.analytic):
ELEMENT_OPS = {
    "rmsnorm": 4,        # square, accumulate, scale by 1/rms, multiply by the gain (the per-token rsqrt: not counted)
    "rotary": 3,         # x * cos + rotate(x) * sin: two multiplies and an add per element
    "silu_product": 5,   # silu(gate) = gate * sigmoid(gate): exp, add, divide, multiply; then times up: multiply
    "add": 1,            # the residual add
    "last_token": 0,     # keeps each sequence's last token (the LM head reads only it): a selection, no arithmetic
    "input": 0,          # names the network input (embedding rows, or activations from the previous chip)
    "encode": 0,         # sends its input on as its neuron's spikes (one consumer's own GIF inputs): no arithmetic
}
ELEMENT_INPUTS = {"rmsnorm": 1, "rotary": 1, "silu_product": 2, "add": 2, "last_token": 1, "input": 0, "encode": 1}


@dataclass
class ElementOps(LayerSpec):
    """Kind "elementwise": a weightless per-element operation of a decoder block (`op`, one of ELEMENT_OPS),
    out_features = in_features. `rmsnorm` holds a gain vector of out_features values (its weights, shape
    (out,)). `last_token` reads `tokens_in` tokens (sequences x tokens per sequence) and keeps the last of
    each sequence (seq_len = sequences). Give the layer a neuron to emit its output as spikes (the spike
    encoding of the linear layers it feeds: LIF, or SpikeLLM's multi-level GIF)."""

    op: str
    tokens_in: int | None = None
    kind: ClassVar[str] = "elementwise"
    weight_layout: ClassVar[str] = "(out,)"

    def weight_shape(self, layer: Layer) -> tuple[int, ...] | None:
        return (layer.out_features,) if self.op == "rmsnorm" else None

    def connections(self, layer: Layer, live_in: int, live_out: int) -> float:
        return 0   # no synapses: its work is ops per element (cost.analytic)

    def weights_between(self, layer: Layer, live_in: int, live_out: int) -> float:
        return float(live_out) if self.op == "rmsnorm" else 0.0

    def nonzero_connections(self, layer: Layer, live_out: np.ndarray) -> None:
        return None

    def source_shape(self, layer: Layer, position: int) -> tuple[int, int]:
        return layer.in_features, (self.tokens_in if self.op == "last_token" else layer.seq_len)

    def validate(self, layer: Layer, where: str) -> None:
        if self.op not in ELEMENT_OPS:
            _fail(where, "spec.op", f"unknown elementwise op {self.op!r}", f"use one of {', '.join(ELEMENT_OPS)}")
        if layer.in_features != layer.out_features:
            _fail(where, "out_features", f"an elementwise layer keeps its width, got {layer.in_features} -> "
                  f"{layer.out_features}", f"set out_features to {layer.in_features}")
        need = ELEMENT_INPUTS[self.op]
        if len(layer.inputs) != need and not (need == 1 and not layer.inputs):   # [] reads the network input
            _fail(where, "inputs", f"'{self.op}' reads {need} layer(s), got {layer.inputs}",
                  f"list {need} input layer(s)")
        if self.op == "last_token":
            _check_positive_int(self.tokens_in, where, "spec.tokens_in")
            if self.tokens_in % layer.seq_len:
                _fail(where, "spec.tokens_in", f"{self.tokens_in} tokens do not split into {layer.seq_len} "
                      "sequences of equal length", "give tokens_in = sequences x tokens per sequence")
        elif self.tokens_in is not None:
            _fail(where, "spec.tokens_in", f"only 'last_token' reads a different number of tokens, not "
                  f"'{self.op}'", "drop tokens_in")


@dataclass
class CausalAttention(LayerSpec):
    """Kind "causal_attention": a decoder's attention, softmax(Q K^T / sqrt(head_dim)) V with a causal mask,
    over `heads` query heads that share `kv_heads` key/value heads (grouped-query attention).

    Its inputs are the Q, K and V layers in that order: Q has heads x head_dim outputs, K and V kv_heads x
    head_dim. Its seq_len is the query tokens of all `sequences` (a batch); keys are distinct from queries:
    each sequence's queries are appended to a cache of `past_tokens` keys (a prefill: 0; decode step i
    after a prompt of N: N + i, each query attending to every past key and to the new keys up to itself).
    `past_tokens` may be a mean over coarsened decode steps, hence a real number. No weights.
    """

    heads: int
    kv_heads: int
    head_dim: int
    sequences: int = 1
    past_tokens: float = 0.0
    kind: ClassVar[str] = "causal_attention"
    weight_layout: ClassVar[str] = "(none)"

    def queries_per_sequence(self, layer: Layer) -> int:
        return layer.seq_len // self.sequences

    def score_pairs(self, layer: Layer) -> float:
        """(query, key) pairs per head over all sequences: q c + q (q + 1) / 2 per sequence."""
        q = self.queries_per_sequence(layer)
        return self.sequences * (q * self.past_tokens + q * (q + 1) / 2)

    def weight_shape(self, layer: Layer) -> None:
        return None

    def connections(self, layer: Layer, live_in: int, live_out: int) -> float:
        return 0   # its work is scores and weighted sums per head (cost.analytic)

    def weights_between(self, layer: Layer, live_in: int, live_out: int) -> float:
        return 0.0

    def nonzero_connections(self, layer: Layer, live_out: np.ndarray) -> None:
        return None

    def source_shape(self, layer: Layer, position: int) -> tuple[int, int]:
        width = self.heads if position == 0 else self.kv_heads
        return width * self.head_dim, layer.seq_len

    def validate(self, layer: Layer, where: str) -> None:
        for name in ("heads", "kv_heads", "head_dim", "sequences"):
            _check_positive_int(getattr(self, name), where, f"spec.{name}")
        if self.heads % self.kv_heads:
            _fail(where, "spec.kv_heads", f"{self.heads} query heads do not split evenly over {self.kv_heads} "
                  "key/value heads", "give kv_heads dividing heads (kv_heads = heads: no grouping)")
        c = self.past_tokens
        if isinstance(c, bool) or not isinstance(c, Real) or not math.isfinite(c) or c < 0:
            _fail(where, "spec.past_tokens", f"must be a finite number >= 0, got {c!r}",
                  "give the keys already cached per sequence (0 for a prefill)")
        if layer.seq_len % self.sequences:
            _fail(where, "seq_len", f"{layer.seq_len} query tokens do not split into {self.sequences} sequences",
                  "give seq_len = sequences x query tokens per sequence")
        width = self.heads * self.head_dim
        if layer.in_features != width or layer.out_features != width:
            _fail(where, "in_features/out_features", f"attention maps heads*head_dim = {width} features to "
                  f"{width}, got {layer.in_features} -> {layer.out_features}", f"set both to {width}")
        if len(layer.inputs) != 3:
            _fail(where, "inputs", f"attention reads exactly three layers (query, key, value), got {layer.inputs}",
                  "list the Q, K and V layers, in that order")
        if layer.weights is not None or layer.neuron_mask is not None:
            _fail(where, "weights", "causal attention has no weights or neuron mask of its own",
                  "put weights on the Q/K/V layers")


LAYER_KINDS: dict[str, type[LayerSpec]] = {spec.kind: spec for spec in (
    Linear, Attention, Conv2dShape, Pool2dShape, ElementOps, CausalAttention)}


def _spec_class(kind: Any, where: str) -> type[LayerSpec]:
    if kind not in LAYER_KINDS:
        _fail(where, "kind", f"unknown kind {kind!r}", f"use one of {', '.join(LAYER_KINDS)}")
    return LAYER_KINDS[kind]


def _needs_no_values(cls: type) -> bool:
    return all(f.default is not MISSING or f.default_factory is not MISSING for f in fields(cls))


# -- the parts a layer may have, whatever its kind ----------------------------------------------
@dataclass
class Norm:
    """A residual add and a LayerNorm after the layer, as a post-LN transformer block has them.

    The current is LN(W s + b + residual's same-step output) * weight + bias.
    `residual` names an earlier layer (or NETWORK_INPUT) of out_features
    outputs; `layernorm` False is the residual add alone. The spike engine
    applies both; without weight and bias the LayerNorm is counted by the cost
    model but not applied. The residual's data movement is not priced.
    `statistics` is what the LayerNorm normalizes by (frontend.encoder's
    `layernorm`): "step" each step's own input, "running_mean" the running mean
    of its input over the steps so far, "frozen" a mean and variance fixed at
    calibration (a per-feature affine); the cost model prices each
    (cost.analytic.LAYERNORM_OPS_BY_STATISTICS); the spike engine normalizes
    each step's input alone, so it refuses any but "step".
    """

    layernorm: bool = True
    residual: str | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    eps: float = 1e-5
    statistics: str = "step"

    def validate(self, layer: Layer, where: str) -> None:
        if not self.layernorm and self.residual is None:
            _fail(where, "norm", "neither a LayerNorm nor a residual add: the norm does nothing", "drop it")
        if self.statistics not in NORM_STATISTICS:
            _fail(where, "norm.statistics", f"expected one of {', '.join(NORM_STATISTICS)}, got {self.statistics!r}",
                  "use the SpikingEncoder's layernorm")
        if self.statistics != "step" and not self.layernorm:
            _fail(where, "norm.statistics", f"{self.statistics!r} statistics on a layer without LayerNorm",
                  "set norm.layernorm to true, or statistics to 'step'")
        for name in ("weight", "bias"):
            value = getattr(self, name)
            if value is None:
                continue
            if not self.layernorm:
                _fail(where, f"norm.{name}", "LayerNorm parameters on a layer without LayerNorm",
                      "set norm.layernorm to true, or drop them")
            value = np.asarray(value)
            if value.shape != (layer.out_features,) or not np.isfinite(value).all():
                _fail(where, f"norm.{name}", f"needs {layer.out_features} finite values, got shape {value.shape}",
                      "give one value per output neuron")
            setattr(self, name, value)
        if not self.eps > 0:
            _fail(where, "norm.eps", f"must be > 0, got {self.eps}", "use the LayerNorm's eps (torch: 1e-5)")
        if self.residual is not None and layer.kind != "linear":
            _fail(where, "norm.residual", "only linear layers take a residual add here", "drop the residual")


@dataclass
class Recurrent:
    """The layer's own spikes fed back through `weights` (out, out), one step late (snnTorch's RLeaky):
    the current of step t gains W_rec s_{t-1}. A recurrent bias is part of the layer's bias. The spike
    engine counts one AC per (own event, live output); a one-to-one connection is a diagonal W_rec."""

    weights: np.ndarray

    def validate(self, layer: Layer, where: str) -> None:
        if layer.kind != "linear" or not layer.spiking:
            _fail(where, "recurrent", "only spiking linear layers take a recurrent connection here",
                  "drop it, or give the layer a neuron")
        self.weights = _checked_array(self.weights, (layer.out_features, layer.out_features), where,
                                      "recurrent.weights", "give (out, out) weights: row = receiving neuron")


@dataclass(frozen=True)
class EncoderTag:
    """Where a layer sits in a SpikingBERT-style encoder, for the seed paper's closed form (cost.analytic)."""

    block: int
    role: str

    def validate(self, where: str) -> None:
        if isinstance(self.block, bool) or not isinstance(self.block, (int, np.integer)) or self.block < 0:
            _fail(where, "tag.block", f"must be an integer >= 0, got {self.block!r}", "number encoder blocks from 0")
        if self.role not in ENCODER_ROLES:
            _fail(where, "tag.role", f"unknown role {self.role!r}", f"use one of {', '.join(ENCODER_ROLES)}")


@dataclass
class Layer:
    """What every layer has, whatever its kind; the kind's own fields are in `spec`."""

    name: str
    kind: str
    in_features: int
    out_features: int
    inputs: list[str] = field(default_factory=list)
    seq_len: int = 1
    timesteps: int = 1
    neuron: Neuron | None = field(default_factory=Neuron)
    # "ac": event-driven accumulates from binary input spikes; "mac": dense
    # real-valued multiply-accumulates. None = decided by whether the input spikes.
    compute: str | None = None
    weight_bits: int = 32
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    neuron_mask: np.ndarray | None = None
    rate: float | None = None
    spec: LayerSpec | None = None     # the kind's own fields; None for a kind that needs none (linear)
    norm: Norm | None = None
    recurrent: Recurrent | None = None   # the layer's own spikes, one step late (snnTorch RLeaky)
    tag: EncoderTag | None = None

    def __post_init__(self) -> None:
        spec = LAYER_KINDS.get(self.kind)
        if self.spec is None and spec is not None and _needs_no_values(spec):
            self.spec = spec()

    @property
    def spiking(self) -> bool:
        return self.neuron is not None

    def live_outputs(self) -> np.ndarray:
        """Boolean vector over output features (attention: per head, conv2d: per channel)."""
        return self.spec.live_outputs(self)

    def neuron_values(self, name: str) -> np.ndarray:
        """A per-neuron parameter of the neuron ('vth', 'leak', 'syn_decay') as one value per output feature."""
        units, _ = self.spec.units(self)
        return self.spec.per_output(self, self.neuron.values(name, units))

    def n_weights(self) -> int:
        shape = self.spec.weight_shape(self)
        return math.prod(shape) if shape else 0


def _checked_array(value: Any, shape: tuple[int, ...], where: str, fld: str, fix: str) -> np.ndarray:
    value = np.asarray(value)
    if value.shape != shape:
        _fail(where, fld, f"shape {value.shape} does not match the layer, expected {shape}", fix)
    if not np.isfinite(value).all():
        _fail(where, fld, "contains NaN or infinite values", "retrain or repair the checkpoint")
    return value


def _validate_spec(layer: Layer, cls: type[LayerSpec], where: str) -> None:
    if layer.spec is None:
        names = ", ".join(f.name for f in fields(cls))
        _fail(where, "spec", f"a {layer.kind} layer needs its {cls.__name__}", f"give spec={cls.__name__}({names})")
    if type(layer.spec) is not cls:
        other = getattr(layer.spec, "kind", None)
        _fail(where, "spec", f"a {layer.kind} layer takes a {cls.__name__}, got {type(layer.spec).__name__}",
              f"give a {cls.__name__}" + (f", or set kind to '{other}'" if other in LAYER_KINDS else ""))
    layer.spec.validate(layer, where)


def _validate_layer(layer: Layer) -> None:
    n = f"layer '{layer.name}'"
    cls = _spec_class(layer.kind, n)
    for fld in ("in_features", "out_features", "seq_len", "timesteps", "weight_bits"):
        _check_positive_int(getattr(layer, fld), n, fld)
    if layer.compute is not None and layer.compute not in COMPUTE_KINDS:
        _fail(n, "compute", f"unknown compute kind {layer.compute!r}", "use 'ac', 'mac', or leave it unset")
    if layer.rate is not None:
        RATE.check(layer.rate, n, "rate")
    _validate_spec(layer, cls, n)
    units, unit = layer.spec.units(layer)
    if layer.neuron is not None:
        layer.neuron.validate(n, units=units)
    layer.neuron_mask = check_mask(layer.neuron_mask, units, unit, n, "neuron_mask")
    if layer.weights is not None:
        shape = layer.spec.weight_shape(layer)
        if shape is None:
            _fail(n, "weights", f"a {layer.kind} layer has no weights", "drop them")
        layer.weights = _checked_array(layer.weights, shape, n, "weights",
                                       f"give {layer.kind} weights as {layer.spec.weight_layout}")
    if layer.bias is not None:
        layer.bias = _checked_array(layer.bias, (units,), n, "bias",
                                    f"give {units} values, one for each of the {unit}")
    if layer.norm is not None:
        layer.norm.validate(layer, n)
    if layer.recurrent is not None:
        layer.recurrent.validate(layer, n)
    if layer.tag is not None:
        layer.tag.validate(n)


def _check_sources(layer: Layer, seen: dict[str, Layer], input_size: int) -> None:
    """The layers it reads (and adds as a residual) are listed before it, with matching sizes."""
    n = f"layer '{layer.name}'"
    for position, src in enumerate(layer.inputs):
        if src not in seen:
            _fail(n, "inputs", f"reads {src!r}, which is not a layer listed before it",
                  "list layers in order, each after the layers it reads")
        features, tokens = layer.spec.source_shape(layer, position)
        if seen[src].out_features != features:
            _fail(n, "in_features", f"{features} does not chain with input {src!r}, which has "
                  f"{seen[src].out_features} outputs", f"make the sizes agree (in_features = {seen[src].out_features})")
        if seen[src].seq_len != tokens:
            _fail(n, "seq_len", f"{tokens} differs from input {src!r}'s {seen[src].seq_len}",
                  "use one sequence length along a chain")
    if not layer.inputs and layer.in_features != input_size:
        _fail(n, "in_features", f"{layer.in_features} does not match the network input size {input_size}",
              "set in_features to the network's input_size")
    residual = layer.norm.residual if layer.norm is not None else None
    if residual is not None:
        width = input_size if residual == NETWORK_INPUT else seen[residual].out_features if residual in seen else None
        if width is None:
            _fail(n, "norm.residual", f"adds {residual!r}, which is not a layer listed before it",
                  f"name an earlier layer, or {NETWORK_INPUT!r} for the network input")
        if width != layer.out_features:
            _fail(n, "norm.residual", f"{residual!r} has {width} outputs, the layer {layer.out_features}",
                  "a residual adds outputs of the same width")


# -- JSON -----------------------------------------------------------------------------------------
def _build(cls: type, raw: Any, where: str, field_path: str) -> Any:
    """Construct a dataclass from JSON, refusing unknown and missing fields by name."""
    names = [f.name for f in fields(cls)]
    if not isinstance(raw, dict):
        raise NeurosimError(where, field_path, f"expected an object with the fields of {cls.__name__}, got {raw!r}",
                            f"give {{{', '.join(names)}}}")
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise NeurosimError(where, f"{field_path}.{unknown[0]}", "unknown field", f"use the fields of "
                            f"{cls.__name__}: {', '.join(names)}")
    try:
        return cls(**raw)
    except TypeError as exc:  # a required field is missing
        raise NeurosimError(where, field_path, str(exc), f"give every required field of {cls.__name__}") from None


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if is_dataclass(value):
        return {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
    return value


def _layer_from_dict(raw: dict[str, Any], i: int, where: str) -> Layer:
    raw = dict(raw)
    parts = {"neuron": Neuron, "norm": Norm, "tag": EncoderTag, "recurrent": Recurrent}
    if raw.get("spec") is not None:
        parts["spec"] = _spec_class(raw.get("kind"), f"{where} (layer '{raw.get('name')}')")
    for key, cls in parts.items():
        if raw.get(key) is not None:
            raw[key] = _build(cls, raw[key], where, f"layers[{i}].{key}")
    return _build(Layer, raw, where, f"layers[{i}]")


# Format 1 wrote these on every layer (heads 0, head_dim 0, conv null, layernorm false, ... where unused).
_FORMAT_1_NORM = {"layernorm": "layernorm", "residual": "residual", "norm_weight": "weight", "norm_bias": "bias",
                  "norm_eps": "eps"}


def _from_format_1(raw: dict[str, Any], i: int, where: str) -> dict[str, Any]:
    """A format-1 layer (every kind's fields flat on it) in format 2's shape: spec, norm, tag."""
    raw, at, kind = dict(raw), f"layers[{i}]", raw.get("kind")
    attention = {k: raw.pop(k) for k in ("heads", "head_dim", "head_mask") if k in raw}
    conv = raw.pop("conv", None)
    if kind == "attention":
        raw["spec"] = attention
    for k, v in attention.items():
        if kind != "attention" and v not in (0, None):   # 0 and null: what format 1 wrote where unused
            _fail(where, f"{at}.{k}", f"a {kind} layer has no heads", "drop it, or make the layer an attention")
    if kind == "conv2d":
        raw["spec"] = conv
    elif conv is not None:
        _fail(where, f"{at}.conv", f"a {kind} layer has no convolution shape", "drop it, or make the layer a conv2d")
    norm = {new: raw.pop(old) for old, new in _FORMAT_1_NORM.items() if old in raw}
    if norm.get("layernorm") or any(norm.get(k) is not None for k in ("residual", "weight", "bias")):
        raw["norm"] = {"layernorm": False, **norm}   # format 1's default was no LayerNorm
    tag = {k: raw.pop(k) for k in ("block", "role") if k in raw}
    tag = {k: v for k, v in tag.items() if v is not None}
    if len(tag) == 1:
        missing = "role" if "block" in tag else "block"
        _fail(where, f"{at}.{missing}", "an encoder position needs both block and role",
              f"give '{missing}' too, or drop both")
    if tag:
        raw["tag"] = tag
    return raw


def _format_of(data: dict[str, Any], where: str) -> int:
    fmt = data.get("format", 1)
    if type(fmt) is not int or fmt not in (1, FORMAT):
        _fail(where, "format", f"format {fmt!r} is not one this neurosim reads (1: flat layers without a "
              f"'format' key; {FORMAT}: kind specs)", "read it with the neurosim that wrote it, or upgrade neurosim")
    return fmt


@dataclass
class Network:
    name: str
    layers: list[Layer]
    input_size: int
    input_rate: float = 1.0
    input_spiking: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"network '{self.name}'"
        if not self.layers:
            _fail(where, "layers", "the network has no layers", "add at least one layer")
        _check_positive_int(self.input_size, where, "input_size")
        RATE.check(self.input_rate, where, "input_rate")
        seen: dict[str, Layer] = {}
        for layer in self.layers:
            if layer.name in seen:
                _fail(f"layer '{layer.name}'", "name", "two layers share this name", "give every layer a unique name")
            _validate_layer(layer)
            _check_sources(layer, seen, self.input_size)
            seen[layer.name] = layer
        self._by_name = seen
        self._consumers: dict[str, list[Layer]] = {}   # built once: `consumers` is called per layer
        for layer in self.layers:
            for src in dict.fromkeys(layer.inputs):
                self._consumers.setdefault(src, []).append(layer)

    def __getitem__(self, name: str) -> Layer:
        return self._by_name[name]

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(src, layer.name) for layer in self.layers for src in layer.inputs]

    def consumers(self, name: str) -> list[Layer]:
        """The layers that read `name`, in the network's order."""
        return list(self._consumers.get(name, ()))

    @property
    def max_timesteps(self) -> int:
        return max(layer.timesteps for layer in self.layers)

    def input_spiking_of(self, layer: Layer) -> bool:
        """Does this layer receive binary spikes (so its synaptic work is ACs)?"""
        if not layer.inputs:
            return self.input_spiking
        return all(self[src].spiking for src in layer.inputs)

    def compute_of(self, layer: Layer) -> str:
        if layer.compute is not None:
            return layer.compute
        return "ac" if self.input_spiking_of(layer) else "mac"

    def with_default_rate(self, rate: float) -> "Network":
        """A copy where every spiking layer without a known rate assumes `rate` (e.g. a NIR import)."""
        from dataclasses import replace
        layers = [replace(lay, rate=rate) if lay.spiking and lay.rate is None else lay for lay in self.layers]
        meta = {**self.metadata, "rates_source": f"assumed {rate} where no rate was known"}
        return Network(self.name, layers, self.input_size, self.input_rate, self.input_spiking, meta)

    # -- JSON ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "name": self.name, "input_size": self.input_size, "input_rate": self.input_rate,
            "input_spiking": self.input_spiking, "metadata": self.metadata,
            "layers": [_encode(lay) for lay in self.layers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "network JSON") -> "Network":
        if not isinstance(data, dict):
            raise NeurosimError(where, "(top level)", f"expected an object (a network), got a "
                                f"{type(data).__name__}", "give the JSON Network.to_json writes: "
                                "{\"format\": 2, \"name\": ..., \"input_size\": ..., \"layers\": [...]}")
        raw_layers = data.get("layers", [])
        if not isinstance(raw_layers, list) or not all(isinstance(raw, dict) for raw in raw_layers):
            raise NeurosimError(where, "layers", "expected a list of layer objects",
                                "give each layer as an object of its fields (see Network.to_json)")
        if _format_of(data, where) == 1:
            raw_layers = [_from_format_1(raw, i, where) for i, raw in enumerate(raw_layers)]
        layers = [_layer_from_dict(raw, i, where) for i, raw in enumerate(raw_layers)]
        for key in ("name", "input_size"):
            if key not in data:
                raise NeurosimError(where, key, "required key is missing", "the network JSON needs name, "
                                    "input_size and layers")
        try:
            net = cls(name=data["name"], layers=layers, input_size=data["input_size"],
                      input_rate=data.get("input_rate", 1.0), input_spiking=data.get("input_spiking", True),
                      metadata=data.get("metadata", {}))
        except NeurosimError as exc:
            raise NeurosimError(f"{where} ({exc.where})", exc.field, exc.problem, exc.fix) from None
        except TypeError as exc:   # a value the validation's rules never expected (a list for a name, ...)
            raise NeurosimError(where, "layers", f"a value of the wrong type ({exc})", "give each field the type "
                                "Network.to_json writes (a name is text, inputs a list of names)") from None
        from .limits import check_network_size   # sizes a file may claim, refused before any array is built

        check_network_size(where, net.layers)
        return net

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), default=lambda v: v.item()))  # numpy scalars

    @classmethod
    def from_json(cls, path: str | Path) -> "Network":
        try:
            data = json.loads(Path(path).read_bytes())
        except OSError as exc:
            raise NeurosimError(str(path), "(file)", f"cannot be read: {exc.strerror or exc}",
                                "check the path") from None
        except (ValueError, RecursionError) as exc:   # not JSON, not text, nested past Python's stack
            raise NeurosimError(str(path), "(file)", f"not JSON ({type(exc).__name__}: {exc})",
                                "give a network JSON as Network.to_json writes it") from None
        return cls.from_dict(data, where=str(path))
