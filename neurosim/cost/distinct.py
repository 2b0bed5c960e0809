"""Distinct design points: which of n points are the same in the fields a computation reads.

A sweep's points often differ only in numbers a part of the closed form does
not read (the memory levels' counts do not depend on the core count or the
global buffer), so that part is priced once per distinct point and its rows
are copied to the others (`reuse.level_bits`, `closed_form.pool_scores`).
Points are compared on the bytes of their values, so two points are "the
same" only where every value is identical: the copied numbers are the ones
pricing each point would give.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _column_bytes(value: Any, n: int) -> np.ndarray:
    """One per-point field as an (n, k) uint8 array: equal rows for equal values."""
    if isinstance(value, list) or (isinstance(value, np.ndarray) and value.dtype == object):
        codes: dict = {}
        value = np.array([codes.setdefault(_hashable(v), len(codes)) for v in value], dtype=np.int64)
    a = np.ascontiguousarray(np.broadcast_to(np.asarray(value), (n,) + np.shape(value)[1:]))
    return a.reshape(n, -1).view(np.uint8).reshape(n, -1)


def _hashable(v: Any) -> Any:
    """A key equal for equal values: the value where it is a plain scalar, else its text (e.g. a dict)."""
    return (type(v), v) if v is None or isinstance(v, (str, int, bool)) else repr(v)


def distinct(columns: list, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse): the first point of each distinct combination of `columns` (per-point fields: (n,)
    or (n, ...) arrays, or lists of n values; a scalar is shared), and each point's distinct index, so that
    `x[first][inverse]` is `x` for any field the columns determine."""
    parts = []
    for column in columns:
        if np.ndim(column) > 0 or isinstance(column, list):
            b = _column_bytes(column, n)
            if n and not (b == b[:1]).all():   # a field the same on every point tells none apart
                parts.append(b)
    if not parts or n == 0:
        return np.zeros(min(n, 1), np.int64), np.zeros(n, np.int64)
    rows = np.ascontiguousarray(np.concatenate(parts, axis=1))
    keys = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def point_fields(points: Any, skip: tuple[str, ...] = ()) -> list:
    """Every per-point field of `points` (a `Chips` or `reuse.CoreLevels`: arrays and lists of one entry
    per point, dicts of them, nested objects with their own `n`), but the fields named in `skip`."""
    out: list = []

    def walk(value):
        if isinstance(value, dict):
            for k in sorted(value, key=str):
                walk(value[k])
        elif hasattr(value, "n") and not isinstance(value, np.ndarray):
            out.extend(point_fields(value, skip))
        elif np.ndim(value) > 0 or isinstance(value, list):
            out.append(value)

    for name, value in vars(points).items():
        if name != "n" and name not in skip:
            walk(value)
    return out
