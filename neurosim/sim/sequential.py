"""The sequentially mapped dataflow: one core pool runs layer after layer, each for its own t^l steps.

The same decisions as `cost.estimate.estimate_sequential` (shared helpers:
which weights stay pinned in core SRAM, how many passes a layer needs, what
is carried between layers), simulated task by task:

* a **weight loader** walks the layers' passes in order. For each pass it
  takes room in the core SRAM left beside the pinned weights (the pass's
  streamed weights and membranes; it waits while the SRAM is full), streams
  the pass's weights from DRAM in bursts (over the on-chip network), and
  marks the pass ready. With room to spare it runs ahead, so the next
  layer's weights load while this one computes; without, compute waits for
  its weights (a closed form that overlaps every load cannot show this);
* the **core pool** (all cores) runs, per layer and pass, one task per group
  of `steps_per_task` timesteps: compute (ACs and neuron updates on the AC
  datapath, MACs and element ops on the MAC datapath, at the whole pool's
  rate, this pass's share of the outputs), while reading its input from the
  global buffer (or from DRAM where it spilled) and writing its output. A
  task ends when the slowest of those is done ("whichever bounds", at task
  granularity); the time the cores wait beyond their compute is a memory
  stall;
* **carry: spikes**: each pass reads the whole spike history of every input
  layer (spread over its steps) and writes its outputs' spikes step by step;
  **carry: rates**: each pass reads its inputs' spike counts when it starts,
  regenerates Bernoulli input spikes every step (priced as one RNG op per
  input neuron, token and step) and writes its outputs' counts when it ends;
* the **global buffer** holds every layer's carried output until the last
  layer that reads it has finished (network outputs stay). What does not fit
  spills to DRAM (written once, read by every pass that needs it). With no
  DRAM, a write waits for room: back-pressure, and a deadlock if nothing can
  ever free it (reported, naming the buffer and what holds it).

Where it differs from the closed form, by design: weight loads that do not
fit beside the running layer are not hidden behind compute, and the global
buffer's port and DRAM are booked step by step rather than per layer. Spills
follow the same lifetimes in both (each history held until its last reader).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..cost.energy import EventCounts
from ..cost.estimate import _carry_bits, _live, _noc_bits_per_cycle, check_global_buffer, infeasible, \
    input_bits, no_spill_room, no_weight_room, sequential_passes, sequential_weights
from ..report import Report
from .components import Buffer, Channel, Environment, Level, Tile
from .engine import Context, core_events, finish, run, safe_div


def simulate_sequential(ctx: Context) -> Report:
    net, arch, opts, works = ctx.net, ctx.arch, ctx.opts, ctx.works
    carry, gb, rec = arch.mapping.carry, arch.global_buffer, ctx.rec
    check_global_buffer(net, arch)
    capacity = arch.total_core_sram
    weights, states, pinned, free = sequential_weights(net, arch)
    if not pinned.all() and arch.dram is None:
        return infeasible(net, arch, no_weight_room(weights, capacity), engine="simulator")
    carried = {l.name: _carry_bits(net, l, arch, carry) for l in net.layers}
    if arch.dram is None:
        for layer in net.layers:
            kept = input_bits(layer, carried) + carried[layer.name]
            if kept > gb.bytes * 8:
                return infeasible(net, arch, no_spill_room(layer, kept, arch), engine="simulator")
    streamed = np.where(pinned, 0.0, weights)
    passes = [sequential_passes(streamed[i], states[i], free) for i in range(len(net.layers))]
    total_steps = sum(p * works[l.name].timesteps for p, l in zip(passes, net.layers))
    chunk = opts.steps_per_task or max(1, math.ceil(total_steps / opts.max_tasks))
    ctx.stats.steps_per_task = chunk

    cores = arch.cores
    ac_rate, mac_rate = cores.count * cores.acs_per_cycle, cores.count * cores.macs_per_cycle
    dram_rate = arch.dram.bytes_per_s / arch.clock_hz * 8 if arch.dram else None
    gb_rate = gb.bytes_per_cycle * 8
    noc_rate = _noc_bits_per_cycle(arch) / arch.average_hops()

    # A generous bound on simulated time: all work one piece after another, on the slowest channel, 4x over.
    slowest = min(r for r in (dram_rate, gb_rate, noc_rate) if r)
    serial = 0.0
    for i, layer in enumerate(net.layers):
        w, t = works[layer.name], works[layer.name].timesteps
        serial += ((w.steps("acs", 0, t) + w.steps("neuron_updates", 0, t)) / ac_rate
                   + (w.steps("macs", 0, t) + w.steps("other_ops", 0, t)) / mac_rate)
        serial += (streamed[i] * 8 + 2 * (input_bits(layer, carried) * passes[i] + carried[layer.name])) / slowest
    ctx.env = env = Environment(limit=opts.limit(serial))

    dram = Channel(env, "dram", dram_rate, rec) if dram_rate else None
    port = Channel(env, "global_buffer port", gb_rate, rec)
    noc = Channel(env, "interconnect", noc_rate, rec, directional=False)
    on_chip = Level(float(weights[pinned].sum()))
    gbuf = Buffer(env, "global_buffer", gb.bytes, rec, on_chip)
    sram = Buffer(env, "core_sram", free, rec, on_chip)    # beside the pinned weights: streamed weights, membranes
    membrane = Level()
    ready = [[env.event() for _ in range(p)] for p in passes]
    started = {(i, k): env.event() for i, p in enumerate(passes) for k in range(p)}
    hist = {l.name: [0.0, 0.0] for l in net.layers}          # carried bits held in [global buffer, DRAM]
    readers = {l.name: len(net.consumers(l.name)) for l in net.layers}
    loader, pool = Tile("weight loader", 0), Tile("core pool", cores.count)
    rows: list[dict] = []
    extra = dict(rng_ops=0.0, weight_bits=0.0, dram_held=0.0, dram_peak=0.0)
    burst_bits = opts.burst_bytes * 8

    def load():
        prev = None
        for i, layer in enumerate(net.layers):
            p, name = passes[i], layer.name
            slice_bytes = (streamed[i] + states[i]) / p
            for k in range(p):
                if prev is not None and not started[prev].processed:   # at most one pass ahead of compute
                    loader.waiting = ("core pool", f"the core pool to start pass {prev[1]} of layer "
                                      f"'{net.layers[prev[0]].name}'", "see what the core pool waits for")
                    yield started[prev]
                    loader.waiting = None
                prev = (i, k)
                if not sram.try_put(slice_bytes):
                    loader.waiting = ("core_sram", f"{slice_bytes:.6g} B of core SRAM for pass {k} of layer "
                                      f"'{name}' (holds {sram.level:.6g} of {sram.capacity:.6g} B)",
                                      "report this as a neurosim bug: a pass is sized to fit the free core SRAM")
                    yield sram.put(slice_bytes)
                    loader.waiting = None
                bits = streamed[i] * 8 / p
                if bits > 0:
                    n = math.ceil(bits / burst_bits)
                    for _ in range(n):
                        end = max(dram.book(bits / n, layer=name, step=None), noc.book(bits / n, layer=name))
                        yield env.timeout(end - env.now)
                    extra["weight_bits"] += bits
                ready[i][k].succeed()
        loader.done = True

    def hold(name: str, bits: float, where: int) -> None:
        hist[name][where] += bits
        if where == 1:
            extra["dram_held"] += bits
            extra["dram_peak"] = max(extra["dram_peak"], extra["dram_held"])

    def compute():
        for i, layer in enumerate(net.layers):
            name, w, p = layer.name, works[layer.name], passes[i]
            t = w.timesteps
            sources = list(dict.fromkeys(layer.inputs))
            regen = carry == "rates" and bool(layer.inputs) and all(net[s].spiking for s in layer.inputs)
            regen_per_step = layer.seq_len * sum(_live(net, net[s]) for s in layer.inputs) if regen else 0.0
            out_bits = carried[name]
            before = (pool.busy, pool.stall_memory, pool.stall_weights, pool.stall_output)
            start = None
            for k in range(p):
                if not ready[i][k].processed:
                    pool.waiting = ("dram", f"the weights of layer '{name}' (pass {k}) from DRAM",
                                    "report this as a neurosim bug: weight loads always finish")
                    t0 = env.now
                    yield ready[i][k]
                    pool.stall_weights += env.now - t0
                    rec.add("cores", t0, env.now, name, None, "stall")
                    pool.waiting = None
                if start is None:
                    start = env.now
                started[(i, k)].succeed()
                membrane(states[i] / p)
                for s0 in range(0, t, chunk):
                    s1 = min(t, s0 + chunk)
                    n = s1 - s0
                    cyc = ((w.steps("acs", s0, s1) + w.steps("neuron_updates", s0, s1)) / ac_rate
                           + (w.steps("macs", s0, s1) + w.steps("other_ops", s0, s1)) / mac_rate) / p
                    frac = n / t if carry == "spikes" else (1.0 if s0 == 0 else 0.0)
                    gb_r = sum(hist[s][0] for s in sources) * frac
                    dram_r = sum(hist[s][1] for s in sources) * frac
                    out = out_bits * n / (t * p) if carry == "spikes" else (out_bits / p if s1 == t else 0.0)
                    gb_w = dram_w = 0.0
                    if out > 0 and dram is not None:
                        gb_w = min(out, gbuf.room() * 8)
                        if gb_w > 0 and not gbuf.try_put(gb_w / 8):
                            gb_w = 0.0
                        dram_w = out - gb_w
                    elif out > 0:       # no DRAM to spill to: wait for room, a step's worth at a time
                        pieces = n if carry == "spikes" else 1
                        for _ in range(pieces):
                            piece = out / pieces
                            if not gbuf.try_put(piece / 8):
                                holders = ", ".join(f"'{h}' ({v[0] / 8:.6g} B)" for h, v in hist.items() if v[0])
                                pool.waiting = ("global_buffer", f"{piece / 8:.6g} B of room in the global buffer "
                                                f"for the output of layer '{name}' (holds {gbuf.level:.6g} of "
                                                f"{gbuf.capacity:.6g} B: histories of {holders or 'nothing'}, "
                                                "each kept until its last reader has run)",
                                                "enlarge global_buffer.bytes, give the chip DRAM to spill to, or "
                                                "carry rates instead of spikes")
                                t0 = env.now
                                yield gbuf.put(piece / 8)
                                pool.stall_output += env.now - t0
                                rec.add("cores", t0, env.now, name, s0, "stall", n)
                                pool.waiting = None
                        gb_w = out
                    hold(name, gb_w, 0)
                    if dram_w:
                        hold(name, dram_w, 1)
                    extra["rng_ops"] += regen_per_step * n
                    now = env.now
                    end = now + cyc
                    end = max(end, port.book(gb_r, layer=name, step=s0, steps=n),
                              port.book(gb_w, write=True, layer=name, step=s0, steps=n))
                    if dram is not None:
                        end = max(end, dram.book(dram_r, layer=name, step=s0, steps=n),
                                  dram.book(dram_w, write=True, layer=name, step=s0, steps=n))
                    end = max(end, noc.book(gb_r + gb_w + dram_r + dram_w, layer=name, step=s0, steps=n))
                    if end > now:
                        yield env.timeout(end - now)
                    pool.busy += cyc
                    pool.stall_memory += max(0.0, end - now - cyc)
                    rec.add("cores", now, now + cyc, name, s0, "compute", n)
                    rec.add("cores", now + cyc, end, name, s0, "stall", n)
                    pool.passes_done, pool.steps_done = k, s1
                    ctx.stats.tasks += 1
                sram.get((streamed[i] + states[i]) / p)
                membrane(-states[i] / p)
                pool.passes_done, pool.steps_done = k + 1, 0
            peak = gbuf.level
            for s in sources:
                readers[s] -= 1
                if readers[s] == 0:
                    gbuf.get(hist[s][0] / 8)
                    extra["dram_held"] -= hist[s][1]
            rows.append(dict(passes=p, streamed_weight_bytes=float(streamed[i]), spill_bytes=hist[name][1] / 8,
                             start_cycle=start, end_cycle=env.now, cycles=env.now - start,
                             busy_cycles=pool.busy - before[0], stall_memory_cycles=pool.stall_memory - before[1],
                             stall_weight_cycles=pool.stall_weights - before[2],
                             stall_output_cycles=pool.stall_output - before[3], peak_buffer_bytes=peak))
            pool.passes_done, pool.steps_done = 0, 0
            done[name] = (1, 0, 1)
        pool.done = True

    done = {l.name: (0, 0, 1) for l in net.layers}
    procs = [env.process(load()), env.process(compute())]
    run(ctx, procs, [pool, loader])
    gbuf.close()
    sram.close()
    cycles = env.now

    ev = EventCounts()
    counted = core_events(ctx, ev, net, done)
    ev.rng_ops = extra["rng_ops"]
    ev.add_sram(arch.buffer_array_bytes, read_bits=port.read_bits, write_bits=port.write_bits)
    ev.add_sram(arch.core_array_bytes, write_bits=extra["weight_bits"])          # streamed weights land in core SRAM
    if dram is not None:
        ev.dram_read_bits, ev.dram_write_bits = dram.read_bits, dram.write_bits
    ev.bit_mm = (noc.read_bits + noc.write_bits) * arch.average_hops() * arch.interconnect.hop_mm

    memory = dict(weights=float(weights.sum()), membrane=membrane.peak, spike_buffers=gbuf.peak,
                  peak_on_chip=on_chip.peak)
    per_layer = pd.concat([pd.DataFrame([dict(layer=l.name, kind=l.kind, timesteps=works[l.name].timesteps,
                                              **counted[l.name], input_spike_bits=works[l.name].input_spike_bits)
                                         for l in net.layers]), pd.DataFrame(rows)], axis=1)
    per_layer["utilization"] = per_layer["busy_cycles"] / per_layer["cycles"].where(per_layer["cycles"] > 0)
    dram_bytes = (dram.read_bits + dram.write_bits) / 8 if dram is not None else 0.0
    utilization = dict(cores=safe_div(pool.busy, cycles), dram=safe_div(dram.busy, cycles) if dram else 0.0,
                       global_buffer=safe_div(port.busy, cycles), interconnect=safe_div(noc.busy, cycles))
    ts = sorted({w.timesteps for w in works.values()})
    notes = [f"layers run their own timesteps ({', '.join(map(str, ts))}); carry: {carry}",
             f"simulated: {ctx.stats.tasks} tasks of up to {chunk} timestep(s) of one pass each"]
    if not pinned.all():
        notes.append(f"{int((~pinned).sum())} of {len(pinned)} layers' weights streamed from DRAM every inference; "
                     f"compute waited {pool.stall_weights:.6g} cycles for them")
    spilled = sum(v[1] for v in hist.values())
    if spilled:
        notes.append(f"{spilled / 8:.6g} B of inter-layer data spilled to DRAM (global buffer full)")
    if pool.stall_memory > 0.01 * cycles:
        notes.append(f"cores waited {pool.stall_memory:.6g} cycles on memory and network transfers")
    return finish(ctx, net, ev, cycles, memory, dram_bytes, per_layer, [pool, loader], utilization, notes)
