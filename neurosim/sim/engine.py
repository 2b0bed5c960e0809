"""What both mappings share: options, running the environment safely, and assembling the report.

Energy is priced from the components' own event counts by the closed form's
one pricing function (`cost.energy.energy_breakdown_pj`); core-SRAM accesses
follow from the tiles' counted work by the closed form's formula
(`cost.layout.core_accesses_by_layer`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import simpy

from ..arch import ArchConfig
from ..cost.chips import Chips
from ..cost.energy import BREAKDOWN_KEYS, EventCounts, energy_breakdown_pj, idle_leakage_pj
from ..cost.layout import core_accesses_by_layer, state_accesses
from ..cost.workload import Workload
from ..errors import NeurosimError
from ..ir import Network
from ..report import Report
from .components import Recorder, Tile
from .work import KEYS, LayerWork


@dataclass
class SimOptions:
    """Knobs of the simulation itself (not of the hardware).

    buffer_steps: capacity of each spatial inter-layer buffer, in timesteps of
        its producer's output (2 = double-buffered, what the spatial mapping
        allocates in core SRAM; 1 = single-buffered).
    steps_per_task: sequential mapping, consecutive timesteps of one pass
        simulated as one task (None: the fewest that keep the run under
        `max_tasks` tasks). Counts stay exact; only the interleaving of
        transfers inside a task is coarsened.
    max_tasks: the task budget that picks steps_per_task.
    burst_bytes: DRAM weight loads are booked in bursts of at most this size,
        so that spill traffic can interleave with them.
    time_limit_cycles: the simulated-time guard (None: four times the time all
        the work would take done one piece after another, which a run that
        makes progress never reaches).
    max_spatial_tasks: the spatial mapping runs one task per (layer, step);
        a run needing more is refused up front with its size (the closed
        form prices it in microseconds).
    max_wall_s: a run still going after this many seconds of wall time is
        stopped with a message saying how far it got.
    """

    buffer_steps: float = 2.0
    steps_per_task: int | None = None
    max_tasks: int = 50_000
    burst_bytes: float = 256 * 1024
    time_limit_cycles: float | None = None
    max_spatial_tasks: int = 2_000_000   # about 5 simpy events a task: minutes of wall time at most
    max_wall_s: float = 600.0

    def limit(self, serial_cycles: float) -> float:
        return self.time_limit_cycles if self.time_limit_cycles is not None else 4 * serial_cycles + 1e6


@dataclass
class SimStats:
    events: int = 0          # simpy events processed
    tasks: int = 0           # (layer tile, timestep group) tasks run
    steps_per_task: int = 1
    wall_s: float = 0.0


class SimulationDeadlock(NeurosimError):
    """The run stopped with work left: the event queue emptied, or simulated time passed its limit."""

    def __init__(self, where: str, field: str, problem: str, fix: str, blocked: list[str]):
        super().__init__(where, field, problem, fix)
        self.blocked = blocked


class LayerEvents:
    """Each layer's events as the run counts them ((1, L) arrays, the closed form's per-layer shape): the
    core events (`core_events`) and what the mappings book for a layer (its transfers, queues, Bernoulli
    draws), priced per layer by `layer_energy`."""

    def __init__(self, layers: int):
        self.ev = EventCounts(**{f.name: np.zeros((1, layers)) for f in fields(EventCounts)})

    def add(self, i: int | slice, **counts) -> None:
        """Add to layer i's counts (EventCounts field names; i a slice of layers: arrays of counts)."""
        for kind, value in counts.items():
            getattr(self.ev, kind)[0, i] += value


@dataclass
class Context:
    """One run: the network as simulated, the chip (`chips`: its one design point), and the work."""

    net: Network
    arch: ArchConfig
    works: dict[str, LayerWork]
    work: Workload          # per-layer sizes and the simulated work's counts, for the `cost.layout` decisions
    chips: Chips
    opts: SimOptions
    rec: Recorder
    seed: int
    env: simpy.Environment = field(default_factory=simpy.Environment)
    limit: float = math.inf  # simulated-time limit, set by the mapping (which knows the work)
    stats: SimStats = field(default_factory=SimStats)
    layers: LayerEvents | None = None   # each layer's events, for its energy (made with the context)
    pool: int | None = None             # the sequential pool's size where given (a plan's segment), else searched

    def __post_init__(self) -> None:
        self.layers = LayerEvents(len(self.net.layers))

    @property
    def where(self) -> str:
        return f"simulation of '{self.net.name}' on '{self.arch.name}' ({self.arch.mapping.kind})"

    def chip(self, name: str):
        """The chip's value of a `Chips` field (one design point)."""
        return getattr(self.chips, name)[0]


