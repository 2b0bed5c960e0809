"""The spike engine: run an IR `Network` with weights on an input, count exactly what it does.

`run(net, inputs, handoff=..., seed=...)` returns a `SpikeTrace`. Semantics
(docs/design.md): u_t = leak*u_{t-1} + I_t - s_{t-1}*vth, spike when u >= vth,
I_t = W s_t(source) + b (see handoff.py for which source step a layer reads).

What is counted, by the rules of cost.analytic.layer_counts:

* a linear layer the cost model reads as "ac": one AC per (input event, live
  output): events x live fan-out, per step. A k-level input event is one
  event (its bits are recorded; the energy model prices them).
* a linear layer read as "mac" (the Query): tokens x live inputs x live
  outputs MACs per step, dense, although the engine computes it from events.
* attention: Q.K^T of live heads as MACs (tokens^2 x head_dim per head and
  step), softmax as 3 other ops per score, and the weighted sum by V's
  events: one AC per (V event, query token).
* LayerNorm: 6 other ops per live output and token per step. A layer whose
  `norm` has a `residual` adds that layer's same-step output (spikes, or the
  input current) to W s + b, and one with LayerNorm parameters normalizes
  the sum over its live outputs per token (x - mean) / sqrt(var + eps) *
  norm.weight + norm.bias, as a post-LN transformer block does; the neuron
  integrates the result. Residual adds are not ACs (the cost model's
  LayerNorm ops cover the element work); a LayerNorm without parameters
  (`Norm()`) is counted but not normalized.

Live outputs are `cost.analytic.needed_outputs`: unmasked, and (for Q, K, V)
in a live head. Outputs that are not live are not computed and never spike.
Linear, conv2d and pool2d layers read one source (or the network input). Low-bit layers
(`weight_bits` <= 8) run on integer codes x a scale per output (lowbit.py; 1-bit layers on binary
spikes by popcounts, kernels_bits.py). Lockstep and history run layer-major in blocks of steps
(`_run_stepwise`, `LayerState.run_block`); the stochastic handoff layer after layer, step by step. `run(..., device=...)`
runs the same network on torch, multi-step (torch_engine.py). A decoder phase (elementwise and causal
attention layers, SpikeLLM's GIF inputs) runs layer by layer in decoder.py.
"""

from __future__ import annotations

import math

import numpy as np

from ..cost.analytic import LAYERNORM_OPS_PER_ELEMENT, SOFTMAX_OPS_PER_SCORE, input_spike_bits, live_inputs, \
    needed_outputs
from ..errors import NeurosimError
from ..ir import Layer, Network
from . import decoder, kernels, kernels_bits, lowbit
from .handoff import HANDOFFS, INPUT, NetworkInput, regenerate
from .neuron import NeuronArrays
from .windows import Windows
from .trace import LayerTrace, SpikeTrace

WINDOW_KINDS = ("conv2d", "pool2d")


class _Scratch:
    """Buffers that only live within one layer's step, shared by all layers of a run."""

    def __init__(self):
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        buf = self.buffers.get(key)
        if buf is None or buf.size < size:
            buf = self.buffers[key] = np.zeros(size, np.float32)
        return buf[:size].reshape(shape)


