"""The spatially unrolled mapping: every layer on its own cores, layers pipelined over timesteps.

The same dataflow as the closed form's `cost.closed_form.spatial`, with the
same decisions (`cost.layout`), one event-level task per (layer tile, timestep):

* every layer runs the network's largest T; each layer gets the cores that
  `cost.layout.SpatialCores` gives it (its weights, membranes and a
  double-buffered output step, plus spare cores where they lower the
  closed form's latency);
* a layer's step t takes the closed form's `layout.compute_cycles` of that
  step's work on its cores: (ACs + neuron updates) / (cores x ACs per
  cycle) + (MACs + other ops) / (cores x MACs per cycle);
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
* after a step, its output crosses the on-chip network to every core of each
  consuming layer that needs it (a packet per spike, or dense values), as a
  multicast tree or one copy per core as the arch says, and is queued there
  (one write and read at each); the bit-hops are `layout.SpatialTraffic.links`'.
  The network input streams in from the I/O port a step ahead of the first
  layers. The network (`components.Network`) is one server at the aggregate
  link capacity of the region the used cores fill, so transfers of all layers
  contend for it; it serves the oldest timestep first, so layers running
  ahead do not delay the steps the pipeline waits for. A consumer waits for
  each source's step t to arrive (`Stage.on_sent`), then computes.

Where it differs from the closed form, by design: the closed form charges
the pipeline fill as (depth - 1) x the slowest stage, while the simulator
follows the real stage times along each path (plus the network transfer on
each hop); uneven per-step work from a trace, back-pressure from small
buffers and network contention show up here and not there.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import simpy

from ..cost import layout
from ..cost.chips import mesh_bits_per_cycle
from ..cost.estimate import infeasible
from ..errors import NeurosimError
from ..ir import NETWORK_INPUT
from ..report import Report, format_si
from .components import Buffer, Level, Network, Tile
from .engine import Context, core_events, counts_frame, finish, run, safe_div


class Stage:
    """One layer's tile in the pipeline: its cores, its output buffer, and when each output step arrives."""

    def __init__(self, ctx: Context, i: int, cores: int, step_bits: float, links: tuple, copies: float,
                 noc: Network, level: Level):
        layer = ctx.net.layers[i]
        self.env, self.rec, self.noc = ctx.env, ctx.rec, noc
        self.layer, self.name, self.index = layer, layer.name, i
        self.layers, self.hop_mm = ctx.layers, float(ctx.chip("hop_mm"))   # its events, for its energy
        self.n_cons = len(ctx.work.consumers[i])
        self.depth = 1         # layers from the input to this one (set once the sources are known)
        self.tile = Tile(f"tile {layer.name}", int(cores))
        w = ctx.works[layer.name]
        self.cycles = w.cycles(ctx.chips, ctx.arch.energy, cores)
        self.step_bytes = step_bits / 8
        T = len(self.cycles)
        if layer.spiking:     # one packet per spike
            payload = w.per_step["spikes_out"] * float(ctx.chip("packet_bits"))
        else:                 # dense values every step
            payload = np.full(T, step_bits)
        out_links, in_links = links     # bit-hops per bit (`layout.SpatialTraffic.links`)
        self.noc_bits = (payload * out_links).tolist()
        self.queued_bits = (payload * copies).tolist()      # written into (and read from) destination queues
        inputs = float(layout.input_bits(ctx.work, ctx.chips)[0, i])   # the network input, if it reads it
        per_step = inputs / T if ctx.work.input_spiking else 0.0
        self.input_bits = [(inputs if t == 0 else 0.0) if not ctx.work.input_spiking else per_step
                           for t in range(T)]
        self.input_links = float(in_links)
        self.input_arrival: list[simpy.Event] = []
        self.buf = Buffer(ctx.env, f"{layer.name}.out", ctx.opts.buffer_steps * self.step_bytes, ctx.rec, level)
        self.arrival: list[float | None] = [None] * T   # when step t reaches the consumers; None: not sent
        self._sent: dict[int, simpy.Event] = {}          # steps that consumers wait to be sent
        self.released = [0] * T
        self.sources: list[Stage] = []
        self.queue_bits = 0.0     # bits written into (and read from) the consumers' queues so far

    def on_sent(self, t: int) -> simpy.Event:
        """An event that fires when step t has arrived at the consumers."""
        if t not in self._sent:
            self._sent[t] = self.env.event()
        return self._sent[t]

    def waiting_for(self, t: int) -> tuple[str, str, str]:
        return (f"layer '{self.name}'", f"step {t} of layer '{self.name}' to arrive",
                f"check why layer '{self.name}' is blocked")

    def release(self, t: int) -> None:
        """A consumer has finished reading step t: the last one frees its buffer slot."""
        self.released[t] += 1
        if self.released[t] == self.n_cons:
            self.buf.get(self.step_bytes)

    def run(self):
        """The tile's process: for each step, wait for the inputs, compute, then fire into the output buffer."""
        env, tile, buf = self.env, self.tile, self.buf
        for t, cycles in enumerate(self.cycles):
            ready = env.now
            for src in self.sources:        # until every source has sent its step t (its arrival known)
                if src.arrival[t] is None:
                    tile.waiting = partial(src.waiting_for, t)
                    yield src.on_sent(t)
            arrived = self._network_input(t)
            if not arrived.processed:       # the network input streams in from the I/O port
                tile.waiting = ("interconnect", f"step {t} of the network input for layer '{self.name}'",
                                "check the network for a transfer that never ends")
                yield arrived
            now = start = env.now
            tile.waiting = None
            for src in self.sources:
                if src.arrival[t] > start:
                    start = src.arrival[t]
            if start > now and self.sources:     # inputs still crossing the network
                tile.waiting, tile.resumes_at = partial(self._in_flight, t), start
            if t == 0:
                tile.start = start
            elif start > ready:
                tile.idle_input += start - ready
            end = start + cycles
            if end > now:                   # one wait covers the inputs in flight and the compute
                yield env.timeout(end - now)
            tile.waiting = tile.resumes_at = None
            tile.busy += cycles
            self.rec.add(tile.name, start, env.now, self.name, t, "compute")
            for src in self.sources:        # done reading their step t
                src.release(t)
            if not buf.try_put(self.step_bytes):    # the fire phase emits step t into the output buffer
                yield from self._wait_for_room(t)
            tile.steps_done = t + 1
            self._send(t)
        tile.end = env.now
        tile.done = True

    def _network_input(self, t: int) -> simpy.Event:
        """Step t of the network input from the I/O port: it streams in one step ahead (step t + 1 is sent
        as step t starts), double-buffered like the layers' outputs."""
        for k in range(len(self.input_arrival), min(t + 2, len(self.input_bits))):
            self.layers.add(self.index, bit_mm=self.input_bits[k] * self.input_links * self.hop_mm)
            self.input_arrival.append(self.noc.send(self.input_bits[k] * self.input_links, (k, 0),
                                                    f"{NETWORK_INPUT} -> {self.name}", k))
        return self.input_arrival[t]

    def _in_flight(self, t: int) -> tuple[str, str, str]:
        """What the tile waits for while its inputs of step t cross the network: the last to arrive."""
        return max(self.sources, key=lambda src: src.arrival[t]).waiting_for(t)

    def _wait_for_room(self, t: int):
        buf, tile = self.buf, self.tile
        full = (f"buffer '{buf.name}'", f"room for its step {t} output ({self.step_bytes:.6g} B) in "
                f"buffer '{buf.name}' (holds {buf.level:.6g} of {buf.capacity:.6g} B)",
                "give every inter-layer buffer room for at least one step of its layer's output")
        t0 = yield from tile.wait(self.env, buf.put(self.step_bytes), full, "stall_output")
        self.rec.add(tile.name, t0, self.env.now, self.name, t, "stall")

    def _send(self, t: int) -> None:
        bits = self.noc_bits[t]
        slot = t + self.depth                # the pipeline slot its consumers run step t in
        self.layers.add(self.index, bit_mm=bits * self.hop_mm)
        if not self.n_cons:                 # a network output leaves through the I/O port: nobody waits for it
            self.noc.send(bits, (slot, 1), self.name, t)
            self.buf.get(self.step_bytes)
            return
        self.queue_bits += self.queued_bits[t]
        self.layers.add(self.index, core_read_bits=self.queued_bits[t], core_write_bits=self.queued_bits[t])
        self.noc.send(bits, (slot, 0), self.name, t).callbacks.append(partial(self._arrived, t))

    def _arrived(self, t: int, event: simpy.Event) -> None:
        self.arrival[t] = event.value
        if t in self._sent:
            self._sent.pop(t).succeed()


