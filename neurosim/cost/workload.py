"""What a network asks of any chip: per-layer counts and sizes that do not depend on the arch.

`Workload` is computed once per network (and mapping: the spatial mapping
runs every layer at the network's largest T) and shared by every design
point the closed form evaluates. `workload(net, spatial)` caches it by the
network's content, in a small bounded cache, so a sweep that evaluates one
model in many batches builds it once.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from ..ir import PER_NEURON, Network
from .analytic import (attention_scores, event_rate, layer_counts, needed_outputs, nonzero_fraction,
                       reads_constant_current, sparse_weight_bits, stored_weights)

COUNT_KEYS = ("acs", "macs", "other_ops", "neuron_updates", "spikes_out")


def with_timesteps(net: Network, timesteps: int) -> Network:
    """The network with every layer running `timesteps` steps."""
    layers = [replace(layer, timesteps=timesteps) for layer in net.layers]
    return Network(net.name, layers, net.input_size, net.input_rate, net.input_spiking, dict(net.metadata))


def neuron_state_words(neuron) -> int:
    """Membrane-precision values per neuron: the membrane, a synaptic current, per-neuron parameters."""
    if neuron is None:
        return 0
    per_neuron = sum(np.ndim(getattr(neuron, name)) > 0 for name in PER_NEURON)
    return 1 + int(neuron.synaptic) + int(per_neuron)


def depth(net: Network) -> int:
    """Layers on the longest path from the input: the spatial pipeline's depth."""
    d: dict[str, int] = {}
    for layer in net.layers:
        d[layer.name] = 1 + max((d[s] for s in layer.inputs), default=0)
    return max(d.values())


def live_outputs(net: Network, layer) -> int:
    """Output neurons the hardware computes and stores (see `analytic.needed_outputs`)."""
    return int(needed_outputs(net, layer).sum())


# Which cores of a consumer need each value of an input, as the consumer is split over its cores: a linear
# or convolution layer, split by output neurons, needs every input value on every core ("all"); attention,
# split by heads (then query tokens), needs a query value on one core and a key or value on every core of
# its head ("head" for K and V inputs, "one" for Q); element-wise layers and pooling, split by tokens or
# channels, need each value on one core ("one").
def input_spread(layer, position: int) -> str:
    if layer.kind in ("attention", "causal_attention"):
        return "one" if position == 0 else "head"
    return "one" if layer.kind in ("elementwise", "pool2d") else "all"


def spread_groups(layer) -> int:
    """Groups a consumer's cores form for a "head" input: its live key/value heads."""
    if layer.kind == "causal_attention":
        return max(1, int(layer.spec.kv_heads))
    return max(1, int(layer.spec.live_heads().sum())) if layer.kind == "attention" else 1


def skipping_zeros(net: Network, rows: list[dict]) -> list[dict]:
    """Count rows for cores that skip zero weights: each layer's ACs x the share of its synapses whose weight
    is nonzero (`analytic.nonzero_fraction`), the dense count kept as `dense_acs`."""
    return [{**row, "acs": row["acs"] * nonzero_fraction(net, layer), "dense_acs": row["acs"]}
            for layer, row in zip(net.layers, rows)]


