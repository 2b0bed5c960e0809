"""`SpikeTrace`: what the engine measured, per layer, and the network with the measured rates.

By default nothing of size T x neurons is kept: per layer, events and ACs per
step, per-(token, neuron) totals, and whole-run MAC / other-op counts.
Rasters (the spikes of every step) only when the run was asked for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..cost.analytic import live_synapses, needed_outputs
from ..ir import Network
from .handoff import INPUT


@dataclass
class LayerTrace:
    name: str
    kind: str
    timesteps: int                 # steps the layer ran
    spiking: bool
    compute: str                   # "ac" or "mac", as the cost model reads the layer
    live: np.ndarray               # (out_features,) bool: outputs computed (masks, dead heads)
    spike_bits: int                # bits of one output event (GIF: k levels -> ceil(log2(k+1)))
    input_spike_bits: int          # bits of one input event
    acs_per_step: np.ndarray       # (timesteps,) exact ACs: input events x live fan-out
    effective_acs_per_step: np.ndarray   # (timesteps,) the ACs whose weight is nonzero (NeuroBench's count)
    recurrent_acs: int             # of the ACs, those of the layer's own spikes fed back (ir.Recurrent)
    macs: int                      # real-valued multiply-accumulates, whole run
    other_ops: int                 # softmax and LayerNorm element ops, whole run
    neuron_updates: int
    input_events: dict[str, int]   # events integrated from each source ('<input>': the network input)
    spikes_per_step: np.ndarray | None = None   # (timesteps,) output events (None: real-valued layer)
    neuron_totals: np.ndarray | None = None     # (seq_len, out_features) events per token and neuron
    value_totals: np.ndarray | None = None      # same, summed spike values (multi-level neurons only)
    raster: np.ndarray | None = None            # (timesteps, seq_len, out_features) uint8, when asked
    seen: dict[str, np.ndarray] | None = None   # per source, the (timesteps, seq_len, in) spikes integrated
    acs_by_source: dict[str, int] = field(default_factory=dict)   # causal attention: the ACs of K's and V's events

    @property
    def acs(self) -> int:
        return int(self.acs_per_step.sum())

    @property
    def effective_acs(self) -> int:
        """ACs of nonzero input x nonzero weight: what hardware that skips zero weights performs."""
        return int(self.effective_acs_per_step.sum())

    @property
    def spikes(self) -> int:
        return 0 if self.spikes_per_step is None else int(self.spikes_per_step.sum())

    @property
    def asr(self) -> np.ndarray | None:
        """Per (token, neuron) average spiking rate: events / timesteps run."""
        return None if self.neuron_totals is None else self.neuron_totals / self.timesteps

    @property
    def rate(self) -> float | None:
        """Mean ASR over live neurons and tokens."""
        if not self.spiking:
            return None
        slots = self.neuron_totals.shape[0] * self.timesteps * int(self.live.sum())
        return self.spikes / slots if slots else 0.0


@dataclass
class SpikeTrace:
    network: str
    handoff: str
    seed: int
    seq_len: int
    input_size: int
    layers: dict[str, LayerTrace]
    input_events_per_step: np.ndarray
    input_kind: str = "spikes"     # "spikes" (given), "rates" (rate-coded here) or "current" (real, every step)
    input_raster: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    output: np.ndarray | None = None   # the last layer's real output, where the run keeps it (a decoder's logits)
    kv_cache: dict | None = None       # a decoder phase: every attention's keys and values so far, for the next step

    def __getitem__(self, name: str) -> LayerTrace:
        return self.layers[name]

    @property
    def acs(self) -> int:
        return sum(lt.acs for lt in self.layers.values())

    @property
    def effective_acs(self) -> int:
        return sum(lt.effective_acs for lt in self.layers.values())

    @property
    def macs(self) -> int:
        return sum(lt.macs for lt in self.layers.values())

    @property
    def other_ops(self) -> int:
        return sum(lt.other_ops for lt in self.layers.values())

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([dict(layer=lt.name, kind=lt.kind, timesteps=lt.timesteps, acs=lt.acs,
                                  effective_acs=lt.effective_acs, macs=lt.macs,
                                  other_ops=lt.other_ops, neuron_updates=lt.neuron_updates,
                                  spikes_out=lt.spikes, asr=lt.rate, spike_bits=lt.spike_bits)
                             for lt in self.layers.values()])

    def measured_network(self, net: Network) -> Network:
        return measured_network(net, self)


def consumed_rate(net: Network, trace: SpikeTrace, source: str) -> tuple[float, bool]:
    """The rate at which `source`'s events reached its consumers, and whether all consumers agree.

    rate = events integrated / (tokens x consumer's timesteps x live source
    outputs), summed over consumers; for a conv2d / pool2d consumer, whose
    synapses per event depend on the event's position, its ACs / (tokens x
    timesteps x live synapses), each event weighed by its fan-out (a padded
    border's events reach fewer outputs). This is the rate that makes the
    structural count (spikes in x live fan-out) equal the engine's: under
    lockstep it is the source's own ASR; under the stochastic handoff it is
    the rate of the regenerated spikes, which differs from the source's ASR
    by the sampling noise.
    """
    if source == INPUT:
        if trace.input_kind == "current":  # no input spikes: the network's input rate stands
            return net.input_rate, True
        consumers, width = [l for l in net.layers if not l.inputs], trace.input_size
    else:
        consumers, width = net.consumers(source), int(trace[source].live.sum())
    if not consumers:
        lt = trace[source]
        return (lt.rate or 0.0), True
    per = []
    for c in consumers:
        ct = trace[c.name]
        if c.kind in ("conv2d", "pool2d") and ct.compute == "ac":
            # an event's ACs depend on where it lands (fewer at a padded border): the rate that gives
            # the closed form's count weighs each event by its fan-out, ACs / (tokens x steps x synapses)
            synapses = live_synapses(net, c, int(needed_outputs(net, c).sum()))
            per.append((ct.acs, trace.seq_len * ct.timesteps * synapses))
            continue
        if c.kind == "causal_attention":
            # a key's events reach the queries after it, so the same: its ACs over the closed form's per-rate ACs
            spec = c.spec
            per.append((ct.acs_by_source.get(source, 0), spec.heads * spec.score_pairs(c) * spec.head_dim * ct.timesteps))
            continue
        slots = c.seq_len * ct.timesteps * width
        per.append((ct.input_events.get(source, 0), slots))
    events, slots = sum(e for e, _ in per), sum(s for _, s in per)
    agree = all(e * slots == events * s for e, s in per)  # every consumer's rate == the pooled rate
    return (events / slots if slots else 0.0), agree


def measured_network(net: Network, trace: SpikeTrace) -> Network:
    """A copy of `net` carrying what the engine measured: rates, input rate, timesteps as run.

    Fed to cost.analytic.structural_counts, it gives exactly the engine's ACs
    and MACs per layer when every consumer of a layer saw the same rate (always
    true for lockstep, and for encoder layouts under the other handoffs).
    """
    notes = []
    layers = []
    for layer in net.layers:
        lt = trace[layer.name]
        rate = layer.rate
        if layer.spiking:
            rate, agree = consumed_rate(net, trace, layer.name)
            if not agree:
                notes.append(f"layer '{layer.name}': consumers saw different rates; the structural count "
                             "uses their mean and is approximate")
        if lt.recurrent_acs:
            notes.append(f"layer '{layer.name}': its {lt.recurrent_acs:,} recurrent ACs (its own spikes fed back) "
                         "are in the closed form's count at the layer's rate over its first t - 1 steps, "
                         "equal to the engine's in expectation")
        layers.append(replace(layer, rate=rate, timesteps=lt.timesteps))
    input_rate, agree = consumed_rate(net, trace, INPUT)
    meta = dict(net.metadata, rates_source=f"measured by the spike engine ({trace.handoff} handoff, seed "
                f"{trace.seed})")
    if notes:
        meta["rate_notes"] = notes
    return Network(net.name, layers, net.input_size, input_rate, net.input_spiking, meta)
