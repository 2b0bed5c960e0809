"""First run and warm start of the spike engine from a fresh install (a new virtual environment).

    python benchmarks/first_run.py                  # HEAD with the working tree's neurosim/spikes on top
    python benchmarks/first_run.py --commit a1ecf7f # the package as it was at a commit

The package is exported (git archive) to a temporary folder, built into a wheel with this
environment's pip (no network), and installed without its dependencies into a new virtual
environment, which reaches the dependencies (numpy, numba, torch, ...) through a .pth file naming
this environment's site-packages. The wheel carries the shipped models and hardware configs
(neurosim/shipped/, setup.py), and the runs use them. So the install is fresh: its
neurosim/spikes/__pycache__ holds no compiled kernels, and Numba writes them there (the installed
package's folder is writable; where it is not, Numba falls back to its user-wide cache, or
NUMBA_CACHE_DIR), and its user cache (NEUROSIM_CACHE_DIR, a new empty folder: the checkpoint's IR and
measured rates, neurosim.checkpoint_cache) is empty. NUMBA_CACHE_DIR is unset for the runs. Measured,
each a fresh process:

* `neurosim run --engine spikes` (the default model: loads its checkpoint, runs the engine on a sample,
  simulates): the first run compiles what it calls, builds the checkpoint's IR (measuring its rates)
  and caches both; a warm start loads them;
* the engine alone, `neurosim.spikes.warm_up()` (every kernel, threaded and serial): first from an
  emptied cache, then warm;
* `import torch` alone, the floor of any command that reads a checkpoint.

Prints one line per run: wall seconds, CPU seconds of the process (user + system: on a busy machine
the steadier of the two), what it printed to stderr; and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = ["run", "--engine", "spikes"]
ENGINE_ONLY = "from neurosim.spikes import warm_up; warm_up()"
TORCH_ONLY = "import torch"   # the floor of any command that reads a checkpoint


def export(commit: str | None, into: Path) -> None:
    archive = subprocess.run(["git", "archive", commit or "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    if commit is None:
        shutil.rmtree(into / "neurosim" / "spikes")
        shutil.copytree(ROOT / "neurosim" / "spikes", into / "neurosim" / "spikes",
                        ignore=shutil.ignore_patterns("__pycache__"))


def fresh_install(tree: Path, where: Path) -> Path:
    """A new venv with the tree's package installed from a wheel; returns its python."""
    wheels = where / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(tree)], check=True, capture_output=True)
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")   # numpy, numba, torch, ...
    wheel = next(wheels.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    return python


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def timed(python: Path, code: str, cwd: Path) -> tuple[float, float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env["NEUROSIM_CACHE_DIR"] = str(cwd / "user-cache")   # the install's user cache: empty before its first run
    t0, c0 = time.perf_counter(), _cpu()
    out = subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if out.returncode:
        sys.exit(f"{code} failed:\n{out.stderr[-2000:]}")
    return wall, cpu, out.stderr.strip().replace("\n", " | ")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--commit", help="measure the package at this commit (default: HEAD + working neurosim/spikes)")
    p.add_argument("--warm", type=int, default=2, help="warm starts after each first run")
    args = p.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tree, work = Path(tmp) / "tree", Path(tmp) / "install"
        tree.mkdir()
        work.mkdir()
        export(args.commit, tree)
        python = fresh_install(tree, work)
        cli = f"import sys; from neurosim.cli import main; sys.argv = ['neurosim'] + {CLI!r}; main()"
        where, models = subprocess.run([str(python), "-c", "import neurosim.spikes.kernels as k, neurosim.paths as p; "
                                        "print(k.fire.serial._cache._cache_file._index_path); print(p.MODELS_DIR)"],
                                       capture_output=True, text=True, cwd=work).stdout.split()
        print(f"installed in {python.parent.parent}; numba's cache index: {where}; shipped models: {models}",
              flush=True)
        cache = Path(where).parent
        for name, code in ((f"neurosim {' '.join(CLI)}", cli), ("engine alone (warm_up)", ENGINE_ONLY),
                           ("import torch alone", TORCH_ONLY)):
            for f in cache.glob("*.nb[ic]"):    # an empty cache: the first run compiles
                f.unlink()
            for i in range(1 + args.warm):
                wall, cpu, err = timed(python, code, work)
                print(f"{name}: {'first run' if i == 0 else 'warm start'}: {wall:.1f} s wall, {cpu:.1f} s CPU"
                      + (f"  (stderr: {err})" if err else ""), flush=True)
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
