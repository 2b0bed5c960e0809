"""The sequentially mapped dataflow: one core pool runs layer after layer, each for its own t^l steps.

The same decisions as the closed form's `cost.closed_form.sequential`, taken
from `cost.layout` (which weights stay pinned in core SRAM, how many passes a
layer needs, what is carried between layers), simulated task by task by
three components:

* the **weight loader** (`WeightLoader`) walks the layers' passes in order.
  For each pass it takes room in the core SRAM left beside the pinned
  weights (the pass's streamed weights and membranes; it waits while the
  SRAM is full), streams the pass's weights from DRAM in bursts (over the
  on-chip network), and marks the pass ready. With room to spare it runs
  ahead (one pass at most), so the next layer's weights load while this one
  computes; without, compute waits for its weights (a closed form that
  overlaps every load cannot show this);
* the **core pool** (`CorePool`, all cores) runs, per layer and pass, one
  task per group of `steps_per_task` timesteps: compute (the closed form's
  `layout.compute_cycles` of the group's work on the whole pool, this
  pass's share of the outputs), while reading its input from the global
  buffer (or from DRAM where it spilled) and writing its output. A task ends
  when the slowest of those is done ("whichever bounds", at task
  granularity); the time the cores wait beyond their compute is a memory
  stall;
* **carry: spikes**: each pass reads the whole spike history of every input
  layer (spread over its steps) and writes its outputs' spikes step by step;
  **carry: rates**: each pass reads its spiking inputs' counts at every step
  at the global buffer's port, where Bernoulli input spikes are drawn (one
  RNG op per input neuron, token and step) and sent to the pool (real-valued
  inputs, carried as time averages, are read when the pass starts), and
  writes its outputs' counts when it ends;
* the **carry buffers** (`CarryBuffers`: the global buffer and its port)
  hold every layer's carried output until the last layer that reads it has
  finished (network outputs stay). What does not fit spills to DRAM (written
  once, read by every pass that needs it). With no DRAM, a write waits for
  room: back-pressure, and a deadlock if nothing can ever free it (reported,
  naming the buffer and what holds it).

Where it differs from the closed form, by design: weight loads that do not
fit beside the running layer are not hidden behind compute, and the global
buffer's port and DRAM are booked step by step rather than per layer. Spills
follow the same lifetimes in both (each history held until its last reader).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..cost import closed_form, layout
from ..cost.chips import Chips
from ..cost.estimate import infeasible
from ..report import Report, format_bytes, format_si
from .components import Buffer, Channel, Level, Tile
from .engine import Context, core_events, counts_frame, finish, run, safe_div


class WeightLoader:
    """Loads each pass's streamed weights from DRAM into the core SRAM beside the pinned weights.

    It owns the SRAM's free part: a pass's slice (its streamed weights and
    membranes) is taken before its weights load and given back by the core
    pool when the pass ends (`free`).
    """

    def __init__(self, ctx: Context, plan: layout.SequentialWeights, sram: Buffer, dram: Channel | None,
                 noc: Channel):
        self.env, self.names = ctx.env, ctx.work.names
        self.streamed, self.states = plan.streamed[0].tolist(), plan.states[0].tolist()
        self.passes = plan.passes[0].tolist()
        self.sram, self.dram, self.noc = sram, dram, noc
        self.burst_bits = ctx.opts.burst_bytes * 8
        self.hops = float(ctx.chip("buffer_hops"))      # DRAM port to the core that holds the weights
        self.layers, self.hop_mm = ctx.layers, float(ctx.chip("hop_mm"))   # each layer's events, for its energy
        self.tile = Tile("weight loader", 0)
        self.ready = [[self.env.event() for _ in range(p)] for p in self.passes]     # weights in place
        self.started = [[self.env.event() for _ in range(p)] for p in self.passes]   # the pool began the pass
        self.weight_bits = 0.0     # streamed weights written into core SRAM

    def slice_bytes(self, i: int) -> float:
        return (self.streamed[i] + self.states[i]) / self.passes[i]

    def free(self, i: int) -> None:
        """A pass of layer i has ended: its slice of SRAM is free again."""
        self.sram.get(self.slice_bytes(i))

    def run(self):
        """The loader's process: every pass in order, at most one pass ahead of the core pool."""
        prev = None
        for i, p in enumerate(self.passes):
            for k in range(p):
                if prev is not None:
                    yield from self._after(*prev)
                prev = (i, k)
                yield from self._room(i, k)
                yield from self._stream(i, k)
                self.ready[i][k].succeed()
        self.tile.done = True

    def _after(self, i: int, k: int):
        started = self.started[i][k]
        if not started.processed:
            self.tile.waiting = ("core pool", f"the core pool to start pass {k} of layer '{self.names[i]}'",
                                 "see what the core pool waits for")
            yield started
            self.tile.waiting = None

    def _room(self, i: int, k: int):
        size, sram = self.slice_bytes(i), self.sram
        if not sram.try_put(size):
            self.tile.waiting = ("core_sram", f"{size:.6g} B of core SRAM for pass {k} of layer '{self.names[i]}' "
                                 f"(holds {sram.level:.6g} of {sram.capacity:.6g} B)",
                                 "report this as a neurosim bug: a pass is sized to fit the free core SRAM")
            yield sram.put(size)
            self.tile.waiting = None

    def _stream(self, i: int, k: int):
        """Process step: the pass's weights from DRAM, in bursts so that spill traffic can interleave."""
        bits, name = self.streamed[i] * 8 / self.passes[i], self.names[i]
        if bits <= 0:
            return
        n = math.ceil(bits / self.burst_bits)
        for _ in range(n):
            end = max(self.dram.book(bits / n, layer=name, step=None),
                      self.noc.book(bits / n * self.hops, layer=name))
            yield self.env.timeout(end - self.env.now)
        self.weight_bits += bits
        self.layers.add(i, dram_read_bits=bits, core_write_bits=bits, bit_mm=bits * self.hops * self.hop_mm)


