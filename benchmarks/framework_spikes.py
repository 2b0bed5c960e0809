"""Spike-train equality between each framework and neurosim's spike engine, at issue 25's scale.

    python benchmarks/framework_spikes.py                      # T = 50, batch 16, 64-128-32 MLPs
    python benchmarks/framework_spikes.py --steps 30 --batch 4 --sizes 12 16 8   # the test suite's size

Runs every (construct, route) check of tests/test_frameworks.py (the README's table) on larger
seeded networks and counts, per comparison, the spikes that differ out of the framework's spikes.
Weights are multiples of 1/4 scaled by a power of two (every membrane exact, ties frequent); a
"ties" route runs twice, tie-prone and with float weights. Frameworks that are not installed are
listed as skipped. Writes benchmarks/results/framework_spikes.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))   # the checks and their helpers live with the tests

import framework_runs as runs  # noqa: E402
import test_frameworks as checks  # noqa: E402


def measure(steps: int, batch: int, sizes: tuple[int, int, int]) -> list[str]:
    runs.T, runs.BATCH, runs.SIZES = steps, batch, sizes
    rows = []
    for (construct, route), check in checks.CHECKS.items():
        runs.LOG.clear()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                outcome = check()
            except pytest.skip.Exception as exc:
                outcome = f"skipped ({exc.msg})"
            except AssertionError as exc:
                outcome = f"FAILED ({str(exc).splitlines()[0]})"
        counts = "; ".join(f"{diff:,} of {spikes:,}" for diff, spikes in runs.LOG) or "-"
        rows.append(f"| {construct} | {route} | {outcome} | {counts} | {time.perf_counter() - start:.1f} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--sizes", type=int, nargs=3, default=(64, 128, 32))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "framework_spikes.md"))
    args = p.parse_args()
    sizes = tuple(args.sizes)
    rows = measure(args.steps, args.batch, sizes)
    text = "\n".join([
        "# Spike-train equality: each framework against neurosim's spike engine", "",
        f"`python benchmarks/framework_spikes.py --steps {args.steps} --batch {args.batch} --sizes "
        f"{' '.join(map(str, sizes))}`: T = {args.steps}, batch {args.batch}, MLP {'-'.join(map(str, sizes))}, "
        "seeded, quarter-step weights scaled by a power of two. 'differing' counts the spikes that differ out of "
        "the framework's spikes, per comparison (a 'ties' route: tie-prone weights; then float weights).", "",
        "| construct | route | outcome | differing spikes | s |", "| --- | --- | --- | --- | --- |", *rows, ""])
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
