"""Design-space exploration: sweep specs, sweeps on Dask, Pareto fronts, report pages.

    from neurosim.dse import load_spec, plan, run_sweep, load_results, pareto_front, write_report
    summary = run_sweep("sweeps/memory-vs-mapping.yaml", "out/mvm")      # LocalCluster, workers = cores
    front = pareto_front(load_results("out/mvm"), ["energy", "latency"])
    write_report("out/mvm")                                               # out/mvm/report.md + figures/

Modules, one job each: spec (YAML schema, axes, planning, point ids),
models (a point's model and energy table, built once per process),
evaluate (one point, or a batch: closed-form points many at once through
`cost.closed_form`, on a worker), store (append-only results.csv, resume), sweep
(Dask orchestration, progress, interruption), pareto (fronts, best points),
figures and report_page (the page), labels (short text for rows), cli
(`neurosim sweep / pareto / report`, registered by neurosim/cli.py).

Scripts that start a LocalCluster need the `if __name__ == "__main__":` guard
(Dask starts its workers by spawning Python processes that import the script).
"""

from .pareto import best_per_objective, pareto_front, pareto_mask
from .spec import load_spec, plan
from .store import load_results
from .sweep import SweepSummary, run_sweep

__all__ = ["best_per_objective", "load_results", "load_spec", "pareto_front", "pareto_mask", "plan", "run_sweep",
           "SweepSummary", "write_report"]


def __getattr__(name: str):
    if name == "write_report":   # matplotlib only when a page is drawn, not on every worker
        from .report_page import write_report

        return write_report
    raise AttributeError(f"module 'neurosim.dse' has no attribute {name!r}")