class CarryBuffers:
    """The global buffer between layers: each layer's carried output, held until its last reader has run.

    What does not fit beside what is still held spills to DRAM (written
    once, read by every pass that needs it); with no DRAM the writer waits
    for room (`full` says for what, and who holds the buffer). Transfers go
    through the buffer's port (and DRAM), both FIFO channels.
    """

    def __init__(self, ctx: Context, dram: Channel | None, level: Level):
        self.names = ctx.work.names
        self.buffer = Buffer(ctx.env, "global_buffer", ctx.chip("buffer_bytes"), ctx.rec, level)
        self.port = Channel(ctx.env, "global_buffer port", ctx.chip("buffer_bytes_per_cycle") * 8, ctx.rec)
        self.dram = dram
        self.held = [[0.0, 0.0] for _ in self.names]   # carried bits of each layer: [global buffer, DRAM]
        self.readers = [len(c) for c in ctx.work.consumers]

    def spill(self, i: int, bits: float) -> tuple[float, float]:
        """Keep `bits` of layer i's output: what fits in the global buffer now, the rest in DRAM."""
        on_chip = min(bits, self.buffer.room() * 8)
        if on_chip > 0 and not self.buffer.try_put(on_chip / 8):
            on_chip = 0.0
        self.held[i][0] += on_chip
        self.held[i][1] += bits - on_chip
        return on_chip, bits - on_chip

    def keep(self, i: int, bits: float) -> None:
        """`bits` of layer i's output, already given room, are held in the global buffer."""
        self.held[i][0] += bits

    def full(self, i: int, bits: float) -> tuple[str, str, str]:
        """What a writer waiting for room waits for, and who holds the buffer."""
        buf = self.buffer
        holders = ", ".join(f"'{self.names[h]}' ({v[0] / 8:.6g} B)" for h, v in enumerate(self.held) if v[0])
        return ("global_buffer", f"{bits / 8:.6g} B of room in the global buffer for the output of layer "
                f"'{self.names[i]}' (holds {buf.level:.6g} of {buf.capacity:.6g} B: histories of "
                f"{holders or 'nothing'}, each kept until its last reader has run)",
                "enlarge global_buffer.bytes, give the chip DRAM to spill to, or carry rates instead of spikes")

    def read_done(self, sources: list[int]) -> None:
        """A reader of these sources has run: a history leaves the buffer after its last reader."""
        for s in sources:
            self.readers[s] -= 1
            if self.readers[s] == 0:
                self.buffer.get(self.held[s][0] / 8)
                self.held[s][0] = 0.0

    @property
    def spilled_bits(self) -> float:
        return sum(h[1] for h in self.held)


