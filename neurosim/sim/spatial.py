"""The spatially unrolled mapping: every layer on its own cores, layers pipelined over timesteps.

The same dataflow as `cost.estimate.estimate_spatial`, one event-level task
per (layer tile, timestep):

* every layer runs the network's largest T; each layer gets the cores that
  `cost.estimate.spatial_cores` gives it (its weights, membranes and a
  double-buffered output step, plus a share of the spare cores by work);
* a layer's step t takes (ACs + neuron updates) / (cores x ACs per cycle) +
  (MACs + other ops) / (cores x MACs per cycle) cycles;
* step t of a layer integrates step t of each source (the spike engine's
  lockstep handoff; in hardware time a layer at depth d runs step t at pipeline
  slot t + d, i.e. layer l+1's step t+1 follows layer l's step t). It starts
  when every source's step-t output has arrived over the network, and when
  its own output buffer has room for one step (back-pressure);
* the output buffer holds `buffer_steps` steps of the layer's output (dense:
  tokens x live outputs x bits per value). A step's spikes are emitted at
  its end (the fire phase, after all its accumulations): the layer takes a
  slot then, waiting while the buffer is full (back-pressure; its membranes
  hold the step meanwhile), and the slot is freed when every consumer has
  finished that step. Two slots (the default) let a layer compute step t+1
  while step t crosses the network and is consumed;
* after a step, its output crosses the on-chip network: a spike is multicast
  as one packet to every core of each consuming layer (one event-queue write
  and read at each), a real-valued output as dense values to each consumer.
  The network is one FIFO server at the mesh's aggregate bandwidth, so
  transfers of all layers contend for it.

Where it differs from the closed form, by design: the closed form charges
the pipeline fill as (depth - 1) x the slowest stage, while the simulator
follows the real stage times along each path (plus the network transfer on
each hop); uneven per-step work from a trace, back-pressure from small
buffers and network contention show up here and not there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..cost.energy import EventCounts
from ..cost.estimate import _depth, _noc_bits_per_cycle, _state_bytes, _step_bits, _weight_bytes, \
    infeasible, spatial_cores
from ..errors import NeurosimError
from ..report import Report
from .components import Buffer, Channel, Environment, Level, Tile
from .engine import Context, core_events, finish, run, safe_div


def _deliver(env: Environment, event, delay: float) -> None:
    """Trigger `event` `delay` cycles from now (what simpy's Timeout does for a fresh event)."""
    event._ok, event._value = True, None
    env.schedule(event, delay=delay)


class _Stage:
    """One layer's tile, its output buffer and its output's deliveries."""

    def __init__(self, ctx: Context, layer, cores: int, dest_cores: int, n_cons: int, level: Level):
        arch, w = ctx.arch, ctx.works[layer.name]
        self.layer, self.name, self.n_cons = layer, layer.name, n_cons
        self.tile = Tile(f"tile {layer.name}", int(cores))
        ac_rate = cores * arch.cores.acs_per_cycle
        mac_rate = cores * arch.cores.macs_per_cycle
        ps = w.per_step
        self.cycles = ((ps["acs"] + ps["neuron_updates"]) / ac_rate + (ps["macs"] + ps["other_ops"]) / mac_rate)
        self.cycles = self.cycles.astype(float).tolist()
        step_bits = _step_bits(ctx.net, layer, arch)
        self.step_bytes = step_bits / 8
        if layer.spiking:
            self.noc_bits = (ps["spikes_out"] * (arch.interconnect.spike_packet_bits * dest_cores)).astype(float)
        else:
            self.noc_bits = np.full(len(self.cycles), step_bits * max(1, n_cons), dtype=float)
        self.noc_bits = self.noc_bits.tolist()
        self.buf = Buffer(ctx.env, f"{layer.name}.out", ctx.opts.buffer_steps * self.step_bytes, ctx.rec, level)
        T = len(self.cycles)
        self.delivered = [ctx.env.event() for _ in range(T)] if n_cons else []
        self.released = [0] * T
        self.sources: list[_Stage] = []

    def release(self, t: int) -> None:
        self.released[t] += 1
        if self.released[t] == self.n_cons:
            self.buf.get(self.step_bytes)


def _tile(ctx: Context, st: _Stage, noc: Channel, queue_bits: list):
    env, rec, tile, name = ctx.env, ctx.rec, st.tile, st.name
    for t, cycles in enumerate(st.cycles):
        for src in st.sources:
            arrived = src.delivered[t]
            if not arrived.processed:
                tile.waiting = (f"layer '{src.name}'", f"step {t} of layer '{src.name}' to arrive",
                                f"check why layer '{src.name}' is blocked")
                t0 = env.now
                yield arrived
                if t:
                    tile.idle_input += env.now - t0
        tile.waiting = None
        start = env.now
        if t == 0:
            tile.start = start
        if cycles > 0:
            yield env.timeout(cycles)
        tile.busy += cycles
        rec.add(tile.name, start, env.now, name, t, "compute")
        for src in st.sources:        # done reading their step t
            src.release(t)
        if not st.buf.try_put(st.step_bytes):     # the fire phase emits step t into the output buffer
            buf = st.buf
            tile.waiting = (f"buffer '{buf.name}'", f"room for its step {t} output ({st.step_bytes:.6g} B) in "
                            f"buffer '{buf.name}' (holds {buf.level:.6g} of {buf.capacity:.6g} B)",
                            "give every inter-layer buffer room for at least one step of its layer's output")
            t0 = env.now
            yield buf.put(st.step_bytes)
            tile.stall_output += env.now - t0
            rec.add(tile.name, t0, env.now, name, t, "stall")
            tile.waiting = None
        tile.steps_done = t + 1
        bits = st.noc_bits[t]
        if st.n_cons:
            end = noc.book(bits, layer=name, step=t)
            if st.layer.spiking:
                queue_bits[0] += bits
            _deliver(env, st.delivered[t], end - env.now)
        else:
            if bits:                       # a real-valued network output leaves over the network
                noc.book(bits, layer=name, step=t)
            st.buf.get(st.step_bytes)
    tile.end = env.now
    tile.done = True


def simulate_spatial(ctx: Context) -> Report:
    net, arch, opts = ctx.net, ctx.arch, ctx.opts
    T = net.max_timesteps
    cores, why_not = spatial_cores(net, ctx.counts, arch)
    if cores is None:
        return infeasible(net, arch, why_not, engine="simulator")
    if not opts.buffer_steps >= 1:
        raise NeurosimError(ctx.where, "buffer_steps", f"inter-layer buffers of {opts.buffer_steps} steps cannot "
                            "hold one timestep of their layer's output, so no layer could ever start",
                            "use buffer_steps >= 1 (2 = double-buffered, the default)")
    index = {l.name: i for i, l in enumerate(net.layers)}
    consumers = {l.name: net.consumers(l.name) for l in net.layers}
    noc_rate = _noc_bits_per_cycle(arch) / arch.average_hops()

    # A generous bound on simulated time: everything done one after another, four times over.
    works = ctx.works
    serial = 0.0
    for layer, c in zip(net.layers, cores):
        w = works[layer.name]
        serial += ((w.steps("acs", 0, T) + w.steps("neuron_updates", 0, T)) / (c * arch.cores.acs_per_cycle)
                   + (w.steps("macs", 0, T) + w.steps("other_ops", 0, T)) / (c * arch.cores.macs_per_cycle))
        serial += (w.steps("spikes_out", 0, T) * arch.interconnect.spike_packet_bits * arch.cores.count
                   + _step_bits(net, layer, arch) * T * max(1, len(consumers[layer.name]))) / noc_rate
    ctx.env = env = Environment(limit=opts.limit(serial))
    noc = Channel(env, "interconnect", noc_rate, ctx.rec, directional=False)
    buffers = Level()
    stages = [_Stage(ctx, layer, cores[i], sum(cores[index[c.name]] for c in consumers[layer.name]),
                     len(consumers[layer.name]), buffers) for i, layer in enumerate(net.layers)]
    for st in stages:
        st.sources = [stages[index[s]] for s in dict.fromkeys(st.layer.inputs)]
    queue_bits = [0.0]
    procs = [env.process(_tile(ctx, st, noc, queue_bits)) for st in stages]
    run(ctx, procs, [st.tile for st in stages])
    for st in stages:
        st.buf.close()
    cycles = max(max(st.tile.end for st in stages), noc.free_at)
    ctx.stats.tasks = T * len(stages)

    ev = EventCounts()
    done = {st.name: (1, 0, 1) for st in stages}
    counted = core_events(ctx, ev, net, done)
    sram = arch.core_array_bytes
    ev.add_sram(sram, read_bits=queue_bits[0], write_bits=queue_bits[0])   # event queues at the destinations
    ev.bit_mm = (noc.read_bits + noc.write_bits) * arch.average_hops() * arch.interconnect.hop_mm

    weights = sum(_weight_bytes(net, l) for l in net.layers)
    membrane = sum(_state_bytes(net, l, arch) for l in net.layers)
    memory = dict(weights=weights, membrane=membrane, spike_buffers=buffers.peak,
                  peak_on_chip=weights + membrane + buffers.peak)
    rows = []
    for st in stages:
        t = st.tile
        rows.append(dict(layer=st.name, kind=st.layer.kind, timesteps=T, **counted[st.name],
                         input_spike_bits=works[st.name].input_spike_bits, cores=t.cores,
                         start_cycle=t.start, end_cycle=t.end, cycles=t.end - t.start, busy_cycles=t.busy,
                         stall_output_cycles=t.stall_output, idle_input_cycles=t.idle_input,
                         buffer_bytes=st.buf.capacity, peak_buffer_bytes=st.buf.peak,
                         utilization=safe_div(t.busy, cycles)))
    per_layer = pd.DataFrame(rows)
    utilization = dict(cores=safe_div(sum(st.tile.busy * st.tile.cores for st in stages), arch.cores.count * cycles),
                       interconnect=safe_div(noc.busy, cycles), dram=0.0, global_buffer=0.0)
    slowest = max(stages, key=lambda s: s.tile.busy)
    notes = [f"all layers run T = {T}; pipeline depth {_depth(net)}; {int(cores.sum())} of {arch.cores.count} "
             f"cores used; slowest stage '{slowest.name}' ({slowest.tile.busy / T:.6g} cycles per step)",
             f"simulated: one task per (layer, timestep), {ctx.stats.tasks} tasks; inter-layer buffers of "
             f"{opts.buffer_steps:g} steps"]
    stalled = sum(st.tile.stall_output for st in stages)
    if stalled:
        notes.append(f"back-pressure: layers waited {stalled:.6g} cycles in total for room in full output buffers "
                     f"(held back by slower consumers; the slowest stage is '{slowest.name}')")
    if noc.queued > 0.01 * cycles:
        notes.append(f"on-chip network contention: transfers queued {noc.queued:.6g} cycles in total")
    return finish(ctx, net, ev, cycles, memory, 0.0, per_layer, [st.tile for st in stages], utilization, notes)
