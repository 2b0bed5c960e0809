"""What both mappings share: options, running the environment safely, and assembling the report."""

from __future__ import annotations

from dataclasses import dataclass, field
import pandas as pd
import simpy

from ..arch import ArchConfig
from ..cost.energy import EventCounts, energy_breakdown_pj
from ..cost.estimate import _live
from ..errors import NeurosimError
from ..ir import Network
from ..report import Report
from .components import Environment, Recorder, Tile, TimeLimit
from .work import LayerWork


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
    """

    buffer_steps: float = 2.0
    steps_per_task: int | None = None
    max_tasks: int = 50_000
    burst_bytes: float = 256 * 1024
    time_limit_cycles: float | None = None

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


@dataclass
class Context:
    net: Network
    arch: ArchConfig
    works: dict[str, LayerWork]
    counts: pd.DataFrame
    opts: SimOptions
    rec: Recorder
    seed: int
    env: Environment | None = None   # made by the mapping, which knows the time limit
    stats: SimStats = field(default_factory=SimStats)

    @property
    def where(self) -> str:
        return f"simulation of '{self.net.name}' on '{self.arch.name}' ({self.arch.mapping.kind})"


def run(ctx: Context, procs: list[simpy.Process], tiles: list[Tile]) -> None:
    """Run to completion, or raise SimulationDeadlock naming what each unfinished tile waits for."""
    done = simpy.AllOf(ctx.env, procs)
    reason = None
    try:
        ctx.env.run(until=done)
    except RuntimeError as exc:
        if "No scheduled events left" not in str(exc):
            raise
        reason = f"the event queue emptied at cycle {ctx.env.now:.6g} with work left (deadlock)"
    except TimeLimit as exc:
        reason = (f"no completion by the simulated-time limit of {ctx.env.limit:.6g} cycles (next event at "
                  f"{exc.args[0]:.6g})")
    ctx.stats.events = ctx.env.events
    if reason is None:
        return
    blocked, comps, fixes = [], [], []
    for tile in tiles:
        if tile.done:
            continue
        if tile.waiting is None:   # busy, not blocked: only a time limit stops such a run
            comp = "time limit"
            fix = ("the default limit (four times all the work done one piece after another) is never reached "
                   "by a run that makes progress: report this as a neurosim bug; a limit you set: raise "
                   "SimOptions.time_limit_cycles")
            blocked.append(f"{tile.name} was busy (pass {tile.passes_done}, {tile.steps_done} steps done)")
        else:
            comp, what, fix = tile.waiting
            blocked.append(f"{tile.name} waits for {what}")
        if comp not in comps:
            comps.append(comp)
            fixes.append(fix)
    raise SimulationDeadlock(ctx.where, ", ".join(comps) or "?", f"{reason}: " + "; ".join(blocked),
                             "; ".join(fixes) or "report this as a neurosim bug", blocked)


def core_events(ctx: Context, ev: EventCounts, net: Network, done: dict[str, tuple[int, int, int]]) -> dict:
    """Compute ops and core-SRAM accesses, from each tile's op counters.

    Output-stationary cores (as cost.estimate): an AC or MAC reads one weight
    from the core's SRAM; a neuron update reads and writes one membrane; a
    real-valued output reads and writes its value once per token and step.
    So a core's SRAM accesses follow from its op counts. `done` maps a layer
    to (passes done, steps done in the current pass, passes).
    """
    arch, table, sram = ctx.arch, ctx.arch.energy, ctx.arch.core_array_bytes
    per_layer = {}
    for layer in net.layers:
        w = ctx.works[layer.name]
        pd_, sd, p = done[layer.name]
        c = {k: w.count(k, pd_, sd, p) for k in ("acs", "macs", "other_ops", "neuron_updates", "spikes_out")}
        per_layer[layer.name] = c
        ev.acs += c["acs"]
        ev.ac_bit_ops += c["acs"] * w.input_spike_bits
        ev.macs += c["macs"]
        ev.other_ops += c["other_ops"]
        ev.neuron_updates += c["neuron_updates"]
        weight_reads = c["acs"] if not table.ac_includes_memory else 0.0
        weight_bits = layer.weight_bits if layer.kind != "attention" else arch.precision.activation_bits
        ev.add_sram(sram, read_bits=(weight_reads + c["macs"]) * weight_bits)
        if layer.spiking:
            bits = c["neuron_updates"] * arch.precision.membrane_bits
        else:
            steps = (pd_ * w.timesteps + sd) / p if pd_ < p else w.timesteps
            bits = layer.seq_len * steps * _live(net, layer) * arch.precision.activation_bits
        ev.add_sram(sram, read_bits=bits, write_bits=bits)
    return per_layer


def finish(ctx: Context, net: Network, ev: EventCounts, cycles: float, memory: dict[str, float],
           dram_bytes: float, per_layer: pd.DataFrame, tiles: list[Tile], utilization: dict[str, float],
           notes: list[str]) -> Report:
    arch = ctx.arch
    latency_s = cycles / arch.clock_hz
    breakdown = energy_breakdown_pj(ev, arch.energy, arch.static_power_w, latency_s)
    per_layer = per_layer.assign(seconds=per_layer["cycles"] / arch.clock_hz)
    timeline = ctx.rec.frame() if ctx.rec.on else None
    return Report(model=net.name, arch=arch.name, mapping=arch.mapping.kind, carry=arch.mapping.carry,
                  engine="simulator", feasible=True, notes=notes, acs=ev.acs, macs=ev.macs,
                  other_ops=ev.other_ops, neuron_updates=ev.neuron_updates,
                  energy_pj=sum(breakdown.values()), energy_breakdown_pj=breakdown,
                  latency_cycles=cycles, latency_s=latency_s, memory_bytes=memory,
                  dram_traffic_bytes=dram_bytes, per_layer=per_layer, utilization=utilization,
                  stall_cycles=float(sum(t.stalls for t in tiles)), timeline=timeline)


def safe_div(a: float, b: float) -> float:
    return float(a / b) if b > 0 else 0.0
