"""NIR import and export: `from_nir` reads a NIR graph into an IR `Network`, `to_nir` writes one.

NIR (the Neuromorphic Intermediate Representation, https://neuroir.org) keeps
weights and neurons as separate nodes joined by edges. The IR has one layer per
weight node, with the spiking neuron that follows it folded in:

    Affine | Linear | Conv2d  [-> IF | LIF | CubaLIF]  ->  one ir.Layer (no neuron: real-valued output)
    SumPool2d | AvgPool2d     [-> IF | LIF | CubaLIF]  ->  one pool2d ir.Layer (square windows)
    Scale                                              ->  folded into the weights it feeds
    Input, Output, Flatten                             ->  shapes only

The neurons are read and written by NIR's own definitions (`nir_neurons`: one
forward-Euler step of `dt`, reset to v_reset when v > v_threshold, the input
gains moved into the weights; NIR 1.0 has no subtract reset, and what it
cannot say is warned about and kept in the graph's metadata). Per-neuron
thresholds and time constants become per-neuron IR values (conv: per channel).

NIR stores no timestep count: `from_nir` takes it from `timesteps=`, from the
input spike tensor (`inputs=`), or from the metadata neurosim's `to_nir`
writes, and refuses to guess otherwise.

* NIR's Conv2d always has a bias; an all-zero one is read as no bias (snnTorch
  writes zeros for bias=False).

`to_nir` writes the same conventions back (LIF: tau = dt/(1 - leak), r = tau/dt;
leak 1: IF with r = 1/dt), so IR -> NIR -> IR gives the same layers, with the leak
back to within one float64 rounding (exactly, for values such as 0.9 or 0.75).
NIR has no place for seq_len, weight bit width, rates, encoder tags or a bare
LayerNorm (`Norm()`, counted but not applied); they are not exported (the
timesteps go into the metadata). A layer whose norm has a residual add or
LayerNorm parameters is refused (no NIR node; dropping them would change the
network). A neuron mask is exported as zeroed weight rows and bias, which
keeps the pruned neurons silent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import nir
import numpy as np

from ..errors import NeurosimError
from ..ir import Conv2dShape, Layer, Network, Pool2dShape
from .nir_neurons import METADATA_KEY, ReadNode, not_sayable, read_node, restore, warn_export, warn_import, \
    write_node

DT = 1e-4
GAIN_RTOL = 1e-5
POOL_NODES = (nir.SumPool2d, nir.AvgPool2d)
WEIGHT_NODES = (nir.Affine, nir.Linear, nir.Conv2d, *POOL_NODES)   # the nodes that become an IR layer
NEURON_NODES = (nir.IF, nir.LIF, nir.CubaLIF)
SHAPE_NODES = (nir.Input, nir.Output, nir.Flatten, nir.Scale)
SUPPORTED = ", ".join(kind.__name__ for kind in (*WEIGHT_NODES, *NEURON_NODES, *SHAPE_NODES))


def _fail(where: str, field: str, problem: str, fix: str) -> None:
    raise NeurosimError(where, field, problem, fix)


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


def _read_pool2d(node, name: str, in_shape: tuple, where: str) -> tuple[Layer, tuple]:
    if len(in_shape) != 3:
        _fail(where, "input_type", f"a pooling node reads (channels, height, width), got shape {in_shape}",
              "feed it from the Input or from a node with a 3-D output")
    mode = "sum" if isinstance(node, nir.SumPool2d) else "avg"
    pool = Pool2dShape(int(in_shape[0]), int(in_shape[1]), int(in_shape[2]), _square(node.kernel_size, where,
                       "kernel_size"), _square(node.stride, where, "stride"), _square(node.padding, where, "padding"),
                       mode)
    out_shape = (pool.channels, pool.out_height, pool.out_width)
    return Layer(name, "pool2d", int(np.prod(in_shape)), int(np.prod(out_shape)), spec=pool), out_shape


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


def _apply_gain(layer: Layer, read: ReadNode) -> None:
    """The neuron's input gain (one value or one per unit) moved into the weights and bias, and its constant
    current into the bias: the IR neuron adds its input as it is."""
    g = np.asarray(read.gain, dtype=float)
    g = np.where(np.isclose(g, 1.0, rtol=GAIN_RTOL, atol=0), 1.0, g)   # float32 rounding of r, w_in, tau: 1
    if (g != 1).any():
        layer.weights = layer.weights * g.reshape((-1,) + (1,) * (layer.weights.ndim - 1))
        layer.bias = None if layer.bias is None else layer.bias * g
    if np.any(np.asarray(read.current) != 0):
        units, _ = layer.spec.units(layer)
        layer.bias = (np.zeros(units) if layer.bias is None else layer.bias) + read.current


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
    read = _read_conv2d if isinstance(node, nir.Conv2d) else _read_pool2d if isinstance(node, POOL_NODES) \
        else _read_affine
    layer, shape = read(node, key, ins[0].shape, where)
    layer.inputs = [s for s in sources if s is not None]
    layer.timesteps = timesteps
    if scales:
        if layer.weights is None:
            _fail(where, "edges", "a Scale feeds a pooling node, which has no weights to take it",
                  "fold the Scale into the weights before the pooling")
        _fold_scale(layer, scales[0], where)
    return layer, shape


def _timesteps(timesteps: int | None, inputs, meta: dict, source: str) -> dict | int:
    """The run length: given, the input's, or each layer's as neurosim's to_nir recorded it."""
    if timesteps is not None:
        if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) or timesteps < 1:
            _fail(source, "timesteps", f"must be a positive integer, got {timesteps!r}", "give timesteps >= 1")
        return int(timesteps)
    if inputs is not None:
        x = np.asarray(inputs)
        if x.ndim != 3:
            _fail(source, "inputs", f"a {x.ndim}-D array; the timestep count comes from a (T, tokens, features) "
                  "spike tensor", "give the spike input the network will run on, or timesteps=")
        return int(x.shape[0])
    recorded = meta.get(METADATA_KEY, {}).get("timesteps") if isinstance(meta.get(METADATA_KEY), dict) else None
    if isinstance(recorded, dict) and recorded:
        return {str(k): int(v) for k, v in recorded.items()}
    _fail(source, "timesteps", "a NIR graph stores no timestep count, and neither timesteps= nor an input was given",
          "pass from_nir(..., timesteps=T), or the input spike tensor as inputs= (its T is used)")


