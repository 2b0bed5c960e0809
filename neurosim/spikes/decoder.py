"""The spike engine on a decoder phase: ir.ElementOps and ir.CausalAttention layers fed by SpikeLLM's GIF inputs.

A decoder phase (`cards.decoder_network`; with trained weights, `frontend.decoder_ir.engine_network`) runs
layer after layer, each once over its timesteps:

* a real-valued layer computes its output from its sources' (RMSNorm, rotary, SiLU x up, the residual add,
  the last token of each sequence, a linear layer reading real values such as the LM head: MACs);
* a layer with a neuron then sends that output on as SpikeLLM's GIF inputs do (`frontend.spikellm`):
  quantized per token (per token and head when an attention reads it as K or V) to n + addbit bits, or to
  n bits on the channels Optimal Brain Spiking put on the single-step path (`GIF_INPUTS` in the network's
  metadata), and the codes fed once, at step 0, to the IR's GIF neuron (vth 1, levels 2^n - 1, subtract
  reset: `kernels.fire`), which emits min(u, 2^n - 1) at each of its T = 2^addbit steps and drops what is
  left, as the reference does. A spike of value k is one multi-level event (its bits are the energy
  table's business);
* a linear layer reading spikes counts one AC per event and live output at each step and ends each token
  with (sum_t s_t W^T - z rowsum(W)) x scale per path; the zero-point and scale products (two per output
  and token) are not priced, as the closed form does not price them;
* causal attention reads a real Q (quantized per token and head to `query_bits`, as SpikeLLM does) and K
  and V as spikes: an event of key j reaches every query head sharing its kv head and every query at or
  after j, one AC each; softmax is 3 other ops per score and step, as `cost.analytic` counts it.

Sums are computed densely from the spike counts (the same numbers an event-driven sum gives, in the order
the torch decoder adds them); counts come from the events. A decode step (past_tokens > 0) reads the keys and
values of the phases before from `kv_cache` (their spikes, scales and zero points: each key is quantized once,
per token), a cached key reaching every new query; its trace's `kv_cache` holds them with its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..cost.analytic import SOFTMAX_OPS_PER_SCORE, input_spike_bits, needed_outputs
from ..errors import NeurosimError
from ..gif_quant import Codes, quantize
from ..ir import ELEMENT_OPS, Layer, Network
from . import kernels
from .handoff import INPUT
from .neuron import NeuronArrays
from .trace import LayerTrace, SpikeTrace

DECODER_KINDS = ("elementwise", "causal_attention")
GIF_INPUTS = "gif_inputs"        # metadata: {emitting layer: {"multi": [1/0 per output]}}, the OBS split
SETTINGS = "decoder_engine"      # metadata: what the IR does not say about the trained decoder's arithmetic
DEFAULTS = dict(rmsnorm_eps=1e-6, rope_base=10000.0, query_bits=None)   # frontend.decoder's RMSNorm and rope


def is_decoder(net: Network) -> bool:
    return any(layer.kind in DECODER_KINDS for layer in net.layers)


@dataclass
class Sent:
    """A layer's output sent as GIF spikes: the raster (T, n, m), the codes' scales and zero points per group
    of `group` channels (high: the multi-step path's n + addbit bits, low: the single-step path's n bits)."""

    raster: np.ndarray
    high: Codes
    low: Codes | None
    multi: np.ndarray            # (m,) bool: channels on the multi-step path
    group: int

    def grouped(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1, self.group)

    def values(self) -> np.ndarray:
        """The real values the spikes carry, (n, m): (sum_t s_t - z) x scale, or the n-bit code's value."""
        summed, multi = self.grouped(self.raster.sum(0, dtype=np.float32)), self.grouped(self.multi[None])
        out = np.where(multi, (summed - self.high.zero_point) * self.high.scale, np.float32(0))
        if self.low is not None:   # a single-step channel's one spike is its n-bit code
            out = np.where(multi, out, (summed - self.low.zero_point) * self.low.scale)
        return out.reshape(self.raster.shape[1:])


@dataclass
class Encoding:
    """How a layer's output is sent: n-bit spikes over T = 2^addbit steps, quantized per `group` channels."""

    n_bits: int
    addbit: int
    group: int
    multi: np.ndarray


