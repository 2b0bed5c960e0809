"""Sweeps (neurosim.dse): Dask rows equal one-by-one rows, kill + resume, failing points, batching.

The reference for every row is `evaluate_point`: the point's arch built by the
schema and `cost.estimate` / `sim.simulate` called on it, as `neurosim run` does.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from neurosim.cli import main
from neurosim.dse import evaluate as ev
from neurosim.dse.spec import load_spec, plan
from neurosim.dse.store import RESULTS, load_results, read_csv
from neurosim.dse.sweep import run_sweep
from neurosim.errors import NeurosimError

REPO = Path(__file__).resolve().parent.parent


def write_spec(tmp_path: Path, name: str = "spec.yaml", **overrides) -> Path:
    spec = {"name": "test-sweep", "base": "edge-45nm",
            "models": ["tiny-encoder", {"name": "tiny-T2", "model": "tiny-encoder", "set": {"timesteps": [2, 2]}}],
            "axes": {"cores.count": [4, 16, 64],
                     "global_buffer.bytes": [16, 65536],       # 16 B: too small for one step -> a failing point
                     "mapping": ["spatial", "sequential:spikes", "sequential:rates"],
                     "engine": ["analytic", "sim"]}}
    spec.update(overrides)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def assert_rows_match(df: pd.DataFrame, points) -> None:
    """Each stored row equals the point evaluated on its own (reference path), field by field."""
    by_id = df.set_index("point_id")
    for p in points:
        ref = ev.evaluate_point(p)
        got = by_id.loc[p.id]
        for key, want in ref.items():
            if key in ("point_id", "eval_s"):
                continue
            have = got[key]
            have = None if isinstance(have, float) and math.isnan(have) else have
            want = None if isinstance(want, float) and math.isnan(want) else want
            if isinstance(want, str) and want == "":
                want = None   # an empty text cell reads back as missing
            if hasattr(have, "item"):
                have = have.item()
            if isinstance(want, (int, float)) and isinstance(have, (int, float)) and not isinstance(want, bool):
                assert same(float(have), float(want)), (p.id, key, have, want)
            else:
                assert have == want, (p.id, key, have, want)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_local_cluster_rows_equal_one_by_one(tmp_path, client):
    spec = write_spec(tmp_path)
    points = plan(load_spec(spec))
    assert len(points) == 72
    summary = run_sweep(spec, tmp_path / "out", client=client, batch_size=8, progress=False)
    assert summary.evaluated == 72 and not summary.interrupted and summary.batches > 2
    df = load_results(tmp_path / "out")
    assert len(df) == 72 and df["point_id"].is_unique
    assert set(df["status"]) == {"ok", "infeasible", "error"}
    assert_rows_match(df, points)
    # Both workers did work, and each built each model at most once (cache, not per point).
    loads = client.run(lambda: dict(__import__("neurosim.dse.models", fromlist=["x"]).MODEL_LOADS))
    assert all(n == 1 for per_worker in loads.values() for n in per_worker.values())
    assert sum(len(per_worker) > 0 for per_worker in loads.values()) == 2


def test_cli_sweep_on_a_running_cluster_by_address(tmp_path, client, capsys):
    """`--scheduler tcp://HOST:PORT`: the sweep connects to a cluster someone else started and runs there."""
    spec = write_spec(tmp_path, models=["tiny-encoder"], axes={"cores.count": [4, 16],
                                                               "mapping": ["spatial", "sequential:rates"]})
    address = client.scheduler.address
    assert address.startswith("tcp://")
    # on each worker: an empty model cache, so the sweep's loads show up
    client.run(lambda: __import__("neurosim.dse.models", fromlist=["x"]).forget_models())
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--scheduler", address, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "4 points evaluated" in text and "2 Dask workers" in text
    # the cluster's worker processes built the model and evaluated the points
    loads = client.run(lambda: dict(__import__("neurosim.dse.models", fromlist=["x"]).MODEL_LOADS))
    assert sum(sum(per_worker.values()) for per_worker in loads.values()) >= 1
    df = load_results(out)
    assert len(df) == 4 and set(df["status"]) <= {"ok", "infeasible"} and "ok" in set(df["status"])
    assert_rows_match(df, plan(load_spec(spec)))


def test_failing_point_recorded_and_sweep_goes_on(tmp_path):
    spec = write_spec(tmp_path, models=["tiny-encoder"], axes={"global_buffer.bytes": [16, 65536],
                                                               "mapping": ["sequential:rates"]})
    summary = run_sweep(spec, tmp_path / "out", workers=0, progress=False)
    df = load_results(tmp_path / "out")
    assert summary.errors == 1 and len(df) == 2
    bad = df[df["status"] == "error"].iloc[0]
    assert bad["global_buffer.bytes"] == 16
    assert str(spec) in bad["error"] and "global_buffer.bytes" in bad["error"] and "Fix:" in bad["error"]
    assert df[df["status"] == "ok"].iloc[0]["energy_pj"] > 0


def test_unexpected_error_in_the_vectorised_path_falls_back(tmp_path, monkeypatch):
    import neurosim.dse.evaluate as ev

    def broken(*a, **k):
        raise RuntimeError("boom")

    spec = write_spec(tmp_path, models=["tiny-encoder"], axes={"cores.count": [4, 16], "engine": ["analytic"]})
    monkeypatch.setattr(ev, "closed_form_rows", broken)
    run_sweep(spec, tmp_path / "out", workers=0, progress=False)
    assert_rows_match(load_results(tmp_path / "out"), plan(load_spec(spec)))


def test_interrupt_then_resume_gives_full_set_without_duplicates(tmp_path):
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    seen = []

    def stop_after_some(rows):
        seen.extend(rows)
        if len(seen) >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, workers=0, batch_size=4, progress=False, on_rows=stop_after_some)
    first = read_csv(out / RESULTS)
    assert 10 <= len(first) < 72
    with pytest.raises(NeurosimError, match="--resume"):
        run_sweep(spec, out, workers=0, progress=False)
    summary = run_sweep(spec, out, resume=True, workers=0, progress=False)
    assert summary.skipped == len(first) and summary.evaluated == 72 - len(first)
    raw = read_csv(out / RESULTS)
    assert len(raw) == 72 and raw["point_id"].is_unique
    assert set(first["point_id"]) <= set(raw["point_id"])
    assert_rows_match(load_results(out), plan(load_spec(spec)))
    again = run_sweep(spec, out, resume=True, workers=0, progress=False)
    assert again.evaluated == 0 and len(read_csv(out / RESULTS)) == 72


def test_limit_stops_early_and_retry_errors_reruns_only_failures(tmp_path):
    spec = write_spec(tmp_path, models=["tiny-encoder"])
    out = tmp_path / "out"
    s = run_sweep(spec, out, workers=0, batch_size=5, limit=7, progress=False)
    assert s.interrupted and 7 <= s.evaluated < 36
    run_sweep(spec, out, resume=True, workers=0, progress=False)
    n_err = int((load_results(out)["status"] == "error").sum())
    r = run_sweep(spec, out, resume=True, retry_errors=True, workers=0, progress=False)
    assert r.evaluated == n_err > 0
    raw, df = read_csv(out / RESULTS), load_results(out)
    assert len(raw) == 36 + n_err and len(df) == 36 and df["point_id"].is_unique


def test_killed_process_loses_nothing_and_resumes(tmp_path):
    """SIGKILL a real sweep process mid-way, then resume: every row written before the kill is kept."""
    spec = write_spec(tmp_path, models=["tiny-encoder"],
                      axes={"cores.count": list(range(4, 104)), "mapping": ["sequential:spikes", "sequential:rates"],
                            "engine": ["sim"]})
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "neurosim.cli", "sweep", str(spec), "--out", str(out),
                             "--workers", "0", "--no-progress"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / RESULTS
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            if results.is_file() and results.read_text().count("\n") > 21:   # header + 20 rows
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = read_csv(results)
    assert 20 <= len(before) < 200, "the sweep should have been killed mid-way"
    with results.open("a") as f:     # as if the kill had hit in the middle of a write
        f.write(before.iloc[0]["point_id"] + ",3,tiny-encoder,si")
    run_sweep(spec, out, resume=True, workers=0, progress=False)
    after = read_csv(results)
    assert len(after) == 200 and after["point_id"].is_unique
    assert set(before["point_id"]) <= set(after["point_id"])


def test_resume_with_other_axes_is_refused(tmp_path):
    out = tmp_path / "out"
    run_sweep(write_spec(tmp_path, models=["tiny-encoder"], axes={"cores.count": [4]}), out, workers=0,
              progress=False)
    other = write_spec(tmp_path, "other.yaml", models=["tiny-encoder"], axes={"clock_hz": [1e8]})
    with pytest.raises(NeurosimError) as exc:
        run_sweep(other, out, resume=True, workers=0, progress=False)
    assert exc.value.field == "columns" and "spec.yaml" in exc.value.fix


def test_cli_sweep_pareto_report(tmp_path, capsys):
    spec = write_spec(tmp_path, models=["tiny-encoder"], axes={"cores.count": [4, 16, 64],
                                                               "mapping": ["spatial", "sequential:rates"]})
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    assert "6 points" in capsys.readouterr().out
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    assert "6 points evaluated" in capsys.readouterr().out
    assert main(["pareto", str(out), "--objectives", "energy", "latency"]) == 0
    text = capsys.readouterr().out
    assert "Pareto front of 6 points" in text and "| mapping |" in text
    assert main(["pareto", str(out), "--objectives", "energy"]) == 2
    assert "two or three" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "0"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("base,model,sizes", [
    ("edge-45nm", "tiny-encoder", [128, 256, 512, 4096]),          # spills to DRAM at the small sizes
    ("loihi", "tiny-encoder", [128, 256, 512, 4096]),              # no DRAM: spilling is infeasible
    ("edge-45nm", "spikingbert-4l", [2**20, 2**22]),               # the Query's history spills
])
def test_vectorised_closed_form_equals_estimate_where_histories_spill(tmp_path, base, model, sizes):
    spec = write_spec(tmp_path, base=base, models=[model], axes={
        "global_buffer.bytes": sizes, "mapping": ["sequential:spikes", "sequential:rates"], "engine": ["analytic"]})
    points = plan(load_spec(spec))
    rows = ev.evaluate_batch(points)
    spilled = 0
    for point, row in zip(points, rows):
        ref = ev.evaluate_point(point)
        for key, want in ref.items():
            if key == "eval_s":
                continue
            have = row.get(key)
            if isinstance(want, float) and isinstance(have, float):
                assert same(have, want), (point.id, key, have, want)
            else:
                assert (have or None) == (want or None), (point.id, key, have, want)
        spilled += bool(row.get("dram_traffic_bytes")) or "no DRAM to spill" in (row.get("notes") or "")
    assert spilled > 0


def test_bank_size_axis_prices_sram_in_both_paths(tmp_path):
    spec = write_spec(tmp_path, models=["tiny-encoder"], axes={
        "cores.bank_bytes": [8192, 32768, 65536], "global_buffer.bank_bytes": [8192, 524288],
        "mapping": ["spatial", "sequential:spikes"], "engine": ["analytic"]})
    points = plan(load_spec(spec))
    rows = ev.evaluate_batch(points)
    for point, row in zip(points, rows):
        ref = ev.evaluate_point(point)
        for key in ("energy_pj", "energy_sram_pj", "latency_s", "peak_on_chip_bytes"):
            if key in ref:
                assert same(float(row[key]), float(ref[key])), (point.id, key, row[key], ref[key])
    sram = {(r["cores.bank_bytes"], r["global_buffer.bank_bytes"], r["mapping"], r["carry"]): r["energy_sram_pj"]
            for r in rows}
    for mapping, carry in (("spatial", "spikes"), ("sequential", "spikes")):
        # smaller banks, cheaper accesses (edge-45nm: 64 KiB core SRAM, 512 KiB buffer)
        assert sram[(8192, 8192, mapping, carry)] < sram[(32768, 8192, mapping, carry)] \
            < sram[(65536, 8192, mapping, carry)]
