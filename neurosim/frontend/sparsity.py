"""All-zero weight rows and columns as structured masks (issue 15: pruning by zeroing weights).

A unit (an output neuron; conv2d: an output channel) whose incoming weights and bias are all zero
never receives a current: its membrane stays at 0 below a positive threshold, so it never spikes
(a real-valued unit outputs 0). A unit whose outputs every reader weighs by zero changes nothing
downstream. Either way the hardware need not compute it: `zero_masks` masks such units, which the
cost model then treats as structured pruning (no work, no stored weights). Zeros left inside live
rows are counted by the spike engine's effective ACs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import Layer, Network

WEIGHT_KINDS = ("linear", "conv2d")


def _units(layer: Layer) -> int:
    return layer.spec.units(layer)[0]


def _silent_rows(layer: Layer) -> np.ndarray:
    """Units with all-zero incoming weights and zero bias."""
    w = np.asarray(layer.weights).reshape(_units(layer), -1)
    dead = ~w.any(axis=1)
    if layer.bias is not None:
        dead &= np.asarray(layer.bias) == 0
    return dead


def _unread_units(net: Network, layer: Layer) -> np.ndarray | None:
    """Units of `layer` whose every output every reader weighs by zero (None: some reader has no weights)."""
    readers = net.consumers(layer.name)
    residual = any(lay.norm is not None and lay.norm.residual == layer.name for lay in net.layers)
    unknown = any(r.kind not in WEIGHT_KINDS or r.weights is None for r in readers)   # readers without weights
    if not readers or residual or layer.recurrent is not None or unknown:
        return None
    read = np.zeros(layer.out_features, bool)
    for r in readers:
        w = np.asarray(r.weights)
        if r.kind == "linear":
            read |= w.any(axis=0)
        else:   # conv2d: input channel c reads every feature of channel c
            c = r.spec
            per_channel = w.any(axis=(0, 2, 3))
            read |= np.repeat(per_channel, c.in_height * c.in_width)
    per_unit = read.reshape(_units(layer), -1).any(axis=1)
    return ~per_unit


def zero_masks(net: Network) -> tuple[Network, dict[str, int]]:
    """`net` with all-zero rows and unread units masked, and how many units each layer lost."""
    masks: dict[str, np.ndarray] = {}
    for layer in net.layers:
        if layer.kind not in WEIGHT_KINDS or layer.weights is None or layer.recurrent is not None:
            continue   # a recurrent layer's neurons also drive each other: a zero row does not silence one
        dead = _silent_rows(layer)
        unread = _unread_units(net, layer)
        if unread is not None:
            dead |= unread
        keep = np.ones(_units(layer), bool) if layer.neuron_mask is None else layer.neuron_mask.copy()
        if (dead & keep).any() and not (keep & ~dead).any():
            dead[np.flatnonzero(keep)[0]] = False   # keep one unit: a layer with none would compute nothing
        if (dead & keep).any():
            masks[layer.name] = keep & ~dead
    if not masks:
        return net, {}
    lost = {name: int((~m).sum()) - (0 if net[name].neuron_mask is None else int((~net[name].neuron_mask).sum()))
            for name, m in masks.items()}
    layers = [replace(lay, neuron_mask=masks[lay.name]) if lay.name in masks else lay for lay in net.layers]
    meta = dict(net.metadata, zero_masks="units with all-zero weights (rows, or columns in every reader) masked: "
                + ", ".join(f"{k} {v}" for k, v in lost.items()))
    return Network(net.name, layers, net.input_size, net.input_rate, net.input_spiking, meta), lost
