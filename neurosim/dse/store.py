"""A sweep's results on disk: DIR/results.csv, appended as points finish.

Each batch of rows is written in one call, flushed and fsync'ed, one row per
line (newlines inside text are replaced), so a crash or Ctrl-C loses only
points not yet written. A crash in the middle of a write leaves at most one
partial last line; reopening the file to resume cuts it off. Rows are never
rewritten in place: a retried point appends a new row and readers keep the
last row per point id (`load_results`).

DIR also holds spec.yaml (the spec as it was run) and sweep.json (where the
spec came from, the point count, the columns), which `neurosim report` uses.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..errors import NeurosimError

RESULTS = "results.csv"
META = "sweep.json"
SPEC_COPY = "spec.yaml"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value).replace("\r", " ").replace("\n", " ")


class ResultStore:
    """Append-only results.csv with a fixed header."""

    def __init__(self, out_dir: str | Path, columns: list[str], resume: bool):
        self.dir = Path(out_dir)
        self.path = self.dir / RESULTS
        self.columns = list(columns)
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            if not resume:
                raise NeurosimError(str(self.path), "--out", "this folder already holds sweep results",
                                    "pass --resume to finish that sweep (finished points are skipped), "
                                    "or choose another --out")
            self._repair()
            header = next(csv.reader([self.path.open().readline()]))
            if header != self.columns:
                raise NeurosimError(str(self.path), "columns", f"the results were written with other axes "
                                    f"({', '.join(c for c in header if c not in self.columns) or 'fewer columns'})",
                                    "resume with the spec that wrote them (DIR/spec.yaml), or choose another --out")
        else:
            self.path.write_text(self._line(self.columns))
        self._file = self.path.open("a", newline="")

    def _repair(self) -> None:
        """Cut a partial last line (a crash during a write)."""
        with self.path.open("rb+") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            block = min(size, 1 << 20)
            f.seek(size - block)
            tail = f.read(block)
            cut = tail.rfind(b"\n")
            f.truncate(size - block + cut + 1 if cut >= 0 else 0)

    @staticmethod
    def _line(values: Iterable[Any]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_cell(v) for v in values])
        return buf.getvalue()

    def done_ids(self, retry_errors: bool = False) -> set[str]:
        df = read_csv(self.path)
        if df.empty:
            return set()
        if retry_errors:
            last = df.drop_duplicates("point_id", keep="last")
            return set(last.loc[last["status"] != "error", "point_id"])
        return set(df["point_id"])

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self._file.write("".join(self._line(row.get(c) for c in self.columns) for row in rows))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


# pandas >= 3 parses floats exactly by default (and deprecates the option); older pandas needs asking.
_EXACT = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def read_csv(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"point_id": str}, **_EXACT)


def load_results(out_dir: str | Path) -> pd.DataFrame:
    """A sweep's rows, one per point (the last written where a point was retried), in plan order."""
    path = Path(out_dir) / RESULTS
    if not path.is_file():
        raise NeurosimError(str(path), "results", "no sweep results here",
                            "run `neurosim sweep SPEC.yaml --out DIR` first, or give the folder it wrote")
    df = read_csv(path)
    df = df.drop_duplicates("point_id", keep="last")
    return df.sort_values("index", kind="stable").reset_index(drop=True)


def write_meta(out_dir: Path, spec_path: Path, spec_text: str, meta: dict[str, Any]) -> None:
    (out_dir / SPEC_COPY).write_text(spec_text)
    tmp = out_dir / (META + ".tmp")
    tmp.write_text(json.dumps({"spec": str(Path(spec_path).resolve()), **meta}, indent=2, default=str))
    os.replace(tmp, out_dir / META)


def read_meta(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / META
    return json.loads(path.read_text()) if path.is_file() else {}
