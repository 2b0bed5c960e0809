"""One segment of a plan on one or many core budgets: its costs, and what its handoffs need.

A segment is its own network (`cut.segment_network`) run with today's mapping of its kind on the cores
the plan gives it (`Chips.with_cores`), with its resources given (a spatial segment's cores per layer,
`Chips.with_layer_cores`; a sequential one's pool, `closed_form.sequential_on_pool`) or picked by the
mapping's rule: `closed_form_segment` runs the closed form over an array of points at once (the search's
inner loop, the same code `cost.estimate` runs on one point); `simulated_segment` runs the simulator on one. Beside the segment's own costs, each records what
its handoffs to and from the next segment need: the bits its last layer carries, what of them its own
run already spilled to DRAM (sequential), and how often its first layers read their input (passes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..arch import ArchConfig
from ..cost import closed_form, layout
from ..cost.chips import Chips
from ..cost.estimate import evaluate
from ..cost.estimate import report as estimate_report
from ..cost.workload import workload
from ..ir import Network
from ..report import BREAKDOWN, MEMORY, Report

COUNTS = ("acs", "macs", "other_ops", "neuron_updates")


@dataclass
class SegmentCosts:
    """A segment's figures on n core budgets (arrays of length n)."""

    kind: str
    carry: str
    cores: np.ndarray
    energy_pj: dict[str, np.ndarray]       # by kind (BREAKDOWN); leakage is the whole chip's over its run
    cycles: np.ndarray
    latency_s: np.ndarray
    memory_bytes: dict[str, np.ndarray]    # MEMORY keys
    pinned_bytes: np.ndarray               # weights held on its cores for the whole inference
    dram_bytes: np.ndarray
    counts: dict[str, np.ndarray]          # ACs, MACs, other ops, neuron updates
    feasible: np.ndarray
    infeasible: list[str | None]           # why a budget does not fit (None where it does); empty once gathered
    notes: list[list[str]]
    exit_bits: np.ndarray                  # its last layer's output, as it carries it
    exit_spill_bits: np.ndarray | None     # what its own run spilled of that to DRAM (sequential), else None
    reader_passes: np.ndarray              # runs of its first layers over their input (each pass reads it)
    regen_draws: np.ndarray                # Bernoulli draws to regenerate its input from carried rates
    report: Report | None = None           # a one-point segment's report (per-layer rows), where made

    def point(self, j) -> "SegmentCosts":
        """The figures of the points `j` (an index array): the same segment on other budgets (the search
        gathers many combinations; their reasons and notes are left out)."""
        pick = lambda a: None if a is None else np.asarray(a)[j]  # noqa: E731
        return replace(self, cores=pick(self.cores), energy_pj={k: pick(v) for k, v in self.energy_pj.items()},
                       cycles=pick(self.cycles), latency_s=pick(self.latency_s),
                       memory_bytes={k: pick(v) for k, v in self.memory_bytes.items()},
                       pinned_bytes=pick(self.pinned_bytes), dram_bytes=pick(self.dram_bytes),
                       counts={k: pick(v) for k, v in self.counts.items()}, feasible=pick(self.feasible),
                       infeasible=[], notes=[], exit_bits=pick(self.exit_bits),
                       exit_spill_bits=pick(self.exit_spill_bits), reader_passes=pick(self.reader_passes),
                       regen_draws=pick(self.regen_draws), report=None)


def with_objective(arch: ArchConfig, objective: str | None) -> ArchConfig:
    """The arch whose free mapping choices are made for `objective` (None: its own)."""
    if objective is None or objective == arch.mapping.objective:
        return arch
    return arch.model_copy(update={"mapping": arch.mapping.model_copy(update={"objective": objective})})


def with_core_count(arch: ArchConfig, cores: int) -> ArchConfig:
    """The arch with `cores` cores: what a segment of a plan runs on (the rest of the chip is other segments')."""
    if cores == arch.cores.count:
        return arch
    return arch.model_copy(update={"cores": arch.cores.model_copy(update={"count": int(cores)})})


@dataclass
class Given:
    """A segment's resources on n points, where given: a spatial segment's cores per layer ({layer: cores}
    per point), or a sequential segment's pool size per point; None: the mapping's rule picks them."""

    layer_cores: list[dict[str, int]] | None = None
    pools: np.ndarray | None = None

    def tiled(self, times: int) -> "Given":
        return Given(None if self.layer_cores is None else self.layer_cores * times,
                     None if self.pools is None else np.tile(self.pools, times))


def closed_form_segment(sub: Network, arch: ArchConfig, cores, kind: str, carry: str,
                        given: Given | None = None) -> SegmentCosts:
    """The closed form of segment `sub` with today's `kind` mapping on every budget of `cores` at once
    (its resources given on each, or picked by the rule)."""
    return closed_form_segments(sub, arch, cores, kind, (carry,), given=given)[carry]