def encoding(net: Network, layer: Layer) -> Encoding:
    """The GIF input a layer's neuron stands for, read from its neuron, timesteps, consumers and metadata."""
    where, nr, m = f"layer '{layer.name}'", layer.neuron, layer.out_features
    bits, addbit = math.log2(nr.levels + 1), math.log2(layer.timesteps)
    scalar = all(np.ndim(getattr(nr, f)) == 0 for f in ("vth", "leak"))
    if not (scalar and nr.vth == 1 and nr.leak == 1 and nr.reset == "subtract" and nr.fire == ">=" and
            not nr.synaptic and bits.is_integer() and 2 <= bits <= 8):
        raise NeurosimError(where, "neuron", "a decoder layer's neuron must be SpikeLLM's GIF (vth 1, leak 1, "
                            "subtract reset, fire '>=', levels 2^n - 1 with 2 <= n <= 8)",
                            "use frontend.spikellm.gif_neuron(n_bits), as decoder cards do")
    if not addbit.is_integer():
        raise NeurosimError(where, "timesteps", f"{layer.timesteps} steps; SpikeLLM's GIF runs 2^addbit",
                            "give timesteps 1, 2, 4, ...")
    readers = net.consumers(layer.name)
    group = m
    if any(c.kind == "causal_attention" for c in readers):
        if len(readers) > 1 or readers[0].inputs.index(layer.name) == 0:
            raise NeurosimError(where, "neuron", "spikes into an attention are its K or V, read by it alone",
                                "give Q no neuron, and K and V layers one consumer each")
        group = readers[0].spec.head_dim          # K and V are quantized per token and head
    multi = net.metadata.get(GIF_INPUTS, {}).get(layer.name, {}).get("multi")
    multi = np.ones(m, bool) if multi is None else np.asarray(multi, bool)
    if multi.shape != (m,):
        raise NeurosimError(where, f"metadata.{GIF_INPUTS}.multi", f"{multi.size} values for {m} outputs",
                            "give one 0/1 per output (1: multi-step path)")
    return Encoding(int(bits), int(addbit), group, multi)


