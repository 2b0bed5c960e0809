"""Where a network can be cut into segments, and each segment as a network of its own.

A plan may cut the network after layer i when one layer's output is all that crosses: the layers after
i read nothing at or before i but layer i itself (and nothing but it, where they read it), and none reads
the network input. Then a segment is a network whose input is the previous segment's last layer: its
readers read that input at that layer's rate (spikes) with their own sizes, so every layer of a segment
costs exactly what it costs in the whole network (`segment_network` checks this, count by count).
A residual add whose source lies outside the segment is dropped from it: the cost model does not price
moving a residual's data (docs/design.md), and LayerNorm is still counted. A decoder's residual is a layer
of its own, an element-wise add of the stream and a block's output; where the stream crosses the cut it
keeps only the block's output (`residual_add`): its work is the same, and the stream's read across the
cut (one vector per token) is left out like the encoder's residual data.
"""

from __future__ import annotations

from dataclasses import replace

from ..cost.analytic import event_rate, layer_counts, stored_weights
from ..errors import NeurosimError
from ..ir import NETWORK_INPUT, Network

COUNT_FIELDS = ("acs", "macs", "other_ops", "neuron_updates", "spikes_out", "input_spike_bits")


def residual_add(layer) -> bool:
    """An element-wise add (a decoder's residual): it may read the cut's layer beside its own segment's."""
    return layer.kind == "elementwise" and getattr(layer.spec, "op", None) == "add"


def crossing_problem(net: Network, i: int) -> str | None:
    """Why the network cannot be cut after layer i (None: it can)."""
    before = {layer.name for layer in net.layers[: i + 1]}
    last = net.layers[i].name
    for layer in net.layers[i + 1:]:
        if not layer.inputs:
            return f"layer '{layer.name}' reads the network input"
        outside = [s for s in layer.inputs if s in before]
        if any(s != last for s in outside):
            return f"layer '{layer.name}' reads '{outside[0]}', an earlier layer than '{last}'"
        if outside and len(outside) != len(layer.inputs) and not residual_add(layer):
            return f"layer '{layer.name}' reads '{last}' beside layers after it"
    return None


def segment_network(net: Network, first: int, last: int) -> Network:
    """Layers first..last of `net` as a network of their own, reading the output of layer first - 1."""
    if first == 0 and last == len(net.layers) - 1:
        return net
    names = {layer.name for layer in net.layers[first:last + 1]}
    source = net.layers[first - 1] if first > 0 else None
    if source is not None and (problem := crossing_problem(net, first - 1)) is not None:
        raise NeurosimError(f"network '{net.name}'", "segments", f"cannot cut after '{source.name}': {problem}",
                            f"cut where one layer's output is all that crosses (see `neurosim map`, cut points: "
                            f"{', '.join(net.layers[c].name for c in cut_points(net)[:6])}, ...)")
    layers = []
    for layer in net.layers[first:last + 1]:
        inputs = [s for s in layer.inputs if s in names]
        if residual_add(layer) and 0 < len(inputs) < len(layer.inputs):
            inputs = inputs * len(layer.inputs)     # the stream crossed the cut: see the module's doc
        norm = layer.norm
        if norm is not None and norm.residual is not None and (norm.residual not in names or first > 0
                                                               and norm.residual == NETWORK_INPUT):
            norm = replace(norm, residual=None)
        layers.append(replace(layer, inputs=inputs, norm=norm))
    if source is None:
        sub = Network(f"{net.name}[{first}:{last + 1}]", layers, net.input_size, net.input_rate, net.input_spiking,
                      dict(net.metadata))
    else:
        sub = Network(f"{net.name}[{first}:{last + 1}]", layers, source.out_features, event_rate(source),
                      source.spiking, dict(net.metadata))
    _check_same_work(net, sub)
    return sub


def _check_same_work(net: Network, sub: Network) -> None:
    """Every layer of `sub` counts and stores what it does in `net`; else the cut changed the work."""
    for layer in sub.layers:
        whole, part = layer_counts(net, net[layer.name]), layer_counts(sub, layer)
        differs = [k for k in COUNT_FIELDS if abs(whole[k] - part[k]) > 1e-9 * max(1.0, abs(whole[k]))]
        if not differs and stored_weights(net, net[layer.name]) != stored_weights(sub, layer):
            differs = ["stored weights"]
        if differs:
            raise NeurosimError(f"network '{net.name}'", "segments", f"cutting before '{sub.layers[0].name}' "
                                f"changes the {differs[0]} of layer '{layer.name}' (it reads a pruned, real-valued "
                                "or multi-level output across the cut)", "cut elsewhere")


def cut_points(net: Network) -> list[int]:
    """Indices i after which the network can be cut (see the module's doc), each one checked."""
    out = []
    for i in range(len(net.layers) - 1):
        if crossing_problem(net, i) is not None:
            continue
        try:
            segment_network(net, i + 1, len(net.layers) - 1)
        except NeurosimError:
            continue
        out.append(i)
    return out
