"""Figures: mappings side by side (energy breakdown, latency) and a simulation's timeline.

    compare_plot(reports, "compare.png")   # e.g. spatial, sequential (spikes), sequential (rates)
    timeline_plot(report, "timeline.png")  # a report from neurosim.sim.simulate(..., timeline=True)
    per_layer_plot(report, "layers.png")   # energy by kind and time (computing, stalled) of each layer

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
from .report import BREAKDOWN, NO_LAYER, Report, format_bytes, format_si  # noqa: E402

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


def stall_share(r: Report) -> float:
    """The part of the latency spent waiting: the simulator's stall cycles over the cycles, per stage
    (a spatial pipeline sums stalls over its stages, one per layer; the sequential pool is one stage)."""
    if not r.stall_cycles or not r.latency_cycles:
        return 0.0
    stages = len(r.per_layer) if r.mapping == "spatial" and r.per_layer is not None and len(r.per_layer) else 1
    return min(1.0, r.stall_cycles / stages / r.latency_cycles)


def _bar_values(ax, x, tops, texts) -> None:
    """Each bar's value written above it."""
    for xi, top, text in zip(x, tops, texts):
        if text:
            ax.annotate(text, (xi, top), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=8)


def _infeasible_labels(ax, reports) -> None:
    for i, r in enumerate(reports):
        if not r.feasible:
            ax.text(i, 0.02, "infeasible", ha="center", va="bottom", color="#c44e52", fontsize=9,
                    transform=ax.get_xaxis_transform())


