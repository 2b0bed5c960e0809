"""One configuration's result, as JSON-ready data and as a table for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

BREAKDOWN = ("compute", "sram", "dram", "interconnect", "leakage")
MEMORY = ("weights", "membrane", "spike_buffers", "peak_on_chip")
UTILIZATION = ("cores", "dram", "global_buffer", "interconnect")
AREA = ("core_sram", "global_buffer", "accumulators", "mac_units", "routers")   # parts of cost.area


@dataclass
class Report:
    model: str
    arch: str
    mapping: str
    carry: str
    engine: str
    feasible: bool
    notes: list[str] = field(default_factory=list)
    acs: float | None = None
    macs: float | None = None
    other_ops: float | None = None
    neuron_updates: float | None = None
    energy_pj: float | None = None
    energy_breakdown_pj: dict[str, float] | None = None
    latency_cycles: float | None = None
    latency_s: float | None = None
    memory_bytes: dict[str, float] | None = None
    dram_traffic_bytes: float | None = None
    per_layer: pd.DataFrame | None = None
    # Filled by the simulator (neurosim.sim); None from the closed form.
    # utilization: busy fraction of the run per component ("cores", "dram",
    # "global_buffer", "interconnect"); stall_cycles: cycles compute waited on
    # hardware (full buffers, weight loads, memory and network bandwidth);
    # timeline: one row per busy interval (component, start, end, layer,
    # timestep, plus kind, steps, bytes), in cycles, when asked for.
    utilization: dict[str, float] | None = None
    stall_cycles: float | None = None
    timeline: pd.DataFrame | None = None
    # The simulator's energy of no layer, by kind (the leakage of cores no layer holds): the per-layer rows'
    # energy_<kind>_pj plus this sum to energy_breakdown_pj. None from the closed form, whose rows share it all.
    energy_outside_layers_pj: dict[str, float] | None = None
    # Filled by cost.area.with_area from the arch: one chip's area (mm^2, total and by part) and the SRAM
    # it provides (cores' and global buffer's bytes), whatever the model holds.
    area_mm2: float | None = None
    area_breakdown_mm2: dict[str, float] | None = None
    sram_provided_bytes: float | None = None

    def __str__(self) -> str:
        """The table `neurosim run` prints (print(report))."""
        return comparison_table([self])

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("per_layer", "timeline")}
        if per_layer and self.per_layer is not None:
            out["per_layer"] = self.per_layer.to_dict(orient="records")
        return out


def format_si(value: float | None, unit: str) -> str:
    """A number with an SI prefix, 3 significant digits: 3.2e-6 J -> '3.2 µJ'; None -> '-'."""
    if value is None:
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"),
                          (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= scale:
            return f"{significant(value / scale)} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def format_bytes(value: float | None) -> str:
    """A byte count in binary units, 3 significant digits: 65536 -> '64 KiB'; None -> '-'."""
    if value is None:
        return "-"
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


def significant(value: float) -> str:
    """3 significant digits, never in e-notation: 0.0123 -> '0.0123', 1620.4 -> '1,620'."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def format_area(mm2: float | None) -> str:
    """An area in mm², 3 significant digits (µm² below 0.01 mm²); None -> '-'."""
    if mm2 is None:
        return "-"
    return f"{significant(mm2)} mm²" if mm2 >= 0.01 or mm2 == 0 else f"{significant(mm2 * 1e6)} µm²"


AREA_LABELS = {"core_sram": "core SRAM", "global_buffer": "global buffer", "accumulators": "accumulators",
               "mac_units": "MAC units", "routers": "routers"}


def comparison_table(reports: list[Report]) -> str:
    """Reports side by side, one column each, with units."""
    def col(r: Report) -> list[str]:
        e = r.energy_breakdown_pj or {}
        m = r.memory_bytes or {}
        a = r.area_breakdown_mm2 or {}
        energy = [format_si(None if r.energy_pj is None else r.energy_pj * 1e-12, "J")]
        energy += [format_si(e[k] * 1e-12, "J") + f" ({100 * e[k] / r.energy_pj:.0f}%)" if e else "-"
                   for k in BREAKDOWN]
        return ([f"{r.mapping}" + (f" ({r.carry})" if r.mapping == "sequential" else ""),
                 "yes" if r.feasible else "NO", format_si(r.acs, ""), format_si(r.macs, "")]
                + energy + [format_si(r.latency_s, "s"), format_si(r.latency_cycles, "cycles")]
                + [format_bytes(m.get(k)) for k in MEMORY] + [format_bytes(r.sram_provided_bytes)]
                + [format_area(r.area_mm2)] + [format_area(a.get(k)) + f" ({100 * a[k] / r.area_mm2:.0f}%)"
                                               if a and r.area_mm2 else "-" for k in AREA]
                + [format_bytes(r.dram_traffic_bytes)]
                + [format_si(r.stall_cycles, "cycles")]
                + [f"{100 * (r.utilization or {}).get(k, 0):.0f}%" if r.utilization else "-" for k in UTILIZATION])

    labels = (["mapping", "feasible", "ACs", "MACs", "energy / inference"]
              + [f"  {k}" for k in BREAKDOWN] + ["latency", "  cycles"]
              + [f"memory: {k}" for k in MEMORY] + ["SRAM on chip (provided)", "chip area"]
              + [f"  {AREA_LABELS[k]}" for k in AREA] + ["DRAM traffic / inference"]
              + ["stall (waiting on memory, network, buffers)"] + [f"utilization: {k}" for k in UTILIZATION])
    head = f"model {reports[0].model} on {reports[0].arch} (engine: {reports[0].engine})"
    return side_by_side(head, labels, [col(r) for r in reports],
                        [(r.mapping, r.notes + pace_note(r.per_layer)) for r in reports])


