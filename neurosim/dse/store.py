"""A sweep's results on disk: DIR/results.csv, appended as points finish.

Each batch of rows is written in one call, flushed and fsync'ed, one row per
line (newlines inside text are replaced), so a crash or Ctrl-C loses only
points not yet written. A crash in the middle of a write leaves at most one
partial last line; reopening the file to resume cuts it off. Rows are never
rewritten in place: a retried point appends a new row and readers keep the
last row per point id (`load_results`). Any other damage (bytes that are not
UTF-8 text, a line that is not a row of the header's width or has no point id)
is refused with its line number before anything is written.

DIR also holds spec.yaml (the spec as it was run) and sweep.json (where the
spec came from, the point count, the columns), which `neurosim report` uses.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..errors import NeurosimError

RESULTS = "results.csv"
META = "sweep.json"
SPEC_COPY = "spec.yaml"
POINT_ID = re.compile(r"[0-9a-f]{16}")   # dse.spec.point_id: 16 hex digits of a sha256
STATUSES = ("ok", "infeasible", "error")


def _cell(value: Any) -> str:
    if type(value) is float:   # most cells: first
        return "" if math.isnan(value) else repr(value)
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
        try:
            self._open(resume)
        except OSError as exc:
            raise refuse_unwritable(self.dir, exc) from None

    def _open(self, resume: bool) -> None:
        check_out_dir(self.dir, resume)
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            header = _header(self.path)   # its rows: checked by finished_ids before a sweep plans
            if header and header != self.columns:
                raise NeurosimError(str(self.path), "columns", f"the results were written with other axes "
                                    f"({', '.join(c for c in header if c not in self.columns) or 'fewer columns'})",
                                    "resume with the spec that wrote them (DIR/spec.yaml), or choose another --out")
            self._repair()
        if not self.path.exists() or self.path.stat().st_size == 0:   # new, or cut to nothing by the repair
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
        return finished_ids(self.dir, retry_errors)

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            buf = io.StringIO()   # one writer for the batch: the same lines as `_line` row by row
            csv.writer(buf, lineterminator="\n").writerows([_cell(row.get(c)) for c in self.columns] for row in rows)
            self._file.write(buf.getvalue())
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:   # disk full, folder gone: what was written is kept, a partial line cut on resume
            raise refuse_unwritable(self.dir, exc) from None

    def close(self) -> None:
        self._file.close()


# pandas >= 3 parses floats exactly by default (and deprecates the option); older pandas needs asking.
_EXACT = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def read_csv(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"point_id": str}, **_EXACT)


def finished_ids(out_dir: str | Path, retry_errors: bool = False) -> set[str]:
    """The ids of the points DIR/results.csv holds (with `retry_errors`, not those whose last row failed);
    a damaged file is refused."""
    path = Path(out_dir) / RESULTS
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    df = _rows(path)
    if df.empty:
        return set()
    if retry_errors:
        last = df.drop_duplicates("point_id", keep="last")
        return set(last.loc[last["status"] != "error", "point_id"])
    return set(df["point_id"])


def _rows(path: Path) -> pd.DataFrame:
    """The rows of a results file, each checked (a partial last line left out)."""
    header, text = _checked_text(path)
    if not header:
        return pd.DataFrame(columns=["point_id", "index", "status"])
    return pd.read_csv(io.StringIO(text), dtype={"point_id": str}, **_EXACT)


def _header(path: Path) -> list[str]:
    """The column names on the first line, if it was written whole."""
    with path.open("rb") as f:
        line = f.readline()
    if not line.endswith(b"\n"):
        return []
    try:
        return next(csv.reader([line.decode("utf-8")]), [])
    except UnicodeDecodeError:
        raise _damaged(path, 1, "holds bytes that are not text") from None


def refuse_unwritable(out_dir: Path, exc: OSError) -> NeurosimError:
    return NeurosimError(str(out_dir), "--out", f"cannot be written ({exc.strerror or type(exc).__name__}"
                         f"{': ' + str(exc.filename) if exc.filename else ''})",
                         "give a folder (new or holding an earlier sweep) that you can write to")


def check_out_dir(out_dir: str | Path, resume: bool) -> None:
    """Refuse an --out that cannot hold a sweep, before anything is written: a file, a folder whose
    results.csv is not a file, or earlier results without --resume."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NeurosimError(str(out), "--out", "is a file, not a folder", "give a folder (new or holding an "
                            "earlier sweep)")
    results = out / RESULTS
    if results.exists() and not results.is_file():
        raise NeurosimError(str(results), "--out", "is not a file", "remove it, or choose another --out")
    if results.is_file() and results.stat().st_size > 0 and not resume:
        raise NeurosimError(str(results), "--out", "this folder already holds sweep results",
                            "pass --resume to finish that sweep (finished points are skipped), or choose another --out")


def _complete_text(path: Path) -> str:
    """The file's complete lines as text (a partial last line, from a crash mid-write, is left out);
    bytes that are not UTF-8 are refused with their line."""
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(path, data.count(b"\n", 0, exc.start) + 1, "holds bytes that are not text") from None


def _damaged(path: Path, line: int, problem: str) -> NeurosimError:
    return NeurosimError(str(path), f"line {line}", f"{problem}: not a row a sweep writes",
                         f"keep lines 1 to {line - 1} (head -n {line - 1}) if the rest is damage, "
                         "or choose another --out")


def _checked_text(path: Path) -> tuple[list[str], str]:
    """The header and complete lines of a results file, every line checked: the first one a sweep cannot
    have written is refused."""
    text = _complete_text(path)
    if not text:
        return [], ""   # not even the header was written whole
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(rows, [])
        if "point_id" not in header or "status" not in header:
            raise _damaged(path, 1, "the header names no point_id and status columns")
        pid, status = header.index("point_id"), header.index("status")
        for row in rows:
            if len(row) != len(header):
                raise _damaged(path, rows.line_num, f"{len(row)} fields where the header has {len(header)}")
            if not POINT_ID.fullmatch(row[pid]) or row[status] not in STATUSES:
                raise _damaged(path, rows.line_num, "no point id and status")
    except csv.Error as exc:   # e.g. a NUL byte
        raise _damaged(path, rows.line_num, f"unreadable as CSV ({exc})") from None
    return header, text


def load_results(out_dir: str | Path) -> pd.DataFrame:
    """A sweep's rows, one per point (the last written where a point was retried), in plan order."""
    path = Path(out_dir) / RESULTS
    if not path.is_file():
        raise NeurosimError(str(path), "results", "no sweep results here",
                            "run `neurosim sweep SPEC.yaml --out DIR` first, or give the folder it wrote")
    df = _rows(path).drop_duplicates("point_id", keep="last")
    return df.sort_values("index", kind="stable").reset_index(drop=True)


def write_meta(out_dir: Path, spec_path: Path, spec_text: str, meta: dict[str, Any]) -> None:
    try:
        _write_whole(out_dir / SPEC_COPY, spec_text)
        _write_whole(out_dir / META, json.dumps({"spec": str(Path(spec_path).resolve()), **meta}, indent=2,
                                                default=str))
    except OSError as exc:
        raise refuse_unwritable(out_dir, exc) from None


def _write_whole(path: Path, text: str) -> None:
    """Write a file whole or not at all (a temporary file renamed over it)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_meta(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / META
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise NeurosimError(str(path), "(file)", f"not the JSON a sweep writes ({type(exc).__name__})",
                            "delete it (the report then reads the axes from the results' columns)") from None
    return meta if isinstance(meta, dict) else {}
