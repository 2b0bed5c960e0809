"""Figures of a sweep (PNG, matplotlib Agg): the report page's and the analysis scripts'.

    scatter_front(df, path)            energy vs latency of every feasible point, per model, front drawn
    front_breakdown(front, axes, path) energy breakdown (compute, SRAM, DRAM, interconnect, leakage) of front points
    per_layer_latency(items, path)     time per layer of a few points (re-evaluated with per-layer detail)
    mapping_comparison(df, path)       best energy and latency per mapping, models ordered by size
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..plots import COLORS, axis_scale  # noqa: E402
from ..report import BREAKDOWN, format_si  # noqa: E402
from .labels import MAPPING_COLORS, MAPPING_ORDER, bytes_text, describe, latency_text, with_mapping_label  # noqa: E402
from .pareto import pareto_mask  # noqa: E402

OBJECTIVE_NAMES = {"area_mm2": "chip area", "sram_provided_bytes": "SRAM on chip",
                   "memory_peak_on_chip_bytes": "peak held memory"}
BREAKDOWN_LABELS = {"compute": "compute", "sram": "SRAM", "dram": "DRAM", "interconnect": "interconnect",
                    "leakage": "leakage"}


def _feasible(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df["energy_pj"].notna() & df["latency_s"].notna()]


def _grid(n: int, width: float = 5.2, height: float = 4.2):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _log_axis(axis, values: np.ndarray) -> None:
    """Log scale with plain-number labels; more labelled ticks when the data span less than a decade or two."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = values[np.isfinite(values) & (values > 0)]
    span = np.log10(values.max() / values.min()) if len(values) else 3
    subs = tuple(range(1, 10)) if span < 0.6 else (1.0, 2.0, 5.0) if span < 2.5 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _group_title(key) -> str:
    return " / ".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def _groups(df: pd.DataFrame, by, label: str) -> list:
    """Feasible rows with their mapping label, grouped by the `by` columns that vary (else by the first)."""
    ok = with_mapping_label(_feasible(df))
    by = [b for b in by if b in ok.columns and ok[b].nunique() > 1] or [b for b in by[:1] if b in ok.columns]
    return list(ok.groupby(by, sort=False)) if by else [(label, ok)]


