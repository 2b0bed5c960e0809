"""NIR import and export: `from_nir` reads a NIR graph into an IR `Network`, `to_nir` writes one.

NIR (the Neuromorphic Intermediate Representation, https://neuroir.org) keeps
weights and neurons as separate nodes joined by edges. The IR has one layer per
weight node, with the spiking neuron that follows it folded in:

    Affine | Linear | Conv2d  [-> IF | LIF | CubaLIF]  ->  one ir.Layer (no neuron: real-valued output)
    Scale                                              ->  folded into the weights it feeds
    Input, Output, Flatten                             ->  shapes only

NIR neurons are continuous-time equations and the graph stores no time step, so
reading one means choosing a discretisation. The conventions used here:

* dt = 1e-4 by default (`DT`): the step snnTorch and nirtorch export with.
  Pass the exporter's step as `dt` for graphs from elsewhere.
* LIF (tau dv/dt = v_leak - v + r I): one Euler step is
  v <- (1 - dt/tau) v + (r dt/tau) I, so leak = 1 - dt/tau, and the input gain
  r dt/tau multiplies the layer's weights and bias. A gain within 1e-5 of 1
  (float32 rounding of snnTorch's r = tau/dt) counts as 1, so weights are kept
  bit for bit. snnTorch's Leaky: beta = 1 - dt/tau = leak.
* IF (dv/dt = r I) is read as the discrete step v <- v + r I (leak 1, gain r),
  the way sinabs exports it and snnTorch imports it (r = 1); dt does not enter.
* CubaLIF is read as LIF with leak = 1 - dt/tau_mem and gain
  (r dt/tau_mem)(w_in dt/tau_syn). The IR neuron has no synaptic current, so its
  decay (tau_syn) is dropped; each such node is listed in metadata['nir_notes'].
* Reset: NIR resets to v_reset, the IR (docs/design.md eq. 1-3) by subtracting the
  threshold. v_reset = 0 is read as the IR's reset (snnTorch exports its
  subtract-reset Leaky that way); a non-zero v_reset or v_leak is refused.
* An IR layer has one threshold and one leak: per-neuron values that differ are refused.
* NIR's Conv2d always has a bias; an all-zero one is read as no bias (snnTorch
  writes zeros for bias=False).

`to_nir` writes the same conventions back (LIF: tau = dt/(1 - leak), r = tau/dt;
leak 1: IF with r = 1), so IR -> NIR -> IR gives the same layers, with the leak
back to within one float64 rounding (exactly, for values such as 0.9 or 0.75).
NIR has no place for timesteps, seq_len, weight bit width, rates, encoder
tags or a bare LayerNorm (`Norm()`, counted but not applied); they are not
exported. A layer whose norm has a residual add or LayerNorm parameters is
refused (no NIR node; dropping them would change the network). A neuron
mask is exported as zeroed weight rows and bias, which keeps the pruned
neurons silent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import nir
import numpy as np

from ..errors import NeurosimError
from ..ir import NEURON_RULES, Conv2dShape, Layer, Network, Neuron

DT = 1e-4
GAIN_RTOL = 1e-5
WEIGHT_NODES = (nir.Affine, nir.Linear, nir.Conv2d)
NEURON_NODES = (nir.IF, nir.LIF, nir.CubaLIF)
SHAPE_NODES = (nir.Input, nir.Output, nir.Flatten, nir.Scale)
SUPPORTED = ", ".join(kind.__name__ for kind in (*WEIGHT_NODES, *NEURON_NODES, *SHAPE_NODES))


def _fail(where: str, field: str, problem: str, fix: str) -> None:
    raise NeurosimError(where, field, problem, fix)


def _uniform(values, where: str, field: str) -> float:
    """The one value a per-neuron NIR array holds; refused if the neurons differ."""
    a = np.asarray(values, dtype=float).ravel()
    if a.size == 0:
        _fail(where, field, "is empty", f"give the node's {field}")
    if (a != a[0]).any():
        _fail(where, field, f"differs between neurons ({a.min():g} to {a.max():g}), but an IR layer holds "
              f"one {field} for all its neurons", f"give every neuron of this node the same {field}")
    return float(a[0])


def _require_zero(values, where: str, field: str) -> None:
    if np.any(np.asarray(values) != 0):
        _fail(where, field, "is not zero; the IR neuron rests at 0 and resets by subtracting the threshold",
              f"export the neurons with {field} = 0")


def _square(value, where: str, field: str) -> int:
    """One integer for both spatial axes (the IR's conv2d is square)."""
    if isinstance(value, str):
        if value == "valid":
            return 0
        _fail(where, field, f"is {value!r}", f"give {field} as an integer")
    v = np.ravel(value)
    if (v != v[0]).any():
        _fail(where, field, f"differs between height and width ({v.tolist()})", f"use the same {field} on both axes")
    return int(v[0])


def _leak(tau: float, dt: float, where: str, field: str) -> float:
    leak = 1.0 - dt / tau
    if not NEURON_RULES["leak"].holds(leak):
        _fail(where, field, f"{field} = {tau:g} with dt = {dt:g} gives leak 1 - dt/{field} = {leak:g}, "
              "outside (0, 1]", "pass from_nir(..., dt=...) the time step the exporter used "
              f"(snnTorch, nirtorch: {DT:g}); {field} must exceed dt")
    return leak


# -- one reader per NIR node kind ---------------------------------------------------------
def _read_if(node: nir.IF, where: str, dt: float) -> tuple[Neuron, np.ndarray]:
    _require_zero(node.v_reset, where, "v_reset")
    return Neuron("if", _uniform(node.v_threshold, where, "v_threshold"), 1.0), np.asarray(node.r)


def _read_lif(node: nir.LIF, where: str, dt: float) -> tuple[Neuron, np.ndarray]:
    _require_zero(node.v_reset, where, "v_reset")
    _require_zero(node.v_leak, where, "v_leak")
    tau = _uniform(node.tau, where, "tau")
    neuron = Neuron("lif", _uniform(node.v_threshold, where, "v_threshold"), _leak(tau, dt, where, "tau"))
    return neuron, np.asarray(node.r) * dt / tau


def _read_cuba_lif(node: nir.CubaLIF, where: str, dt: float) -> tuple[Neuron, np.ndarray]:
    _require_zero(node.v_reset, where, "v_reset")
    _require_zero(node.v_leak, where, "v_leak")
    tau = _uniform(node.tau_mem, where, "tau_mem")
    neuron = Neuron("lif", _uniform(node.v_threshold, where, "v_threshold"), _leak(tau, dt, where, "tau_mem"))
    return neuron, np.asarray(node.r) * dt / tau * np.asarray(node.w_in) * dt / np.asarray(node.tau_syn)


NEURON_READERS = {nir.IF: _read_if, nir.LIF: _read_lif, nir.CubaLIF: _read_cuba_lif}


def _read_affine(node: nir.Affine | nir.Linear, name: str, in_shape: tuple, where: str) -> tuple[Layer, tuple]:
    w = np.asarray(node.weight)
    if w.ndim != 2:
        _fail(where, "weight", f"has shape {w.shape}", "give an (out, in) weight matrix")
    bias = np.asarray(node.bias) if isinstance(node, nir.Affine) else None
    return Layer(name, "linear", w.shape[1], w.shape[0], weights=w, bias=bias), (w.shape[0],)


def _read_conv2d(node: nir.Conv2d, name: str, in_shape: tuple, where: str) -> tuple[Layer, tuple]:
    w = np.asarray(node.weight)
    if len(in_shape) != 3:
        _fail(where, "input_type", f"a Conv2d reads (channels, height, width), got shape {in_shape}",
              "feed the Conv2d from the Input or from a node with a 3-D output")
    if w.shape[2] != w.shape[3]:
        _fail(where, "weight", f"the kernel is {w.shape[2]}x{w.shape[3]}; the IR's conv2d kernel is square",
              "use a square kernel")
    for field in ("dilation", "groups"):
        if np.any(np.ravel(getattr(node, field)) != 1):
            _fail(where, field, f"is {getattr(node, field)}; the IR's conv2d has neither dilation nor groups",
                  f"use {field} = 1")
    conv = Conv2dShape(int(w.shape[1]), int(w.shape[0]), int(in_shape[1]), int(in_shape[2]), int(w.shape[2]),
                       _square(node.stride, where, "stride"), _square(node.padding, where, "padding"))
    bias = np.asarray(node.bias)
    out_shape = (conv.out_channels, conv.out_height, conv.out_width)
    layer = Layer(name, "conv2d", conv.in_channels * conv.in_height * conv.in_width, int(np.prod(out_shape)),
                  spec=conv, weights=w, bias=bias if bias.any() else None)
    return layer, out_shape


def _fold_scale(layer: Layer, scale: np.ndarray, where: str) -> None:
    """W (s * x) = (W * s) x: a Scale before a weight node scales the weights' input columns."""
    if layer.kind == "linear":
        if scale.size != layer.in_features:
            _fail(where, "scale", f"has {scale.size} values for {layer.in_features} inputs", "match the input size")
        layer.weights = layer.weights * scale.reshape(1, -1)
        return
    per_channel = scale.reshape(layer.spec.in_channels, -1)
    if (per_channel != per_channel[:, :1]).any():
        _fail(where, "scale", "varies within a channel, which conv weights cannot absorb",
              "scale whole channels, or put the Scale before a Linear/Affine")
    layer.weights = layer.weights * per_channel[:, 0].reshape(1, -1, 1, 1)


def _apply_gain(layer: Layer, gain: np.ndarray, where: str) -> None:
    """The neuron's input gain, moved into the weights and bias (the IR neuron adds its input as is)."""
    if np.allclose(gain, 1.0, rtol=GAIN_RTOL, atol=0):
        return
    g = _uniform(gain, where, "r")
    layer.weights = layer.weights * g
    layer.bias = None if layer.bias is None else layer.bias * g


# -- import -------------------------------------------------------------------------------
@dataclass
class _Out:
    """What a NIR node's output is in IR terms: a layer's output (None: the network input), its shape,
    and a Scale waiting to be folded into the next weights."""

    layer: str | None
    shape: tuple
    scale: np.ndarray | None = None


def _load(graph_or_path) -> tuple[nir.NIRGraph, str, str | None]:
    if isinstance(graph_or_path, nir.NIRGraph):
        return graph_or_path, "NIR graph", None
    path = Path(graph_or_path)
    try:
        return nir.read(path), str(path), path.stem
    except (OSError, ValueError, KeyError, AssertionError, TypeError) as exc:  # h5py and nir raise all of these
        raise NeurosimError(str(path), "file", f"cannot be read as a NIR graph ({type(exc).__name__}: {exc})",
                            "give a .nir file written by nir.write") from None


def _topological(nodes: dict, preds: dict, where: str) -> list[str]:
    """Nodes in an order where each comes after its inputs, keeping the graph's own order where it can."""
    order, done, pending = [], set(), list(nodes)
    while pending:
        key = next((k for k in pending if all(p in done for p in preds[k])), None)
        if key is None:
            _fail(where, "edges", f"the graph has a cycle through {pending}", "the IR is feed-forward: "
                  "unroll recurrent connections (e.g. snnTorch RLeaky, RSynaptic) before importing")
        order.append(key)
        done.add(key)
        pending.remove(key)
    return order


def _check_kind(key: str, node) -> None:
    where = f"NIR node '{key}'"
    if isinstance(node, nir.Threshold):
        _fail(where, "type", "a Threshold node spikes from its present input alone, with no membrane; the IR "
              "neuron integrates (leak in (0, 1]) and cannot express it", "export the neurons as IF or LIF nodes")
    if not isinstance(node, (*WEIGHT_NODES, *NEURON_NODES, *SHAPE_NODES)):
        _fail(where, "type", f"node type {type(node).__name__} is not supported",
              f"use only {SUPPORTED} nodes, or convert this node before importing")


def _weight_layer(key: str, node, ins: list[_Out], timesteps: int) -> tuple[Layer, tuple]:
    where = f"NIR node '{key}'"
    if not ins:
        _fail(where, "edges", "no edge leads into this node", "connect it to the Input or an earlier node")
    sources = [i.layer for i in ins]
    if None in sources and len(ins) > 1:
        _fail(where, "edges", "reads the network input together with other nodes; an IR layer reads either "
              "the network input or earlier layers", "route the input through its own weight node")
    scales = [i.scale for i in ins if i.scale is not None]
    if scales and len(ins) > 1:
        _fail(where, "edges", "a Scale feeds this node together with other inputs, so it cannot be folded into "
              "the weights", "give the Scale its own weight node")
    read = _read_conv2d if isinstance(node, nir.Conv2d) else _read_affine
    layer, shape = read(node, key, ins[0].shape, where)
    layer.inputs = [s for s in sources if s is not None]
    layer.timesteps = timesteps
    if scales:
        _fold_scale(layer, scales[0], where)
    return layer, shape


def from_nir(graph_or_path, *, dt: float = DT, timesteps: int = 1, name: str | None = None) -> Network:
    """An IR `Network` from a `nir.NIRGraph` or a NIR file (read with `nir.read`).

    `dt` is the time step that turns NIR's time constants into leaks (see the
    module docstring); `timesteps` is given to every layer, since NIR stores
    none. The network is named `name`, else the graph's metadata 'name', else
    the file's stem. The result has no spiking rates.
    """
    graph, source, stem = _load(graph_or_path)
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    name = name or (meta.get("name") if isinstance(meta.get("name"), str) else None) or stem or "nir-graph"
    nodes = graph.nodes
    preds = {k: [] for k in nodes}
    succs = {k: [] for k in nodes}
    for src, dst in graph.edges:
        preds[dst].append(src)
        succs[src].append(dst)
    for key, node in nodes.items():
        _check_kind(key, node)

    outs: dict[str, _Out] = {}
    layers, notes, input_size = [], [], None
    for key in _topological(nodes, preds, source):
        node, where = nodes[key], f"NIR node '{key}'"
        if key in outs:  # a neuron already folded into the layer before it
            continue
        ins = [outs[p] for p in preds[key]]
        if isinstance(node, nir.Input):
            if input_size is not None:
                _fail(where, "type", "a second Input node; an IR network has one input", "merge the inputs")
            shape = tuple(int(d) for d in np.ravel(node.input_type["input"]))
            input_size = int(np.prod(shape))
            outs[key] = _Out(None, shape)
        elif isinstance(node, nir.Output):
            if any(i.scale is not None for i in ins):
                _fail(where, "edges", "a Scale feeds the Output directly, with no weights to fold it into",
                      "fold the Scale into the weights before exporting")
        elif isinstance(node, (nir.Flatten, nir.Scale)):
            if len(ins) != 1:
                _fail(where, "edges", f"has {len(ins)} inputs", "give it exactly one input edge")
            src = ins[0]
            if isinstance(node, nir.Flatten):
                outs[key] = replace(src, shape=(int(np.prod(src.shape)),))
            else:
                scale = np.asarray(node.scale, dtype=float)
                outs[key] = replace(src, scale=scale if src.scale is None else src.scale * scale)
        elif isinstance(node, WEIGHT_NODES):
            layer, shape = _weight_layer(key, node, ins, timesteps)
            nxt = succs[key]
            if len(nxt) == 1 and isinstance(nodes[nxt[0]], NEURON_NODES) and preds[nxt[0]] == [key]:
                neuron_node, neuron_where = nodes[nxt[0]], f"NIR node '{nxt[0]}'"
                layer.neuron, gain = NEURON_READERS[type(neuron_node)](neuron_node, neuron_where, dt)
                _apply_gain(layer, gain, neuron_where)
                if isinstance(neuron_node, nir.CubaLIF):
                    notes.append(f"node '{nxt[0]}': CubaLIF read as LIF; its synaptic current's decay "
                                 f"(tau_syn) is not modelled")
                outs[nxt[0]] = _Out(key, shape)
            else:
                layer.neuron = None
            outs[key] = _Out(key, shape)
            layers.append(layer)
        else:
            _fail(where, "edges", f"a {type(node).__name__} neuron must be fed by exactly one Affine, Linear or "
                  f"Conv2d node that feeds nothing else, but reads {preds[key] or 'nothing'}",
                  "put a weight node before each neuron node (an identity Linear if need be)")
    if input_size is None:
        _fail(source, "nodes", "the graph has no Input node", "add a nir.Input giving the input shape")
    metadata = {"source": "NIR", "nir_dt": dt, **({"nir_notes": notes} if notes else {})}
    try:
        return Network(name, layers, input_size=input_size, metadata=metadata)
    except NeurosimError as exc:
        raise NeurosimError(f"{source} ({exc.where})", exc.field, exc.problem, exc.fix) from None


# -- export -------------------------------------------------------------------------------
def _weight_node(layer: Layer) -> tuple[object, tuple, tuple]:
    """The NIR weight node of a layer, with the input and output shapes it has in NIR."""
    where = f"layer '{layer.name}'"
    if layer.kind == "attention":
        _fail(where, "kind", "attention (Q.K^T and softmax over heads) has no NIR node",
              "export only the weight layers before or after attention, or keep the network in IR JSON")
    norm = layer.norm
    if norm is not None and (norm.residual is not None or norm.weight is not None or norm.bias is not None):
        _fail(where, "norm.residual" if norm.residual is not None else "norm.weight/norm.bias",
              "a residual add and LayerNorm parameters have no NIR node (dropping them would change the network)",
              "keep the network in IR JSON")
    if layer.weights is None:
        _fail(where, "weights", "the layer has no weights, and a NIR graph stores every weight",
              "load trained (or random, for a cost study) weights into the IR before exporting")
    w, b = layer.weights, layer.bias
    if layer.neuron_mask is not None:  # pruned neurons: no input, no bias, so they never fire
        keep = layer.neuron_mask.reshape((-1,) + (1,) * (w.ndim - 1))
        w, b = w * keep, (None if b is None else b * layer.neuron_mask)
    if layer.kind == "linear":
        node = nir.Linear(weight=w) if b is None else nir.Affine(weight=w, bias=b)
        return node, (layer.in_features,), (layer.out_features,)
    c = layer.spec
    node = nir.Conv2d(input_shape=(c.in_height, c.in_width), weight=w, stride=c.stride, padding=c.padding,
                      dilation=1, groups=1, bias=np.zeros(c.out_channels) if b is None else b)
    return node, (c.in_channels, c.in_height, c.in_width), (c.out_channels, c.out_height, c.out_width)


def _neuron_node(layer: Layer, shape: tuple, dt: float):
    nr = layer.neuron
    if nr.levels != 1:
        _fail(f"layer '{layer.name}'", "neuron.levels", f"multi-level spikes (levels = {nr.levels}) have no "
              "NIR neuron", "export a binary-spike neuron (levels = 1)")
    full = lambda value: np.full(shape, float(value))  # noqa: E731
    if nr.leak == 1:
        return nir.IF(r=full(1), v_threshold=full(nr.vth), v_reset=full(0))
    tau = dt / (1 - nr.leak)
    return nir.LIF(tau=full(tau), r=full(tau / dt), v_leak=full(0), v_threshold=full(nr.vth), v_reset=full(0))


def to_nir(network: Network, *, dt: float = DT) -> nir.NIRGraph:
    """A `nir.NIRGraph` of the network: Input, one Affine/Linear/Conv2d node per layer (named as the
    layer) followed by an IF/LIF node ('<layer>.neuron') where it spikes, Flatten where a conv
    output feeds a linear layer, and an Output per layer that nothing reads."""
    nodes: dict[str, object] = {}
    edges: list[tuple[str, str]] = []

    def add(key: str, node, where: str) -> None:
        if key in nodes:
            _fail(where, "name", f"the NIR node name {key!r} is already taken", "rename the layer")
        nodes[key] = node

    first_conv = next((lay for lay in network.layers if not lay.inputs and lay.kind == "conv2d"), None)
    in_shape = ((first_conv.spec.in_channels, first_conv.spec.in_height, first_conv.spec.in_width)
                if first_conv else (network.input_size,))
    add("input", nir.Input(input_type=np.array(in_shape)), f"network '{network.name}'")
    out_key, out_shape = {None: "input"}, {None: in_shape}

    def feed(src: str | None, need: tuple, layer: Layer) -> str:
        """The node to draw an edge from so that `src`'s output arrives in shape `need`."""
        key, shape = out_key[src], out_shape[src]
        if shape == need:
            return key
        if len(need) == 1 and int(np.prod(shape)) == need[0]:
            if f"{key}.flatten" not in nodes:
                add(f"{key}.flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0),
                    f"layer '{layer.name}'")
                edges.append((key, f"{key}.flatten"))
            return f"{key}.flatten"
        _fail(f"layer '{layer.name}'", "inputs", f"reads {src or 'the input'} of shape {shape} as {need}, "
              "and NIR has no reshape node", "feed conv2d layers from conv2d layers or a (C, H, W) input")

    for layer in network.layers:
        weight_node, need, shape = _weight_node(layer)
        add(layer.name, weight_node, f"layer '{layer.name}'")
        for src in layer.inputs or [None]:
            edges.append((feed(src, need, layer), layer.name))
        out_key[layer.name], out_shape[layer.name] = layer.name, shape
        if layer.neuron is not None:
            key = f"{layer.name}.neuron"
            add(key, _neuron_node(layer, shape, dt), f"layer '{layer.name}'")
            edges.append((layer.name, key))
            out_key[layer.name] = key

    sinks = [lay.name for lay in network.layers if not network.consumers(lay.name)]
    for name in sinks:
        key = "output" if len(sinks) == 1 else f"output.{name}"
        add(key, nir.Output(output_type=np.array(out_shape[name])), f"layer '{name}'")
        edges.append((out_key[name], key))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"name": network.name})
