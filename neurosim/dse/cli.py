"""`neurosim sweep / pareto / report`: neurosim/cli.py (which owns `main`) adds them with `register(subparsers)`."""

from __future__ import annotations

import argparse
import sys

from ..errors import NeurosimError
from ..paths import check_output_file


def cmd_sweep(args) -> None:
    from .spec import check_models, load_spec, plan
    from .sweep import run_sweep, simulation_estimate

    if args.dry_run:
        sweep = load_spec(args.spec)
        points = plan(sweep)   # a grid too large to plan is refused with its size, before anything is built
        check_models(sweep, points)
        by = {}
        for p in points:
            by[(p.model.label, p.engine)] = by.get((p.model.label, p.engine), 0) + 1
        print(f"{args.spec}: {len(points)} points ({sweep.spec.sampling.kind}); axes: "
              f"{', '.join(sweep.axis_names) or '(none)'}")
        for (model, engine), n in by.items():
            print(f"  {model} ({engine}): {n}")
        n_sim = sum(p.engine != "analytic" for p in points)
        if n_sim:
            print(simulation_estimate(n_sim, args.workers or None)[1])
        return
    if args.out is None:
        raise NeurosimError("neurosim sweep", "--out", "no output folder given", "add --out DIR")
    try:
        summary = run_sweep(args.spec, args.out, resume=args.resume, retry_errors=args.retry_errors,
                            workers=args.workers, scheduler=args.scheduler, batch_size=args.batch_size,
                            limit=args.limit, progress=not args.no_progress, yes=args.yes,
                            log=lambda s: print(s, file=sys.stderr))
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished points are saved in {args.out}/results.csv; "
              f"run the same command with --resume to finish the sweep", file=sys.stderr)
        raise SystemExit(130) from None
    print(summary.text())
    for note in summary.notes:
        print(note)


def cmd_pareto(args) -> None:
    from .labels import axis_columns
    from .pareto import pareto_front
    from .report_page import markdown_table, point_table
    from .store import load_results, read_meta

    if args.csv:
        check_output_file(args.csv, "--csv")
    df = load_results(args.dir)
    by = [] if args.by == "none" else args.by.split(",")
    front = pareto_front(df, args.objectives, by)
    if args.csv:
        front.to_csv(args.csv, index=False)
    if args.json:
        print(front.to_json(orient="records", indent=2))
        return
    axes = axis_columns(df, read_meta(args.dir).get("axes") or [c for c in df.columns if "." in c])
    shown_by = [b for b in by if b in df.columns and df[b].nunique() > 1]
    print(f"Pareto front of {len(df)} points ({', '.join(args.objectives)}, minimised; "
          f"per {', '.join(by) or 'sweep'}): {len(front)} points")
    print(markdown_table(point_table(front, shown_by, axes)))
    if args.csv:
        print(f"front written to {args.csv}")


def cmd_report(args) -> None:
    from .report_page import write_report

    if args.out:
        check_output_file(args.out, "--out")
    page = write_report(args.dir, args.objectives, fmt=args.format, page=args.out,
                        by=[] if args.by == "none" else args.by.split(","), per_layer=not args.no_per_layer)
    print(f"report written to {page} (figures in {page.parent / 'figures'})")


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def register(subparsers) -> None:
    """Add `sweep`, `pareto` and `report` to the `neurosim` command line."""
    sweep = subparsers.add_parser("sweep", help="evaluate a sweep spec's design points on Dask",
                                  description="Evaluate every point of a sweep spec (YAML, see sweeps/) and append "
                                  "the results to DIR/results.csv as points finish.")
    sweep.add_argument("spec", help="sweep spec (YAML)")
    sweep.add_argument("--out", metavar="DIR", help="output folder (results.csv, spec.yaml, sweep.json)")
    sweep.add_argument("--resume", action="store_true", help="continue a sweep in DIR, skipping finished points")
    sweep.add_argument("--retry-errors", action="store_true", help="with --resume: evaluate failed points again")
    sweep.add_argument("--workers", type=_count, default=None,
                       help="local Dask worker processes (default: CPU cores); 0: evaluate in this process")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use an existing Dask cluster")
    sweep.add_argument("--batch-size", type=_positive, default=None,
                       help="closed-form points evaluated together, vectorised (default 512 per Dask task, "
                       "4096 in process)")
    sweep.add_argument("--limit", type=_positive, help="evaluate at most this many new points (resume later); "
                       "a grid too large to plan whole is then planned only that far")
    sweep.add_argument("--yes", action="store_true", help="run a simulation estimated to take more than an hour")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--dry-run", action="store_true", help="validate the spec and count its points only")
    sweep.set_defaults(func=cmd_sweep)

    def analysis_args(p, default):
        p.add_argument("dir", metavar="DIR", help="a sweep's output folder")
        p.add_argument("--objectives", nargs="+", default=default, metavar="OBJ",
                       help="two or three of energy, latency, area (one chip, mm²), memory (the SRAM a design "
                       "provides), peak_on_chip (bytes the model holds) or result columns "
                       f"(default: {' '.join(default)})")
        p.add_argument("--by", default="model,engine",
                       help="columns whose groups get fronts of their own (default model,engine; 'none': one front)")

    pareto = subparsers.add_parser("pareto", help="Pareto front of a sweep's results",
                                   description="Print the Pareto front of a sweep's results (DIR/results.csv): the "
                                   "points no other point beats in every objective, per model and engine.")
    analysis_args(pareto, ["energy", "latency"])
    pareto.add_argument("--json", action="store_true", help="print the front's rows as JSON")
    pareto.add_argument("--csv", metavar="FILE", help="also write the front's rows to this CSV")
    pareto.set_defaults(func=cmd_pareto)

    report = subparsers.add_parser("report", help="a Markdown/HTML page with the front, best points and figures",
                                   description="Write a page (Markdown or HTML) on a sweep's results: the Pareto "
                                   "front, the best point per objective and figures (DIR/figures/).")
    analysis_args(report, ["energy", "latency", "area"])
    report.add_argument("--format", choices=["md", "html"], default="md")
    report.add_argument("--out", metavar="PAGE", help="page path (default DIR/report.md or DIR/report.html)")
    report.add_argument("--no-per-layer", action="store_true",
                        help="skip re-evaluating the best points for the per-layer figure")
    report.set_defaults(func=cmd_report)


__all__ = ["register"]
