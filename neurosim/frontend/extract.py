"""PyTorch module -> IR `Network`, with spiking rates measured on an example input.

Supported:

* `SpikingEncoder` (frontend.encoder): laid out exactly like
  `cards.encoder_network` (block{b}.q/k/v/attention/attn_out/intermediate/
  output, same roles and inputs), with the weights as the layers use them
  (1-bit: sign x row scale), biases, masks, per-layer timesteps, thresholds
  and leaks, and rates measured by running the example tokens in `spike` mode.
  The embedding is not a layer: it is the network input (input_size = hidden),
  a real-valued current, so `input_spiking=False` and the first block's
  projections count as MACs.
* `nn.Sequential` (nested ones too) of nn.Linear / nn.Conv2d, each optionally
  followed by a spiking neuron (neurosim LIF/GIF; snnTorch `Leaky` and
  SpikingJelly `LIFNode` when those packages are importable), with nn.Flatten,
  nn.Dropout and nn.Identity passed through. A Linear/Conv2d with no neuron
  after it is a real-valued layer (neuron=None). Rates are measured by running
  the example input time-stepped (the same input current every step, or one
  input per step with `time_major=True`).

A layer's IR `rate` is the mean ASR (spike count / timesteps; for GIF, steps
with a nonzero spike / timesteps, since each such event costs the ACs) over
its live neurons, i.e. those the masks keep, which is what the cost model
multiplies it with. The IR is validated before anything is run, so a NaN
weight or a mis-shaped checkpoint is refused naming the layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from ..errors import NeurosimError
from ..ir import NETWORK_INPUT, Attention, Conv2dShape, EncoderTag, Layer, Network, Neuron, Norm, Pool2dShape, \
    Recurrent
from .encoder import SpikingEncoder
from .frameworks import known_neurons, read_neuron
from .neurons import LIF, RecurrentNeuron, neuron_module
from .sparsity import zero_masks

PASS_THROUGH = (nn.Flatten, nn.Dropout, nn.Identity)
LAYER_MODULES = (nn.Linear, nn.Conv2d, nn.AvgPool2d)   # each becomes one IR layer


def from_torch(module: nn.Module, example_input: torch.Tensor, *, timesteps: int = 32, time_major: bool = False,
               name: str | None = None, masks: bool = True) -> Network:
    """Build the IR of `module`; rates are measured on `example_input`.

    For a SpikingEncoder, `example_input` is a (batch, tokens) LongTensor and
    the timesteps are the model's own. For an nn.Sequential it is a (batch,
    ...) input current held for `timesteps` steps, or, with `time_major`, a
    (T, batch, ...) tensor giving each step's input (e.g. spike trains). With `masks`, an
    nn.Sequential's all-zero weight rows and columns become neuron masks (frontend.sparsity).
    """
    if isinstance(module, SpikingEncoder):
        return _encoder_network(module, example_input, name or "spiking-encoder")
    if isinstance(module, nn.Sequential):
        return _sequential_network(module, example_input, timesteps, time_major, name or "sequential", masks)
    raise _unsupported(type(module).__name__, "the top-level module")


# -- neuron modules ------------------------------------------------------------------
def _supported_list() -> str:
    names = ["SpikingEncoder", "nn.Sequential of nn.Linear", "nn.Conv2d", "nn.AvgPool2d", "nn.Flatten", "nn.Dropout",
             "nn.Identity", "neurosim LIF", "neurosim GIF", "neurosim CubaLIF"] + sorted(set(known_neurons().values()))
    return ", ".join(names)


def _unsupported(cls: str, where: str) -> NeurosimError:
    extra = "" if known_neurons() else " (snnTorch Leaky/Synaptic/RLeaky, SpikingJelly LIFNode/IFNode/" \
        "ParametricLIFNode/CUBALIFNode too, once installed)"
    return NeurosimError(where, "module", f"{cls} is not supported by the PyTorch front end",
                         f"use only: {_supported_list()}{extra}")


@dataclass
class _NeuronSpec:
    """A neuron as the IR sees it, the module that runs it here (to measure rates), and the input
    scale the source module applies."""

    model: LIF
    neuron: Neuron
    input_scale: float = 1.0
    recurrent: np.ndarray | None = None
    recurrent_bias: np.ndarray | None = None


def _ir_neuron(lif: LIF) -> Neuron:
    return lif.to_ir()


def _neuron_spec(m: nn.Module, where: str, unit_shape: tuple[int, ...]) -> _NeuronSpec | None:
    """The neuron of a supported module, or None if `m` is not a neuron. `unit_shape` shapes per-neuron
    parameters for the layer's output ((-1,) linear, (-1, 1, 1) conv: one per channel)."""
    if isinstance(m, LIF):
        return _NeuronSpec(m, _ir_neuron(m))
    read = read_neuron(m, where)
    if read is None:
        return None
    try:
        read.neuron.validate(where)
    except NeurosimError as exc:   # e.g. beta = 0: name the module and the IR rule's fix
        raise NeurosimError(where, exc.field, exc.problem, exc.fix) from None
    module = neuron_module(read.neuron, unit_shape)
    if read.recurrent is not None:
        module = RecurrentNeuron(module, torch.from_numpy(read.recurrent), None if read.recurrent_bias is None
                                 else torch.from_numpy(read.recurrent_bias))
    return _NeuronSpec(module, read.neuron, read.input_scale, read.recurrent, read.recurrent_bias)