class Workload:
    """Per-layer arrays (length L, in layer order) of one network, and its op totals.

    `count_rows`: the per-layer op counts (`analytic.layer_counts` rows, or
    the ones a simulator measured from a trace). `zero_skipping`: for cores
    that skip zero weights (`arch.Cores.zero_skipping`): the rows' ACs are
    the effective ones (`skipping_zeros` makes them from structural rows) and
    linear layers' weights are held as compressed sparse columns.
    """

    def __init__(self, net: Network, count_rows: list[dict] | None = None, zero_skipping: bool = False):
        layers = net.layers
        self.net = net
        self.zero_skipping = zero_skipping
        if count_rows is None:
            count_rows = [layer_counts(net, l) for l in layers]
            count_rows = skipping_zeros(net, count_rows) if zero_skipping else count_rows
        self.count_rows = count_rows
        col = lambda key: np.array([float(r[key]) for r in self.count_rows])  # noqa: E731
        self.acs, self.macs, self.other_ops = col("acs"), col("macs"), col("other_ops")
        self.neuron_updates, self.spikes_out = col("neuron_updates"), col("spikes_out")
        self.input_spike_bits = col("input_spike_bits")
        self.ac_bit_ops = self.acs * self.input_spike_bits
        self.names = [l.name for l in layers]
        self.L = len(layers)
        self.T = net.max_timesteps
        self.depth = depth(net)
        self.live = np.array([live_outputs(net, l) for l in layers], dtype=float)
        self.seq_len = np.array([l.seq_len for l in layers], dtype=float)
        self.timesteps = np.array([l.timesteps for l in layers], dtype=float)
        self.spiking = np.array([l.spiking for l in layers], dtype=bool)
        self.attention = np.array([l.kind == "attention" for l in layers], dtype=bool)
        self.scores = np.array([attention_scores(net, l) for l in layers], dtype=float)   # per run
        self.spike_bits = np.array([l.neuron.spike_bits if l.spiking else 0 for l in layers], dtype=float)
        self.count_bits = np.array([carried_count_bits(l) for l in layers], dtype=float)
        # bits read per weight: the value, and its row index where held sparse
        self.weight_bits = np.array([l.weight_bits for l in layers], dtype=float)
        # Values a spiking neuron keeps at membrane precision: its membrane, a synaptic current (CubaLIF),
        # and any parameter given per neuron (vth, leak, syn_decay): all read and written on each update.
        self.state_words = np.array([neuron_state_words(l.neuron) for l in layers], dtype=float)
        self.weight_bytes = np.array([stored_weights(net, l) * l.weight_bits / 8 for l in layers], dtype=float)
        if zero_skipping:     # compressed sparse columns: bytes held, and a row index read with each weight
            sparse = [sparse_weight_bits(net, l) for l in layers]
            self.weight_bytes = np.array([bits / 8 for bits, _ in sparse])
            self.weight_bits = self.weight_bits + np.array([index for _, index in sparse])
        index = {l.name: i for i, l in enumerate(layers)}
        self.consumers = [[index[c.name] for c in net.consumers(l.name)] for l in layers]
        self.sources = [[index[s] for s in dict.fromkeys(l.inputs)] for l in layers]
        # (source, consumer, spread, groups) of every input a layer reads (see `input_spread`)
        self.edges = [(index[s], c, input_spread(l, k), spread_groups(l))
                      for c, l in enumerate(layers) for k, s in enumerate(l.inputs)]
        # Bernoulli draws a layer makes each step to regenerate its input spikes from carried rates: one per
        # input neuron and token of its spiking sources (attention regenerates K and V; a real-valued source
        # is carried as its time average), and for a multi-level source one more per event, which rounds
        # the event's value (the engine's `kernels.regenerate`).
        self.regeneration_draws = np.array([
            l.seq_len * sum(live_outputs(net, net[s]) * (1 + event_rate(net[s]) if net[s].neuron.levels > 1 else 1)
                            for s in dict.fromkeys(l.inputs) if net[s].spiking)
            for l in layers], dtype=float)
        # Layers whose input is the network's constant real-valued current: its product with the
        # weights is computed once and held (unless the chip recomputes it every step).
        self.constant_input = np.array([reads_constant_current(net, l) for l in layers], dtype=bool)
        # Values of the network input each layer that reads it receives per step (tokens x input features);
        # it is delivered to the layer's cores from the chip's I/O port.
        self.input_values = np.array([0.0 if l.inputs else l.seq_len * net.input_size for l in layers])
        self.input_spiking, self.input_rate = bool(net.input_spiking), float(net.input_rate)
        self.timesteps_note = ", ".join(str(t) for t in sorted({l.timesteps for l in layers}))
        # Totals, summed in layer order.
        self.total = {k: float(sum(r[k] for r in self.count_rows)) for k in COUNT_KEYS}
        self.total["dense_acs"] = float(sum(r.get("dense_acs", r["acs"]) for r in self.count_rows))
        self.total["ac_bit_ops"] = float(sum(r["acs"] * r["input_spike_bits"] for r in self.count_rows))
        # ACs fed by multi-level spikes: the ones a shift-add table charges a shift-add for
        self.total["multilevel_acs"] = float(sum(r["acs"] for r in self.count_rows if r["input_spike_bits"] > 1))

    @property
    def values_per_step(self) -> np.ndarray:
        """Output values of one timestep: tokens x live outputs."""
        return self.seq_len * self.live

    @property
    def accumulators(self) -> np.ndarray:
        """Values each layer sums into in one step: its outputs, or an attention's scores where they are more."""
        return np.maximum(self.values_per_step, self.scores / self.timesteps)


def carried_count_bits(layer) -> int:
    """Bits of what a spiking neuron carries per token when rates are carried: its event count over its t
    steps, ceil(log2(t + 1)) bits, and, for a k-level neuron, also the sum of its values, ceil(log2(t k + 1))
    bits, since its readers regenerate both how often it fires and with what value (`kernels.regenerate`)."""
    if not layer.spiking:
        return 0
    events = math.ceil(math.log2(layer.timesteps + 1))
    levels = layer.neuron.levels
    return events + (math.ceil(math.log2(layer.timesteps * levels + 1)) if levels > 1 else 0)


# Weight values change no count or size (only their shapes and masks do), so they stay out of the key.
_VALUES = ("weights", "bias")


def content_key(net: Network) -> str:
    """A digest of what the workload depends on: equal digests mean equal networks but for weight values."""
    layers = [{k: v for k, v in vars(layer).items() if k not in _VALUES} for layer in net.layers]
    payload = (net.name, net.input_size, net.input_rate, net.input_spiking, net.metadata, layers)
    return hashlib.blake2b(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL), digest_size=16).hexdigest()


CACHE_SIZE = 16   # networks x mappings kept; a sweep works through one model at a time
_cache: OrderedDict[tuple[str, bool, bool], Workload] = OrderedDict()


def cached_workloads() -> int:
    return len(_cache)


def workload(net: Network, spatial: bool, zero_skipping: bool = False) -> Workload:
    """The network's workload for a mapping (spatial: every layer at the largest T) on cores that skip zero
    weights or not, cached by content."""
    key = (content_key(net), spatial, zero_skipping)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    work = Workload(with_timesteps(net, net.max_timesteps) if spatial else net, zero_skipping=zero_skipping)
    _cache[key] = work
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return work