PACE_NAMES_SHOWN = 3   # layers named per port in the pace note; the rest are counted


def pace_note(per_layer: pd.DataFrame | None) -> list[str]:
    """One note naming the layers whose time a memory port inside the cores sets rather than compute (the
    per-layer `pace` column, `cost.layout.pace`: "<level> port" or "core SRAM port"), or none."""
    if per_layer is None or "pace" not in per_layer:
        return []
    bound = per_layer[per_layer["pace"].astype(str).str.endswith(" port")]
    if bound.empty:
        return []
    parts = []
    for port, rows in bound.groupby("pace", sort=False):
        names = list(rows["layer"])
        more = f" and {len(names) - PACE_NAMES_SHOWN} more" if len(names) > PACE_NAMES_SHOWN else ""
        parts.append(f"{port}: {', '.join(names[:PACE_NAMES_SHOWN])}{more}")
    return [f"paced by a memory port, not compute: {len(bound)} of {len(per_layer)} layers ({'; '.join(parts)}); "
            "per layer: run --per-layer"]


def side_by_side(head: str, labels: list[str], columns: list[list[str]], notes: list[tuple[str, list[str]]]) -> str:
    """A table of one column per report under `head`, then each report's notes (tagged) below it."""
    width0 = max(map(len, labels))
    widths = [max(len(v) for v in c) for c in columns]
    lines = [head, "-" * len(head)]
    for i, label in enumerate(labels):
        lines.append(f"{label:<{width0}}  " + "  ".join(f"{c[i]:>{w}}" for c, w in zip(columns, widths)))
    lines += [f"note [{tag}]: {note}" for tag, tagged in notes for note in tagged]
    return "\n".join(lines)


def _stall(row) -> float | None:
    parts = [row[c] for c in row.index if c.startswith("stall_") and c.endswith("_cycles") and pd.notna(row[c])]
    return float(sum(parts)) if parts else None


def per_layer_table(report: Report) -> str:
    """The report's per-layer rows for people: energy by kind (share of the layer's energy), cycles, stalls,
    memory, with units; columns the engine did not fill are left out."""
    pl = report.per_layer
    if pl is None or pl.empty:
        return "(no per-layer detail)"
    has_energy = all(f"energy_{k}_pj" in pl for k in BREAKDOWN)
    header = ["layer", "kind", "T"] + (["pace"] if "pace" in pl else [])   # compute, or the port that sets it
    if has_energy:
        header += ["energy"] + [k for k in BREAKDOWN]
    header += ["cycles", "stall", "memory"]
    rows = []
    for _, r in pl.iterrows():
        cells = [str(r["layer"]), str(r["kind"]), str(int(r["timesteps"])) if "timesteps" in pl else "-"]
        cells += [str(r["pace"])] if "pace" in pl else []
        if has_energy:
            cells += _energy_cells({k: float(r[f"energy_{k}_pj"]) for k in BREAKDOWN})
        cells.append(format_si(float(r["cycles"]), "") if "cycles" in pl else "-")
        stall = _stall(r)
        cells.append("-" if stall is None else format_si(stall, ""))
        memory = r.get("memory_bytes", r.get("peak_buffer_bytes"))
        cells.append("-" if memory is None or pd.isna(memory) else format_bytes(float(memory)))
        rows.append(cells)
    outside = report.energy_outside_layers_pj
    if has_energy and outside and sum(outside.values()) > 0:
        rows.append([NO_LAYER, "", "-"] + ["-"] * ("pace" in pl) + _energy_cells(outside) + ["-", "-", "-"])
    widths = [max(len(h), *(len(c[i]) for c in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines += ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
              for cells in rows]
    if has_energy:
        lines.append(LEAKAGE_BY_LAYER)
    return "\n".join(lines)


NO_LAYER = "(no layer)"
# How both engines split the chip's leakage over the layers (cost.closed_form._price_by_layer, sim.engine.layer_energy)
LEAKAGE_BY_LAYER = (f"leakage: a layer is charged the static power of the cores it holds (the chip's, split evenly "
                    f"per core) while it holds them; {NO_LAYER}: the cores no layer holds")


def _energy_cells(joules_pj: dict[str, float]) -> list[str]:
    """A row's energy and each kind's share of it."""
    total = sum(joules_pj[k] for k in BREAKDOWN)
    return [format_si(total * 1e-12, "J")] + [f"{100 * joules_pj[k] / total:.0f}%" if total else "-" for k in BREAKDOWN]
