"""Evaluating sweep points (runs on the workers): one row per point, models from `dse.models` (cached per process).

`evaluate_point` is the reference: it builds the point's arch through the
schema and calls `cost.estimate` or `sim.simulate`, exactly as `neurosim run`
would. `evaluate_batch` gives the same rows faster: closed-form points that
share a model, mapping and energy table go through the closed form in one
call over all of them (the same code `cost.estimate` runs on one point);
simulated points run one by one. A point that raises records its error string; the batch goes on.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from ..arch import ArchConfig, EnergyTable
from ..cost.chips import Chips
from ..cost.area import area_table, chip_area_mm2, provided_sram_bytes
from ..cost.estimate import evaluate, point_notes
from ..errors import NeurosimError
from ..ir import Network
from ..report import AREA, BREAKDOWN, MEMORY, UTILIZATION, Report
from ..schema import validate
from .models import energy_table, load_point_card, load_point_model
from .spec import Point

# Result columns, in order, after the point's own columns (point_id, index, model, engine, axes...).
RESULT_COLUMNS = (["status", "arch", "mapping", "carry", "feasible", "acs", "macs", "other_ops", "neuron_updates",
                   "energy_pj"] + [f"energy_{k}_pj" for k in BREAKDOWN]
                  + ["latency_cycles", "latency_s"] + [f"memory_{k}_bytes" for k in MEMORY]
                  + ["dram_traffic_bytes", "stall_cycles"] + [f"util_{k}" for k in UTILIZATION]
                  + ["sram_provided_bytes", "area_mm2"] + [f"area_{k}_mm2" for k in AREA]
                  + ["notes", "error", "eval_s"])
POINT_COLUMNS = ["point_id", "index", "model", "engine"]


def point_arch(point: Point) -> ArchConfig:
    """The point's arch config, validated by the schema, with its energy table."""
    return validate(point.arch, ArchConfig, point.where).loaded_from(point.where, energy_table(point.energy_path))


def point_columns(point: Point) -> dict[str, Any]:
    return {"point_id": point.id, "index": point.index, "model": point.model.label, "engine": point.engine,
            **point.values}


def report_row(report: Report) -> dict[str, Any]:
    """A report as one flat row (no per-layer detail)."""
    e = report.energy_breakdown_pj or {}
    m = report.memory_bytes or {}
    u = report.utilization or {}
    row = {"status": "ok" if report.feasible else "infeasible", "arch": report.arch, "mapping": report.mapping,
           "carry": report.carry, "feasible": report.feasible, "acs": report.acs, "macs": report.macs,
           "other_ops": report.other_ops, "neuron_updates": report.neuron_updates, "energy_pj": report.energy_pj}
    row.update({f"energy_{k}_pj": e.get(k) for k in BREAKDOWN})
    row.update(latency_cycles=report.latency_cycles, latency_s=report.latency_s)
    row.update({f"memory_{k}_bytes": m.get(k) for k in MEMORY})
    row.update(dram_traffic_bytes=report.dram_traffic_bytes, stall_cycles=report.stall_cycles)
    row.update({f"util_{k}": u.get(k) for k in UTILIZATION})
    a = report.area_breakdown_mm2 or {}
    row.update(sram_provided_bytes=report.sram_provided_bytes, area_mm2=report.area_mm2)
    row.update({f"area_{k}_mm2": a.get(k) for k in AREA})
    row.update(notes=" | ".join(report.notes), error=None)
    return {k: (float(v) if hasattr(v, "item") and not isinstance(v, bool) else v) for k, v in row.items()}


def error_text(exc: BaseException) -> str:
    if isinstance(exc, NeurosimError):
        return str(exc)
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{at}"


def error_row(point: Point, text: str) -> dict[str, Any]:
    row = dict.fromkeys(RESULT_COLUMNS)
    arch = point.arch
    row.update(status="error", arch=arch.get("name"), mapping=(arch.get("mapping") or {}).get("kind"),
               carry=(arch.get("mapping") or {}).get("carry"), feasible=False, notes="", error=text)
    return row