# -- nn.Sequential ---------------------------------------------------------------------
def _flatten_sequential(seq: nn.Sequential, prefix: str = "") -> list[tuple[str, nn.Module]]:
    items = []
    for child_name, child in seq.named_children():
        path = prefix + child_name
        if isinstance(child, nn.Sequential):
            items += _flatten_sequential(child, path + ".")
        else:
            items.append((path, child))
    return items


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().double().numpy()


def _conv_shape(m: nn.Conv2d, shape: tuple[int, ...], where: str) -> Conv2dShape:
    if len(shape) != 3:
        raise NeurosimError(where, "input", f"Conv2d needs a (channels, height, width) input, got {shape}",
                            "feed images as (batch, C, H, W)")
    k, s, p = m.kernel_size, m.stride, m.padding
    if (isinstance(p, str) or k[0] != k[1] or s[0] != s[1] or p[0] != p[1] or m.dilation != (1, 1)
            or m.groups != 1 or m.padding_mode != "zeros"):
        raise NeurosimError(where, "conv", "only square kernels, equal strides and paddings (integers, zero "
                            "padding), no dilation and groups=1 are supported", "use such a Conv2d")
    return Conv2dShape(m.in_channels, m.out_channels, shape[1], shape[2], k[0], s[0], p[0])


def _attach_recurrent(layer: Layer, spec: _NeuronSpec, where: str) -> None:
    """The neuron's recurrent connection onto its layer; the recurrent bias joins the layer's bias."""
    if layer.kind != "linear" or spec.recurrent.shape != (layer.out_features,) * 2:
        raise NeurosimError(where, "recurrent", f"a {spec.recurrent.shape} recurrent connection after a "
                            f"{layer.kind} layer of {layer.out_features} outputs", "put it after an nn.Linear of "
                            "the same size")
    layer.recurrent = Recurrent(spec.recurrent)
    if spec.recurrent_bias is not None:
        layer.bias = (np.zeros(layer.out_features) if layer.bias is None else layer.bias) + spec.recurrent_bias


def _pool_shape(m: nn.AvgPool2d, shape: tuple[int, ...], where: str) -> Pool2dShape:
    if len(shape) != 3:
        raise NeurosimError(where, "input", f"AvgPool2d needs a (channels, height, width) input, got {shape}",
                            "feed images as (batch, C, H, W)")
    k, s, p = (v if isinstance(v, int) else tuple(v) for v in (m.kernel_size, m.stride, m.padding))
    square = all(isinstance(v, int) or v[0] == v[1] for v in (k, s, p))
    if not square or m.ceil_mode or not m.count_include_pad or m.divisor_override is not None:
        raise NeurosimError(where, "pool", "only square windows, strides and paddings, ceil_mode=False, "
                            "count_include_pad=True and no divisor_override are supported", "use such an AvgPool2d")
    first = lambda v: v if isinstance(v, int) else v[0]  # noqa: E731
    return Pool2dShape(shape[0], shape[1], shape[2], first(k), first(s), first(p), "avg")