def simulate_spatial(ctx: Context) -> Report:
    work, chips, opts = ctx.work, ctx.chips, ctx.opts
    alloc = layout.SpatialCores(work, chips, ctx.arch.energy)
    if not alloc.fits[0]:
        return infeasible(ctx.net, ctx.arch, alloc.shortfall(work, chips, 0), engine="simulator")
    tasks = work.T * work.L
    if tasks > opts.max_spatial_tasks:
        raise NeurosimError(ctx.where, "max_spatial_tasks", f"the spatial mapping runs one task per layer and "
                            f"step: {work.L} layers x {work.T} steps = {tasks:,} tasks (about {5 * tasks:,} simpy "
                            f"events), over the budget of {opts.max_spatial_tasks:,}",
                            "use the closed form (--engine analytic) for this network, fewer timesteps, or raise "
                            "SimOptions.max_spatial_tasks")
    if not opts.buffer_steps >= 1:
        raise NeurosimError(ctx.where, "buffer_steps", f"inter-layer buffers of {opts.buffer_steps} steps cannot "
                            "hold one timestep of their layer's output, so no layer could ever start",
                            "use buffer_steps >= 1 (2 = double-buffered, the default)")
    cores = alloc.cores[0]
    used = cores[None, :]
    noc = Network(ctx.env, float(mesh_bits_per_cycle(used.sum(axis=1), chips.link_bits_per_cycle)[0]), ctx.rec)
    buffers = Level()
    steps = layout.step_bits(work, chips)[0]
    out_links, in_links = (x[0] for x in alloc.traffic.links(used))
    copies = alloc.traffic.copies(used)[0]
    stages = [Stage(ctx, i, cores[i], float(steps[i]), (out_links[i], in_links[i]), copies[i], noc, buffers)
              for i in range(work.L)]
    for st, sources in zip(stages, work.sources):
        st.sources = [stages[s] for s in sources]
        st.depth = 1 + max((src.depth for src in st.sources), default=0)
    # A generous bound on simulated time: every step and every transfer one after another, four times over.
    ctx.limit = opts.limit(sum(sum(st.cycles) + (sum(st.noc_bits) + sum(st.input_bits) * st.input_links) / noc.rate
                               for st in stages))
    procs = [ctx.env.process(st.run()) for st in stages]
    run(ctx, [ctx.env.process(noc.drain(procs))], [st.tile for st in stages])
    for st in stages:
        st.buf.close()
    return _report(ctx, stages, noc, buffers)