def from_nir(graph_or_path, *, dt: float = DT, timesteps: int | None = None, inputs=None, reset: str | None = None,
             name: str | None = None) -> Network:
    """An IR `Network` from a `nir.NIRGraph` or a NIR file (read with `nir.read`).

    `dt` is the time step of one forward-Euler step of NIR's equations (see
    nir_neurons). The timestep count is `timesteps`, else that of `inputs` (a
    (T, tokens, features) spike tensor), else each layer's as neurosim's
    `to_nir` recorded it; a graph with none of these is refused. `reset` is
    None (NIR's definitions, or the conventions neurosim's metadata records)
    or "subtract" (every neuron node as snnTorch's subtract reset). The network
    is named `name`, else the graph's metadata 'name', else the file's stem.
    The result has no spiking rates.
    """
    graph, source, stem = _load(graph_or_path)
    if reset not in (None, "subtract"):
        _fail(source, "reset", f"unknown reading {reset!r}", "use reset=None (NIR's own) or 'subtract'")
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    nodes = graph.nodes
    for key, node in nodes.items():
        _check_kind(key, node)
    steps = _timesteps(timesteps, inputs, meta, source)
    name = name or (meta.get("name") if isinstance(meta.get("name"), str) else None) or stem or "nir-graph"
    preds = {k: [] for k in nodes}
    succs = {k: [] for k in nodes}
    for src, dst in graph.edges:
        preds[dst].append(src)
        succs[src].append(dst)
    records = meta.get(METADATA_KEY, {}).get("neurons", {}) if isinstance(meta.get(METADATA_KEY), dict) else {}
    reader = _Reader(nodes, preds, succs, dt, steps, records, reset)
    for key in _topological(nodes, preds, source):
        reader.visit(key)
    if reader.input_size is None:
        _fail(source, "nodes", "the graph has no Input node", "add a nir.Input giving the input shape")
    warn_import(reader.spec_read, reader.unit_if)
    metadata = {"source": "NIR", "nir_dt": dt, **({"nir_notes": reader.notes} if reader.notes else {})}
    try:
        return Network(name, reader.layers, input_size=reader.input_size, metadata=metadata)
    except NeurosimError as exc:
        raise NeurosimError(f"{source} ({exc.where})", exc.field, exc.problem, exc.fix) from None


