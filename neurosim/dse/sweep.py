"""Running a sweep: points in batches on Dask (a LocalCluster by default), rows appended as they finish.

    from neurosim.dse import run_sweep
    summary = run_sweep("sweeps/memory-vs-mapping.yaml", "out/mem")            # LocalCluster, workers = cores
    summary = run_sweep(spec, out, resume=True)                                 # skip finished points
    summary = run_sweep(spec, out, scheduler="tcp://10.0.0.5:8786")             # an existing cluster
    summary = run_sweep(spec, out, workers=0)                                   # in this process, no Dask

Batches: closed-form points that share a model and mapping go to a worker
together and are evaluated in one call of the closed form over all of them, so a
point costs microseconds, not a Dask task; each simulated point is a task of
its own. Finished batches are appended to DIR/results.csv at once (see
`dse.store`); a point that fails records its error and the sweep goes on; a
task lost with its worker records the loss on each of its points (rerun with
`--resume --retry-errors` to try them again). Workers share one Numba cache
folder (NUMBA_CACHE_DIR), so no kernel is compiled twice.

Before anything is written: the spec is loaded and planned (a grid larger than
`limits.MAX_POINTS` only with a limit), every model is built, the output folder
is checked, and a simulation estimated to take more than CONFIRM_ABOVE_S asks
for `yes` (the command line's --yes) or a limit.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import NeurosimError
from .evaluate import POINT_COLUMNS, RESULT_COLUMNS, error_row, evaluate_batch, point_columns
from .spec import MAX_POINTS, Point, Sweep, check_models, load_spec, plan, point_count, simulated_count
from .store import ResultStore, check_out_dir, finished_ids, write_meta

DEFAULT_BATCH = 512            # closed-form points per Dask task
# In process, nothing is moved or scheduled per batch, and the closed form prices points that differ only in
# their core count once (`cost.distinct`), so larger batches are faster (benchmarks/results/sweep.md); the
# CSV is still appended batch by batch (a few seconds of work each).
IN_PROCESS_BATCH = 4096
# benchmarks/results/simulator.md: the slowest feasible SpikingBERT-4L point, 0.3 s median on one core.
SIM_S_PER_POINT = 0.3
CONFIRM_ABOVE_S = 3600.0   # an hour of simulation or more starts only when asked for (--yes)


@dataclass
class SweepSummary:
    out: Path
    total: int                 # points in the plan
    skipped: int               # finished before this run (resume)
    evaluated: int = 0         # rows written by this run
    errors: int = 0
    infeasible: int = 0
    wall_s: float = 0.0
    interrupted: bool = False  # stopped early (Ctrl-C, a limit, a callback)
    workers: str = ""
    batches: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.evaluated / self.wall_s if self.wall_s else 0.0

    def text(self) -> str:
        state = "stopped early" if self.interrupted else "done"
        return (f"sweep {state}: {self.evaluated} points evaluated in {self.wall_s:.1f} s "
                f"({self.rate:.0f} points/s, {self.workers}), {self.skipped} already finished, "
                f"{self.total - self.skipped - self.evaluated} left; {self.errors} errors, "
                f"{self.infeasible} infeasible; results in {self.out / 'results.csv'}")


def columns(sweep: Sweep) -> list[str]:
    return POINT_COLUMNS + [a for a in sweep.axis_names if a not in POINT_COLUMNS] + RESULT_COLUMNS


def batches(points: list[Point], batch_size: int, parallel: int = 1) -> list[list[Point]]:
    """Simulated points one per batch (first: they take longest); closed-form points grouped by
    model and mapping and cut into batches, enough of them to keep `parallel` workers busy."""
    sims = [[p] for p in points if p.engine != "analytic"]
    analytic = [p for p in points if p.engine == "analytic"]
    analytic.sort(key=lambda p: (p.model.key(), p.arch["mapping"]["kind"], p.arch["mapping"]["carry"],
                                 p.energy_path, p.arch.get("dram") is None))
    size = max(1, batch_size)
    if parallel > 1 and analytic:
        size = max(16, min(size, -(-len(analytic) // (2 * parallel))))
    return sims + [analytic[i:i + size] for i in range(0, len(analytic), size)]


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:,.1f} days"


def simulation_estimate(n_sim: int, workers: int | None) -> tuple[float, str]:
    """The wall time `n_sim` simulated points take at SIM_S_PER_POINT on `workers` (None: unknown, one
    assumed), and a sentence saying so."""
    wall = n_sim * SIM_S_PER_POINT / (workers or 1)
    on = ("on one worker (divide by your cluster's workers)" if workers is None else
          "in this process" if workers == 1 else f"on {workers} workers")
    return wall, (f"{n_sim:,} simulated points at about {SIM_S_PER_POINT} s each (benchmarks/results/simulator.md, "
                  f"SpikingBERT-4L): about {duration(wall)} {on}")


def check_simulation_time(sweep: Sweep, n_sim: int, workers: int | None, yes: bool,
                          log: Callable[[str], None]) -> None:
    """Say how long `n_sim` simulated points will take; above CONFIRM_ABOVE_S, refuse unless `yes`."""
    if not n_sim:
        return
    wall, text = simulation_estimate(n_sim, workers)
    if wall > CONFIRM_ABOVE_S and not yes:
        raise NeurosimError(str(sweep.path), "engine", f"{text}, more than {duration(CONFIRM_ABOVE_S)}",
                            "pass --yes to run them, or --limit N to run the first N points (then --resume "
                            "for the next), or sample fewer points")
    log(text)


def _local_workers(workers: int | None, scheduler: str | None, client: Any) -> int | None:
    """How many processes will evaluate points: known for a local run, not for a cluster."""
    if scheduler is not None or client is not None:
        return None
    return 1 if workers == 0 else workers or os.cpu_count() or 1


def numba_cache_dir() -> str:
    """The Numba cache the sweep's workers share: NUMBA_CACHE_DIR, else the user cache's 'numba' folder
    (paths.user_cache_dir: NEUROSIM_CACHE_DIR, ~/.cache/neurosim, or a temp folder where home is read-only)."""
    from ..paths import user_cache_dir

    if "NUMBA_CACHE_DIR" not in os.environ:
        os.environ["NUMBA_CACHE_DIR"] = str(user_cache_dir("numba"))
    Path(os.environ["NUMBA_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    return os.environ["NUMBA_CACHE_DIR"]


def _set_env(key: str, value: str) -> None:   # runs on remote workers
    os.environ[key] = value


def run_sweep(spec_path: str | Path, out_dir: str | Path, *, resume: bool = False, retry_errors: bool = False,
              workers: int | None = None, scheduler: str | None = None, client: Any = None,
              batch_size: int | None = None, limit: int | None = None, progress: bool = True,
              on_rows: Callable[[list[dict]], None] | None = None, yes: bool = False,
              log: Callable[[str], None] = lambda s: None) -> SweepSummary:
    """Evaluate every point of a spec not yet in DIR/results.csv; see the module docstring.

    workers: local worker processes (default: CPU cores); 0 evaluates in this process without Dask.
    batch_size: closed-form points evaluated together (default DEFAULT_BATCH on Dask, IN_PROCESS_BATCH here).
    scheduler: address of an existing Dask scheduler. client: an existing `distributed.Client`
    (left open). limit: evaluate at most this many new points (a grid above spec.MAX_POINTS is then
    planned only that far). on_rows: called with each batch's rows after they are written (may raise
    KeyboardInterrupt to stop the sweep). yes: run a simulation estimated above CONFIRM_ABOVE_S.
    """
    t_start = time.perf_counter()
    sweep = load_spec(spec_path)
    out = Path(out_dir)
    check_out_dir(out, resume)
    done = finished_ids(out, retry_errors) if resume else set()
    count = point_count(sweep)
    n_sim = max(0, simulated_count(sweep) - len(done))   # before planning: counted, not built
    check_simulation_time(sweep, n_sim if limit is None else min(n_sim, limit),
                          _local_workers(workers, scheduler, client), yes, log)
    sliced = limit is not None and count > MAX_POINTS   # only the next `limit` points are planned
    points = plan(sweep, limit, done) if sliced else plan(sweep)
    check_models(sweep, points)
    todo = [p for p in points if p.id not in done]
    summary = SweepSummary(out, count if sliced else len(points), len(done) if sliced else len(points) - len(todo))
    todo = todo if limit is None else todo[:limit]
    store = ResultStore(out, columns(sweep), resume)
    try:
        write_meta(out, sweep.path, sweep.text, {"name": sweep.spec.name, "points": summary.total,
                                                  "axes": sweep.axis_names, "models": [m.name for m in sweep.models]})
        if not todo:
            summary.wall_s = time.perf_counter() - t_start
            summary.notes.append("nothing to do: every point is finished")
            return summary
        numba_cache_dir()
        bar = _progress(len(todo), sweep.spec.name, progress)
        if progress:   # messages while the bar is drawn go above it, never onto its line
            log = _above(bar, log)

        def record(rows: list[dict]) -> bool:
            store.append(rows)
            first = summary.evaluated == 0
            summary.evaluated += len(rows)
            summary.errors += sum(r["status"] == "error" for r in rows)
            summary.infeasible += sum(r["status"] == "infeasible" for r in rows)
            if first:
                _restart_clock(bar, len(rows))
            else:
                bar.update(len(rows))
            if on_rows is not None:
                on_rows(rows)
            return limit is not None and summary.evaluated >= limit

        try:
            if workers == 0 and scheduler is None and client is None:
                summary.workers = "in process"
                work = batches(todo, batch_size or IN_PROCESS_BATCH)
                summary.batches = len(work)
                for batch in work:
                    if record(evaluate_batch(batch)):
                        summary.interrupted = True
                        break
            else:
                _run_dask(todo, record, summary, workers, scheduler, client, batch_size or DEFAULT_BATCH, log)
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            bar.close()
            summary.wall_s = time.perf_counter() - t_start
    finally:
        store.close()
    return summary


def _progress(total: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="pt", disable=not enabled, smoothing=0.05, dynamic_ncols=True)


def _restart_clock(bar, done: int) -> None:
    """Count the first batch as done and time the rest from now: the first batch carries the warm-up
    (starting workers, loading models, compiling kernels), which would make the first estimate far too slow."""
    bar.reset()
    bar.initial = bar.n = bar.last_print_n = done
    bar.refresh()


def _above(bar, log: Callable[[str], None]) -> Callable[[str], None]:
    def write(text: str) -> None:
        with bar.external_write_mode():
            log(text)
    return write


def _run_dask(todo, record, summary, workers, scheduler, client, batch_size, log) -> None:
    from distributed import Client, LocalCluster, as_completed

    own_cluster = own_client = None
    if client is None:
        if scheduler is not None:
            try:
                client = own_client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise NeurosimError(scheduler, "--scheduler", f"cannot reach the Dask scheduler ({exc})",
                                    "start one (`dask scheduler` and `dask worker ADDRESS`) or drop --scheduler "
                                    "to use a local cluster") from None
            client.run(_set_env, "NUMBA_CACHE_DIR", os.environ["NUMBA_CACHE_DIR"])
        else:
            n = workers or os.cpu_count() or 1
            own_cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
            client = own_client = Client(own_cluster)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    summary.workers = f"{n_workers} Dask worker{'s' * (n_workers > 1)}"
    log(f"evaluating {len(todo)} points on {summary.workers}")
    work = batches(todo, batch_size, n_workers)
    summary.batches = len(work)
    tag = uuid.uuid4().hex[:8]
    futures = {}
    for i, batch in enumerate(work):
        fut = client.submit(evaluate_batch, batch, pure=False, key=f"neurosim-sweep-{tag}-{i}")
        futures[fut.key] = (fut, batch)
    pending = as_completed([f for f, _ in futures.values()])
    try:
        for fut in pending:
            batch = futures.pop(fut.key)[1]
            try:
                rows = fut.result()
            except Exception as exc:   # the task itself was lost (e.g. its worker died)
                text = f"task failed: {type(exc).__name__}: {exc}"
                rows = [{**point_columns(p), **error_row(p, text)} for p in batch]
            fut.release()
            if record(rows):
                summary.interrupted = True
                break
    finally:
        for fut, _ in futures.values():
            fut.cancel()
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()
