"""Short human labels for sweep rows: mappings, point descriptions, numbers with units."""

from __future__ import annotations

import math

import pandas as pd

from ..report import format_area, format_bytes, format_si

MAPPING_ORDER = ("spatial", "sequential (spikes)", "sequential (rates)")
MAPPING_COLORS = {"spatial": "#4c72b0", "sequential (spikes)": "#dd8452", "sequential (rates)": "#55a868"}
# Columns that are results or bookkeeping, never axes.
NOT_AXES = {"point_id", "index", "model", "engine"}


def mapping_label(mapping, carry) -> str:
    if mapping == "sequential":
        return f"sequential ({carry})"
    return str(mapping)


def with_mapping_label(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(mapping_label=[mapping_label(m, c) for m, c in zip(df["mapping"], df["carry"])])


def axis_columns(df: pd.DataFrame, axes: list[str]) -> list[str]:
    """The spec's axes that take more than one value in these rows."""
    return [a for a in axes if a in df.columns and df[a].astype(str).nunique() > 1]


def value_text(key: str, value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if ("bytes" in key and "per" not in key) and isinstance(value, (int, float)):
        return format_bytes(float(value))
    if key.endswith("_hz") and isinstance(value, (int, float)):
        return format_si(float(value), "Hz")
    if key.endswith("bytes_per_s") and isinstance(value, (int, float)):
        return format_si(float(value), "B/s")
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def short_key(key: str) -> str:
    return {"cores.count": "cores", "cores.sram_bytes": "SRAM/core", "cores.bank_bytes": "SRAM bank",
            "global_buffer.bytes": "buffer", "global_buffer.bank_bytes": "buffer bank",
            "cores.acs_per_cycle": "ACs/cycle", "cores.macs_per_cycle": "MACs/cycle", "clock_hz": "clock",
            "dram.bytes_per_s": "DRAM", "energy_table": "tech", "mapping": "mapping"}.get(key, key)


def describe(row: pd.Series, axes: list[str]) -> str:
    """'cores 64, SRAM/core 64 KiB, ...' over the given axes (mapping shown as a label)."""
    parts = []
    for a in axes:
        if a in ("mapping", "mapping.kind", "mapping.carry"):
            continue
        parts.append(f"{short_key(a)} {value_text(a, row[a])}")
    return ", ".join(parts)


def energy_text(pj) -> str:
    return "-" if pj is None or pd.isna(pj) else format_si(float(pj) * 1e-12, "J")


def latency_text(s) -> str:
    return "-" if s is None or pd.isna(s) else format_si(float(s), "s")


def bytes_text(b) -> str:
    return "-" if b is None or pd.isna(b) else format_bytes(float(b))


def area_text(mm2) -> str:
    return "-" if mm2 is None or pd.isna(mm2) else format_area(float(mm2))
