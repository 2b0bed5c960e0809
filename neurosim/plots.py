"""Figures: mappings side by side (energy breakdown, latency) and a simulation's timeline.

    compare_plot(reports, "compare.png")   # e.g. spatial, sequential (spikes), sequential (rates)
    timeline_plot(report, "timeline.png")  # a report from neurosim.sim.simulate(..., timeline=True)

Both write a PNG with matplotlib's Agg backend (no display needed) and
return the path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .errors import NeurosimError  # noqa: E402
from .report import BREAKDOWN, Report  # noqa: E402

COLORS = {"compute": "#4c72b0", "sram": "#55a868", "dram": "#c44e52", "interconnect": "#8172b2",
          "leakage": "#937860"}


def _label(r: Report) -> str:
    return r.mapping + (f"\n({r.carry})" if r.mapping == "sequential" else "")


def axis_scale(values: list[float], unit: str) -> tuple[float, str]:
    """The factor and unit to plot these values in: the SI prefix of the largest, from 1 down to pico ("µs")."""
    top = max([abs(v) for v in values] + [0.0])
    for factor, prefix in ((1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if top >= factor:
            return factor, prefix + unit
    return 1e-12, "p" + unit


def compare_plot(reports: list[Report], path: str | Path) -> Path:
    """Energy per inference broken down (stacked) and latency, one bar per report."""
    if not reports:
        raise NeurosimError("compare_plot", "reports", "no reports to draw", "pass at least one Report")
    path = Path(path)
    labels = [_label(r) for r in reports]
    x = np.arange(len(reports))
    fig, (ax_e, ax_l) = plt.subplots(1, 2, figsize=(4 + 2.2 * len(reports), 4.5))
    energies = [(r.energy_pj or 0.0) * 1e-12 for r in reports]
    f, unit = axis_scale(energies, "J")
    bottom = np.zeros(len(reports))
    for key in BREAKDOWN:
        vals = np.array([(r.energy_breakdown_pj or {}).get(key, 0.0) * 1e-12 / f for r in reports])
        ax_e.bar(x, vals, 0.6, bottom=bottom, label=key, color=COLORS[key])
        bottom += vals
    ax_e.set_ylabel(f"energy per inference ({unit})")
    ax_e.set_title("energy")
    ax_e.legend(fontsize=8)
    lat = [r.latency_s or 0.0 for r in reports]
    fl, lunit = axis_scale(lat, "s")
    ax_l.bar(x, [v / fl for v in lat], 0.6, color="#4c72b0")
    ax_l.set_ylabel(f"latency ({lunit})")
    ax_l.set_title("latency")
    for ax in (ax_e, ax_l):
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        for i, r in enumerate(reports):
            if not r.feasible:
                ax.text(i, 0, "infeasible", ha="center", va="bottom", rotation=90, color="#c44e52")
    r0 = reports[0]
    fig.suptitle(f"{r0.model} on {r0.arch} (engine: {r0.engine})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def timeline_plot(report: Report, path: str | Path, max_rows: int = 40) -> Path:
    """A Gantt chart of compute tiles and transfer channels over time, and buffer occupancy below it."""
    tl = report.timeline
    if tl is None or tl.empty:
        raise NeurosimError("timeline_plot", "report.timeline", "the report has no timeline",
                            "simulate with timeline=True (neurosim.sim.simulate(..., timeline=True))")
    path = Path(path)
    per_s = report.latency_cycles / report.latency_s if report.latency_s else 1.0   # the clock
    f, unit = axis_scale([report.latency_s or 0.0], "s")
    us = per_s * f      # cycles per plotted time unit
    busy = tl[tl["kind"] != "occupancy"]
    occ = tl[tl["kind"] == "occupancy"]
    computing = busy[busy["kind"] == "compute"]
    rows = list(dict.fromkeys(computing.sort_values("start", kind="stable")["component"]))
    rows += [c for c in dict.fromkeys(busy["component"]) if c not in rows]   # then DRAM, buffer port, network
    if len(rows) > max_rows:   # keep the busiest rows
        load = (busy["end"] - busy["start"]).groupby(busy["component"]).sum()
        keep = set(load.nlargest(max_rows).index)
        rows = [r for r in rows if r in keep]
    fig, (ax, ax_b) = plt.subplots(2, 1, figsize=(11, 2 + 0.25 * len(rows) + 2.5), sharex=True,
                                   gridspec_kw={"height_ratios": [max(2, 0.25 * len(rows)), 2]})
    colors = {"compute": "#4c72b0", "read": "#55a868", "write": "#8172b2", "transfer": "#55a868",
              "stall": "#c44e52"}
    for i, comp in enumerate(rows):
        part = busy[busy["component"] == comp]
        for kind, g in part.groupby("kind"):
            spans = list(zip(g["start"] / us, (g["end"] - g["start"]) / us))
            ax.broken_barh(spans, (i - 0.4, 0.8), facecolors=colors.get(kind, "#999999"), linewidth=0)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.invert_yaxis()
    handles = [matplotlib.patches.Patch(color=c, label=k) for k, c in colors.items() if k in set(busy["kind"])]
    ax.legend(handles=handles, fontsize=7, loc="upper right")
    ax.set_title(f"{report.model} on {report.arch}: {report.mapping}"
                 + (f" ({report.carry})" if report.mapping == "sequential" else ""))
    if occ.empty:
        ax_b.text(0.5, 0.5, "no buffer occupancy recorded", ha="center", transform=ax_b.transAxes)
    else:
        occ = occ.sort_values("start")
        total = _occupancy_total(occ)
        for comp, g in occ.groupby("component"):
            if g["bytes"].max() > 0.02 * max(total[1].max(), 1e-30) and occ["component"].nunique() <= 8:
                ax_b.step(g["start"] / us, g["bytes"] / 1024, where="post", label=comp, linewidth=0.8)
        ax_b.step(total[0] / us, total[1] / 1024, where="post", color="k", label="all buffers", linewidth=1.2)
        ax_b.legend(fontsize=7, loc="upper right")
    ax_b.set_ylabel("buffer occupancy (KiB)")
    ax_b.set_xlabel(f"time ({unit})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _occupancy_total(occ) -> tuple[np.ndarray, np.ndarray]:
    """Sum of all buffers' levels over time, from their (start, end, bytes) intervals."""
    times = np.unique(np.concatenate([occ["start"].to_numpy(), occ["end"].to_numpy()]))
    total = np.zeros(len(times))
    for start, end, level in zip(occ["start"], occ["end"], occ["bytes"]):
        i0, i1 = np.searchsorted(times, [start, end])
        total[i0:i1] += level
    return times, total