class _Reader:
    """Walks a NIR graph in topological order, turning nodes into IR layers."""

    def __init__(self, nodes, preds, succs, dt: float, steps, records: dict, reset: str | None):
        self.nodes, self.preds, self.succs, self.dt, self.steps = nodes, preds, succs, dt, steps
        self.records, self.reset = records, reset
        self.outs: dict[str, _Out] = {}
        self.layers: list[Layer] = []
        self.notes: list[str] = []
        self.spec_read: list[str] = []
        self.unit_if: list[str] = []
        self.input_size = None

    def visit(self, key: str) -> None:
        node, where, outs = self.nodes[key], f"NIR node '{key}'", self.outs
        if key in outs:  # a neuron already folded into the layer before it
            return
        ins = [outs[p] for p in self.preds[key]]
        if isinstance(node, nir.Input):
            if self.input_size is not None:
                _fail(where, "type", "a second Input node; an IR network has one input", "merge the inputs")
            shape = tuple(int(d) for d in np.ravel(node.input_type["input"]))
            self.input_size = int(np.prod(shape))
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
            self._weight(key, node, ins)
        else:
            _fail(where, "edges", f"a {type(node).__name__} neuron must be fed by exactly one Affine, Linear, "
                  f"Conv2d or pooling node that feeds nothing else, but reads {self.preds[key] or 'nothing'}",
                  "put a weight node before each neuron node (an identity Linear if need be)")

    def _weight(self, key: str, node, ins: list[_Out]) -> None:
        steps = self.steps if isinstance(self.steps, int) else self.steps.get(key, 1)
        layer, shape = _weight_layer(key, node, ins, steps)
        nxt = self.succs[key]
        layer.neuron = None
        if len(nxt) == 1 and isinstance(self.nodes[nxt[0]], NEURON_NODES) and self.preds[nxt[0]] == [key]:
            self._neuron(layer, nxt[0])
            self.outs[nxt[0]] = _Out(key, shape)
        self.outs[key] = _Out(key, shape)
        self.layers.append(layer)

    def _neuron(self, layer: Layer, key: str) -> None:
        node, where = self.nodes[key], f"NIR node '{key}'"
        read = read_node(node, layer, where, self.dt)
        changed = restore(read.neuron, self.records.get(key), self.reset)
        if not changed:
            self.spec_read.append(key)
        self.notes += [f"node '{key}': {c}" for c in changed]
        if isinstance(node, nir.IF) and np.all(np.asarray(node.r) == 1) and self.dt != 1:
            self.unit_if.append(key)
        layer.neuron = read.neuron
        _apply_gain(layer, read)


# -- export -------------------------------------------------------------------------------
def _out_shape(layer: Layer) -> tuple:
    c = layer.spec
    if layer.kind == "conv2d":
        return c.out_channels, c.out_height, c.out_width
    return (c.channels, c.out_height, c.out_width) if layer.kind == "pool2d" else (layer.out_features,)


def _in_shape(layer: Layer) -> tuple:
    c = layer.spec
    return (c.in_channels if layer.kind == "conv2d" else c.channels, c.in_height, c.in_width)


def _pool_node(layer: Layer, factor: np.ndarray | None) -> tuple[object, tuple, tuple]:
    c, where = layer.spec, f"layer '{layer.name}'"
    if layer.neuron_mask is not None:
        _fail(where, "neuron_mask", "a pooling node has no weights to silence masked channels with",
              "drop the mask, or mask the layer before the pooling")
    if factor is not None and not np.allclose(factor, 1.0):
        _fail(where, "unit_r", "a pooling node has no weights to carry its neuron's input gain",
              "export with unit_r=False")
    kind = nir.SumPool2d if c.mode == "sum" else nir.AvgPool2d
    node = kind(kernel_size=np.array([c.kernel] * 2), stride=np.array([c.stride] * 2),
                padding=np.array([c.padding] * 2))
    return node, (c.channels, c.in_height, c.in_width), (c.channels, c.out_height, c.out_width)