def run(ctx: Context, procs: list[simpy.Process], tiles: list[Tile]) -> None:
    """Run to completion, or raise SimulationDeadlock naming what each unfinished tile waits for.

    simpy's `run(until=...)` loop, written out with the public `peek`/`step`
    so that an empty schedule (a deadlock) and the time limit are seen before
    a step, not caught as errors after it.
    """
    env = ctx.env
    done = simpy.AllOf(env, procs)
    events, started = 0, time.perf_counter()
    while not done.processed:
        at = env.peek()
        if at > ctx.limit:      # also an empty schedule: peek gives infinity
            break
        env.step()
        events += 1
        if events % 10_000 == 0 and time.perf_counter() - started > ctx.opts.max_wall_s:
            raise NeurosimError(ctx.where, "max_wall_s", f"still running after {ctx.opts.max_wall_s:g} s of wall "
                                f"time ({events} events, simulated cycle {env.now:.6g})",
                                "use the closed form (--engine analytic) for a run this large, or raise "
                                "SimOptions.max_wall_s")
    ctx.stats.events = events
    if done.processed:
        return
    if at == math.inf:
        reason = f"the event queue emptied at cycle {env.now:.6g} with work left (deadlock)"
    else:
        reason = f"no completion by the simulated-time limit of {ctx.limit:.6g} cycles (next event at {at:.6g})"
    raise deadlock(ctx, reason, tiles)


def deadlock(ctx: Context, reason: str, tiles: list[Tile]) -> SimulationDeadlock:
    """The error for a run that stopped with work left: what each unfinished tile waits for, and the fixes."""
    blocked, comps, fixes = [], [], []
    for tile in tiles:
        if tile.done:
            continue
        waiting = tile.blocked(ctx.limit)
        if waiting is None:   # busy, not blocked: only a time limit stops such a run
            comp = "time limit"
            fix = ("the default limit (four times all the work done one piece after another) is never reached "
                   "by a run that makes progress: report this as a neurosim bug; a limit you set: raise "
                   "SimOptions.time_limit_cycles")
            blocked.append(f"{tile.name} was busy (pass {tile.passes_done}, {tile.steps_done} steps done)")
        else:
            comp, what, fix = waiting
            blocked.append(f"{tile.name} waits for {what}")
        if comp not in comps:
            comps.append(comp)
            fixes.append(fix)
    return SimulationDeadlock(ctx.where, ", ".join(comps) or "?", f"{reason}: " + "; ".join(blocked),
                              "; ".join(fixes) or "report this as a neurosim bug", blocked)


def core_events(ctx: Context, progress: list[tuple[int, int, int]]) -> tuple[EventCounts, list[dict]]:
    """Compute ops and core-SRAM accesses from each layer's counted work, and the per-layer counts.

    `progress[i]`: layer i's (passes done, steps done in the current pass,
    passes); a finished layer counts its source's exact totals. The core-SRAM
    bits are the closed form's `layout.core_accesses_by_layer` of that work.
    Each layer's events go to `ctx.layers`; the totals are their sums.
    """
    counted, dense = [], np.zeros(ctx.work.L)
    for i, layer in enumerate(ctx.net.layers):
        w = ctx.works[layer.name]
        counted.append({k: w.count(k, *progress[i]) for k in KEYS})
        dense[i] = w.dense_steps(*progress[i])
    per_layer = lambda key: np.array([float(c[key]) for c in counted])  # noqa: E731
    reads, writes, level_pj = core_accesses_by_layer(ctx.work, ctx.chips, ctx.arch.energy.ac_includes_memory,
                                                     per_layer("acs"), per_layer("macs"),
                                                     state_accesses(per_layer("neuron_updates"), ctx.arch.energy),
                                                     dense)
    acs, bits = per_layer("acs"), np.array([float(ctx.works[l.name].input_spike_bits) for l in ctx.net.layers])
    core = dict(acs=acs, ac_bit_ops=acs * bits, multilevel_acs=np.where(bits > 1, acs, 0.0), macs=per_layer("macs"),
                other_ops=per_layer("other_ops"), neuron_updates=per_layer("neuron_updates"),
                core_read_bits=reads[0], core_write_bits=writes[0], level_pj=level_pj[0])
    ctx.layers.add(slice(None), **core)
    return EventCounts(**{kind: float(v.sum()) for kind, v in core.items()}), counted