def evaluate_point(point: Point) -> dict[str, Any]:
    """One point, the reference way: `estimate` or `simulate` on the schema-built arch."""
    t0 = time.perf_counter()
    try:
        net = load_point_model(point.model)
        arch = point_arch(point)
        card = load_point_card(point.model)
        if card is not None:        # a decoder card: its prefill and decode workload (neurosim.llm)
            from ..llm.sweep import workload_report

            report = workload_report(card, arch, point.engine)
        elif point.engine == "analytic":
            from ..cost.estimate import estimate

            report = estimate(net, arch)
        else:
            from ..cost.area import with_area
            from ..sim import simulate

            report = with_area(simulate(net, arch), arch)
        row = report_row(report)
    except Exception as exc:  # a failing point is recorded, the sweep goes on
        row = error_row(point, error_text(exc))
    row["eval_s"] = time.perf_counter() - t0
    return {**point_columns(point), **row}


def closed_form_rows(net: Network, points: list[Point], table: EnergyTable) -> list[dict[str, Any]]:
    """Rows of closed-form points that share a network, mapping, carry and energy table: the one closed
    form (`cost.closed_form`) over all of them at once, as `cost.estimate` runs it over one."""
    mapping = points[0].arch["mapping"]
    costs = evaluate(net, Chips([p.arch for p in points]), table, mapping["kind"], mapping["carry"])
    ev, total, latency = costs.events, costs.total_energy_pj, costs.latency_s
    ops = {"acs": ev.acs, "macs": ev.macs, "other_ops": ev.other_ops, "neuron_updates": ev.neuron_updates}
    archs = [p.arch for p in points]
    sram = provided_sram_bytes(archs)
    areas = chip_area_mm2(archs, area_table(table.name)) if area_table(table.name) is not None else None
    notes = point_notes(costs, table)
    rows = []
    for j, p in enumerate(points):
        row = dict.fromkeys(RESULT_COLUMNS)
        row.update(arch=costs.chips.names[j], mapping=mapping["kind"], carry=mapping["carry"], error=None)
        if costs.refused[j] is None:   # the design's SRAM and area, whether or not the model fits it
            row.update(sram_provided_bytes=float(sram[j]))
            if areas is not None:
                row.update(area_mm2=float(areas["total"][j]), **{f"area_{k}_mm2": float(areas[k][j]) for k in AREA})
        if costs.refused[j] is not None:
            row.update(status="error", feasible=False, notes="", error=str(NeurosimError(p.where, *costs.refused[j])))
        elif costs.infeasible[j] is not None:
            row.update(status="infeasible", feasible=False, notes=costs.infeasible[j])
        else:
            row.update(status="ok", feasible=True, energy_pj=float(total[j]), latency_cycles=float(costs.cycles[j]),
                       latency_s=float(latency[j]), dram_traffic_bytes=float(costs.dram_bytes[j]),
                       notes=" | ".join(notes[j]), **{k: float(v[j]) for k, v in ops.items()})
            row.update({f"energy_{k}_pj": float(costs.energy_pj[k][j]) for k in BREAKDOWN})
            row.update({f"memory_{k}_bytes": float(costs.memory_bytes[k][j]) for k in MEMORY})
        rows.append(row)
    return rows


def evaluate_batch(points: list[Point]) -> list[dict[str, Any]]:
    """Rows for a batch of points, in the batch's order."""
    rows: dict[str, dict] = {}
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        if p.engine == "analytic" and load_point_card(p.model) is None:
            hbm = p.arch.get("hbm") or {}   # HBM stacks price DRAM traffic in place of the table's figures
            key = (p.model.key(), p.arch["mapping"]["kind"], p.arch["mapping"]["carry"], p.energy_path,
                   p.arch["cores"].get("zero_skipping", False), hbm.get("read_pj_per_bit"), hbm.get("write_pj_per_bit"))
            groups.setdefault(key, []).append(p)
        else:
            rows[p.id] = evaluate_point(p)
    for group in groups.values():
        t0 = time.perf_counter()
        try:
            # the group's energy table as `cost.estimate` gets it (`ArchConfig.loaded_from`: HBM's DRAM figures)
            results = closed_form_rows(load_point_model(group[0].model), group, point_arch(group[0]).energy)
        except Exception:  # anything unexpected: the one-point path attributes errors to points
            for p in group:
                rows[p.id] = evaluate_point(p)
            continue
        each = (time.perf_counter() - t0) / len(group)
        for p, res in zip(group, results):
            rows[p.id] = {**point_columns(p), **res, "eval_s": each}
    return [rows[p.id] for p in points]
