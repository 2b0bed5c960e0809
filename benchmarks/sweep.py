"""Sweep speed: closed-form and simulated points per second, in process and on 1 and 2 local Dask workers.

    python benchmarks/sweep.py                 # writes benchmarks/results/sweep.md
    python benchmarks/sweep.py --repeats 1     # a quick check
    python benchmarks/sweep.py --baseline DIR  # also: the closed form of the checkout in DIR, for ratios
                                               # (repeat --baseline for several checkouts)

Closed form: 200 points of SpikingBERT-4L on the edge chip (10 core counts x
10 SRAM sizes x spatial / sequential-rates), and 20,000 points of the same
kind to show the steady state; simulated: 40 points of SpikingBERT-4L on the
large chip (4 core counts x 5 SRAM sizes x spatial / sequential-rates).

For each case and mode, `neurosim.dse.run_sweep` runs into a fresh folder:
spec loading, planning (every point's arch validated by the arch schema), model
loading, evaluation, and appending every row to results.csv (flushed and
fsync'ed per batch). "warm" runs reuse a started cluster (a long sweep's
steady state); "cold" runs include starting the LocalCluster and importing
neurosim on its workers. The closed form is also timed one point at a time
through `cost.estimate` (the reference path) to show what vectorising buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_line  # benchmarks/machine.py (scripts run from this folder)

import yaml

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "sweep.md"

CASES = {
    "closed form, 200 points": {
        "name": "bench-analytic-200", "base": "edge-45nm", "models": ["spikingbert-4l"], "engine": "analytic",
        "axes": {"cores.count": {"from": 16, "to": 4096, "num": 10, "scale": "log"},
                 "cores.sram_bytes": {"from": 16384, "to": 1048576, "num": 10, "scale": "log"},
                 "mapping": ["spatial", "sequential:rates"]}},
    "closed form, 20,000 points": {
        "name": "bench-analytic-20k", "base": "edge-45nm", "models": ["spikingbert-4l"], "engine": "analytic",
        "axes": {"cores.count": {"from": 16, "to": 4096, "num": 50, "scale": "log"},
                 "cores.sram_bytes": {"from": 16384, "to": 1048576, "num": 20, "scale": "log"},
                 "global_buffer.bytes": {"from": 262144, "to": 8388608, "num": 10, "scale": "log"},
                 "mapping": ["spatial", "sequential:rates"]}},
    "simulator, 40 points": {
        "name": "bench-sim-40", "base": "spatial-45nm-large", "models": ["spikingbert-4l"], "engine": "sim",
        "axes": {"cores.count": [1024, 1296, 1600, 2048],
                 "cores.sram_bytes": {"from": 131072, "to": 524288, "num": 5, "scale": "log"},
                 "mapping": ["spatial", "sequential:rates"]}},
}


def machine() -> str:
    return machine_line(("numpy", "pandas", "dask", "distributed"))


def _spin(_=None) -> float:
    t0 = time.perf_counter()
    s = 0
    for i in range(5_000_000):
        s += i * i
    return time.perf_counter() - t0


def cpu_ceiling() -> float:
    """How much faster 2 processes get through 2 units of pure-Python work than 1 process through 1:
    the best scaling any 2-worker sweep can show on this machine (2.0 on 2 idle physical cores)."""
    import multiprocessing as mp

    one = min(_spin() for _ in range(3))
    with mp.get_context("spawn").Pool(2) as pool:
        two = min(max(pool.map(_spin, [0, 1])) for _ in range(3))
    return 2 * one / two


def _simulate_points(job) -> float:
    from neurosim.dse.evaluate import evaluate_point
    from neurosim.dse.spec import load_spec, plan

    spec, ids = job
    points = plan(load_spec(spec))
    evaluate_point(points[ids[0]])   # model loaded, code warm
    t0 = time.perf_counter()
    for i in ids:
        evaluate_point(points[i])
    return time.perf_counter() - t0


def simulator_ceiling(spec: Path, n: int = 40) -> tuple[float, float, float]:
    """The simulated points without Dask: all in one process, then half each in two processes at once."""
    import multiprocessing as mp

    ids = list(range(n))
    with mp.get_context("spawn").Pool(2) as pool:
        one = min(pool.map(_simulate_points, [(spec, ids)]) [0] for _ in range(2))
        two = min(max(pool.map(_simulate_points, [(spec, ids[0::2]), (spec, ids[1::2])])) for _ in range(2))
    return one, two, one / two


def one_run(spec: Path, tmp: Path, **kw) -> tuple[float, int]:
    from neurosim.dse.sweep import run_sweep

    out = Path(tempfile.mkdtemp(dir=tmp))
    t0 = time.perf_counter()
    s = run_sweep(spec, out, progress=False, **kw)
    return time.perf_counter() - t0, s.evaluated


def reference_rate(spec: Path, limit: int = 200) -> float:
    """Closed-form points per second one at a time through cost.estimate (models already loaded)."""
    from neurosim.dse.evaluate import evaluate_point
    from neurosim.dse.spec import load_spec, plan

    try:
        from neurosim.dse.models import load_point_model
    except ImportError:   # a baseline checkout from before dse.models
        from neurosim.dse.evaluate import load_point_model

    points = plan(load_spec(spec))[:limit]
    load_point_model(points[0].model)
    t0 = time.perf_counter()
    for p in points:
        evaluate_point(p)
    return len(points) / (time.perf_counter() - t0)


def phases(spec: Path) -> dict[str, float]:
    """Where the in-process time of a closed-form sweep goes, per point (microseconds)."""
    from neurosim.dse.evaluate import evaluate_batch
    from neurosim.dse.spec import load_spec, plan
    from neurosim.dse.store import ResultStore
    from neurosim.dse.sweep import batches, columns

    t0 = time.perf_counter()
    sweep = load_spec(spec)
    t1 = time.perf_counter()
    points = plan(sweep)
    t2 = time.perf_counter()
    evaluate_batch(points[:1])      # model load and per-network preparation, once
    t3 = time.perf_counter()
    rows = [r for b in batches(points, in_process_batch()) for r in evaluate_batch(b)]
    t4 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        store = ResultStore(d, columns(sweep), resume=False)
        for i in range(0, len(rows), 512):
            store.append(rows[i:i + 512])
        store.close()
    t5 = time.perf_counter()
    n = len(points)
    return {"points": n, "load spec (ms)": (t1 - t0) * 1e3, "plan + validate (us/pt)": (t2 - t1) / n * 1e6,
            "first batch: model + plan (ms)": (t3 - t2) * 1e3, "evaluate (us/pt)": (t4 - t3) / n * 1e6,
            "write CSV (us/pt)": (t5 - t4) / n * 1e6}


CLOSED_FORM_CASES = ("closed form, 200 points", "closed form, 20,000 points")


def closed_form_only(tmp: Path) -> dict[str, float]:
    """One in-process measurement of the closed-form cases (seconds) and the one-point rate (points/s)."""
    specs = write_specs(tmp)
    one_run(specs[CLOSED_FORM_CASES[0]], tmp, workers=0)   # warm imports and caches
    out = {case: one_run(specs[case], tmp, workers=0)[0] for case in CLOSED_FORM_CASES}
    out["closed form only, 20,000 points"] = evaluate_only(specs[CLOSED_FORM_CASES[1]])
    out["one point at a time (points/s)"] = reference_rate(specs[CLOSED_FORM_CASES[0]])
    return out


def evaluate_only(spec: Path) -> float:
    """Seconds to evaluate a planned sweep's points in batches as an in-process sweep cuts them (no spec,
    planning or files)."""
    from neurosim.dse.evaluate import evaluate_batch
    from neurosim.dse.spec import load_spec, plan
    from neurosim.dse.sweep import batches

    points = plan(load_spec(spec))
    evaluate_batch(points[:1])   # model and per-network preparation, once
    t0 = time.perf_counter()
    for b in batches(points, in_process_batch()):
        evaluate_batch(b)
    return time.perf_counter() - t0


def in_process_batch() -> int:
    """The closed-form points a `--workers 0` sweep of this checkout evaluates together (512 before
    dse.sweep.IN_PROCESS_BATCH)."""
    from neurosim.dse import sweep

    return getattr(sweep, "IN_PROCESS_BATCH", 512)


def against_baselines(baselines: list[Path], repeats: int) -> list[tuple[str, float, list[float]]]:
    """The closed form of this checkout and of each checkout in `baselines`, each in a fresh process,
    alternating (A, B, C, A, B, C, ...) so all see the same machine; rows of (measure, best here, best in
    each baseline)."""
    import json
    import subprocess

    def measure(pythonpath: Path) -> dict[str, float]:
        env = {**os.environ, "PYTHONPATH": str(pythonpath)}
        done = subprocess.run([sys.executable, __file__, "--closed-form-only"], env=env, check=True,
                              capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    here, there = [], [[] for _ in baselines]
    for _ in range(repeats):
        here.append(measure(HERE.parent))
        for runs, baseline in zip(there, baselines):
            runs.append(measure(baseline.resolve()))
    best = lambda runs, k: max(r[k] for r in runs) if "points/s" in k else min(r[k] for r in runs)  # noqa: E731
    return [(k, best(here, k), [best(runs, k) for runs in there]) for k in here[0]]


def write_specs(tmp: Path) -> dict[str, Path]:
    specs = {}
    for label, spec in CASES.items():
        path = tmp / f"{spec['name']}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        specs[label] = path
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--baseline", type=Path, action="append", default=[],
                        help="a checkout of another commit (e.g. made with git worktree): its closed form is measured "
                        "in the same run and the ratios reported (give it again for more checkouts)")
    parser.add_argument("--closed-form-only", action="store_true", help=argparse.SUPPRESS)  # one baseline measurement
    args = parser.parse_args(argv)
    if args.closed_form_only:
        import json

        print(json.dumps(closed_form_only(Path(tempfile.mkdtemp(prefix="neurosim-bench-")))))
        return 0

    import logging

    from distributed import Client, LocalCluster

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="neurosim-bench-"))
    specs = write_specs(tmp)

    rows = []   # (case, mode, points, best s, median s)

    def record(case, mode, fn):
        times, n = [], 0
        for _ in range(args.repeats):
            t, n = fn()
            times.append(t)
        rows.append((case, mode, n, min(times), statistics.median(times)))
        print(f"{case:28s} {mode:34s} {n:6d} pts  best {min(times):7.3f} s  {n / min(times):9.0f} pts/s",
              flush=True)

    # In process (one core, no Dask). A first run warms imports and file caches.
    one_run(specs["closed form, 200 points"], tmp, workers=0)
    for case in CASES:
        record(case, "in process (no Dask)", lambda c=case: one_run(specs[c], tmp, workers=0))
    # Dask, cold: each run starts its own LocalCluster.
    for n in (1, 2):
        for case in ("closed form, 200 points", "simulator, 40 points"):
            record(case, f"{n} Dask worker{'s' * (n > 1)}, cold", lambda c=case, n=n: one_run(specs[c], tmp, workers=n))
    # Dask, warm: a started cluster whose workers have imported neurosim and loaded the model.
    warm = {}
    for n in (1, 2):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
        one_run(specs["simulator, 40 points"], tmp, client=client)   # warm-up
        for case in CASES:
            record(case, f"{n} Dask worker{'s' * (n > 1)}, warm", lambda c=case: one_run(specs[c], tmp, client=client))
            warm[(case, n)] = rows[-1]
        client.close()
        cluster.close()

    ref = reference_rate(specs["closed form, 200 points"])
    ceiling = cpu_ceiling()
    sim_one, sim_two, sim_ceiling = simulator_ceiling(specs["simulator, 40 points"])
    ph = phases(specs["closed form, 20,000 points"])
    baseline = against_baselines(args.baseline, args.repeats) if args.baseline else []

    def rate(case, mode):
        r = next(r for r in rows if r[0] == case and r[1] == mode)
        return r[2] / r[3]

    sim1, sim2 = rate("simulator, 40 points", "1 Dask worker, warm"), rate("simulator, 40 points", "2 Dask workers, warm")
    sim1c, sim2c = rate("simulator, 40 points", "1 Dask worker, cold"), rate("simulator, 40 points", "2 Dask workers, cold")
    lines = ["# Sweep speed", "",
             f"Written by `python benchmarks/sweep.py` (best and median of {args.repeats} runs each). "
             f"Machine: {machine()}. Load average (1, 5, 15 min) before the run "
             f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in os.getloadavg())}"
             " (other sessions share these CPUs; timings swing between runs by tens of percent).", "",
             "Each run is `neurosim.dse.run_sweep` into a fresh folder: spec loading, planning (each point's merged "
             "arch validated by the schema, each distinct section once; its id hashed), model loading, evaluation, "
             "and every row appended to results.csv (flushed and fsync'ed per batch). *Cold*: the run starts its "
             "own LocalCluster (workers import neurosim, build the model); *warm*: a started cluster, as in the "
             "steady state of a long sweep. Closed-form points that share a model and mapping are evaluated "
             "together in one call of the closed form over all of them (`neurosim/cost/closed_form.py`, the same "
             "code `cost.estimate` runs on one point; 4,096 points a call in process, 512 a Dask task), which "
             "prices once the points that differ only in what a part of it does not read (`cost.distinct`); "
             "each simulated point is a Dask task of its own.", "",
             "| case | mode | points | best (s) | median (s) | points/s (best) |", "|---|---|---|---|---|---|"]
    for case, mode, n, best, med in rows:
        lines.append(f"| {case} | {mode} | {n} | {best:.3f} | {med:.3f} | {n / best:,.0f} |")
    lines += ["", "## Closed form", "",
              f"* One point at a time through `cost.estimate` (the reference path, model loaded): "
              f"**{ref:,.0f} points/s** on one core.",
              f"* Many points at once, in process, end to end: **{rate('closed form, 200 points', 'in process (no Dask)'):,.0f} "
              f"points/s** for 200 points (fixed costs dominate: spec, model, files) and "
              f"**{rate('closed form, 20,000 points', 'in process (no Dask)'):,.0f} points/s** for 20,000 points, "
              "on one core. Target: >= 1,000/s on one core.",
              "* Where the in-process time goes (20,000-point sweep): "
              + ", ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in ph.items()) + ".",
              "* On Dask the closed form gains little from a second worker: a batch takes milliseconds, so "
              "scheduling, moving points to the workers (pickled) and rows back, and writing results in the "
              "client dominate. In process is the fastest way to run a closed-form-only sweep (`--workers 0`).",
              ""]
    if baseline:
        import subprocess

        commits = [subprocess.run(["git", "-C", str(b), "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip() or "?" for b in args.baseline]
        lines += ["## Against baseline commits", "",
                  "The closed form of this checkout and of " + ", ".join(f"commit {c} (`--baseline {b}`)"
                                                                      for c, b in zip(commits, args.baseline))
                  + f", each in a fresh process, alternating, best of {args.repeats}, in this run on this machine. "
                  "A ratio above 1 means this checkout is faster.", "",
                  "| measure | this checkout | " + " | ".join(f"{c} | ratio" for c in commits) + " |",
                  "|---|---|" + "---|---|" * len(commits)]
        for measure, here, theres in baseline:
            if "points/s" in measure:
                cells = [f"{t:,.0f} | {here / t:.2f}x" for t in theres]
                lines.append(f"| {measure} | {here:,.0f} | " + " | ".join(cells) + " |")
            else:
                cells = [f"{t:.3f} | {t / here:.2f}x" for t in theres]
                lines.append(f"| {measure} (s, in process) | {here:.3f} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Simulated points", "",
              f"* Warm cluster: {sim1:.1f} points/s on 1 worker, {sim2:.1f} on 2: **{sim2 / sim1:.2f}x** with 2 "
              "workers (linear would be 2x).",
              f"* The same 40 simulations without Dask or any file (`multiprocessing`, models preloaded): "
              f"{sim_one:.2f} s in one process, {sim_two:.2f} s split over two processes running at once: "
              f"**{sim_ceiling:.2f}x**; two processes of pure-Python arithmetic: **{ceiling:.2f}x**. That is this "
              "machine's ceiling for 2 workers in this run; Dask's own cost is the gap between it and the Dask "
              "figure above. " + ("Here the machine had two usable cores and the warm Dask sweep scaled close to "
              "the no-Dask ceiling." if sim_ceiling >= 1.6 else "Here the 2 vCPUs gave the simulator little "
              "parallel throughput (another session was using them), so the Dask figure says little about "
              "scaling on idle cores."),
              "* The 2 CPUs are shared with other sessions: in a run taken while another session's job held both "
              "CPUs (load average about 4), the same warm 2-worker sweep scaled 0.9x to 1.7x and the no-Dask "
              "simulator calibration 0.9x. Compare scaling only within one run, against its own ceiling.",
              f"* Cold (cluster start and worker imports included): {sim1c:.1f} and {sim2c:.1f} points/s "
              f"({sim2c / sim1c:.2f}x); the 1-2 s of start-up is a large part of a 40-point sweep.",
              "* Points differ in cost (infeasible spatial points finish at once; SpikingBERT-4L sequential points "
              "take tens of ms), so with 40 points the tail of the last tasks limits scaling as well.",
              ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
