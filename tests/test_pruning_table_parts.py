"""analysis/pruning_table.py --jobs: parts run apart and merge back into one table in order."""

import json
import sys
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
import pruning_table  # noqa: E402


def write_part(folder: Path, name: str, rows: list[str], **lists) -> None:
    part = dict(rows=[{"name": r} for r in rows], tight_rows=[], seeds_rows=[], lr=[], sweep=[], pca=[],
                settings={"model": "m.pt"}, torch="t", numpy="n")
    part.update(lists)
    (folder / f"{name}.json").write_text(json.dumps(part))


def test_parts_merge_in_the_tables_order_whatever_order_they_finish(tmp_path):
    parts = tmp_path / "t.parts"
    parts.mkdir()
    for name in reversed(list(pruning_table.PARTS)):   # written last-first, as parallel parts may end
        write_part(parts, name, [f"{name} row"], tight_rows=[{"name": f"{name} tight"}] if name == "tight" else [])
    merged = pruning_table.merge_parts(Namespace(out=tmp_path / "t", jobs=4), parts, [], 12.5)
    assert [r["name"] for r in merged["rows"]] == [f"{n} row" for n in pruning_table.PARTS]
    assert [r["name"] for r in merged["tight_rows"]] == ["tight tight"]
    assert merged["settings"]["seconds"] == 12.5 and merged["settings"]["jobs"] == 4
    assert "partial" not in merged["settings"]
    assert json.loads((tmp_path / "t.json").read_text()) == merged


def test_a_part_that_failed_or_wrote_nothing_is_named_as_partial(tmp_path):
    parts = tmp_path / "t.parts"
    parts.mkdir()
    for name in pruning_table.PARTS:
        if name != "seeds":
            write_part(parts, name, [name])
    merged = pruning_table.merge_parts(Namespace(out=tmp_path / "t", jobs=2), parts, ["two_stage"], 1.0)
    assert "seeds" in merged["settings"]["partial"] and "two_stage" in merged["settings"]["partial"]
    assert "joint" not in merged["settings"]["partial"]
    assert "two_stage" in [r["name"] for r in merged["rows"]]   # its rows so far are kept


def test_each_part_gets_the_callers_options_less_jobs_and_out():
    argv = ["--model", "m.pt", "--jobs", "9", "--out=x/y", "--seeds", "2", "--out", "z"]
    assert pruning_table.options_without(argv, "--jobs", "--out") == ["--model", "m.pt", "--seeds", "2"]