def _weight_node(layer: Layer, factor: np.ndarray | None = None) -> tuple[object, tuple, tuple]:
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
    if layer.recurrent is not None:
        _fail(where, "recurrent", "a recurrent connection is not exported (snnTorch and NIR tools each read "
              "recurrent graphs their own way)", "keep the network in IR JSON")
    if layer.kind == "pool2d":
        return _pool_node(layer, factor)
    if layer.weights is None:
        _fail(where, "weights", "the layer has no weights, and a NIR graph stores every weight",
              "load trained (or random, for a cost study) weights into the IR before exporting")
    w, b = layer.weights, layer.bias
    if layer.neuron_mask is not None:  # pruned neurons: no input, no bias, so they never fire
        keep = layer.neuron_mask.reshape((-1,) + (1,) * (w.ndim - 1))
        w, b = w * keep, (None if b is None else b * layer.neuron_mask)
    if factor is not None:   # the neuron's input gain, carried by the weights (unit_r)
        units, _ = layer.spec.units(layer)
        f = factor.reshape(units, -1)[:, 0]
        w, b = w * f.reshape((-1,) + (1,) * (w.ndim - 1)), (None if b is None else b * f)
    if layer.kind == "linear":
        node = nir.Linear(weight=w) if b is None else nir.Affine(weight=w, bias=b)
        return node, (layer.in_features,), (layer.out_features,)
    c = layer.spec
    node = nir.Conv2d(input_shape=(c.in_height, c.in_width), weight=w, stride=c.stride, padding=c.padding,
                      dilation=1, groups=1, bias=np.zeros(c.out_channels) if b is None else b)
    return node, (c.in_channels, c.in_height, c.in_width), (c.out_channels, c.out_height, c.out_width)


def to_nir(network: Network, *, dt: float = DT, unit_r: bool = False) -> nir.NIRGraph:
    """A `nir.NIRGraph` of the network: Input, one Affine/Linear/Conv2d node per layer (named as the
    layer) followed by an IF/LIF/CubaLIF node ('<layer>.neuron') where it spikes, Flatten where a conv
    output feeds a linear layer, and an Output per layer that nothing reads.

    Neurons NIR cannot state (subtract reset, reset after the leak, firing on >=) are written as
    NIR's nearest node with a warning, and their conventions recorded in the metadata. `unit_r`
    writes r = w_in = 1 and puts the neurons' input gain into the weights (for readers that ignore
    r, such as norse)."""
    nodes: dict[str, object] = {}
    edges: list[tuple[str, str]] = []
    records: dict[str, dict] = {}
    problems: dict[str, list[str]] = {}

    def add(key: str, node, where: str) -> None:
        if key in nodes:
            _fail(where, "name", f"the NIR node name {key!r} is already taken", "rename the layer")
        nodes[key] = node

    first_map = next((lay for lay in network.layers if not lay.inputs and lay.kind in ("conv2d", "pool2d")), None)
    in_shape = (_in_shape(first_map) if first_map else (network.input_size,))
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
        neuron_node, factor = write_node(layer, _out_shape(layer), dt, unit_r) if layer.neuron else (None, None)
        weight_node, need, shape = _weight_node(layer, factor)
        add(layer.name, weight_node, f"layer '{layer.name}'")
        for src in layer.inputs or [None]:
            edges.append((feed(src, need, layer), layer.name))
        out_key[layer.name], out_shape[layer.name] = layer.name, shape
        if neuron_node is not None:
            key = f"{layer.name}.neuron"
            add(key, neuron_node, f"layer '{layer.name}'")
            edges.append((layer.name, key))
            out_key[layer.name] = key
            missing = not_sayable(layer.neuron)
            if missing:
                problems[layer.name] = missing
                records[key] = {k: getattr(layer.neuron, k) for k in ("reset", "reset_order", "fire", "v_reset")}

    sinks = [lay.name for lay in network.layers if not network.consumers(lay.name)]
    for name in sinks:
        key = "output" if len(sinks) == 1 else f"output.{name}"
        add(key, nir.Output(output_type=np.array(out_shape[name])), f"layer '{name}'")
        edges.append((out_key[name], key))
    warn_export(problems)
    own = {"timesteps": {lay.name: lay.timesteps for lay in network.layers}}
    if records:
        own["neurons"] = records
        own["note"] = ("NIR 1.0 has no subtract reset, no reset after the leak and no '>=' rule: these neurons are "
                       "written as NIR's nearest node; 'neurons' gives their own conventions")
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"name": network.name, METADATA_KEY: own})
