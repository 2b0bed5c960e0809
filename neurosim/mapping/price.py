"""A plan's energy, latency and memory: its segments one after another, and the handoffs between them.

The simplest semantics, stated: for one inference the segments run one after another, each on its own
cores with today's mapping of its kind (`segments`); a pipelined hybrid (segments overlapping over
timesteps or inputs) is future work. So:

* energy = the segments' energies + the handoffs'; leakage is the whole chip's static power over the
  total latency (each segment's closed form or simulation already charges the chip's leakage over its
  own run, so the sum is the chip's over the sum of the runs);
* latency = the segments' latencies + the handoffs' (a handoff is not overlapped with compute: an upper
  bound on it);
* peak memory = the largest of each segment's peak plus what the other segments keep pinned (weights on
  their own cores) plus the handoff it reads from the global buffer.

A handoff carries the last layer of a segment to the first layers of the next as that segment's `carry`
says (spike history or counts, `cost.layout.carry_bits`), like the sequential mapping's carry: it is
held in the global buffer, what does not fit spills to DRAM (a chip without DRAM cannot run the plan),
and every pass of every reader reads it; counts are regenerated into spikes with a Bernoulli draw per
input neuron, token and step. A spatial segment writes its output there at its end; a sequential one
already has (its own run holds its outputs in the global buffer). The next segment receives it as a
segment network receives its input (`cut.segment_network`), spike packets from the mesh's centre, where
the global buffer sits. The closed form and the simulator price handoffs with this one formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arch import ArchConfig
from ..cost.area import with_area
from ..cost.chips import Chips
from ..cost.energy import EventCounts, energy_breakdown_pj
from ..cost.estimate import estimate
from ..cost.layout import no_spill_room
from ..ir import Network
from ..report import BREAKDOWN, Report
from .cut import segment_network
from .plan import Plan
from .segments import COUNTS, Given, SegmentCosts, closed_form_segment, simulated_segment, with_objective


@dataclass
class PlanCosts:
    """A plan's figures on n points (arrays of length n): n resource choices of one plan shape."""

    energy_pj: dict[str, np.ndarray]
    total_energy_pj: np.ndarray
    cycles: np.ndarray
    latency_s: np.ndarray
    memory_bytes: dict[str, np.ndarray]
    dram_bytes: np.ndarray
    counts: dict[str, np.ndarray]
    feasible: np.ndarray
    handoff_bits: list[tuple[np.ndarray, np.ndarray]]   # per handoff: (held in the global buffer, spilled)


def handoff_events(producer: SegmentCosts, consumer: SegmentCosts, buffer_bits: float
                   ) -> tuple[EventCounts, np.ndarray, np.ndarray]:
    """The events of one handoff, and the bits of it held in the global buffer and spilled to DRAM."""
    carried = producer.exit_bits
    if producer.exit_spill_bits is None:          # spatial: its output is written to the buffer now
        held = np.minimum(carried, buffer_bits)
        spill = carried - held
        written, spill_written = held, spill
    else:                                         # sequential: its own run wrote it (and spilled what it spilled)
        spill = producer.exit_spill_bits
        held = carried - spill
        written = spill_written = np.zeros_like(carried)
    reads = consumer.reader_passes
    rng = consumer.regen_draws if producer.carry == "rates" else np.zeros_like(carried)
    ev = EventCounts(buffer_write_bits=written, dram_write_bits=spill_written, buffer_read_bits=held * reads,
                     dram_read_bits=spill * reads, rng_ops=rng)
    return ev, held, spill