def _sequential_network(seq: nn.Sequential, example: torch.Tensor, timesteps: int, time_major: bool,
                        name: str, masks: bool) -> Network:
    example = torch.as_tensor(example).float()
    steps = example.shape[0] if time_major else int(timesteps)
    sample_shape = tuple(example.shape[2:] if time_major else example.shape[1:])
    shape = sample_shape
    layers: list[Layer] = []
    plan: list[tuple[str, nn.Module, _NeuronSpec | None]] = []  # what to run each step
    for path, m in _flatten_sequential(seq):
        where = f"module '{path}' ({type(m).__name__})"
        spec = _neuron_spec(m, where, (-1,) if len(shape) == 1 else (-1, 1, 1))
        if spec is not None:
            if not plan or not isinstance(plan[-1][1], LAYER_MODULES):
                raise NeurosimError(where, "module", "a spiking neuron must directly follow an nn.Linear, "
                                    "nn.Conv2d or nn.AvgPool2d (it becomes that layer's neuron)",
                                    "put a Linear/Conv2d before it")
            last = layers[-1]
            last.neuron = spec.neuron
            if spec.input_scale != 1.0:  # fold the neuron's input scaling into the layer's weights
                last.weights = last.weights * spec.input_scale
                last.bias = None if last.bias is None else last.bias * spec.input_scale
            if spec.recurrent is not None:
                _attach_recurrent(last, spec, where)
            plan.append((last.name, m, spec))
            continue
        if isinstance(m, PASS_THROUGH):
            if isinstance(m, nn.Flatten):
                if m.start_dim != 1 or m.end_dim != -1:
                    raise NeurosimError(where, "start_dim", "only Flatten(start_dim=1, end_dim=-1) is supported",
                                        "use nn.Flatten()")
                shape = (math.prod(shape),)
            plan.append((path, m, None))
            continue
        inputs = [layers[-1].name] if layers else []
        if isinstance(m, nn.Linear):
            if len(shape) != 1:
                raise NeurosimError(where, "input", f"nn.Linear gets a {shape} input; the IR's linear layers "
                                    "read flat vectors", "put an nn.Flatten() before it")
            layer = Layer(path, "linear", m.in_features, m.out_features, inputs=inputs, timesteps=steps,
                          neuron=None, weights=_numpy(m.weight), bias=_numpy(m.bias))
            shape = (m.out_features,)
        elif isinstance(m, nn.Conv2d):
            conv = _conv_shape(m, shape, where)
            layer = Layer(path, "conv2d", math.prod(shape), conv.out_channels * conv.out_height * conv.out_width,
                          inputs=inputs, timesteps=steps, neuron=None, spec=conv,
                          weights=_numpy(m.weight), bias=_numpy(m.bias))
            shape = (conv.out_channels, conv.out_height, conv.out_width)
        elif isinstance(m, nn.AvgPool2d):
            pool = _pool_shape(m, shape, where)
            layer = Layer(path, "pool2d", math.prod(shape), pool.channels * pool.out_height * pool.out_width,
                          inputs=inputs, timesteps=steps, neuron=None, spec=pool)
            shape = (pool.channels, pool.out_height, pool.out_width)
        else:
            raise _unsupported(type(m).__name__, where)
        layers.append(layer)
        plan.append((path, m, None))
    if not layers:
        raise NeurosimError(f"network '{name}'", "layers", "the nn.Sequential has no nn.Linear or nn.Conv2d",
                            "give it at least one weight layer")

    binary = bool(((example == 0) | (example == 1)).all())
    net = Network(name, layers, input_size=math.prod(sample_shape), input_spiking=binary,
                  input_rate=float(example.mean()) if binary else 1.0,
                  metadata={"source": "neurosim.frontend.from_torch(nn.Sequential)",
                            "rates_source": f"measured: {steps} timesteps on an example input of shape "
                                            f"{tuple(example.shape)}"})  # validates weights and shapes
    if masks:
        net, _ = zero_masks(net)
    rates = _run_sequential(plan, example, steps, time_major, {lay.name: lay.live_outputs() for lay in net.layers})
    layers = [replace(layer, rate=rates.get(layer.name)) for layer in net.layers]
    return Network(net.name, layers, net.input_size, net.input_rate, net.input_spiking, net.metadata)