class LayerState:
    """One layer, prepared for the kernels, with its counters."""

    def __init__(self, net: Network, layer: Layer, index: int, steps: int, n: int, record: bool, scratch: _Scratch):
        where = f"layer '{layer.name}'"
        self.layer, self.index, self.steps, self.n = layer, index, steps, n
        self.name, self.kind = layer.name, layer.kind
        main = list(layer.inputs) or [INPUT]
        norm = layer.norm
        self.residual = norm is not None and norm.residual is not None
        self.layernorm = norm is not None and norm.layernorm
        if self.layernorm and norm.statistics != "step":   # the kernels normalise each step by its own statistics
            raise NeurosimError(where, "norm.statistics", f"its LayerNorm normalizes by {norm.statistics!r} "
                                "statistics, and the spike engine applies LayerNorm to each step's input alone",
                                "run it with --engine analytic or sim (their counts price that LayerNorm), or "
                                "in torch (SpikingEncoder's spike mode), or give it per-step ('step') LayerNorm")
        # a residual is read like a source, at the same steps, but added, not accumulated: last in `sources`
        self.sources = main + [norm.residual] if self.residual else main
        self.compute = net.compute_of(layer)
        src = None if main[0] == INPUT else net[main[0]]   # binary spikes in: a 1-bit layer may use popcounts
        self.binary_source = src is not None and src.spiking and src.neuron.levels == 1
        self.live = needed_outputs(net, layer)
        self.live_idx = np.flatnonzero(self.live).astype(np.int64)
        L, m = len(self.live_idx), layer.out_features
        self.notes: list[str] = []
        self.rec_wt, self.recurrent_acs = None, 0   # a recurrent connection (linear layers only)
        if layer.kind in ("linear", *WINDOW_KINDS):
            if len(layer.inputs) > 1:
                raise NeurosimError(where, "inputs", f"reads {len(layer.inputs)} layers; the spike engine "
                                    f"propagates {layer.kind} layers that read one layer (plus a residual)",
                                    "give the layer one input")
            if layer.weights is None and layer.kind != "pool2d":
                raise NeurosimError(where, "weights", "the spike engine needs weights and this layer has none",
                                    "extract a trained model (neurosim.from_torch) or give weights; for a timing "
                                    "run, neurosim.spikes.random_weights(net, seed) fills seeded random ones")
            if layer.kind == "linear":
                self._prepare_weights(layer)
                self._prepare_recurrent(layer)
            else:
                self.windows = Windows(layer, self.live_idx)
                self.scale, self.bias = np.ones(L, np.float32), self.windows.bias(layer)
            if self.compute == "ac" and self.sources[0] != INPUT and not net[self.sources[0]].spiking:
                raise NeurosimError(where, "compute", "'ac' needs spiking inputs, but its input is real-valued",
                                    "set compute to 'mac' or make the input layer spike")
            self.live_in = live_inputs(net, layer)
            self.dense_macs = round(n * layer.spec.connections(layer, self.live_in, L))   # as cost.analytic
        else:  # attention
            q, k, v = (net[s] for s in layer.inputs)
            if not (k.spiking and v.spiking):
                raise NeurosimError(where, "inputs", "the key and value inputs of a spiking attention must spike",
                                    "give the K and V layers a neuron")
            self.heads = np.flatnonzero(layer.spec.live_heads()).astype(np.int64)
            self.head_dim = layer.spec.head_dim
            cols = (self.heads[:, None] * self.head_dim + np.arange(self.head_dim)).ravel()
            self.k_cols = None if len(cols) == k.out_features else cols  # K's columns in live heads
            self.scale, self.bias = np.ones(L, np.float32), np.zeros(L, np.float32)
        self.scratch, self.shape, self.input_current = scratch, (n, L), None
        self.spiking = layer.spiking
        if self.spiking:
            self.neuron = NeuronArrays(layer, self.live_idx, n)
            self.levels = self.neuron.levels
            self.u = np.zeros((n, L), np.float32)
            self.spk = np.zeros((n, L), np.uint8)       # this step's spikes of the live outputs (s_prev)
            self.totals = np.zeros((n, L), np.int32)
            self.values = np.zeros((n, L), np.int32) if self.levels > 1 else self.totals
            # full-width view for consumers; the same array when every output is live
            self.out = self.spk if L == m else np.zeros((n, m), np.uint8)
            self.counts = np.zeros(n, np.int64)           # this step's events per token
            self.spikes_per_step = np.zeros(steps, np.int64)
        else:
            self.out = np.zeros((n, m), np.float32)
            self.out_sum = None  # the stochastic handoff carries a real output's time average
        self.acs_per_step = np.zeros(steps, np.int64)
        self.effective_acs_per_step = np.zeros(steps, np.int64)   # nonzero input x nonzero weight
        self.macs = self.other_ops = self.neuron_updates = 0
        self.input_events = {s: 0 for s in main}
        self.norm = None
        if norm is not None and (norm.weight is not None or norm.bias is not None):
            ones, zeros = np.ones(layer.out_features), np.zeros(layer.out_features)
            w = ones if norm.weight is None else np.asarray(norm.weight)
            b = zeros if norm.bias is None else np.asarray(norm.bias)
            self.norm = (w[self.live_idx].astype(np.float32), b[self.live_idx].astype(np.float32),
                         np.float32(norm.eps))
        # scale 1, bias 0: what is left for the neuron to apply once the residual add and LayerNorm are done
        self.unit = (np.ones(L, np.float32), np.zeros(L, np.float32)) if self.residual or self.norm else None
        self.raster = np.zeros((steps, n, m), np.uint8) if record and self.spiking else None
        # a 1-bit layer on popcounts whose default neuron fires on the raw sums (no residual, no LayerNorm)
        self.fires_with_sums = (self.kind == "linear" and getattr(self, "plus", None) is not None and self.spiking
                                and self.unit is None and self.neuron.flags == 0 and self.levels == 1
                                and n % kernels_bits.ROWS == 0 and L % kernels_bits.FIRE_LANES == 0)
        # fp32 weights or int8 codes summed by events, their default neuron fed each (step, token)'s sums at once
        self.fires_with_events = (self.kind == "linear" and self.spiking and self.unit is None
                                  and getattr(self, "tiles", None) is not None and getattr(self, "packed", None) is None
                                  and self.neuron.flags == 0 and self.levels == 1)
        self.seen = {} if record else None

    def _prepare_recurrent(self, layer: Layer) -> None:
        """W_rec between the live outputs, transposed like `wt`: row = the sending neuron's own last spike."""
        if layer.recurrent is not None:
            w = np.asarray(layer.recurrent.weights)[np.ix_(self.live_idx, self.live_idx)]
            self.rec_wt = np.ascontiguousarray(w.T, dtype=np.float32)
            self.rec_tiles = kernels.tiles_of(self.rec_wt, kernels.TILE_FP32)
            self.rec_nonzero = np.count_nonzero(self.rec_wt, axis=1).astype(np.int64)

    def _recurrent_step(self, t: int) -> None:
        """cur += W_rec s_{t-1}, by the layer's own events of the last step (spk holds them until `fire`)."""
        n, L = self.shape
        ptr, idx, val = kernels.events_csr(self.spk)
        rec = self.scratch.get("recurrent", self.shape)
        kernels.accumulate(len(idx) * L, ptr, idx, val, self.rec_tiles, kernels.input_chunk(self.rec_tiles), rec)
        self.cur += rec
        self.acs_per_step[t] += len(idx) * L
        self.effective_acs_per_step[t] += self.rec_nonzero[idx].sum()
        self.recurrent_acs += len(idx) * L

    def _prepare_weights(self, layer: Layer) -> None:
        """Transposed (in, live outputs), C-contiguous: fp32, or low-bit codes x per-output scale (lowbit.py)."""
        w = np.asarray(layer.weights)
        all_live = len(self.live_idx) == layer.out_features
        wt = w.T if all_live else w.T[:, self.live_idx]
        self.packed = None
        if layer.weight_bits <= lowbit.LOW_BITS:
            low = lowbit.prepared(layer.weights, self.live_idx, layer.weight_bits)
            self.wt, self.scale = low.codes, low.scale
            self.packed = low.packed if lowbit.PACK_SIGNS else None
            self.tiles = self._kept(layer, ("code tiles",), lambda: kernels.tiles_of(low.codes, kernels.TILE_CODES))
            self.nonzero_fan_out = self._kept(layer, ("code fan-out",), lambda: low.nonzero_fan_out)  # effective ACs
            if not low.exact:
                how = "sign(w) x mean|w| per row (the front end's BinaryLinear)" if layer.weight_bits == 1 else \
                    f"the nearest of {2 ** layer.weight_bits - 1} codes x max|w| per row"
                self.notes.append(f"layer '{layer.name}': weight_bits={layer.weight_bits} but the weights are not "
                                  f"+-scale x {layer.weight_bits}-bit codes per row; run as {how}")
        else:
            self.wt = np.ascontiguousarray(wt, dtype=np.float32)  # no copy when stored that way already
            self.scale = np.ones(len(self.live_idx), np.float32)
            self.tiles = self._kept(layer, ("tiles",), lambda: kernels.tiles_of(self.wt, kernels.TILE_FP32))
            self.nonzero_fan_out = self._kept(layer, ("fan-out",),
                                              lambda: np.count_nonzero(wt, axis=1).astype(np.int64))
        b = np.zeros(layer.out_features) if layer.bias is None else np.asarray(layer.bias)
        self.bias = np.ascontiguousarray(b[self.live_idx], dtype=np.float32)
        # no zero weight among the live outputs: every AC is effective, without a gather over the events
        self.dense_fan_out = bool((self.nonzero_fan_out == len(self.live_idx)).all())
        # +-1 weights as bits, for binary input spikes (kernels_bits); the event path counts zero weights
        self.plus = None
        if self.packed is None and layer.weight_bits == 1 and self.dense_fan_out:
            self.plus = self._kept(layer, ("sign bits",), lambda: kernels_bits.packed_signs(self.wt))

    def _kept(self, layer: Layer, key: tuple, make):
        """make(), kept with the IR's weights array while it lives when every output is live (a model
        loaded once and run again), made afresh otherwise (the live outputs depend on the network)."""
        if len(self.live_idx) != layer.out_features:
            return make()
        return lowbit.once_per_array(layer.weights, key + (layer.weight_bits,), make)

    def _accumulate(self, ptr, idx, val) -> None:
        """cur = W^T (events): the kernel for the layer's weights (fp32, int8 codes, packed signs)."""
        work, chunk = len(idx) * self.shape[1], kernels.input_chunk(self.tiles)
        if self.packed is not None:
            kernels.accumulate_packed(work, ptr, idx, val, self.packed, lowbit.SIGN_TABLE, self.cur)
        else:   # fp32 weights or int8 codes
            kernels.accumulate(work, ptr, idx, val, self.tiles, chunk, self.cur)

    # -- one step ---------------------------------------------------------------------
    def step(self, t: int, inputs: list[np.ndarray], events) -> None:
        """Integrate the sources' step-t outputs; `events(i)` gives source i's CSR events."""
        n, L = self.shape
        self.cur = self.scratch.get("cur", self.shape)
        if self.seen is not None:
            for s, x in zip(self.sources, inputs):
                if x.dtype == np.uint8:
                    self.seen.setdefault(s, np.zeros((self.steps,) + x.shape, np.uint8))[t] = x
        if self.kind == "linear":
            x = inputs[0]
            if x.dtype == np.uint8:
                ptr, idx, val = events(0)
                self._accumulate(ptr, idx, val)
                self.input_events[self.sources[0]] += len(idx)
                if self.compute == "ac":
                    self.acs_per_step[t] = len(idx) * L
                    self.effective_acs_per_step[t] = len(idx) * L if self.dense_fan_out else \
                        self.nonzero_fan_out[idx].sum()
                else:   # spikes on a MAC datapath: a dense product every step
                    self.macs += n * self.live_in * L
            elif self.sources[0] == INPUT:  # the input current is the same every step: one product, held
                if self.input_current is None:
                    self.input_current = x @ self.wt.astype(np.float32, copy=False)
                    self.macs += n * self.live_in * L
                self.cur[:] = self.input_current
            else:
                np.matmul(x, self.wt.astype(np.float32, copy=False), out=self.cur)
                if self.compute == "mac":
                    self.macs += n * self.live_in * L
            if self.rec_wt is not None:
                self._recurrent_step(t)
        elif self.kind in WINDOW_KINDS:
            self._window_step(t, inputs[0], events)
        else:
            self._attention_block(t, [x[None] for x in inputs])
        scale, bias = self.scale, self.bias
        if self.unit is not None:
            scale, bias = self._residual_and_norm(inputs[-1] if self.residual else None)
        if self.layernorm:
            self.other_ops += n * L * LAYERNORM_OPS_PER_ELEMENT
        if self.spiking:
            nr = self.neuron
            fired = kernels.fire(n * L, self.cur, scale, bias, self.u, self.spk, nr.syn, nr.leak, nr.vth, nr.decay,
                                 nr.v_reset, nr.flags, self.levels, self.totals, self.values, self.counts)
            if self.out is not self.spk:
                self.out[:, self.live_idx] = self.spk
            self.spikes_per_step[t] = fired
            self.neuron_updates += n * L
            if self.raster is not None:
                self.raster[t] = self.out
        else:
            if len(self.live_idx) == self.out.shape[1]:  # the same float32 ops, without temporaries
                np.multiply(self.cur, scale, out=self.out)
                self.out += bias
            else:
                self.out[:, self.live_idx] = self.cur * scale + bias
            if self.out_sum is not None:
                self.out_sum += self.out

    def _window_step(self, t: int, x: np.ndarray, events) -> None:
        """conv2d / pool2d: input events through the windows (ACs), or a real input densely (MACs)."""
        if x.dtype == np.uint8:
            ev = events(0)
            acs, effective = self.windows.spikes(ev, self.cur)
            self.input_events[self.sources[0]] += len(ev[1])
            if self.compute == "ac":
                self.acs_per_step[t], self.effective_acs_per_step[t] = acs, effective
            else:
                self.macs += self.dense_macs
        elif self.sources[0] == INPUT:  # the input current is the same every step: one product, held
            if self.input_current is None:
                self.windows.dense(x, self.cur)
                self.input_current = self.cur.copy()
                self.macs += self.dense_macs
            self.cur[:] = self.input_current
        else:
            self.windows.dense(x, self.cur)
            self.macs += self.dense_macs

    def _residual_and_norm(self, residual: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """cur <- LN(cur * scale + bias + residual) in place; returns the (scale, bias) left to apply: 1, 0."""
        cur = self.cur
        cur *= self.scale
        cur += self.bias
        if residual is not None:
            cur += residual[:, self.live_idx] if residual.shape[1] != cur.shape[1] else residual
        if self.norm is not None:
            w, b, eps = self.norm
            mean = cur.mean(axis=1, keepdims=True, dtype=np.float32)
            cur -= mean
            var = np.mean(cur * cur, axis=1, keepdims=True, dtype=np.float32)
            cur /= np.sqrt(var + eps)
            cur *= w
            cur += b
        return self.unit

    def _attention_block(self, t0: int, inputs: list[np.ndarray]) -> None:
        """Attention of steps t0, t0 + 1, ... (inputs (steps, n, features)), each step on its own: its softmax
        over its own scores; one kernel call for the block (a (step, head) per work item)."""
        q, k, v = inputs
        a, n, H, hd = len(q), self.n, len(self.heads), self.head_dim
        if H == 0:
            return
        q = np.ascontiguousarray(q, dtype=np.float32)
        v_events = np.zeros((a, H), np.int64)
        kernels.attention(a * H * n * n, q, k, v, self.heads, hd, np.float32(1.0 / math.sqrt(hd)),
                          self.cur.reshape(a, n, -1), v_events)
        cols = self.k_cols
        self.input_events[self.sources[1]] += int(np.count_nonzero(k if cols is None else k[..., cols]))
        per_step = v_events.sum(axis=1)
        self.input_events[self.sources[2]] += int(per_step.sum())
        self.acs_per_step[t0:t0 + a] = self.effective_acs_per_step[t0:t0 + a] = per_step * n  # softmax weights > 0
        self.macs += a * H * n * n * hd
        self.other_ops += a * H * n * n * SOFTMAX_OPS_PER_SCORE

    # -- a block of steps, layer-major ----------------------------------------------------
    def runs_in_blocks(self, inputs: list[np.ndarray]) -> bool:
        """Whether `run_block` takes this layer for inputs of these types: a feed-forward linear layer on
        spikes (its steps' currents do not depend on its own spikes), or an attention; others run step by step."""
        if self.kind == "attention":
            return True
        return self.kind == "linear" and self.rec_wt is None and inputs[0].dtype == np.uint8

    def run_block(self, t0: int, inputs: list[np.ndarray], events, out: np.ndarray, counts: np.ndarray) -> None:
        """Steps t0 .. t0 + a - 1 at once, a = len(inputs[0]): the same result as `step` for each in turn.

        inputs: each source's outputs of those steps (a, n, features); events(i): source i's CSR over its
        a * n (step, token) rows. One accumulation over all rows (a weight row or tile is read once for
        every (step, token) that needs it), then the neuron recurrence over the a steps (`fire_steps`).
        Writes the layer's outputs to out[:a] (a, n, m) and, spiking, its events per token to counts[:a].
        """
        n, L = self.shape
        a = len(inputs[0])
        self.cur = self.scratch.get("cur", (a * n, L))
        if self.seen is not None:
            for src, x in zip(self.sources, inputs):
                if x.dtype == np.uint8:
                    self.seen.setdefault(src, np.zeros((self.steps,) + x.shape[1:], np.uint8))[t0:t0 + a] = x
        all_live = L == out.shape[2]
        spikes = live_out = None
        if self.spiking:
            spikes = out[:a] if all_live else np.zeros((a, n, L), np.uint8)
        else:
            live_out = out[:a] if all_live else self.scratch.get("block out", (a, n, L))
        done = False      # the layer's outputs written already, by the pass that summed its inputs
        if self.kind == "attention":
            self._attention_block(t0, inputs)
        else:
            done = self._linear_block(t0, a, inputs[0], events, spikes, counts[:a],
                                      live_out.reshape(a * n, L) if live_out is not None and self.unit is None
                                      else None)
        scale, bias = self.scale, self.bias
        if self.unit is not None:
            res = inputs[-1].reshape(a * n, -1) if self.residual else None
            scale, bias = self._residual_and_norm(res)
        if self.layernorm:
            self.other_ops += a * n * L * LAYERNORM_OPS_PER_ELEMENT
        if self.spiking:
            nr = self.neuron
            if not done:
                kernels.fire_steps(a * n * L, self.cur.reshape(a, n, L), scale, bias, self.u, self.spk, nr.syn,
                                   nr.leak, nr.vth, nr.decay, nr.v_reset, nr.flags, self.levels, self.totals,
                                   self.values, spikes, counts[:a])
            if not all_live:
                out[:a, :, self.live_idx] = spikes
            self.spikes_per_step[t0:t0 + a] = counts[:a].sum(axis=1)
            self.neuron_updates += a * n * L
            if self.raster is not None:
                self.raster[t0:t0 + a] = out[:a]
        else:
            if not done:
                kernels.affine(a * n * L, self.cur, scale, bias, live_out.reshape(a * n, L))
            if not all_live:
                out[:a, :, self.live_idx] = live_out

    def _linear_block(self, t0: int, a: int, x: np.ndarray, events, spikes, counts, real_out) -> bool:
        """cur (a * n, L) = W^T x over the block's (step, token) rows, x (a, n, in) spikes: by events (CSR
        from `events(0)`), or for +-1 weights on binary spikes by popcounts of bits (kernels_bits);
        counters per step from the rows' event counts. Returns whether the layer's outputs are written too:
        its neurons fired in the pass that summed (`kernels_bits.sign_sums_fire` for popcounts,
        `kernels.accumulate_fire` for events: spikes (a, n, L) and counts (a, n)),
        or, real-valued without residual or LayerNorm, its popcounts x scale + bias written to real_out
        (a * n, L); cur is then left alone."""
        n, L = self.shape
        done = False
        if self.plus is not None and (self.binary_source or x.max(initial=0) <= 1):
            rows = events.packed(0)
            fired = np.empty(a * n, np.int64)
            done = self.fires_with_sums
            if done:
                nr = self.neuron
                kernels_bits.sign_sums_fire(spikes.size * rows.shape[1], rows, self.plus, fired, self.scale,
                                            self.bias, nr.leak, nr.vth, self.u, self.spk, self.totals, spikes, counts)
            elif real_out is not None:
                kernels_bits.sign_sums(rows, self.plus, real_out, fired, self.scale, self.bias)
                done = True
            else:
                kernels_bits.sign_sums(rows, self.plus, self.cur, fired)
            per_step = fired.reshape(a, n).sum(axis=1)
            bounds = np.concatenate(([0], np.cumsum(per_step)))
        else:
            ptr, idx, val = events(0)
            done = self.fires_with_events
            if done:
                nr = self.neuron
                kernels.accumulate_fire(len(idx) * L, ptr, idx, val, self.tiles, kernels.input_chunk(self.tiles),
                                        self.scale, self.bias, nr.leak, nr.vth, self.u, self.spk, self.totals, spikes,
                                        counts)
            else:
                self._accumulate(ptr, idx, val)
            bounds = ptr[::n]                               # the first event of each step
        self.input_events[self.sources[0]] += int(bounds[-1])
        if self.compute == "ac":
            self.acs_per_step[t0:t0 + a] = np.diff(bounds) * L
            if self.dense_fan_out:
                self.effective_acs_per_step[t0:t0 + a] = np.diff(bounds) * L
            else:
                per_input = np.empty((a, x.shape[2]), np.int32)
                kernels.events_per_input(x.size, x, per_input)
                self.effective_acs_per_step[t0:t0 + a] = per_input @ self.nonzero_fan_out
        else:   # spikes on a MAC datapath: a dense product every step
            self.macs += a * n * self.live_in * L
        return done

    def stop(self) -> None:
        """The layer has run all its steps: consumers that run on read silence."""
        self.out[:] = 0
        if self.spiking:
            self.spk[:] = 0
            self.counts[:] = 0

    def trace(self, net: Network) -> LayerTrace:
        layer, m = self.layer, self.layer.out_features
        totals = values = None
        if self.spiking:
            totals = self.totals  # already full width when every output is live
            if len(self.live_idx) < m:
                totals = np.zeros((self.n, m), np.int32)
                totals[:, self.live_idx] = self.totals
            if self.levels > 1:
                values = np.zeros((self.n, m), np.int64)
                values[:, self.live_idx] = self.values
        return LayerTrace(
            name=layer.name, kind=layer.kind, timesteps=self.steps, spiking=self.spiking,
            compute="ac" if layer.kind == "attention" else self.compute, live=self.live,
            spike_bits=layer.neuron.spike_bits if self.spiking else 32,
            input_spike_bits=input_spike_bits(net, layer), acs_per_step=self.acs_per_step,
            effective_acs_per_step=self.effective_acs_per_step, recurrent_acs=self.recurrent_acs,
            macs=self.macs,
            other_ops=self.other_ops, neuron_updates=self.neuron_updates, input_events=dict(self.input_events),
            spikes_per_step=self.spikes_per_step if self.spiking else None, neuron_totals=totals,
            value_totals=values, raster=self.raster, seen=self.seen)


def _csr_cache(arrays: list[np.ndarray]):
    """events(i): CSR of arrays[i], built once however many times it is asked for (stochastic handoff)."""
    cache: dict[int, tuple] = {}

    def events(i: int):
        if i not in cache:
            cache[i] = kernels.events_csr(arrays[i])
        return cache[i]
    return events


def run(net: Network, inputs: np.ndarray | None = None, *, handoff: str = "lockstep", seed: int = 0,
        record_rasters: bool = False, device: str | None = None, kv_cache: dict | None = None) -> SpikeTrace:
    """Propagate `inputs` through `net` and count every spike, AC and MAC.

    inputs: (T, seq_len, input_size) spikes, (seq_len, input_size) firing
    probabilities in [0, 1] (rate-coded with `seed`), or None (Bernoulli at
    net.input_rate). handoff: "lockstep" (spatial dataflow, every layer runs
    the largest T), "history" (sequential carrying spikes, own t^l) or
    "stochastic" (sequential carrying rates, own t^l, Bernoulli regeneration
    with `seed`). Same network, input and seed -> the same trace. device: None runs
    this (Numba, CPU) engine; a torch device ("cuda", "cuda:1", "cpu") runs the same
    network multi-step on torch (torch_engine.py), with the same counts. kv_cache: a decoder's decode
    step reads the keys and values of the phases before (their trace.kv_cache).
    """
    if handoff not in HANDOFFS:
        raise NeurosimError("spikes.run", "handoff", f"unknown handoff {handoff!r}", f"use one of {', '.join(HANDOFFS)}")
    if decoder.is_decoder(net):          # SpikeLLM-style decoder phase: layer by layer (decoder.py)
        if device is not None:
            raise NeurosimError("spikes.run", "device", "decoder phases run on the CPU engine", "drop device")
        kernels.announce_compiling()
        return decoder.run_decoder(net, inputs, handoff, seed, record_rasters, kv_cache)
    if device is not None:
        from .torch_engine import check_device
        check_device(net, handoff, device)
    kernels.announce_compiling()   # NetworkInput draws through the kernels on either device
    lens = {layer.seq_len for layer in net.layers}
    if len(lens) != 1:
        raise NeurosimError(f"network '{net.name}'", "seq_len", f"layers use different sequence lengths {sorted(lens)}",
                            "run one sequence length through the whole network")
    n = lens.pop()
    T = net.max_timesteps
    scratch = _Scratch()
    states = [LayerState(net, layer, i, T if handoff == "lockstep" else layer.timesteps, n, record_rasters, scratch)
              for i, layer in enumerate(net.layers)]
    inp = NetworkInput(net, inputs, n, seed)
    first = [s for s in states if INPUT in s.sources]
    for s in first:
        inp.require(s.steps, s.name)
    in_steps = max((s.steps for s in first), default=0)
    input_events = np.zeros(in_steps, np.int64)
    input_raster = np.zeros((in_steps, n, net.input_size), np.uint8) if record_rasters and inp.current is None \
        else None

    def take_input(t: int) -> np.ndarray:
        x = inp.step(t)
        if inp.current is None and t < in_steps and input_events[t] == 0:  # count each input step once
            input_events[t] = np.count_nonzero(x)
            if input_raster is not None:
                input_raster[t] = x
        return x

    by_name = {s.name: s for s in states}
    if device is not None:
        from .torch_engine import run_multistep
        input_events, input_raster = run_multistep(states, inp, in_steps, device, record_rasters)
    else:
        dense = sum(float(s.steps) * n * s.layer.in_features * s.layer.out_features for s in states)
        with kernels.serial_if_small(dense):
            if handoff == "stochastic":
                _run_stochastic(states, by_name, take_input, seed)
            else:
                _run_stepwise(states, by_name, take_input)
    notes = [note for s in states for note in s.notes]
    return SpikeTrace(network=net.name, handoff=handoff, seed=seed, seq_len=n, input_size=net.input_size,
                      layers={s.name: s.trace(net) for s in states}, input_events_per_step=input_events,
                      input_kind=inp.kind,
                      input_raster=input_raster, notes=notes)


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel, threaded and serial, on a tiny network."""
    from ..ir import Attention, Neuron

    # 4 tokens: the spiking 1-bit layer s (32 outputs) fires in its popcount pass (kernels_bits.sign_sums_fire),
    # v (8) after its popcounts; the real-valued 1-bit q takes the popcounts x scale + bias; int8 o fires in its
    # code pass, GIF g (levels 3) not; the real-valued fp32 r applies its scale and bias in a pass of their own
    layers = [Layer("q", "linear", 8, 8, neuron=None, compute="mac", seq_len=4, weights=np.ones((8, 8)),
                    weight_bits=1),
              Layer("k", "linear", 8, 8, seq_len=4, weights=np.ones((8, 8))),
              Layer("v", "linear", 8, 8, seq_len=4, weights=np.ones((8, 8)), weight_bits=1),
              Layer("o", "linear", 8, 8, inputs=["v"], seq_len=4, weights=np.ones((8, 8)), weight_bits=8),
              Layer("a", "attention", 8, 8, inputs=["q", "k", "v"], spec=Attention(1, 8), seq_len=4),
              Layer("g", "linear", 8, 8, inputs=["a"], seq_len=4, neuron=Neuron(levels=3), weights=np.ones((8, 8)),
                    weight_bits=8),
              Layer("r", "linear", 8, 8, inputs=["g"], neuron=None, seq_len=4, weights=np.ones((8, 8))),
              Layer("s", "linear", 8, 32, seq_len=4, weights=np.ones((32, 8)), weight_bits=1)]
    net = Network("warm-up", layers, input_size=8)
    saved = kernels.PARALLEL_WORK
    try:
        for threshold in (saved, 0):  # tiny calls run serial; a threshold of 0 runs them threaded
            kernels.PARALLEL_WORK = threshold
            for handoff in HANDOFFS:
                run(net, handoff=handoff)
    finally:
        kernels.PARALLEL_WORK = saved


# Lockstep / history run layer-major within blocks of this many steps: each layer runs the block's
# steps back to back (feed-forward linear layers and attentions in one kernel call each: `run_block`),
# so its weights are read once for all of the block's (step, token) rows. The result is the same: a
# layer's step t depends only on its own state and its sources' step-t outputs, and sources come first.
# Memory: a block's outputs of every layer (bytes: steps x tokens x width) and one layer's currents.
TIME_BLOCK = 32


def _run_stepwise(states: list[LayerState], by_name: dict[str, LayerState], take_input) -> None:
    """lockstep / history: layer l's step t integrates its sources' step-t outputs, in network order.

    Run in blocks of TIME_BLOCK steps: every layer runs all steps of a block before the next layer; the
    outputs of the block's steps are kept (`hist`) for the consumers.
    """
    T = max(s.steps for s in states)
    K = max(1, min(TIME_BLOCK, T))
    hist = {s.name: np.zeros((K,) + s.out.shape, s.out.dtype) for s in states}
    hist_counts = {s.name: np.zeros((K, s.n), np.int64) for s in states if s.spiking}
    last_reader = {src: i for i, s in enumerate(states) for src in s.sources}
    reads_input = [s for s in states if INPUT in s.sources]
    for t0 in range(0, T, K):
        ts = range(t0, min(t0 + K, T))
        x_in = []
        for t in ts:
            x = take_input(t) if any(t < s.steps for s in reads_input) else None
            x_in.append(x.copy() if x is not None and x.dtype == np.uint8 else x)  # a reused buffer
        if all(x is not None and x.dtype == np.uint8 for x in x_in):
            hist[INPUT] = np.stack(x_in)
        csr: dict[tuple, tuple] = {}

        def events(src: str, b: int, a: int = 1):
            """CSR of src's outputs at block steps b .. b + a - 1 (their (step, token) rows), built once."""
            key = (src, b, a)
            if key not in csr:
                x = hist[src][b:b + a] if src in hist else x_in[b][None]
                counts = hist_counts[src][b:b + a].reshape(-1) if src in hist_counts else None  # from `fire`
                csr[key] = kernels.events_csr(x.reshape(-1, x.shape[-1]), counts)
            return csr[key]

        def packed(src: str, a: int):
            """src's binary outputs of the block's first a steps, packed 64 to a word (kernels_bits), once."""
            key = (src, "bits", a)
            if key not in csr:
                csr[key] = kernels_bits.packed_rows(hist[src][:a].reshape(a * hist[src].shape[1], -1))
            return csr[key]
        for li, s in enumerate(states):
            a = max(0, min(len(ts), s.steps - t0))   # the layer's steps in this block
            out_h, counts_h = hist[s.name], hist_counts.get(s.name)
            blocks = [hist[src][:a] if src in hist else None for src in s.sources]
            if a and all(x is not None for x in blocks) and s.runs_in_blocks(blocks):
                s.run_block(t0, blocks, _BlockEvents(s.sources, a, events, packed), out_h,
                            counts_h if counts_h is not None else np.zeros((a, s.n), np.int64))
            else:
                for b in range(a):
                    arrays = [x_in[b] if src == INPUT else hist[src][b] for src in s.sources]
                    s.step(t0 + b, arrays, lambda i, s=s, b=b: events(s.sources[i], b))
                    out_h[b] = s.out
                    if counts_h is not None:
                        counts_h[b] = s.counts
            if a < len(ts):                          # its last step is behind it: it reads as silence
                s.stop()
                out_h[a:] = 0
                if counts_h is not None:
                    counts_h[a:] = 0
            for key in [k for k in csr if last_reader[k[0]] == li]:  # read by no later layer
                del csr[key]
        hist.pop(INPUT, None)


class _BlockEvents:
    """A layer's view of its sources' block outputs: (i) their CSR events, .packed(i) their bits."""

    def __init__(self, sources: list[str], a: int, events, packed):
        self.sources, self.a, self.events, self.packed_of = sources, a, events, packed

    def __call__(self, i: int):
        return self.events(self.sources[i], 0, self.a)

    def packed(self, i: int):
        return self.packed_of(self.sources[i], self.a)


def _run_stochastic(states: list[LayerState], by_name: dict[str, LayerState], take_input, seed: int) -> None:
    """stochastic: layer after layer, each its own steps, inputs regenerated from the sources' counts."""
    for s in states:
        if not s.spiking:
            s.out_sum = np.zeros(s.out.shape)
        for t in range(s.steps):
            arrays = []
            for src in s.sources:
                if src == INPUT:
                    arrays.append(take_input(t))
                    continue
                p = by_name[src]
                if p.spiking:
                    arrays.append(regenerate(p.totals, p.values, p.steps, p.live_idx, p.layer.out_features,
                                             seed, p.index + 1, t))
                else:
                    arrays.append(p.mean)
            s.step(t, arrays, _csr_cache(arrays))
        if not s.spiking:
            s.mean = (s.out_sum / s.steps).astype(np.float32)