def compose(segs: list[SegmentCosts], chips: Chips, table) -> PlanCosts:
    """The plan of these segments (each with arrays over the same n points); `chips`: the arch, one point."""
    clock, cap = chips.clock_hz[0], float(chips.buffer_bytes[0]) * 8
    energy = {k: segs[0].energy_pj[k] for k in BREAKDOWN}
    cycles, dram = segs[0].cycles, segs[0].dram_bytes
    counts = {k: segs[0].counts[k] for k in COUNTS}
    feasible = segs[0].feasible
    handoffs = []
    for producer, consumer in zip(segs, segs[1:]):
        ev, held, spill = handoff_events(producer, consumer, cap)
        buffer_bits = ev.buffer_read_bits + ev.buffer_write_bits
        dram_bits = ev.dram_read_bits + ev.dram_write_bits
        with np.errstate(divide="ignore", invalid="ignore"):
            dram_cycles = np.where(dram_bits > 0, dram_bits / chips.dram_bits_per_cycle[0], 0.0)
        handoff_cycles = np.maximum(buffer_bits / 8 / chips.buffer_bytes_per_cycle[0], dram_cycles)
        priced = energy_breakdown_pj(ev, table, core_array_bytes=chips.core_array[0],
                                     buffer_array_bytes=chips.buffer_array[0], static_power_w=chips.static_power_w[0],
                                     latency_s=handoff_cycles / clock)
        energy = {k: energy[k] + consumer.energy_pj[k] + priced[k] for k in BREAKDOWN}
        cycles = cycles + handoff_cycles + consumer.cycles
        dram = dram + dram_bits / 8 + consumer.dram_bytes
        counts = {k: counts[k] + consumer.counts[k] for k in COUNTS}
        feasible = feasible & consumer.feasible & ((spill <= 0) | bool(chips.has_dram[0]))
        handoffs.append((held, spill))
    total = energy["compute"] + energy["sram"] + energy["dram"] + energy["interconnect"] + energy["leakage"]
    return PlanCosts(energy, total, cycles, cycles / clock, plan_memory(segs, handoffs), dram, counts, feasible,
                     handoffs)


def plan_memory(segs: list[SegmentCosts], handoffs: list) -> dict[str, np.ndarray]:
    """Peak bytes by kind: while segment k runs, its own, the handoff it reads, and the others' pinned weights."""
    if len(segs) == 1:
        return dict(segs[0].memory_bytes)
    pinned = sum(s.pinned_bytes for s in segs)
    held_in = [0.0] + [held / 8 for held, _ in handoffs]
    peak = [s.memory_bytes["peak_on_chip"] + h + pinned - s.pinned_bytes for s, h in zip(segs, held_in)]
    return dict(weights=sum(s.memory_bytes["weights"] for s in segs),
                membrane=np.maximum.reduce([s.memory_bytes["membrane"] for s in segs]),
                spike_buffers=np.maximum.reduce([s.memory_bytes["spike_buffers"] + h for s, h in zip(segs, held_in)]),
                peak_on_chip=np.maximum.reduce(peak))


def plan_segments(plan: Plan, net: Network, arch: ArchConfig, engine: str = "analytic"
                  ) -> tuple[list[SegmentCosts], str | None]:
    """Each segment of the plan priced on its cores by `engine` ('analytic' or 'sim'), or why it cannot be."""
    bounds = plan.bounds(net)
    cores, short = plan.cores(arch.cores.count)
    if short is not None:
        return [], short
    arch = with_objective(arch, plan.objective)
    segs = []
    for seg, (first, last), c in zip(plan.segments, bounds, cores):
        sub = segment_network(net, first, last)
        given = Given(None if seg.layer_cores is None else [seg.layer_cores],
                      None if seg.pool is None else np.array([seg.pool]))
        price = closed_form_segment if engine == "analytic" else simulated_segment
        segs.append(price(sub, arch, [c] if engine == "analytic" else c, seg.kind, seg.carry, given))
    return segs, None


def why_not(plan: Plan, net: Network, segs: list[SegmentCosts], costs: PlanCosts, chips: Chips) -> str:
    """The first shortfall of an infeasible plan (one point)."""
    for seg, s in zip(plan.segments, segs):
        if not s.feasible[0]:
            return f"segment {seg.label()}: {s.infeasible[0]}"
    for seg, (held, spill) in zip(plan.segments, costs.handoff_bits):
        if spill[0] > 0:
            return f"handoff after '{seg.last}': " + no_spill_room(seg.last, held[0] + spill[0],
                                                                    float(chips.buffer_bytes[0]))
    return "does not fit"


