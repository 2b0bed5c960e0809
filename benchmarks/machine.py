"""What machine a benchmark ran on: CPU model, cores, memory, OS, package versions, commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path


def _cpu_model() -> str:
    try:
        return next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                    if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def _memory() -> str:
    try:
        line = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        return "unknown"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                              capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def machine_info(packages: tuple[str, ...]) -> dict:
    return dict(cpu=_cpu_model(), cores=os.cpu_count(), memory=_memory(), python=platform.python_version(),
                system=f"{platform.system()} {platform.release()}", commit=_commit(),
                **{p: version(p) for p in packages})


def machine_line(packages: tuple[str, ...]) -> str:
    """One line for a results file, e.g. 'AMD EPYC, 2 CPUs, 23.5 GiB RAM; Linux ...; Python ..., numpy ...'."""
    info = machine_info(packages)
    versions = ", ".join(f"{p} {info[p]}" for p in packages)
    return (f"{info['cpu']}, {info['cores']} CPUs, {info['memory']} RAM; {info['system']}; "
            f"Python {info['python']}, {versions}; neurosim at commit {info['commit']}")