@torch.no_grad()
def _run_sequential(plan, example: torch.Tensor, steps: int, time_major: bool,
                    live: dict[str, np.ndarray]) -> dict[str, float]:
    """Run the plan time-stepped; per layer, the fraction of (step, live neuron, sample) slots with a nonzero
    spike."""
    mem: dict[str, torch.Tensor | None] = {}
    events: dict[str, float] = {}
    for t in range(steps):
        x = example[t] if time_major else example
        for name, m, spec in plan:
            if spec is None:
                if not isinstance(m, (nn.Dropout, nn.Identity)):  # dropout is off at inference
                    x = m(x)
                continue
            x, mem[name] = spec.model(x * spec.input_scale, mem.get(name))
            fired = (x.reshape(x.shape[0], -1)[:, torch.from_numpy(live[name])] != 0).double()
            events[name] = events.get(name, 0.0) + (float(fired.mean()) if fired.numel() else 0.0)
    return {name: total / steps for name, total in events.items()}


# -- SpikingEncoder ----------------------------------------------------------------------
def _encoder_network(model: SpikingEncoder, tokens: torch.Tensor, name: str) -> Network:
    d, n = model.hidden, model.seq_len
    bits = 1 if model.binary_weights else 32
    layers: list[Layer] = []
    prev: list[str] = []
    for b, blk in enumerate(model.blocks):
        p = f"block{b}."
        common = dict(seq_len=n, weight_bits=bits)
        neuron = {role: _ir_neuron(blk.lif[role]) for role in blk.lif}

        def linear(role, lin, inputs, **kw):   # each sublayer its own t^l (q: the attention sublayer's)
            return Layer(p + role, "linear", lin.in_features, lin.out_features, inputs=inputs,
                         tag=EncoderTag(b, role), weights=_numpy(lin.effective_weight()), bias=_numpy(lin.bias),
                         timesteps=model.steps(b, role), **common, **kw)

        layers += [
            linear("q", blk.q, prev, neuron=None, compute="mac"),
            linear("k", blk.k, prev, neuron=neuron["k"]),
            linear("v", blk.v, prev, neuron=neuron["v"]),
            Layer(p + "attention", "attention", d, d, inputs=[p + "q", p + "k", p + "v"],
                  spec=Attention(blk.heads, blk.head_dim, _numpy(blk.head_mask)), neuron=neuron["attention"],
                  tag=EncoderTag(b, "attention"), timesteps=model.steps(b, "attention"), **common),
            linear("attn_out", blk.attn_out, [p + "attention"], neuron=neuron["attn_out"],
                   norm=_norm(blk.ln1, prev[0] if prev else NETWORK_INPUT, model.layernorm)),
            linear("intermediate", blk.intermediate, [p + "attn_out"], neuron=neuron["intermediate"],
                   neuron_mask=_numpy(blk.neuron_mask)),
            linear("output", blk.output, [p + "intermediate"], neuron=neuron["output"],
                   norm=_norm(blk.ln2, p + "attn_out", model.layernorm)),
        ]
        prev = [p + "output"]
    meta = {"source": "neurosim.frontend.from_torch(SpikingEncoder)", "hidden": d, "heads": model.heads,
            "intermediate": model.intermediate_size, "encoder_layers": len(model.blocks),
            "baseline_timesteps": max(model.timesteps)}
    # The embedding feeds real currents to block 0: the input does not spike.
    net = Network(name, layers, input_size=d, input_rate=1.0, input_spiking=False, metadata=meta)  # validates

    with torch.no_grad():
        model(torch.as_tensor(tokens).to(model.device), mode="spike")
    for layer in layers:
        if layer.spiking:
            asr = model.last_asr[layer.name].double().cpu().numpy()
            live = live_neurons(net, layer)
            layer.rate = float(asr[live].mean()) if live.any() else 0.0
    meta["rates_source"] = (f"measured: spike mode, T = {max(model.timesteps)}, example tokens of shape "
                            f"{tuple(torch.as_tensor(tokens).shape)}")
    return Network(name, layers, input_size=d, input_rate=1.0, input_spiking=False, metadata=meta)


def _norm(ln: nn.LayerNorm, residual: str, layernorm: str = "step") -> Norm:
    return Norm(residual=residual, weight=_numpy(ln.weight), bias=_numpy(ln.bias), eps=float(ln.eps),
                statistics=layernorm)


def live_neurons(net: Network, layer: Layer) -> np.ndarray:
    """Outputs the masks keep; K and V also lose the features of masked heads (nothing reads them)."""
    if layer.tag is not None and layer.tag.role in ("k", "v"):
        return net[f"block{layer.tag.block}.attention"].live_outputs()
    return layer.live_outputs()