def plan_report(plan: Plan, net: Network, arch: ArchConfig, engine: str = "analytic") -> Report:
    """The report of a plan, as `neurosim run` prints it: a plan of one segment is today's mapping and gives
    exactly today's report (`estimate` or `simulate`); more segments are composed (see the module's doc)."""
    one = plan.segments[0]
    if len(plan.segments) == 1 and one.cores in (None, arch.cores.count) and one.layer_cores is one.pool is None:
        plan.bounds(net)
        seg, run_arch = plan.segments[0], with_objective(arch, plan.objective)
        if engine == "analytic":
            return estimate(net, run_arch, seg.kind, seg.carry)
        from ..sim import simulate

        return with_area(simulate(net, run_arch, seg.kind, seg.carry), arch)
    segs, short = plan_segments(plan, net, arch, engine)
    base = Report(model=net.name, arch=arch.name, mapping="plan", carry="-", engine=engine, feasible=False,
                  notes=[plan.label()])
    if short is not None:
        base.notes.append(short)
        return with_area(base, arch)
    chips = Chips.of(arch)
    costs = compose(segs, chips, arch.energy)
    if not costs.feasible[0]:
        base.notes.append(why_not(plan, net, segs, costs, chips))
        return with_area(base, arch)
    return with_area(composed_report(plan, net, arch, engine, segs, costs), arch)


def composed_report(plan: Plan, net: Network, arch: ArchConfig, engine: str, segs: list[SegmentCosts],
                    costs: PlanCosts) -> Report:
    import pandas as pd

    notes = [plan.label() + "; segments run one after another, handoffs through the global buffer"]
    for k, (seg, s) in enumerate(zip(plan.segments, segs)):
        notes += [f"segment {k} ({seg.kind}): {note}" for note in s.notes[0]]
    for seg, (held, spill) in zip(plan.segments, costs.handoff_bits):
        notes.append(f"handoff after '{seg.last}' as {seg.carry}: {(held[0] + spill[0]) / 8:,.0f} B"
                     + (f", {spill[0] / 8:,.0f} B of it spilled to DRAM" if spill[0] > 0 else ""))
    rows = [s.report.per_layer.assign(segment=k) for k, s in enumerate(segs)
            if s.report is not None and s.report.per_layer is not None]
    per_layer = pd.concat(rows, ignore_index=True) if len(rows) == len(segs) else None
    return Report(model=net.name, arch=arch.name, mapping="plan", carry="-", engine=engine, feasible=True,
                  notes=notes, **{k: float(costs.counts[k][0]) for k in COUNTS},
                  energy_pj=float(costs.total_energy_pj[0]),
                  energy_breakdown_pj={k: float(v[0]) for k, v in costs.energy_pj.items()},
                  latency_cycles=float(costs.cycles[0]), latency_s=float(costs.latency_s[0]),
                  memory_bytes={k: float(v[0]) for k, v in costs.memory_bytes.items()},
                  dram_traffic_bytes=float(costs.dram_bytes[0]),
                  per_layer=per_layer, energy_outside_layers_pj=outside_layers(costs, per_layer))


def outside_layers(costs: PlanCosts, per_layer) -> dict[str, float] | None:
    """The plan's energy that no layer's row holds, by kind: the handoffs between segments, and the leakage
    of the cores no layer holds over the whole run (the chip leaks while any segment runs)."""
    if per_layer is None or any(f"energy_{k}_pj" not in per_layer for k in BREAKDOWN):
        return None
    return {k: float(costs.energy_pj[k][0]) - float(per_layer[f"energy_{k}_pj"].sum()) for k in BREAKDOWN}