def send(layer: Layer, y: np.ndarray, enc: Encoding, lt: LayerTrace) -> Sent:
    """Quantize y (n, m) and emit it through the layer's GIF neuron over its steps; count into `lt`."""
    n, m = y.shape
    grouped, multi = y.reshape(n, m // enc.group, enc.group), enc.multi.reshape(1, -1, enc.group)
    high = quantize(grouped, enc.n_bits + enc.addbit)
    low = None if multi.all() else quantize(grouped, enc.n_bits)
    impulse = high.ints * multi if low is None else np.where(multi, high.ints, low.ints)
    impulse = np.ascontiguousarray(impulse.reshape(n, m), dtype=np.float32)
    nr, live = NeuronArrays(layer, np.arange(m), n), np.arange(m)
    u, spk = np.zeros((n, m), np.float32), np.zeros((n, m), np.uint8)
    totals, values, counts = np.zeros((n, m), np.int32), np.zeros((n, m), np.int32), np.zeros(n, np.int64)
    ones, zeros, silent = np.ones(m, np.float32), np.zeros(m, np.float32), np.zeros((n, m), np.float32)
    raster = np.zeros((layer.timesteps, n, m), np.uint8)
    for t in range(layer.timesteps):
        cur = impulse if t == 0 else silent                   # one impulse, then nothing: the GIF's T steps
        lt.spikes_per_step[t] = kernels.fire(n * m, cur, ones, zeros, u, spk, nr.syn, nr.leak, nr.vth, nr.decay,
                                             nr.v_reset, nr.flags, nr.levels, totals, values, counts)
        raster[t] = spk
    lt.neuron_totals, lt.value_totals = totals, values.astype(np.int64)
    lt.neuron_updates += n * layer.timesteps * len(live)
    return Sent(raster, high, low, enc.multi, enc.group)


def _trace(net: Network, layer: Layer, record: bool) -> LayerTrace:
    """An empty trace of one decoder layer, filled as it runs."""
    T, m = layer.timesteps, layer.out_features
    live = needed_outputs(net, layer)
    if not live.all():
        raise NeurosimError(f"layer '{layer.name}'", "neuron_mask", "the engine runs decoder layers unmasked",
                            "drop the mask (pruned decoder rows are not supported yet)")
    spiking = layer.spiking
    return LayerTrace(
        name=layer.name, kind=layer.kind, timesteps=T, spiking=spiking,
        compute="ac" if layer.kind == "causal_attention" else net.compute_of(layer), live=live,
        spike_bits=layer.neuron.spike_bits if spiking else 32, input_spike_bits=input_spike_bits(net, layer),
        acs_per_step=np.zeros(T, np.int64), effective_acs_per_step=np.zeros(T, np.int64), recurrent_acs=0,
        macs=0, other_ops=0, neuron_updates=0, input_events={s: 0 for s in layer.inputs or [INPUT]},
        spikes_per_step=np.zeros(T, np.int64) if spiking else None,
        raster=np.zeros((T, layer.seq_len, m), np.uint8) if record and spiking else None)


class _Phase:
    """One decoder phase, run layer by layer: each layer's output (a real array, or what it `Sent`)."""

    def __init__(self, net: Network, current: np.ndarray, record: bool, cache: dict | None = None):
        self.net, self.record, self.current, self.cache = net, record, current, cache or {}
        self.kv: dict[str, Sent | np.ndarray] = {}     # every attention's K and V: the cache after this phase
        self.settings = {**DEFAULTS, **net.metadata.get(SETTINGS, {})}
        self.out: dict[str, np.ndarray | Sent] = {}
        self.traces: dict[str, LayerTrace] = {}

    def real(self, layer: Layer, src: str) -> np.ndarray:
        x = self.out[src]
        if isinstance(x, Sent):
            raise NeurosimError(f"layer '{layer.name}'", "inputs", f"reads the spikes of '{src}' as a "
                                f"{layer.kind} layer; decoder spikes feed linear layers and attention's K and V",
                                "give the source no neuron, or read it through a linear layer")
        return x

    def run(self) -> None:
        for layer in self.net.layers:
            lt = self.traces[layer.name] = _trace(self.net, layer, self.record)
            step = {"linear": self.linear, "elementwise": self.elementwise,
                    "causal_attention": self.attention}.get(layer.kind)
            if step is None:
                raise NeurosimError(f"layer '{layer.name}'", "kind", f"a {layer.kind} layer in a decoder phase",
                                    "the engine runs decoders of linear, elementwise and causal_attention layers")
            y = step(layer, lt)
            if layer.spiking:
                sent = self.out[layer.name] = send(layer, y, encoding(self.net, layer), lt)
                if lt.raster is not None:
                    lt.raster[:] = sent.raster
            else:
                self.out[layer.name] = y

    def linear(self, layer: Layer, lt: LayerTrace) -> np.ndarray:
        if layer.weights is None:
            raise NeurosimError(f"layer '{layer.name}'", "weights", "the spike engine needs weights",
                                "build the phase with frontend.decoder_ir.engine_network (a trained decoder)")
        src, w = layer.inputs[0], np.asarray(layer.weights, np.float32)
        x = self.out[src]
        if isinstance(x, Sent):
            y = self._from_spikes(x, w, src, lt)
        else:
            y = x @ w.T
            lt.macs += x.shape[0] * w.shape[1] * w.shape[0]
        return y if layer.bias is None else y + np.asarray(layer.bias, np.float32)

    def _from_spikes(self, sent: Sent, w: np.ndarray, src: str, lt: LayerTrace) -> np.ndarray:
        """(sum_t s_t W^T - z rowsum(W)) x scale on each path; one AC per event and output at each step."""
        if sent.group != w.shape[1]:
            raise NeurosimError(f"layer '{lt.name}'", "inputs", "reads per-head spikes (K or V) as a linear input",
                                "feed linear layers per-token GIF inputs")
        nonzero = np.count_nonzero(w, axis=0)             # per input: outputs its weight reaches nonzero
        for t, spikes in enumerate(sent.raster):
            per_input = np.count_nonzero(spikes, axis=0)   # events per input channel at step t
            lt.input_events[src] += int(per_input.sum())
            lt.acs_per_step[t] = per_input.sum() * w.shape[0]
            lt.effective_acs_per_step[t] = per_input @ nonzero
        summed, multi = sent.raster.sum(0, dtype=np.float32), sent.multi
        y = ((summed * multi) @ w.T - sent.high.zero_point[..., 0] * (w * multi).sum(1)) * sent.high.scale[..., 0]
        if sent.low is not None:
            y = y + ((summed * ~multi) @ w.T - sent.low.zero_point[..., 0] * (w * ~multi).sum(1)) \
                * sent.low.scale[..., 0]
        return y

    def elementwise(self, layer: Layer, lt: LayerTrace) -> np.ndarray:
        op, s = layer.spec.op, self.settings
        xs = [self.real(layer, src) for src in layer.inputs]
        if op == "input":
            y = self.current
        elif op == "rmsnorm":       # x / rms(x) x gain, in frontend.decoder.RMSNorm's order
            x = xs[0]
            r = np.float32(1) / np.sqrt(np.mean(x * x, -1, keepdims=True, dtype=np.float32) +
                                        np.float32(s["rmsnorm_eps"]))
            y = x * r * np.asarray(layer.weights, np.float32)
        elif op == "rotary":
            y = self._rotary(layer, xs[0])
        elif op == "silu_product":
            gate, up = xs
            y = gate / (np.float32(1) + np.exp(-gate)) * up
        elif op == "add":
            y = xs[0] + xs[1]
        elif op == "last_token":
            y = xs[0][layer.spec.tokens_in // layer.seq_len - 1::layer.spec.tokens_in // layer.seq_len]
        else:                       # encode: the input, on to this layer's own GIF neurons
            y = xs[0]
        lt.other_ops += layer.seq_len * layer.out_features * ELEMENT_OPS[op]   # real inputs: once per token
        return np.ascontiguousarray(y, dtype=np.float32)

    def _reader(self, layer: Layer) -> Layer:
        readers = [c for c in self.net.consumers(layer.name) if c.kind == "causal_attention"]
        if len(readers) != 1:
            raise NeurosimError(f"layer '{layer.name}'", "inputs", "a rotary layer must feed one causal attention "
                                "(its head size and sequences)", "feed its output to Q or K of an attention")
        return readers[0]

    def _rotary(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        """LLaMA's rotate-half rotary embedding per head, at each token's position in its sequence."""
        spec = self._reader(layer).spec
        n, dim = x.shape[0], spec.head_dim
        per_seq = n // spec.sequences
        position = (np.arange(n) % per_seq + spec.past_tokens).astype(np.float32)
        freq = np.float32(self.settings["rope_base"]) ** (-np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))
        angle = position[:, None] * freq[None]
        cos, sin = np.concatenate([np.cos(angle)] * 2, -1), np.concatenate([np.sin(angle)] * 2, -1)
        heads = x.reshape(n, -1, dim)
        half = dim // 2
        rotated = np.concatenate([-heads[..., half:], heads[..., :half]], -1)
        return (heads * cos[:, None] + rotated * sin[:, None]).reshape(n, -1)

    def attention(self, layer: Layer, lt: LayerTrace) -> np.ndarray:
        spec, n = layer.spec, layer.seq_len
        H, KV, hd, per_seq = spec.heads, spec.kv_heads, spec.head_dim, n // spec.sequences
        past = self._past(layer)
        q = self.real(layer, layer.inputs[0]).reshape(n, H, hd)
        if self.settings["query_bits"]:               # SpikeLLM quantizes Q per token and head (a real operand)
            q = quantize(q, int(self.settings["query_bits"])).dequantize()
        ops = [self._operand(layer, lt, src, per_seq, past, H // KV) for src in layer.inputs[1:]]
        k, v = (x.reshape(-1, KV, hd).repeat(H // KV, axis=1) for x in ops)
        spiking = [src for src in layer.inputs[1:] if isinstance(self.out[src], Sent)]
        steps = layer.timesteps if spiking else 1
        pairs = spec.score_pairs(layer)
        lt.macs += round(H * pairs * hd * steps * (2 - len(spiking)))   # a real K or V: MACs, as cost.analytic
        lt.other_ops += round(H * pairs * steps * SOFTMAX_OPS_PER_SCORE)
        lt.effective_acs_per_step[:] = lt.acs_per_step
        out = np.empty((n, H, hd), np.float32)
        keys = past + per_seq                         # per sequence: the cached keys, then the new ones
        causal = np.arange(keys)[None] <= past + np.arange(per_seq)[:, None]
        root = np.float32(math.sqrt(hd))
        for s in range(spec.sequences):
            rows, cols = slice(s * per_seq, (s + 1) * per_seq), slice(s * keys, (s + 1) * keys)
            qs, ks, vs = q[rows].transpose(1, 0, 2), k[cols].transpose(1, 0, 2), v[cols].transpose(1, 0, 2)
            scores = np.where(causal, qs @ ks.transpose(0, 2, 1) / root, np.float32(-np.inf))
            p = np.exp(scores - scores.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            out[rows] = (p @ vs).transpose(1, 0, 2)
        return out.reshape(n, H * hd)

    def _past(self, layer: Layer) -> int:
        """Keys cached per sequence; a decode step needs them (`kv_cache` of the phase before)."""
        spec, past = layer.spec, layer.spec.past_tokens
        missing = [src for src in layer.inputs[1:] if src not in self.cache]
        if past and (past != int(past) or missing):
            raise NeurosimError(f"layer '{layer.name}'", "spec.past_tokens", f"{past} cached keys per sequence, "
                                f"and {'a fraction' if past != int(past) else f'no cache of {missing[0]!r}'}",
                                "run the phase before and pass its trace's kv_cache (run(..., kv_cache=...)), "
                                "with a whole number of past tokens")
        for src in layer.inputs[1:] if past else ():
            cached = self.cache[src]
            rows = (cached.raster.shape[1] if isinstance(cached, Sent) else cached.shape[0])
            if rows != spec.sequences * past:
                raise NeurosimError(f"layer '{layer.name}'", "kv_cache", f"holds {rows} keys of '{src}', expected "
                                    f"{spec.sequences} x {int(past)}", "pass the kv_cache of the phase just before")
        return int(past)

    def _operand(self, layer: Layer, lt: LayerTrace, src: str, per_seq: int, past: int, share: int) -> np.ndarray:
        """K or V of every key, cached and new, as values; where it arrives as spikes, count its events: key j
        of a sequence reaches `share` query heads and every query at or after it (a cached key: every query)."""
        x = joined(self.cache.get(src) if past else None, self.out[src], layer.spec.sequences)
        self.kv[src] = x
        if not isinstance(x, Sent):
            return x
        keys = past + per_seq
        position = np.arange(x.raster.shape[1]) % keys
        reach = (per_seq - np.maximum(position - past, 0)) * share
        events = np.count_nonzero(x.raster.reshape(x.raster.shape[0], len(position), -1), axis=2)   # (T, keys)
        acs = events @ reach
        lt.acs_per_step += acs
        lt.acs_by_source[src] = int(acs.sum())
        lt.input_events[src] += int(events.sum())
        return x.values()


def joined(past: Sent | np.ndarray | None, new: Sent | np.ndarray, sequences: int) -> Sent | np.ndarray:
    """A KV cache extended by a phase's new keys, sequence by sequence (rows are sequence-major)."""
    if past is None:
        return new

    def cat(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        shape = lambda x: x.shape[:axis] + (sequences, -1) + x.shape[axis + 1:]   # noqa: E731
        both = np.concatenate([a.reshape(shape(a)), b.reshape(shape(b))], axis=axis + 1)
        return both.reshape(a.shape[:axis] + (-1,) + a.shape[axis + 1:])
    if not isinstance(new, Sent):
        return cat(past, new, 0)
    codes = lambda a, b: None if a is None else Codes(*(cat(x, y, 0) for x, y in (   # noqa: E731
        (a.ints, b.ints), (a.scale, b.scale), (a.zero_point, b.zero_point))))
    return Sent(cat(past.raster, new.raster, 1), codes(past.high, new.high), codes(past.low, new.low), new.multi,
                new.group)


def run_decoder(net: Network, inputs: np.ndarray | None, handoff: str, seed: int, record_rasters: bool,
                kv_cache: dict | None = None) -> SpikeTrace:
    """spikes.run on a decoder phase: `inputs` is its input current (seq_len, input_size), the embedding rows;
    a decode step (past_tokens > 0) also needs `kv_cache`, the trace.kv_cache of the phase before."""
    where = f"network '{net.name}'"
    if handoff == "stochastic":
        raise NeurosimError(where, "handoff", "a decoder phase sends its GIF trains as they are",
                            "use the lockstep or history handoff (the same for a decoder phase)")
    n = net.layers[0].seq_len
    x = None if inputs is None else np.asarray(inputs)
    if x is None or x.shape != (n, net.input_size) or not np.isfinite(x).all():
        raise NeurosimError(where, "inputs", f"a decoder phase needs its input, ({n}, {net.input_size}) finite "
                            f"values, got {None if x is None else x.shape}",
                            "give the embedding rows of its tokens (frontend.decoder_ir.engine_network returns them)")
    phase = _Phase(net, np.ascontiguousarray(x, dtype=np.float32), record_rasters, kv_cache)
    phase.run()
    note = ("decoder: each GIF input's zero-point and scale products (two per output and token) are computed "
            "and not priced, as in the closed form")
    return SpikeTrace(network=net.name, handoff=handoff, seed=seed, seq_len=n, input_size=net.input_size,
                      layers=phase.traces, input_events_per_step=np.zeros(0, np.int64), input_kind="current",
                      notes=[note], output=phase.out[net.layers[-1].name], kv_cache=phase.kv)
