"""First run and warm start of `neurosim run --engine spikes`, from an empty Numba cache.

    python benchmarks/first_run.py                       # the working tree's neurosim/spikes on HEAD
    python benchmarks/first_run.py --commit a1ecf7f      # the package as it was at a commit
    python benchmarks/first_run.py --against a1ecf7f     # both, alternating first runs

The package is exported (git archive) to a temporary folder, so other work in
the tree does not leak in; with no --commit, HEAD with the working tree's
neurosim/spikes on top. Each run is a fresh process with NUMBA_CACHE_DIR set to
a new empty folder (an install that has never run the engine): the first run
compiles every kernel it calls and writes the cache, the next ones load it.
Prints one line per run: wall seconds, CPU seconds of the process (user +
system: on a busy machine the steadier of the two), and what it printed to
stderr.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ["run", "--engine", "spikes"]


def export(commit: str | None, into: Path) -> None:
    archive = subprocess.run(["git", "archive", commit or "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    if commit is None:
        shutil.rmtree(into / "neurosim" / "spikes")
        shutil.copytree(ROOT / "neurosim" / "spikes", into / "neurosim" / "spikes",
                        ignore=shutil.ignore_patterns("__pycache__"))


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def timed_run(tree: Path, cache: Path) -> tuple[float, float, str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    code = f"import sys; from neurosim.cli import main; sys.argv = ['neurosim'] + {COMMAND!r}; main()"
    t0, c0 = time.perf_counter(), _cpu()
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if out.returncode:
        sys.exit(f"neurosim {' '.join(COMMAND)} failed:\n{out.stderr[-2000:]}")
    return wall, cpu, out.stderr.strip().replace("\n", " | ")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--commit", help="measure the package at this commit (default: HEAD + working neurosim/spikes)")
    p.add_argument("--against", help="also measure this commit, its runs alternating with the first's")
    p.add_argument("--warm", type=int, default=2, help="warm starts after the first run")
    args = p.parse_args()
    versions = [args.commit] + ([args.against] if args.against else [])
    with tempfile.TemporaryDirectory() as tmp:
        trees = []
        for i, commit in enumerate(versions):
            tree, cache = Path(tmp) / f"tree{i}", Path(tmp) / f"numba-cache{i}"
            tree.mkdir()
            cache.mkdir()
            export(commit, tree)
            trees.append((commit or "working tree", tree, cache))
        for i in range(1 + args.warm):
            for name, tree, cache in trees:
                wall, cpu, err = timed_run(tree, cache)
                print(f"{name}: {'first run' if i == 0 else 'warm start'}: {wall:.1f} s wall, {cpu:.1f} s CPU"
                      + (f"  (stderr: {err})" if err else ""), flush=True)
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