class CorePool:
    """All cores, running layer after layer and pass after pass, one task per group of timesteps."""

    def __init__(self, ctx: Context, plan: layout.SequentialWeights, carried: np.ndarray, loader: WeightLoader,
                 carry: CarryBuffers, noc: Channel, chunk: int):
        self.ctx, self.env, self.rec = ctx, ctx.env, ctx.rec
        self.work, self.names = ctx.work, ctx.work.names
        self.spikes = ctx.arch.mapping.carry == "spikes"
        self.passes, self.states = loader.passes, plan.states[0].tolist()
        self.carried = carried.tolist()
        self.loader, self.carry, self.noc, self.chunk = loader, carry, noc, chunk
        self.traffic, self.hop_mm = layout.PoolTraffic(ctx.chips), float(ctx.chip("hop_mm"))
        self.network_input = layout.input_bits(ctx.work, ctx.chips)[0].tolist()
        self.step_bits = layout.step_bits(ctx.work, ctx.chips)[0].tolist()
        self.tile = Tile("core pool", int(ctx.chip("cores")))
        self.membrane = Level()
        self.rng_ops = 0.0
        self.progress = [(0, 0, 1) for _ in self.names]   # (passes done, steps done, passes) per layer
        self.rows: list[dict] = []

    def run(self):
        """The pool's process: every layer in order."""
        for i in range(self.work.L):
            yield from self._layer(i)
        self.tile.done = True

    def _layer(self, i: int):
        tile, env = self.tile, self.env
        before = (tile.busy, tile.stall_memory, tile.stall_weights, tile.stall_output)
        sources = self.work.sources[i]
        inputs = self._inputs(sources)        # fixed while layer i runs: its sources have finished
        tasks = self._tasks(i)
        start = None
        for k in range(self.passes[i]):
            yield from self._weights(i, k)
            if start is None:
                start = env.now
            yield from self._pass(i, k, tasks, inputs)
        peak = self.carry.buffer.level
        self.carry.read_done(sources)
        self.rows.append(dict(passes=self.passes[i], streamed_weight_bytes=self.loader.streamed[i],
                              spill_bytes=self.carry.held[i][1] / 8, start_cycle=start, end_cycle=env.now,
                              cycles=env.now - start, busy_cycles=tile.busy - before[0],
                              stall_memory_cycles=tile.stall_memory - before[1],
                              stall_weight_cycles=tile.stall_weights - before[2],
                              stall_output_cycles=tile.stall_output - before[3], peak_buffer_bytes=peak,
                              pace=self.ctx.works[self.names[i]].pace(self.ctx.chips, self.ctx.arch.energy,
                                                                      tile.cores, self.passes[i])))
        tile.passes_done, tile.steps_done = 0, 0

    def _inputs(self, sources: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """What one pass reads of its sources' carried outputs, as (bits in the global buffer, in DRAM, sent
        to the pool): what it reads once, and what at every step (counts regenerating spikes at the buffer's
        port, `layout.reads_per_pass`, which send the pool a step of spikes each time)."""
        once, every_step = np.zeros(3), np.zeros(3)
        for s in sources:
            gb, dram = self.carry.held[s]
            if layout.regenerated(self.work, self.ctx.arch.mapping.carry, s):
                every_step += (gb, dram, self.step_bits[s])
            else:
                once += (gb, dram, gb + dram)
        return once, every_step

    def _tasks(self, i: int) -> list[tuple[int, int, float]]:
        """(first step, end step, compute cycles) of each task of one pass of layer i, on the whole pool."""
        t = self.ctx.works[self.names[i]].timesteps
        bounds = np.append(np.arange(0, t, self.chunk), t)
        cycles = self.ctx.works[self.names[i]].cycles(self.ctx.chips, self.ctx.arch.energy, self.tile.cores,
                                                      self.passes[i], bounds)
        return [(int(s0), int(s1), c) for s0, s1, c in zip(bounds[:-1], bounds[1:], cycles)]

    def _weights(self, i: int, k: int):
        ready = self.loader.ready[i][k]
        if not ready.processed:
            waiting = ("dram", f"the weights of layer '{self.names[i]}' (pass {k}) from DRAM",
                       "report this as a neurosim bug: weight loads always finish")
            t0 = yield from self.tile.wait(self.env, ready, waiting, "stall_weights")
            self.rec.add("cores", t0, self.env.now, self.names[i], None, "stall")

    def _pass(self, i: int, k: int, tasks: list, inputs: tuple[float, float]):
        p = self.passes[i]
        self.loader.started[i][k].succeed()
        self.membrane(self.states[i] / p)
        for s0, s1, cycles in tasks:
            yield from self._task(i, k, s0, s1, cycles, inputs)
        self.loader.free(i)
        self.membrane(-self.states[i] / p)
        self.tile.passes_done, self.tile.steps_done = k + 1, 0
        self.progress[i] = (k + 1, 0, p)

    def _task(self, i: int, k: int, s0: int, s1: int, cycles: float, inputs: tuple[float, float]):
        """Process step: steps s0..s1-1 of pass k, ended by the slowest of compute and transfers."""
        env, tile, name = self.env, self.tile, self.names[i]
        n, t, p = s1 - s0, self.ctx.works[name].timesteps, self.passes[i]
        once, every_step = inputs
        if self.spikes:     # the histories read over the steps, the output written step by step
            read, out = once * n / t, self.carried[i] * n / (t * p)
        else:               # counts: the spiking sources' at every step, the rest when the pass starts
            read = once * float(s0 == 0) + every_step * n
            out = self.carried[i] / p if s1 == t else 0.0
            self.rng_ops += float(self.work.regeneration_draws[i]) * n
            self.ctx.layers.add(i, rng_ops=float(self.work.regeneration_draws[i]) * n)
        gb_w, dram_w = yield from self._output(i, out, s0, n)
        net_in = self.network_input[i] * (n / t if self.work.input_spiking else float(s0 == 0))
        now = env.now
        end = self._book(i, s0, n, now + cycles, read[0], gb_w, read[1], dram_w, read[2] + net_in)
        if end > now:
            yield env.timeout(end - now)
        tile.busy += cycles
        tile.stall_memory += max(0.0, end - now - cycles)
        self.rec.add("cores", now, now + cycles, name, s0, "compute", n)
        self.rec.add("cores", now + cycles, end, name, s0, "stall", n)
        tile.passes_done, tile.steps_done = k, s1
        self.progress[i] = (k, s1, p)
        self.ctx.stats.tasks += 1

    def _output(self, i: int, out: float, s0: int, n: int):
        """Process step: keep a task's output; returns the bits (to the global buffer, to DRAM)."""
        carry = self.carry
        if out <= 0:
            return 0.0, 0.0
        if carry.dram is not None:
            return carry.spill(i, out)
        pieces = n if self.spikes else 1     # no DRAM to spill to: wait for room, a step's worth at a time
        for _ in range(pieces):
            piece = out / pieces
            if not carry.buffer.try_put(piece / 8):
                t0 = yield from self.tile.wait(self.env, carry.buffer.put(piece / 8), carry.full(i, piece),
                                               "stall_output")
                self.rec.add("cores", t0, self.env.now, self.names[i], s0, "stall", n)
        carry.keep(i, out)
        return out, 0.0

    def _book(self, i: int, s0: int, n: int, end: float, gb_r: float, gb_w: float, dram_r: float,
              dram_w: float, to_pool: float) -> float:
        """Book a task of layer i's transfers on the buffer port, DRAM and the network (`to_pool`: its inputs
        and the network input, to the whole pool; its outputs from one core each), and count them as the
        layer's; returns when the last ends."""
        port, dram, name = self.carry.port, self.carry.dram, self.names[i]
        end = max(end, port.book(gb_r, layer=name, step=s0, steps=n),
                  port.book(gb_w, write=True, layer=name, step=s0, steps=n))
        if dram is not None:
            end = max(end, dram.book(dram_r, layer=name, step=s0, steps=n),
                      dram.book(dram_w, write=True, layer=name, step=s0, steps=n))
        hops = self.traffic.bit_hops(to_pool, gb_w + dram_w)[0]
        booked = dict(buffer_read_bits=gb_r, buffer_write_bits=gb_w, bit_mm=hops * self.hop_mm)
        if dram is not None:
            booked.update(dram_read_bits=dram_r, dram_write_bits=dram_w)
        self.ctx.layers.add(i, **booked)
        return max(end, self.noc.book(hops, layer=name, step=s0, steps=n))


def simulate_sequential(ctx: Context) -> Report:
    # the pool the closed form picks for the arch's objective, or the size a plan gives; the other cores stay idle
    pool = np.array([ctx.pool]) if ctx.pool is not None else closed_form.pool_cores(
        ctx.work, ctx.chips, ctx.arch.energy, ctx.arch.mapping.carry)
    ctx.chips = ctx.chips.with_cores(pool)
    work, chips = ctx.work, ctx.chips
    widest, bits = layout.widest_step(work, chips)
    if bits[0] > chips.buffer_bytes[0] * 8:
        raise ctx.arch.refuse(*layout.buffer_refusal(work, chips, widest, bits, 0))
    plan = layout.SequentialWeights(work, chips)
    carried = layout.carry_bits(work, chips, ctx.arch.mapping.carry)[0]
    why_not = _unmappable(ctx, plan, carried)
    if why_not is not None:
        return infeasible(ctx.net, ctx.arch, why_not, engine="simulator")
    env, rec = ctx.env, ctx.rec
    dram = Channel(env, "dram", ctx.chip("dram_bits_per_cycle"), rec) if ctx.chip("has_dram") else None
    noc = Channel(env, "interconnect", ctx.chip("mesh_bits_per_cycle"), rec, directional=False)
    on_chip = Level(float(work.weight_bytes[plan.pinned[0]].sum()))
    carry = CarryBuffers(ctx, dram, on_chip)
    sram = Buffer(env, "core_sram", plan.free[0], rec, on_chip)   # beside the pinned weights
    loader = WeightLoader(ctx, plan, sram, dram, noc)
    total_steps = sum(p * ctx.works[name].timesteps for p, name in zip(loader.passes, work.names))
    chunk = ctx.opts.steps_per_task or max(1, math.ceil(total_steps / ctx.opts.max_tasks))
    ctx.stats.steps_per_task = chunk
    pool = CorePool(ctx, plan, carried, loader, carry, noc, chunk)
    ctx.limit = ctx.opts.limit(_serial_cycles(ctx, plan, carried, [dram, carry.port], noc))
    run(ctx, [env.process(loader.run()), env.process(pool.run())], [pool.tile, loader.tile])
    carry.buffer.close()
    sram.close()
    return _report(ctx, plan, pool, noc, on_chip)


def _unmappable(ctx: Context, plan: layout.SequentialWeights, carried: np.ndarray) -> str | None:
    """Why the mapping cannot run at all: a core that cannot hold one output neuron, weights to stream with
    no DRAM, or (no DRAM to spill to) a layer whose input and output do not fit the global buffer together.
    Histories held longer may still not fit: that shows as a deadlock, naming what holds the buffer."""
    work, chips = ctx.work, ctx.chips
    if not plan.neuron.fits[0]:
        return plan.neuron.shortfall(work, 0, "a core's share of the SRAM left beside the pinned weights")
    if chips.has_dram[0]:
        return None
    if plan.streams[0]:          # no pool size held the weights: say what the whole chip holds
        return plan.no_room(work, Chips.of(ctx.arch), 0)
    for i, sources in enumerate(work.sources):
        kept = sum(carried[s] for s in sources) + carried[i]
        if kept > chips.buffer_bytes[0] * 8:
            return layout.no_spill_room(work.names[i], kept, chips.buffer_bytes[0])
    return None


def _serial_cycles(ctx: Context, plan: layout.SequentialWeights, carried: np.ndarray,
                   channels: list[Channel | None], noc: Channel) -> float:
    """A generous bound on simulated time: all compute, then all data twice over the slowest channel and
    over the network, each bit to the whole pool."""
    work, chips = ctx.work, ctx.chips
    compute = layout.layer_cycles(work, chips.cores, chips, ctx.arch.energy, work.timesteps * plan.passes[0])[0].sum()
    reads = np.array([sum(carried[s] for s in sources) for sources in work.sources]) * plan.passes[0]
    network_input = layout.input_bits(work, chips)[0] * plan.passes[0]
    data = (plan.streamed[0] * 8 + 2 * (reads + carried) + network_input).sum()
    traffic = layout.PoolTraffic(chips)
    hops = data * max(traffic.to_pool[0], traffic.one_core[0])
    return float(compute + data / min(c.rate for c in channels if c is not None and c.rate) + hops / noc.rate)


def _report(ctx: Context, plan: layout.SequentialWeights, pool: CorePool, noc: Channel, on_chip: Level) -> Report:
    env, work, carry, dram = ctx.env, ctx.work, pool.carry, pool.carry.dram
    cycles = env.now
    ev, counted = core_events(ctx, pool.progress)
    ev.rng_ops = pool.rng_ops
    ev.buffer_read_bits, ev.buffer_write_bits = carry.port.read_bits, carry.port.write_bits
    ev.core_write_bits += pool.loader.weight_bits          # streamed weights land in core SRAM
    if dram is not None:
        ev.dram_read_bits, ev.dram_write_bits = dram.read_bits, dram.write_bits
    ev.bit_mm = noc.bits * ctx.chip("hop_mm")
    memory = dict(weights=float(work.weight_bytes.sum()), membrane=pool.membrane.peak,
                  spike_buffers=carry.buffer.peak, peak_on_chip=on_chip.peak)
    per_layer = pd.concat([counts_frame(ctx, counted), pd.DataFrame(pool.rows)], axis=1)
    per_layer["utilization"] = per_layer["busy_cycles"] / per_layer["cycles"].where(per_layer["cycles"] > 0)
    utilization = dict(cores=safe_div(pool.tile.busy * pool.tile.cores, ctx.arch.cores.count * cycles), dram=safe_div(dram.busy, cycles) if dram else 0.0,
                       global_buffer=safe_div(carry.port.busy, cycles), interconnect=safe_div(noc.busy, cycles))
    tiles = [pool.tile, pool.loader.tile]
    # layers hold the pool one after another: each from the end of the one before (its weight waits too) to its end
    held = pool.tile.cores * np.diff([r["end_cycle"] for r in pool.rows], prepend=0.0)
    return finish(ctx, ev, cycles, memory, dram.bits / 8 if dram is not None else 0.0, per_layer, tiles,
                  utilization, _notes(ctx, plan, pool, cycles), held)


def _notes(ctx: Context, plan: layout.SequentialWeights, pool: CorePool, cycles: float) -> list[str]:
    pinned, tile = plan.pinned[0], pool.tile
    notes = [f"layers run their own timesteps ({ctx.work.timesteps_note}) on a pool of {pool.tile.cores} of "
             f"{ctx.arch.cores.count} cores; carry: {ctx.arch.mapping.carry}",
             f"simulated: {ctx.stats.tasks} tasks of up to {ctx.stats.steps_per_task} timestep(s) of one pass each"]
    if not pinned.all():
        notes.append(f"{int((~pinned).sum())} of {len(pinned)} layers' weights streamed from DRAM every inference; "
                     f"compute waited {format_si(tile.stall_weights, 'cycles')} for them")
    spilled = pool.carry.spilled_bits
    if spilled:
        notes.append(f"{format_bytes(spilled / 8)} of inter-layer data spilled to DRAM (global buffer full)")
    if tile.stall_memory > 0.01 * cycles:
        notes.append(f"cores waited {format_si(tile.stall_memory, 'cycles')} on memory and network transfers")
    return notes