def _report(ctx: Context, stages: list[Stage], noc: Network, buffers: Level) -> Report:
    work, T = ctx.work, ctx.work.T
    cycles = max(max(st.tile.end for st in stages), noc.free_at)
    ctx.stats.tasks = T * len(stages)
    ev, counted = core_events(ctx, [(0, st.tile.steps_done, 1) for st in stages])
    queue_bits = sum(st.queue_bits for st in stages)      # event queues at the destination cores
    ev.core_read_bits += queue_bits
    ev.core_write_bits += queue_bits
    ev.bit_mm = noc.bits * ctx.chip("hop_mm")
    weights = float(work.weight_bytes.sum())
    membrane = float(layout.state_bytes(work, ctx.chips)[0].sum())
    memory = dict(weights=weights, membrane=membrane, spike_buffers=buffers.peak,
                  peak_on_chip=weights + membrane + buffers.peak)
    timing = pd.DataFrame([dict(cores=st.tile.cores, start_cycle=st.tile.start, end_cycle=st.tile.end,
                                cycles=st.tile.end - st.tile.start, busy_cycles=st.tile.busy,
                                stall_output_cycles=st.tile.stall_output, idle_input_cycles=st.tile.idle_input,
                                buffer_bytes=st.buf.capacity, peak_buffer_bytes=st.buf.peak,
                                utilization=safe_div(st.tile.busy, cycles),
                                pace=ctx.works[st.name].pace(ctx.chips, ctx.arch.energy, st.tile.cores))
                           for st in stages])
    per_layer = pd.concat([counts_frame(ctx, counted), timing], axis=1)
    utilization = dict(cores=safe_div(sum(st.tile.busy * st.tile.cores for st in stages),
                                      ctx.chip("cores") * cycles),
                       interconnect=safe_div(noc.busy, cycles), dram=0.0, global_buffer=0.0)
    tiles = [st.tile for st in stages]
    held = np.array([st.tile.cores * cycles for st in stages], dtype=float)   # a stage holds its cores all run
    return finish(ctx, ev, cycles, memory, 0.0, per_layer, tiles, utilization, _notes(ctx, stages, noc, cycles),
                  held)


def _notes(ctx: Context, stages: list[Stage], noc: Network, cycles: float) -> list[str]:
    T = ctx.work.T
    slowest = max(stages, key=lambda s: s.tile.busy)
    used = sum(st.tile.cores for st in stages)
    notes = [f"all layers run T = {T}; pipeline depth {ctx.work.depth}; {used} of {ctx.chip('cores')} "
             f"cores used; slowest stage '{slowest.name}' ({format_si(slowest.tile.busy / T, 'cycles')} per step)",
             f"simulated: one task per (layer, timestep), {ctx.stats.tasks} tasks; inter-layer buffers of "
             f"{ctx.opts.buffer_steps:g} steps"]
    stalled = sum(st.tile.stall_output for st in stages)
    if stalled:
        notes.append(f"back-pressure: layers waited {format_si(stalled, 'cycles')} in total for room in full output buffers "
                     f"(held back by slower consumers; the slowest stage is '{slowest.name}')")
    if noc.queued > 0.01 * cycles:
        notes.append(f"interconnect contention: transfers queued {format_si(noc.queued, 'cycles')} in total")
    return notes
