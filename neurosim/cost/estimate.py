"""`estimate(net, arch)`: the closed form (`cost.closed_form`) on one design point, as a `Report`."""

from __future__ import annotations

import pandas as pd

from ..arch import ArchConfig
from ..errors import NeurosimError
from ..ir import Network
from ..report import Report
from . import closed_form, reuse
from .area import with_area
from .chips import Chips
from .workload import workload


def infeasible(net: Network, arch: ArchConfig, reason: str, engine: str = "analytic") -> Report:
    return Report(model=net.name, arch=arch.name, mapping=arch.mapping.kind, carry=arch.mapping.carry,
                  engine=engine, feasible=False, notes=[reason])


def check_energy_table(arch: ArchConfig) -> None:
    if arch.energy is None:
        raise NeurosimError(arch.path, "energy_table", "the config was not loaded with its energy table",
                            "load configs with neurosim.arch.load_arch")


def evaluate(net: Network, chips: Chips, table, mapping: str, carry: str) -> closed_form.Costs:
    """The closed form of `net` on every point of `chips` with one mapping (points that all skip zero
    weights, or all do not: `cores.zero_skipping` changes the workload)."""
    skipping = bool(chips.zero_skipping[0])
    if (chips.zero_skipping != skipping).any():
        raise ValueError("evaluate: group the points by cores.zero_skipping first")
    if mapping == "spatial":
        return closed_form.spatial(workload(net, True, skipping), chips, table)
    return closed_form.sequential(workload(net, False, skipping), chips, table, carry)


def zero_skipping_note(work) -> list[str]:
    """What a chip that skips zero weights was charged: effective ACs against the dense count."""
    if not work.zero_skipping:
        return []
    return [f"zero weights skipped: {work.total['acs']:,.0f} effective ACs of {work.total['dense_acs']:,.0f} "
            "dense; linear weights held as compressed sparse columns"]


def point_notes(costs: closed_form.Costs, table) -> list[list[str]]:
    """Each point's notes, as a report and a sweep row give them: the mapping's, then what skipping zero
    weights saved and the accesses and energy per memory level inside the cores (`cost.reuse`, counted once
    for all the points)."""
    levels = reuse.level_notes(costs.work, costs.chips, table.ac_includes_memory, costs.per_layer["macs"])
    return [notes + zero_skipping_note(costs.work) + level for notes, level in zip(costs.notes, levels)]


def report(costs: closed_form.Costs, j: int, net: Network, arch: ArchConfig) -> Report:
    """Point j of a closed-form result as a Report (per-layer detail included)."""
    ev = costs.events
    per_layer = pd.DataFrame(costs.work.count_rows).assign(**{k: v[j] for k, v in costs.per_layer.items()})
    return Report(model=net.name, arch=arch.name, mapping=costs.mapping, carry=arch.mapping.carry,
                  engine="analytic", feasible=True,
                  notes=point_notes(costs, arch.energy)[j],
                  acs=float(ev.acs[j]),
                  macs=float(ev.macs[j]), other_ops=float(ev.other_ops[j]),
                  neuron_updates=float(ev.neuron_updates[j]),
                  energy_pj=float(costs.total_energy_pj[j]),
                  energy_breakdown_pj={k: float(v[j]) for k, v in costs.energy_pj.items()},
                  latency_cycles=float(costs.cycles[j]), latency_s=float(costs.latency_s[j]),
                  memory_bytes={k: float(v[j]) for k, v in costs.memory_bytes.items()},
                  dram_traffic_bytes=float(costs.dram_bytes[j]), per_layer=per_layer,
                  energy_outside_layers_pj=dict.fromkeys(costs.energy_pj, 0.0) | {
                      "leakage": float(costs.idle_leakage_pj[j])})


def estimate(net: Network, arch: ArchConfig, mapping: str | None = None, carry: str | None = None) -> Report:
    """Closed-form report for one network on one arch, with the arch's mapping unless overridden."""
    if mapping is not None or carry is not None:
        arch = arch.with_mapping(mapping or arch.mapping.kind, carry)
    check_energy_table(arch)
    costs = evaluate(net, Chips.of(arch), arch.energy, arch.mapping.kind, arch.mapping.carry)
    if costs.refused[0] is not None:
        raise arch.refuse(*costs.refused[0])
    if costs.infeasible[0] is not None:
        return with_area(infeasible(net, arch, costs.infeasible[0]), arch)
    return with_area(report(costs, 0, net, arch), arch)
