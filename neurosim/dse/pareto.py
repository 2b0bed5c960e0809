"""Pareto fronts over sweep rows: any two or three objectives, all minimised.

    front = pareto_front(df, ["energy", "latency"])            # per model and engine (default grouping)
    best = best_per_objective(df, ["energy", "latency", "area"])

Objectives are result columns, or the short names energy (energy_pj), latency
(latency_s), area (area_mm2, one chip's area) and memory (sram_provided_bytes,
the SRAM the design provides: a design choice, unlike the bytes a model holds,
which are equal across chips of one mapping and would tie every point);
peak_on_chip is the peak bytes the model holds (memory_peak_on_chip_bytes). A row is on the front when no other row of its group is at least as
good in every objective and better in one; rows with equal objective vectors
are all kept. Infeasible and failed points (no value) are never on a front.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import NeurosimError

ALIASES = {"energy": "energy_pj", "latency": "latency_s", "area": "area_mm2", "memory": "sram_provided_bytes",
           "sram": "sram_provided_bytes", "peak_on_chip": "memory_peak_on_chip_bytes",
           "memory_peak_on_chip": "memory_peak_on_chip_bytes"}
DEFAULT_OBJECTIVES = ("energy_pj", "latency_s")
DEFAULT_BY = ("model", "engine")
UNITS = {"energy_pj": "pJ", "latency_s": "s", "area_mm2": "mm²", "sram_provided_bytes": "B",
         "memory_peak_on_chip_bytes": "B"}


def objective_columns(names: list[str] | tuple[str, ...], df: pd.DataFrame | None = None) -> list[str]:
    cols = [ALIASES.get(n, n) for n in names]
    if not 2 <= len(cols) <= 3 or len(set(cols)) != len(cols):
        raise NeurosimError("--objectives", "objectives", f"got {list(names)}",
                            "give two or three different objectives, e.g. energy latency area")
    if df is not None:
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise NeurosimError("--objectives", missing[0], "no such result column",
                                f"use energy, latency, area, memory or a numeric column: "
                                f"{', '.join(c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]))}")
    return cols


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Which rows of an (n, k) array are non-dominated (all objectives minimised; NaN rows never)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    mask = np.zeros(n, bool)
    valid = np.flatnonzero(~np.isnan(values).any(axis=1))
    if not len(valid):
        return mask
    v = values[valid]
    # Lexicographic order: whatever dominates a row comes before it.
    order = np.lexsort(v.T[::-1])
    front: list[int] = []
    for i in order:
        x = v[i]
        if front:
            f = v[front]
            if np.any(np.all(f <= x, axis=1) & np.any(f < x, axis=1)):
                continue
        front.append(i)
    mask[valid[front]] = True
    return mask


def _groups(df: pd.DataFrame, by) -> list[tuple[tuple, pd.DataFrame]]:
    by = [b for b in (by or ()) if b in df.columns]
    if not by:
        return [((), df)]
    return [(k if isinstance(k, tuple) else (k,), g) for k, g in df.groupby(by, sort=False, dropna=False)]


def pareto_front(df: pd.DataFrame, objectives=DEFAULT_OBJECTIVES, by=DEFAULT_BY) -> pd.DataFrame:
    """The front's rows of each group, sorted by the first objective, with a `front_size` column."""
    cols = objective_columns(list(objectives), df)
    parts = []
    for _, g in _groups(df, by):
        m = pareto_mask(g[cols].to_numpy(dtype=float))
        front = g[m].sort_values(cols, kind="stable")
        parts.append(front.assign(front_size=len(front)))
    return pd.concat(parts) if parts else df.iloc[:0]


def best_per_objective(df: pd.DataFrame, objectives=DEFAULT_OBJECTIVES, by=DEFAULT_BY) -> pd.DataFrame:
    """For each group and objective, the row with the lowest value (ties: the first in plan order),
    among rows that have a value for every objective (as on the front)."""
    cols = objective_columns(list(objectives), df)
    rows = []
    for _, g in _groups(df, by):
        g = g[g[cols].notna().all(axis=1)]
        for c in cols:
            if len(g):
                rows.append(g.loc[[g[c].astype(float).idxmin()]].assign(best_for=c))
    if not rows:
        return df.iloc[:0].assign(best_for=[])
    out = pd.concat(rows)
    return out[["best_for"] + [c for c in out.columns if c != "best_for"]]