def counts_frame(ctx: Context, counted: list[dict]) -> pd.DataFrame:
    """Per-layer counts as the report's first columns (and the dense ACs, where zero weights were skipped)."""
    frame = pd.DataFrame([dict(layer=l.name, kind=l.kind, timesteps=ctx.works[l.name].timesteps, **c,
                               input_spike_bits=ctx.works[l.name].input_spike_bits)
                          for l, c in zip(ctx.net.layers, counted)])
    if ctx.work.zero_skipping:
        frame.insert(frame.columns.get_loc("acs") + 1, "dense_acs", [r["dense_acs"] for r in ctx.work.count_rows])
    return frame


def layer_energy(ctx: Context, held: np.ndarray, cycles: float) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Each layer's energy by kind (the per-layer `energy_<kind>_pj` columns, as the closed form's) and the
    energy of no layer, by kind.

    A layer's events (`ctx.layers`) are priced like the totals. Leakage: the
    chip's static power is split evenly over its cores, and a layer is charged
    that of the cores it holds while it holds them (`held`: each layer's
    core-cycles). The leakage of the cores no layer holds (the cores neither
    the pipeline's stages nor the sequential pool use) belongs to no layer.
    """
    chip_cores, clock, static_w = ctx.arch.cores.count, ctx.chip("clock_hz"), ctx.chip("static_power_w")
    energy = energy_breakdown_pj(ctx.layers.ev, ctx.arch.energy, core_array_bytes=ctx.chip("core_array"),
                                 buffer_array_bytes=ctx.chip("buffer_array"), static_power_w=static_w,
                                 latency_s=held[None, :] / chip_cores / clock)
    columns = {f"energy_{k}_pj": np.broadcast_to(v, (1, len(held)))[0].astype(float) for k, v in energy.items()}
    outside = {k: 0.0 for k in BREAKDOWN_KEYS}
    outside["leakage"] = float(idle_leakage_pj(static_w, chip_cores, clock, cycles, float(held.sum())))
    return columns, outside


def finish(ctx: Context, ev: EventCounts, cycles: float, memory: dict[str, float], dram_bytes: float,
           per_layer: pd.DataFrame, tiles: list[Tile], utilization: dict[str, float], notes: list[str],
           held: np.ndarray) -> Report:
    """Price the events (`energy_breakdown_pj`, the closed form's pricing), each layer's too (`layer_energy`;
    `held`: the core-cycles each layer holds), and assemble the report."""
    arch = ctx.arch
    latency_s = cycles / ctx.chip("clock_hz")
    breakdown = energy_breakdown_pj(ev, arch.energy, core_array_bytes=ctx.chip("core_array"),
                                    buffer_array_bytes=ctx.chip("buffer_array"),
                                    static_power_w=ctx.chip("static_power_w"), latency_s=latency_s)
    breakdown = {k: float(v) for k, v in breakdown.items()}
    figures = [cycles, float(latency_s), dram_bytes, *memory.values(), *breakdown.values()]
    if not all(math.isfinite(v) for v in figures):
        raise NeurosimError(ctx.where, "(results)", f"the figures overflow (energy {sum(breakdown.values()):.3g} pJ, "
                            f"latency {cycles:.3g} cycles)", "check the model's sizes, timesteps and rates and the "
                            "arch's numbers for a unit slip")
    columns, outside = layer_energy(ctx, held, cycles)
    per_layer = per_layer.assign(seconds=per_layer["cycles"] / ctx.chip("clock_hz"), **columns)
    timeline = ctx.rec.frame() if ctx.rec.on else None
    return Report(model=ctx.net.name, arch=arch.name, mapping=arch.mapping.kind, carry=arch.mapping.carry,
                  engine="simulator", feasible=True, notes=notes, acs=ev.acs, macs=ev.macs,
                  other_ops=ev.other_ops, neuron_updates=ev.neuron_updates,
                  energy_pj=sum(breakdown.values()), energy_breakdown_pj=breakdown,
                  latency_cycles=cycles, latency_s=float(latency_s), memory_bytes=memory,
                  dram_traffic_bytes=dram_bytes, per_layer=per_layer, utilization=utilization,
                  stall_cycles=float(sum(t.stalls for t in tiles)), timeline=timeline,
                  energy_outside_layers_pj=outside)


def safe_div(a: float, b: float) -> float:
    return float(a / b) if b > 0 else 0.0
