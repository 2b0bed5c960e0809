"""The network IR: the one contract between the front ends and the back ends.

A `Network` is an ordered list of `Layer`s (each layer only reads layers
listed before it). A layer knows its shape, how many tokens it processes
(`seq_len`), how many timesteps it runs, its spiking neuron (or none, for a
real-valued output such as SpikingBERT's Query), its weights' bit width and
optionally the weights, its head and neuron masks, and its output spiking rate
(assumed by a model card, or measured). Everything is checked when built, and
a bad field is refused with the layer's name and the fix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NeurosimError

LAYER_KINDS = ("linear", "attention", "conv2d")
NEURON_MODELS = ("if", "lif", "gif")
COMPUTE_KINDS = ("ac", "mac")


@dataclass
class Neuron:
    """DESIGN.md eq. 1-3: u_t = leak*u_{t-1} + W s_{t-1} + b - s_{t-1}*vth; spike when u >= vth.

    `levels` > 1 is a multi-level (SpikeLLM GIF) neuron whose spike carries
    0..levels, i.e. `spike_bits` bits per event.
    """

    model: str = "lif"
    vth: float = 1.0
    leak: float = 1.0
    levels: int = 1

    @property
    def spike_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.levels + 1)))


@dataclass
class Conv2dShape:
    in_channels: int
    out_channels: int
    in_height: int
    in_width: int
    kernel: int
    stride: int = 1
    padding: int = 0

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


NETWORK_INPUT = "<input>"   # the network input's name where a layer names its source (Layer.residual, traces)


@dataclass
class Layer:
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
    heads: int = 0
    head_dim: int = 0
    conv: Conv2dShape | None = None
    head_mask: np.ndarray | None = None
    neuron_mask: np.ndarray | None = None
    rate: float | None = None
    layernorm: bool = False
    # A residual add and the LayerNorm's affine parameters, as a post-LN transformer block has them:
    # the current is LN(W s + b + residual's same-step output) * norm_weight + norm_bias. `residual`
    # names an earlier layer (or NETWORK_INPUT, the network input) of out_features outputs. The spike
    # engine applies them; the cost model counts the LayerNorm's element ops (the residual's data
    # movement is not priced).
    residual: str | None = None
    norm_weight: np.ndarray | None = None
    norm_bias: np.ndarray | None = None
    norm_eps: float = 1e-5
    # Where the layer sits in a SpikingBERT-style encoder (for the paper's
    # closed form): role in q, k, v, attention, attn_out, intermediate, output.
    role: str | None = None
    block: int | None = None

    @property
    def spiking(self) -> bool:
        return self.neuron is not None

    def live_heads(self) -> np.ndarray:
        return np.ones(self.heads, bool) if self.head_mask is None else self.head_mask

    def live_outputs(self) -> np.ndarray:
        """Boolean vector over output neurons (attention: per output feature)."""
        if self.kind == "attention":
            return np.repeat(self.live_heads(), self.head_dim)
        if self.kind == "conv2d" and self.neuron_mask is not None:
            per_channel = self.conv.out_height * self.conv.out_width
            return np.repeat(self.neuron_mask, per_channel)
        return np.ones(self.out_features, bool) if self.neuron_mask is None else self.neuron_mask

    def n_weights(self) -> int:
        if self.kind == "linear":
            return self.in_features * self.out_features
        if self.kind == "conv2d":
            c = self.conv
            return c.out_channels * c.in_channels * c.kernel * c.kernel
        return 0


def _fail(where: str, fld: str, problem: str, fix: str) -> None:
    raise NeurosimError(where, fld, problem, fix)


def _check_positive_int(where: str, fld: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        _fail(where, fld, f"must be a positive integer, got {value!r}", f"set '{fld}' to an integer >= 1")


def _check_mask(where: str, fld: str, mask: np.ndarray | None, length: int, unit: str) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim != 1 or mask.shape[0] != length:
        _fail(where, fld, f"has shape {mask.shape}, but the layer has {length} {unit}",
              f"give a 1-D mask of length {length} (1 = keep, 0 = pruned)")
    if not np.isin(mask, (0, 1)).all():
        _fail(where, fld, "holds values other than 0 and 1", "use 1 for a kept unit and 0 for a pruned one")
    return mask.astype(bool)


def _validate_layer(layer: Layer) -> None:
    n = f"layer '{layer.name}'"
    if layer.kind not in LAYER_KINDS:
        _fail(n, "kind", f"unknown kind {layer.kind!r}", f"use one of {', '.join(LAYER_KINDS)}")
    for fld in ("in_features", "out_features", "seq_len", "timesteps", "weight_bits"):
        _check_positive_int(n, fld, getattr(layer, fld))
    if layer.compute is not None and layer.compute not in COMPUTE_KINDS:
        _fail(n, "compute", f"unknown compute kind {layer.compute!r}", "use 'ac', 'mac', or leave it unset")
    if layer.neuron is not None:
        nr = layer.neuron
        if nr.model not in NEURON_MODELS:
            _fail(n, "neuron.model", f"unknown neuron model {nr.model!r}", f"use one of {', '.join(NEURON_MODELS)}")
        if not nr.vth > 0:
            _fail(n, "neuron.vth", f"threshold must be > 0, got {nr.vth}", "set a positive firing threshold")
        if not 0 < nr.leak <= 1:
            _fail(n, "neuron.leak", f"leak (gamma) must be in (0, 1], got {nr.leak}", "use 1.0 for IF, < 1 for LIF")
        _check_positive_int(n, "neuron.levels", nr.levels)
    if layer.rate is not None and not 0 <= layer.rate <= 1:
        _fail(n, "rate", f"a spiking rate is a fraction of timesteps, got {layer.rate}", "give a rate in [0, 1]")

    if layer.kind == "attention":
        _check_positive_int(n, "heads", layer.heads)
        _check_positive_int(n, "head_dim", layer.head_dim)
        width = layer.heads * layer.head_dim
        if layer.in_features != width or layer.out_features != width:
            _fail(n, "in_features/out_features", f"an attention layer maps heads*head_dim = {width} features "
                  f"to {width}, got {layer.in_features} -> {layer.out_features}",
                  f"set both to {width}")
        if len(layer.inputs) != 3:
            _fail(n, "inputs", f"attention reads exactly three layers (query, key, value), got {layer.inputs}",
                  "list the Q, K and V projection layers, in that order")
        if layer.weights is not None:
            _fail(n, "weights", "an attention layer has no weights of its own", "put weights on the Q/K/V layers")
    if layer.kind == "conv2d":
        c = layer.conv
        if c is None:
            _fail(n, "conv", "a conv2d layer needs its shape", "give conv: in_channels, out_channels, "
                  "in_height, in_width, kernel, stride, padding")
        for fld in ("in_channels", "out_channels", "in_height", "in_width", "kernel", "stride"):
            _check_positive_int(n, f"conv.{fld}", getattr(c, fld))
        if c.padding < 0:
            _fail(n, "conv.padding", f"must be >= 0, got {c.padding}", "use a non-negative padding")
        if c.out_height < 1 or c.out_width < 1:
            _fail(n, "conv.kernel", "the kernel does not fit in the padded input", "use a smaller kernel or more padding")
        if layer.in_features != c.in_channels * c.in_height * c.in_width:
            _fail(n, "in_features", f"{layer.in_features} != in_channels*in_height*in_width = "
                  f"{c.in_channels * c.in_height * c.in_width}", "make in_features match the conv input shape")
        if layer.out_features != c.out_channels * c.out_height * c.out_width:
            _fail(n, "out_features", f"{layer.out_features} != out_channels*out_height*out_width = "
                  f"{c.out_channels * c.out_height * c.out_width}", "make out_features match the conv output shape")

    layer.head_mask = _check_mask(n, "head_mask", layer.head_mask, layer.heads, "heads")
    if layer.head_mask is not None and layer.kind != "attention":
        _fail(n, "head_mask", "only attention layers have heads", "move the head mask to the attention layer")
    mask_len = layer.conv.out_channels if layer.kind == "conv2d" else layer.out_features
    layer.neuron_mask = _check_mask(n, "neuron_mask", layer.neuron_mask, mask_len,
                                    "output channels" if layer.kind == "conv2d" else "output neurons")
    if layer.neuron_mask is not None and layer.kind == "attention":
        _fail(n, "neuron_mask", "attention outputs are masked per head", "use head_mask instead")

    if layer.weights is not None:
        w = np.asarray(layer.weights)
        expected = ((layer.out_features, layer.in_features) if layer.kind == "linear" else
                    (layer.conv.out_channels, layer.conv.in_channels, layer.conv.kernel, layer.conv.kernel))
        if w.shape != expected:
            _fail(n, "weights", f"shape {w.shape} does not match the layer, expected {expected}",
                  "give weights as (out, in) for linear, (out_c, in_c, k, k) for conv2d")
        if not np.isfinite(w).all():
            _fail(n, "weights", "contains NaN or infinite values", "retrain or repair the checkpoint")
        layer.weights = w
    for fld in ("norm_weight", "norm_bias"):
        v = getattr(layer, fld)
        if v is None:
            continue
        if not layer.layernorm:
            _fail(n, fld, "LayerNorm parameters on a layer without LayerNorm", "set layernorm: true, or drop them")
        v = np.asarray(v)
        if v.shape != (layer.out_features,) or not np.isfinite(v).all():
            _fail(n, fld, f"needs {layer.out_features} finite values, got shape {v.shape}",
                  "give one value per output neuron")
        setattr(layer, fld, v)
    if not layer.norm_eps > 0:
        _fail(n, "norm_eps", f"must be > 0, got {layer.norm_eps}", "use the LayerNorm's eps (torch: 1e-5)")
    if layer.residual is not None and layer.kind != "linear":
        _fail(n, "residual", "only linear layers take a residual add here", "drop the residual")
    if layer.bias is not None:
        b = np.asarray(layer.bias)
        bias_len = layer.conv.out_channels if layer.kind == "conv2d" else layer.out_features
        if b.shape != (bias_len,):
            _fail(n, "bias", f"shape {b.shape}, expected ({bias_len},)", "give one bias per output neuron/channel")
        if not np.isfinite(b).all():
            _fail(n, "bias", "contains NaN or infinite values", "retrain or repair the checkpoint")
        layer.bias = b


def _build(kind: type, raw: dict[str, Any], where: str, field_path: str) -> Any:
    """Construct a dataclass from JSON, refusing unknown and missing fields by name."""
    names = [f.name for f in fields(kind)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise NeurosimError(where, f"{field_path}.{unknown[0]}", "unknown field", f"use the fields of "
                            f"{kind.__name__}: {', '.join(names)}")
    try:
        return kind(**raw)
    except TypeError as exc:  # a required field is missing
        raise NeurosimError(where, field_path, str(exc), f"give every required field of {kind.__name__}") from None


@dataclass
class Network:
    name: str
    layers: list[Layer]
    input_size: int
    input_rate: float = 1.0
    input_spiking: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.layers:
            raise NeurosimError(f"network '{self.name}'", "layers", "the network has no layers", "add at least one layer")
        _check_positive_int(f"network '{self.name}'", "input_size", self.input_size)
        if not 0 <= self.input_rate <= 1:
            raise NeurosimError(f"network '{self.name}'", "input_rate", f"got {self.input_rate}", "give a rate in [0, 1]")
        seen: dict[str, Layer] = {}
        for layer in self.layers:
            if layer.name in seen:
                _fail(f"layer '{layer.name}'", "name", "two layers share this name", "give every layer a unique name")
            _validate_layer(layer)
            for src in layer.inputs:
                if src not in seen:
                    _fail(f"layer '{layer.name}'", "inputs", f"reads {src!r}, which is not a layer listed before it",
                          "list layers in order, each after the layers it reads")
                if seen[src].out_features != layer.in_features:
                    _fail(f"layer '{layer.name}'", "in_features", f"{layer.in_features} does not chain with input "
                          f"{src!r}, which has {seen[src].out_features} outputs",
                          f"make the sizes agree (in_features = {seen[src].out_features})")
                if seen[src].seq_len != layer.seq_len:
                    _fail(f"layer '{layer.name}'", "seq_len", f"{layer.seq_len} differs from input {src!r}'s "
                          f"{seen[src].seq_len}", "use one sequence length along a chain")
            if not layer.inputs and layer.in_features != self.input_size:
                _fail(f"layer '{layer.name}'", "in_features", f"{layer.in_features} does not match the network input "
                      f"size {self.input_size}", "set in_features to the network's input_size")
            if layer.residual is not None:
                width = self.input_size if layer.residual == NETWORK_INPUT else \
                    seen[layer.residual].out_features if layer.residual in seen else None
                if width is None:
                    _fail(f"layer '{layer.name}'", "residual", f"adds {layer.residual!r}, which is not a layer "
                          "listed before it", f"name an earlier layer, or {NETWORK_INPUT!r} for the network input")
                if width != layer.out_features:
                    _fail(f"layer '{layer.name}'", "residual", f"{layer.residual!r} has {width} outputs, the layer "
                          f"{layer.out_features}", "a residual adds outputs of the same width")
            seen[layer.name] = layer
        self._by_name = seen

    def __getitem__(self, name: str) -> Layer:
        return self._by_name[name]

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(src, layer.name) for layer in self.layers for src in layer.inputs]

    def consumers(self, name: str) -> list[Layer]:
        return [layer for layer in self.layers if name in layer.inputs]

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
        def encode(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, (Neuron, Conv2dShape)):
                return {f.name: getattr(value, f.name) for f in fields(value)}
            return value

        return {
            "name": self.name, "input_size": self.input_size, "input_rate": self.input_rate,
            "input_spiking": self.input_spiking, "metadata": self.metadata,
            "layers": [{f.name: encode(getattr(lay, f.name)) for f in fields(lay)} for lay in self.layers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "network JSON") -> "Network":
        layers = []
        for i, raw in enumerate(data.get("layers", [])):
            raw = dict(raw)
            for key, kind in (("neuron", Neuron), ("conv", Conv2dShape)):
                if raw.get(key) is not None:
                    raw[key] = _build(kind, raw[key], where, f"layers[{i}].{key}")
            for key in ("weights", "bias", "head_mask", "neuron_mask", "norm_weight", "norm_bias"):
                if raw.get(key) is not None:
                    raw[key] = np.asarray(raw[key])
            layers.append(_build(Layer, raw, where, f"layers[{i}]"))
        for key in ("name", "input_size"):
            if key not in data:
                raise NeurosimError(where, key, "required key is missing", "the network JSON needs name, "
                                    "input_size and layers")
        try:
            return cls(name=data["name"], layers=layers, input_size=data["input_size"],
                       input_rate=data.get("input_rate", 1.0), input_spiking=data.get("input_spiking", True),
                       metadata=data.get("metadata", {}))
        except NeurosimError as exc:
            raise NeurosimError(f"{where} ({exc.where})", exc.field, exc.problem, exc.fix) from None

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), default=lambda v: v.item()))  # numpy scalars

    @classmethod
    def from_json(cls, path: str | Path) -> "Network":
        return cls.from_dict(json.loads(Path(path).read_text()), where=str(path))