def compare_plot(reports: list[Report], path: str | Path) -> Path:
    """Energy per inference broken down (stacked) and latency split into compute and stall, one bar per
    report, each with its value written on it."""
    if not reports:
        raise NeurosimError("compare_plot", "reports", "no reports to draw", "pass at least one Report")
    path = Path(path)
    labels = [_label(r) for r in reports]
    x = np.arange(len(reports))
    fig, (ax_e, ax_l) = plt.subplots(1, 2, figsize=(5.5 + 2.2 * len(reports), 4.8))
    energies = [(r.energy_pj or 0.0) * 1e-12 for r in reports]
    f, unit = axis_scale(energies, "J")
    bottom = np.zeros(len(reports))
    for key in BREAKDOWN:
        vals = np.array([(r.energy_breakdown_pj or {}).get(key, 0.0) * 1e-12 / f for r in reports])
        ax_e.bar(x, vals, 0.6, bottom=bottom, label=key, color=COLORS[key])
        bottom += vals
    _bar_values(ax_e, x, bottom, [format_si(e, "J") if r.feasible else "" for e, r in zip(energies, reports)])
    ax_e.set_ylabel(f"energy per inference ({unit})")
    ax_e.set_title("energy")
    ax_e.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    lat = np.array([r.latency_s or 0.0 for r in reports])
    fl, lunit = axis_scale(list(lat), "s")
    stall = np.array([stall_share(r) for r in reports]) * lat / fl
    ax_l.bar(x, lat / fl - stall, 0.6, color=COLORS["compute"], label="computing")
    ax_l.bar(x, stall, 0.6, bottom=lat / fl - stall, color="#c44e52", label="stalled (waiting on memory,\n"
             "network or buffers; spatial:\nmean over its stages)")
    _bar_values(ax_l, x, lat / fl, [format_si(v, "s") if r.feasible else "" for v, r in zip(lat, reports)])
    ax_l.set_ylabel(f"latency per inference ({lunit})")
    ax_l.set_title("latency")
    if stall.any():
        ax_l.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax in (ax_e, ax_l):
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.margins(y=0.12)   # room for the values above the bars
        _infeasible_labels(ax, reports)
    r0 = reports[0]
    fig.suptitle(f"{r0.model} on {r0.arch} (engine: {r0.engine})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


TIMELINE_COLORS = {"compute": "#4c72b0", "read": "#55a868", "write": "#8172b2", "transfer": "#dd8452",
                   "stall": "#c44e52"}


def timeline_rows(report: Report, busy, max_rows: int) -> list[str]:
    """Compute tiles in the network's layer order (the same order in every block), then DRAM, buffer
    port and interconnect; the busiest rows when there are more than max_rows."""
    tiles = list(dict.fromkeys(busy.loc[busy["kind"] == "compute", "component"]))
    order = list(report.per_layer["layer"]) if report.per_layer is not None and "layer" in report.per_layer else []
    rank = {f"tile {name}": i for i, name in enumerate(order)}
    rows = sorted(tiles, key=lambda c: rank.get(c, len(rank)))
    rows += [c for c in dict.fromkeys(busy["component"]) if c not in rows]
    if len(rows) > max_rows:
        load = (busy["end"] - busy["start"]).groupby(busy["component"]).sum()
        keep = set(load.nlargest(max_rows).index)
        rows = [r for r in rows if r in keep]
    return rows


def _label_running_layers(ax, busy, row: int, component: str, us: float, span: float) -> None:
    """On a row whose cores run layer after layer (the sequential pool), each layer's name over its run."""
    axes_pt = ax.figure.get_size_inches()[0] * ax.get_position().width * 72
    for x, text in running_layer_labels(busy, component, us, LABEL_CHAR_PT / axes_pt * span):
        ax.text(x, row, text, ha="center", va="center", fontsize=6, color="white", clip_on=True)


def running_layer_labels(busy, component: str, us: float, char: float) -> list[tuple[float, str]]:
    """(centre, text) of each layer's label on a row whose cores run layer after layer: its whole name where
    it fits inside the layer's run (`char`: one character's width in the axis's units), else its name within
    its block, else none; none on a row that is not a core pool's (channels, or a single layer)."""
    work = busy[(busy["component"] == component) & busy["layer"].notna()]
    if "compute" not in set(work["kind"]) or work["layer"].nunique() < 2:
        return []
    labels = []
    for layer, g in work.groupby("layer", sort=False):
        start, end = g["start"].min() / us, g["end"].max() / us
        fits = [text for text in (str(layer), str(layer).split(".")[-1]) if len(text) * char < end - start]
        if fits:
            labels.append(((start + end) / 2, fits[0]))
    return labels


LABEL_CHAR_PT = 0.6 * 6    # a 6-point label's mean character width (about 0.6 em)


def timeline_plot(report: Report, path: str | Path, max_rows: int = 40,
                  capacities: dict[str, float] | None = None) -> Path:
    """A Gantt chart of compute tiles and transfer channels over time, and buffer occupancy below it,
    with each buffer's capacity (`capacities`: component name -> bytes) drawn as a dashed line."""
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
    rows = timeline_rows(report, busy, max_rows)
    span = max(float(tl["end"].max()) / us, 1e-30)
    fig, (ax, ax_b) = plt.subplots(2, 1, figsize=(12.5, 2 + 0.25 * len(rows) + 2.5), sharex=True,
                                   gridspec_kw={"height_ratios": [max(2, 0.25 * len(rows)), 2]})
    for i, comp in enumerate(rows):
        part = busy[busy["component"] == comp]
        for kind, g in part.groupby("kind"):
            spans = list(zip(g["start"] / us, (g["end"] - g["start"]) / us))
            ax.broken_barh(spans, (i - 0.4, 0.8), facecolors=TIMELINE_COLORS.get(kind, "#999999"), linewidth=0)
        if report.mapping == "sequential":
            _label_running_layers(ax, busy, i, comp, us, span)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.invert_yaxis()
    handles = [matplotlib.patches.Patch(color=c, label=k) for k, c in TIMELINE_COLORS.items() if k in set(busy["kind"])]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"{report.model} on {report.arch}: {report.mapping}"
                 + (f" ({report.carry})" if report.mapping == "sequential" else ""))
    if occ.empty:
        ax_b.text(0.5, 0.5, "no buffer occupancy recorded", ha="center", transform=ax_b.transAxes)
    else:
        _occupancy(ax_b, occ.sort_values("start"), us, capacities or {})
    ax_b.set_ylabel("buffer occupancy (KiB)")
    ax_b.set_xlabel(f"time ({unit})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _occupancy(ax, occ, us: float, capacities: dict[str, float]) -> None:
    """Each buffer's level (if few) and their total over time; capacities as dashed lines of the buffer's
    colour, or named in the legend when far above the levels drawn."""
    total = _occupancy_total(occ)
    top = max(total[1].max(), 1e-30)
    for comp, g in occ.groupby("component"):
        if g["bytes"].max() > 0.02 * top and occ["component"].nunique() <= 8:
            line, = ax.step(g["start"] / us, g["bytes"] / 1024, where="post", label=comp, linewidth=0.8)
            cap = capacities.get(comp)
            if cap is not None and cap <= 3 * top:
                ax.axhline(cap / 1024, color=line.get_color(), linestyle="--", linewidth=0.9,
                           label=f"{comp} capacity ({format_bytes(cap)})")
            elif cap is not None:
                ax.plot([], [], color=line.get_color(), linestyle="--",
                        label=f"{comp} capacity ({format_bytes(cap)}, above the plot)")
    ax.step(total[0] / us, total[1] / 1024, where="post", color="k", label="all buffers", linewidth=1.2)
    cap = capacities.get("all buffers")
    if cap is not None:
        ax.axhline(cap / 1024, color="k", linestyle="--", linewidth=0.9, label=f"their capacity ({format_bytes(cap)})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def per_layer_plot(report: Report, path: str | Path) -> Path:
    """Each layer's energy stacked by kind (left) and its time split into computing and stalled (right),
    one horizontal bar per layer in the network's order, values written at the bars' ends. The simulator's
    energy of no layer (the leakage of cores no layer holds) is a bar of its own, below the layers."""
    pl = report.per_layer
    if pl is None or pl.empty:
        raise NeurosimError("per_layer_plot", "report.per_layer", "the report has no per-layer rows",
                            "use a report from neurosim.estimate or neurosim.sim.simulate")
    path = Path(path)
    joules = _layer_joules(report)
    no_layer = [f"{NO_LAYER}: idle cores"] if joules is not None and len(joules["compute"]) > len(pl) else []
    labels = list(pl["layer"]) + no_layer
    fig, (ax_e, ax_l) = plt.subplots(1, 2, figsize=(13, 1.6 + 0.28 * len(labels)), sharey=True)
    if joules is not None:
        _stacked_energy(ax_e, joules)
    else:
        ax_e.text(0.5, 0.5, f"no per-layer energy from the {report.engine} engine", ha="center",
                  transform=ax_e.transAxes)
    _layer_times(ax_l, report)
    ax_e.set_yticks(np.arange(len(labels)))
    ax_e.set_yticklabels(labels, fontsize=7)
    ax_e.invert_yaxis()
    fig.suptitle(f"{report.model} on {report.arch}: {_label(report).replace(chr(10), ' ')}, per layer "
                 f"(engine: {report.engine})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _layer_joules(report: Report) -> dict[str, np.ndarray] | None:
    """Each layer's energy by kind in J, plus a last row for the energy of no layer where the report has
    some; None where the per-layer rows carry no energy."""
    pl = report.per_layer
    if not all(f"energy_{k}_pj" in pl for k in BREAKDOWN):
        return None
    outside = report.energy_outside_layers_pj or {}
    extra = [outside[k] for k in BREAKDOWN] if sum(outside.values()) > 0 else []
    return {k: np.append(pl[f"energy_{k}_pj"].to_numpy(dtype=float), extra[i:i + 1]) * 1e-12
            for i, k in enumerate(BREAKDOWN)}


def _stacked_energy(ax, joules: dict[str, np.ndarray]) -> None:
    total = sum(joules.values())
    y = np.arange(len(total))
    f, unit = axis_scale(list(total), "J")
    left = np.zeros(len(total))
    for k in BREAKDOWN:
        ax.barh(y, joules[k] / f, 0.7, left=left, color=COLORS[k], label=k)
        left += joules[k] / f
    for yi, v in zip(y, total):
        ax.annotate(format_si(v, "J"), (v / f, yi), xytext=(2, 0), textcoords="offset points", va="center",
                    fontsize=6)
    ax.set_xlabel(f"energy per inference ({unit})")
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=5, frameon=False)
    ax.set_xlim(0, max(total.max() / f, 1e-30) * 1.2)   # room for the values


def _layer_times(ax, report: Report) -> None:
    pl = report.per_layer
    y = np.arange(len(pl))
    clock = report.latency_cycles / report.latency_s if report.latency_s else 1.0
    cycles = pl["cycles"].to_numpy(dtype=float)
    stall_cols = [c for c in pl.columns if c.startswith("stall_") and c.endswith("_cycles")]
    stall = np.minimum(pl[stall_cols].fillna(0).to_numpy(dtype=float).sum(axis=1), cycles) if stall_cols else 0 * cycles
    fl, lunit = axis_scale(list(cycles / clock), "s")
    ax.barh(y, (cycles - stall) / clock / fl, 0.7, color=COLORS["compute"], label="computing")
    if stall.any():
        ax.barh(y, stall / clock / fl, 0.7, left=(cycles - stall) / clock / fl, color="#c44e52", label="stalled")
    for yi, v in zip(y, cycles / clock):
        ax.annotate(format_si(v, "s"), (v / fl, yi), xytext=(2, 0), textcoords="offset points", va="center",
                    fontsize=6)
    ax.set_xlabel(f"time per layer ({lunit})" + ("; layers overlap in the pipeline" if report.mapping == "spatial"
                                                   else "; layers run one after another"))
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    ax.set_xlim(0, max(cycles.max() / clock / fl, 1e-30) * 1.2)


def _occupancy_total(occ) -> tuple[np.ndarray, np.ndarray]:
    """Sum of all buffers' levels over time, from their (start, end, bytes) intervals."""
    times = np.unique(np.concatenate([occ["start"].to_numpy(), occ["end"].to_numpy()]))
    total = np.zeros(len(times))
    for start, end, level in zip(occ["start"], occ["end"], occ["bytes"]):
        i0, i1 = np.searchsorted(times, [start, end])
        total[i0:i1] += level
    return times, total