def closed_form_segments(sub: Network, arch: ArchConfig, cores, kind: str, carries: tuple[str, ...],
                         objectives: tuple[str, ...] | None = None, given: Given | None = None) -> dict:
    """`closed_form_segment` for each carry ({carry: SegmentCosts}); a spatial segment, whose run does not
    depend on what it carries out, is priced once. With `objectives`, one call prices the budgets for each
    objective of the free choices ({objective: {carry: SegmentCosts}}): a point per (objective, budget)."""
    cores = np.asarray(cores, dtype=np.int64)
    goals = objectives or (arch.mapping.objective,)
    dumps = [with_objective(arch, goal).model_dump() for goal in goals for _ in cores]
    tiled = np.tile(cores, len(goals))
    given = (given or Given()).tiled(len(goals))
    out = {}
    if kind == "spatial":     # one run; only the exit's carried bits differ
        costs = _priced(sub, arch, dumps, tiled, kind, carries[0], given)
        first = _segment_costs(costs, sub, arch, kind, carries[0])
        for carry in carries:
            out[carry] = replace(first, carry=carry,
                                 exit_bits=layout.carry_bits(costs.work, costs.chips, carry)[:, -1])
    else:
        for carry in carries:
            out[carry] = _segment_costs(_priced(sub, arch, dumps, tiled, kind, carry, given), sub, arch, kind,
                                        carry)
    if objectives is None:
        return out
    n = len(cores)
    return {goal: {carry: c.point(np.arange(k * n, (k + 1) * n)) for carry, c in out.items()}
            for k, goal in enumerate(goals)}


def _priced(sub: Network, arch: ArchConfig, dumps: list[dict], cores: np.ndarray, kind: str, carry: str,
            given: Given):
    chips = Chips(dumps).with_cores(cores)
    with np.errstate(divide="ignore", invalid="ignore"):   # a budget too small to run on is infeasible, not NaN
        if given.layer_cores is not None:
            costs = evaluate(sub, chips.with_layer_cores(given.layer_cores), arch.energy, kind, carry)
        elif given.pools is not None:
            work = workload(sub, False, bool(chips.zero_skipping[0]))
            costs = closed_form.sequential_on_pool(work, chips, arch.energy, carry, given.pools)
        else:
            costs = evaluate(sub, chips, arch.energy, kind, carry)
    refused = next((r for r in costs.refused if r is not None), None)
    if refused is not None:
        raise arch.refuse(*refused)
    return costs


def _segment_costs(costs, sub: Network, arch: ArchConfig, kind: str, carry: str) -> SegmentCosts:
    work, cores = costs.work, costs.chips.cores
    n = len(cores)
    readers = np.array([not layer.inputs for layer in sub.layers])
    if kind == "spatial":
        passes = np.ones((n, work.L))
        pinned = np.full(n, work.weight_bytes.sum())
        exit_spill = None
    else:
        passes = costs.per_layer["passes"].astype(float)
        pinned = work.weight_bytes.sum() - costs.per_layer["streamed_weight_bytes"].sum(axis=1)
        exit_spill = costs.per_layer["spill_bytes"][:, -1] * 8
    regen = (work.input_values * work.timesteps)[None, :] * passes if work.input_spiking else np.zeros((n, work.L))
    ev = costs.events
    return SegmentCosts(
        kind=kind, carry=carry, cores=cores, energy_pj={k: costs.energy_pj[k] for k in BREAKDOWN},
        cycles=costs.cycles, latency_s=costs.latency_s, memory_bytes={k: costs.memory_bytes[k] for k in MEMORY},
        pinned_bytes=pinned, dram_bytes=costs.dram_bytes,
        counts={k: np.broadcast_to(getattr(ev, k), (n,)).astype(float) for k in COUNTS},
        feasible=np.array([r is None for r in costs.infeasible]), infeasible=list(costs.infeasible),
        notes=[list(x) for x in costs.notes],
        exit_bits=layout.carry_bits(work, costs.chips, carry)[:, -1], exit_spill_bits=exit_spill,
        reader_passes=(passes * readers[None, :]).sum(axis=1), regen_draws=(regen * readers[None, :]).sum(axis=1),
        report=estimate_report(costs, 0, sub, with_core_count(arch, cores[0])) if n == 1 and costs.infeasible[0]
        is None else None)


def simulated_segment(sub: Network, arch: ArchConfig, cores: int, kind: str, carry: str,
                      given: Given | None = None) -> SegmentCosts:
    """The simulator's run of segment `sub` on `cores` cores (its resources given on one point, or picked by
    the rule); its handoff needs (exit bits, spills, passes) are the mapping decisions the simulator shares
    with the closed form (`cost.layout`), taken from it."""
    from ..sim import simulate

    given = given or Given()
    decided = closed_form_segment(sub, arch, [cores], kind, carry, given)
    report = simulate(sub, with_core_count(arch, cores), kind, carry,
                      layer_cores=given.layer_cores[0] if given.layer_cores is not None else None,
                      pool=int(given.pools[0]) if given.pools is not None else None)
    if not report.feasible:
        return replace(decided, feasible=np.array([False]), infeasible=[report.notes[0] if report.notes else
                                                                         "does not fit"], report=report)
    one = lambda x: np.array([float(x)])  # noqa: E731
    return replace(decided, energy_pj={k: one(report.energy_breakdown_pj[k]) for k in BREAKDOWN},
                   cycles=one(report.latency_cycles), latency_s=one(report.latency_s),
                   memory_bytes={k: one(report.memory_bytes[k]) for k in MEMORY},
                   dram_bytes=one(report.dram_traffic_bytes), counts={k: one(getattr(report, k)) for k in COUNTS},
                   notes=[list(report.notes)], report=report)