def scatter_front(df: pd.DataFrame, path: str | Path, by=("model", "engine"), front_objectives=None) -> Path:
    """Energy per inference vs latency (log-log), one panel per group; points coloured by mapping;
    the energy-latency Pareto front drawn as a staircase. `front_objectives` (e.g. with memory)
    additionally rings the points on that front."""
    path = Path(path)
    groups = _groups(df, by, "all points")
    if not groups:
        return _empty(path, "no feasible points to draw")
    fig, axes = _grid(len(groups))
    for ax, (key, g) in zip(axes, groups):
        fe_, eunit = axis_scale(list(g["energy_pj"] * 1e-12), "J")
        fl_, lunit = axis_scale(list(g["latency_s"]), "s")
        e, lat = g["energy_pj"].to_numpy() * 1e-12 / fe_, g["latency_s"].to_numpy() / fl_
        for label in MAPPING_ORDER:
            sel = (g["mapping_label"] == label).to_numpy()
            if sel.any():
                ax.scatter(e[sel], lat[sel], s=14, alpha=0.55, color=MAPPING_COLORS[label], label=label,
                           edgecolors="none")
        m2 = pareto_mask(np.column_stack([e, lat]))
        order = np.argsort(e[m2])
        fe, fl = e[m2][order], lat[m2][order]
        ax.step(fe, fl, where="post", color="k", linewidth=1.2, label=f"Pareto front ({m2.sum()} points)")
        ax.scatter(fe, fl, s=30, facecolors="none", edgecolors="k", linewidths=1.0)
        if front_objectives is not None and len(front_objectives) == 3:
            m3 = pareto_mask(g[list(front_objectives)].to_numpy(dtype=float))
            third = OBJECTIVE_NAMES.get(front_objectives[2], front_objectives[2])
            ax.scatter(e[m3], lat[m3], s=70, facecolors="none", edgecolors="#c44e52", linewidths=0.9,
                       label=f"front incl. {third} ({m3.sum()})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_axis(ax.xaxis, e)
        _log_axis(ax.yaxis, lat)
        ax.set_xlabel(f"energy per inference ({eunit})")
        ax.set_ylabel(f"latency per inference ({lunit})")
        ax.set_title(f"{_group_title(key)}: {len(g)} feasible points", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.suptitle("energy vs latency (lower left is better)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))   # a third of an inch for the title
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _spread(g: pd.DataFrame, k: int) -> pd.DataFrame:
    """At most k rows, evenly spread along the front (sorted by energy)."""
    g = g.sort_values("energy_pj")
    if len(g) <= k:
        return g
    return g.iloc[np.unique(np.linspace(0, len(g) - 1, k).round().astype(int))]


def front_breakdown(front: pd.DataFrame, axes: list[str], path: str | Path, by=("model", "engine"),
                    per_group: int = 10) -> Path:
    """Stacked horizontal bars: each front point's energy by component (at most `per_group` per panel)."""
    path = Path(path)
    groups = _groups(front, by, "all")
    if not groups:
        return _empty(path, "no front points to draw")
    shown = [_spread(g, per_group) for _, g in groups]
    height = sum(2.2 + 0.38 * len(g) for g in shown)
    fig, axs = plt.subplots(len(groups), 1, figsize=(11, height), squeeze=False)
    for ax, (key, whole), g in zip(axs[:, 0], groups, shown):
        f, unit = axis_scale(list(g["energy_pj"] * 1e-12), "J")
        y = np.arange(len(g))
        left = np.zeros(len(g))
        for k in BREAKDOWN:
            vals = g[f"energy_{k}_pj"].fillna(0).to_numpy() * 1e-12 / f
            ax.barh(y, vals, left=left, color=COLORS[k], label=BREAKDOWN_LABELS[k], height=0.7)
            left += vals
        shown_axes = [a for a in axes if a not in by]
        labels = [(f"{row['mapping_label']}; " + describe(row, shown_axes)).rstrip("; ")
                  + f"  [{latency_text(row['latency_s'])}]" for _, row in g.iterrows()]
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"energy per inference ({unit})")
        ax.set_title(f"{_group_title(key)}: {len(g)} of {len(whole)} front points, lowest energy first "
                     "(latency in brackets)", fontsize=9)
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.08), ncol=5, frameon=False)
        ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def per_layer_latency(items: list[tuple[str, pd.DataFrame, float]], path: str | Path) -> Path:
    """Time per layer for a few points: items are (title, per-layer frame, clock_hz).

    The frame is a report's `per_layer` (closed form: 'cycles'; simulator: 'seconds'); sequential
    layers run one after another (the bars add up to the latency); spatial layers overlap in a
    pipeline (each bar is that layer's own compute time)."""
    path = Path(path)
    if not items:
        return _empty(path, "no points re-evaluated")
    cols = min(3, len(items))
    rows = -(-len(items) // cols)
    n_layers = max(len(i[1]) for i in items)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, rows * (0.16 * n_layers + 1.6)), squeeze=False)
    for ax in axes.flat[len(items):]:
        ax.set_visible(False)
    for ax, (title, pl, clock) in zip(axes.flat, items):
        secs = pl["seconds"].to_numpy() if "seconds" in pl else pl["cycles"].to_numpy() / clock
        f, unit = axis_scale(list(secs), "s")
        y = np.arange(len(pl))
        real = pl["macs"].fillna(0) + pl["other_ops"].fillna(0) if "macs" in pl else np.zeros(len(pl))
        spikes = pl["acs"].fillna(0) + pl["neuron_updates"].fillna(0) if "acs" in pl else np.ones(len(pl))
        colors = ["#c44e52" if r > s else "#4c72b0" for r, s in zip(np.asarray(real), np.asarray(spikes))]
        ax.barh(y, secs / f, color=colors, height=0.75)
        ax.set_yticks(y)
        ax.set_yticklabels(pl["layer"], fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel(f"time per layer ({unit})")
        ax.set_title(title, fontsize=8)
        ax.grid(True, axis="x", alpha=0.3)
    handles = [matplotlib.patches.Patch(color="#4c72b0", label="mostly spike work (ACs, neuron updates)"),
               matplotlib.patches.Patch(color="#c44e52", label="mostly real-valued work (MACs, softmax, LayerNorm)")]
    fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=2)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def mapping_comparison(df: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Lowest energy and lowest latency each mapping reaches, per model (models ordered by weight size);
    a mapping with no feasible point for a model is marked 'infeasible'."""
    path = Path(path)
    df = with_mapping_label(df)
    sizes = df.groupby("model", sort=False)["memory_weights_bytes"].max().fillna(np.inf).sort_values()
    models = list(sizes.index)
    labels = [m for m in MAPPING_ORDER if m in set(df["mapping_label"])]
    if not models or not labels:
        return _empty(path, "no rows to compare")
    ok = _feasible(df)
    fig, (ax_e, ax_l) = plt.subplots(1, 2, figsize=(4 + 1.6 * len(models) * max(1, len(labels)) / 1.5, 5.0))
    x = np.arange(len(models))
    w = 0.8 / len(labels)
    for ax, col, scale, unit, what in ((ax_e, "energy_pj", 1e-12, "J", "lowest energy per inference"),
                                       (ax_l, "latency_s", 1.0, "s", "lowest latency per inference")):
        best = {(m, label): ok[(ok["model"] == m) & (ok["mapping_label"] == label)][col].min() * scale
                for m in models for label in labels}
        f, shown_unit = axis_scale([v for v in best.values() if np.isfinite(v)], unit)
        for j, label in enumerate(labels):
            vals = [best[(m, label)] for m in models]
            xs = x + (j - (len(labels) - 1) / 2) * w
            ax.bar(xs, [v / f for v in vals], w * 0.95, color=MAPPING_COLORS[label], label=label)
            for xi, v in zip(xs, vals):
                if np.isnan(v):
                    ax.text(xi, 0.02, "infeasible", ha="center", va="bottom", fontsize=6,
                            color="#c44e52", transform=ax.get_xaxis_transform())
                else:
                    ax.annotate(format_si(v, unit), (xi, v / f), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize=6)
        ax.set_yscale("log")
        _log_axis(ax.yaxis, np.array([v / f for v in best.values()], dtype=float))
        ax.set_ylabel(f"{what} ({shown_unit})")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{m}\n({bytes_text(sizes[m])} weights)" for m in models], fontsize=8)
        ax.grid(True, axis="y", which="major", alpha=0.3)
    handles, names = ax_e.get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(title or "mapping comparison across model sizes (best point of each mapping)", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _empty(path: Path, text: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
