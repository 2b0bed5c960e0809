"""Hostile input on the command line (issue 12): every case is refused by `neurosim` with exit code 2 and
one line on stderr that starts with `neurosim: error:`, names what is wrong, prints no unbounded input,
and leaves every file as it was (nothing created, nothing half-written).

Each case is a function that writes its files into a folder and returns the command's arguments and a
piece of text the error must contain. Cases run in this process under a time and memory guard, so a
case that regresses into unbounded work fails here instead of hanging or exhausting the machine. The
anchor bombs (whose regression would be a C loop, a repr, that no alarm interrupts) and the long
simulation (whose points record any exception and go on) run the `neurosim` command in a child process
with capped memory and a timeout.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from neurosim.cli import main
from neurosim.errors import NeurosimError
from neurosim.paths import ARCH_DIR, MODELS_DIR

REPO = Path(__file__).resolve().parent.parent
CARD = MODELS_DIR / "tiny-encoder.yaml"
ARCH = ARCH_DIR / "edge-45nm.yaml"
CHECKPOINT = MODELS_DIR / "spiking-sentiment-2l.pt"
LINE_CHARS = 4000   # the longest error line accepted: parts are cut at 1000 characters each

Case = Callable[[Path], tuple[list[str], str]]
CASES: dict[str, Case] = {}
ISOLATED: set[str] = set()   # cases run as a child process (see the module docstring)


def case(name: str, isolated: bool = False):
    def register(build: Case) -> Case:
        CASES[name] = build
        if isolated:
            ISOLATED.add(name)
        return build
    return register


def write(path: Path, content: str | bytes) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def billion_laughs(levels: int = 9) -> str:
    """A YAML flow sequence of nested aliases: 9 ** levels strings once expanded, a few hundred bytes written."""
    parts = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def spec(folder: Path, body: str, name: str = "spec.yaml") -> str:
    return write(folder / name, f"name: hostile\nbase: edge-45nm\nmodels: [tiny-encoder]\n{body}")


def ops(model: str) -> list[str]:
    return ["ops", "--model", model]


def analytic(arch: str) -> list[str]:
    return ["run", "--engine", "analytic", "--model", str(CARD), "--arch", arch]


# -- network JSON -------------------------------------------------------------------------------------
@case("network JSON that is not JSON")
def _(d):
    return ops(write(d / "net.json", "{not json")), "not JSON"


@case("network JSON that is a list")
def _(d):
    return ops(write(d / "net.json", "[1, 2]")), "expected an object"


@case("network JSON whose layers are a number")
def _(d):
    return ops(write(d / "net.json", '{"name": "n", "input_size": 4, "layers": 5}')), "layers"


@case("network JSON with a layer named by a list")
def _(d):
    layer = {"name": ["x"], "kind": "linear", "in_features": 4, "out_features": 4}
    return ops(write(d / "net.json", '{"format": 2, "name": "n", "input_size": 4, "layers": [%s]}'
                     % str(layer).replace("'", '"'))), "wrong type"


@case("network JSON that is not text")
def _(d):
    return ops(write(d / "net.json", b"\x80\x81\x82 binary")), "not JSON"


@case("network JSON nested deeper than Python's stack")
def _(d):
    return ops(write(d / "net.json", "[" * 100_000 + "]" * 100_000)), "not JSON"


def network_json(d: Path, layers: slice = slice(None), **changes) -> str:
    """The tiny encoder as network JSON, with fields of some layers replaced."""
    import json

    from neurosim.cards import load_model

    data = load_model(str(CARD)).to_dict()
    for layer in data["layers"][layers]:
        layer.update(changes)
    return write(d / "net.json", json.dumps(data))


@case("network JSON with a billion timesteps")
def _(d):
    return ops(network_json(d, timesteps=10**9)), "timesteps"


@case("network JSON whose last layer has a trillion outputs")
def _(d):
    return ops(network_json(d, slice(-1, None), out_features=10**12)), "TiB"


# -- checkpoints --------------------------------------------------------------------------------------
@functools.cache
def shipped_checkpoint() -> dict:
    import torch

    return torch.load(CHECKPOINT, map_location="cpu", weights_only=True)


def checkpoint(d: Path, **changes) -> str:
    """The shipped checkpoint with some entries replaced (a value, or a function of the checkpoint)."""
    import torch

    ckpt = dict(shipped_checkpoint())
    for key, value in changes.items():
        ckpt[key] = value(ckpt) if callable(value) else value
    torch.save(ckpt, d / "model.pt")
    return str(d / "model.pt")


@case("checkpoint of zero bytes")
def _(d):
    return ops(write(d / "model.pt", b"")), "empty"


@case("checkpoint of garbage bytes")
def _(d):
    return ops(write(d / "model.pt", b"\x80\x03garbage, not a pickle")), "not a readable torch checkpoint"


@case("checkpoint whose sample tokens are beyond the vocabulary")
def _(d):
    return ops(checkpoint(d, sample_tokens=lambda c: c["sample_tokens"] + 100_000)), "outside the vocabulary"


@case("checkpoint whose sample tokens are negative")
def _(d):
    return ops(checkpoint(d, sample_tokens=lambda c: c["sample_tokens"] - 100_000)), "outside the vocabulary"


@case("checkpoint whose sample tokens are not integers")
def _(d):
    return ops(checkpoint(d, sample_tokens=lambda c: c["sample_tokens"].float() + 0.5)), "integer word ids"


@case("checkpoint whose sample tokens are text")
def _(d):
    return ops(checkpoint(d, sample_tokens="the movie was fine")), "integer word ids"


@case("checkpoint whose sample tokens have three dimensions")
def _(d):
    return ops(checkpoint(d, sample_tokens=lambda c: c["sample_tokens"][None])), "sample_tokens"


@case("checkpoint whose config asks for a hidden size of a million")
def _(d):
    return ops(checkpoint(d, config=lambda c: {**c["config"], "hidden": 1_000_000, "heads": 1})), \
        "describes a model of"


@case("checkpoint whose config gives a size as text")
def _(d):
    return ops(checkpoint(d, config=lambda c: {**c["config"], "hidden": "128"})), "config.hidden"


# -- spike engine input (.npy) ------------------------------------------------------------------------
def engine_input(d: Path, array: np.ndarray, name: str = "input.npy") -> list[str]:
    path = d / name
    if name.endswith(".npz"):
        np.savez(path, array)
    else:
        np.save(path, array, allow_pickle=array.dtype == object)
    return ["run", "--engine", "spikes", "--model", str(CARD), "--arch", str(ARCH), "--input", str(path)]


@case("engine input of strings")
def _(d):
    return engine_input(d, np.full((4, 8), "1")), "not real numbers"


@case("engine input of complex numbers")
def _(d):
    return engine_input(d, np.full((4, 8), 0.5 + 0.5j)), "not real numbers"


@case("engine input of Python objects")
def _(d):
    return engine_input(d, np.array([{"a": 1}] * 4, dtype=object)), "--input"


@case("engine input of dates")
def _(d):
    return engine_input(d, np.full((4, 8), np.datetime64("2020-01-01"))), "not real numbers"


@case("engine input that is an npz archive")
def _(d):
    return engine_input(d, np.ones((4, 8)), "input.npz"), "archive"


# -- sweep output and resume --------------------------------------------------------------------------
def sweep(spec_path: str, out: Path, *more: str) -> list[str]:
    return ["sweep", spec_path, "--out", str(out), "--workers", "0", "--no-progress", *more]


SMALL = "axes:\n  cores.count: [4, 8]\n"


@case("sweep --out that is a file")
def _(d):
    return sweep(spec(d, SMALL), Path(write(d / "taken", "a file"))), "is a file"


@case("sweep --out that cannot be created")
def _(d):
    return sweep(spec(d, SMALL), Path(write(d / "taken", "a file")) / "out"), "cannot be written"


@case("sweep --out whose results.csv is a folder")
def _(d):
    (d / "out" / "results.csv").mkdir(parents=True)
    return sweep(spec(d, SMALL), d / "out"), "is not a file"


def finished_sweep(d: Path) -> tuple[str, Path]:
    spec_path, out = spec(d, SMALL), d / "out"
    assert main(sweep(spec_path, out)) == 0
    return spec_path, out


@case("sweep --resume on results with garbage bytes appended")
def _(d):
    spec_path, out = finished_sweep(d)
    with (out / "results.csv").open("ab") as f:
        f.write(b"\x00\xff\xfe garbage\n" + bytes(range(256)) + b"\n")
    return sweep(spec_path, out, "--resume"), "line 4"


@case("sweep --resume on results with a short row appended")
def _(d):
    spec_path, out = finished_sweep(d)
    with (out / "results.csv").open("a") as f:
        f.write("0123456789abcdef,2,tiny-encoder\n")
    return sweep(spec_path, out, "--resume"), "line 4"


@case("pareto of results with garbage appended")
def _(d):
    _, out = finished_sweep(d)
    with (out / "results.csv").open("a") as f:
        f.write("not,a,row\n")
    return ["pareto", str(out)], "line 4"


@case("pareto --csv into a folder that does not exist")
def _(d):
    _, out = finished_sweep(d)
    return ["pareto", str(out), "--csv", str(d / "missing" / "front.csv")], "does not exist"


@case("report --out into a folder that does not exist")
def _(d):
    _, out = finished_sweep(d)
    return ["report", str(out), "--out", str(d / "missing" / "report.md")], "does not exist"


# -- other files to write -------------------------------------------------------------------------------
@case("compare --plot into a folder that does not exist")
def _(d):
    return ["compare", "--engine", "analytic", "--model", str(CARD), "--plot", str(d / "missing" / "p.png")], \
        "does not exist"


@case("run --timeline onto a folder")
def _(d):
    (d / "timeline.png").mkdir()
    return ["run", "--model", str(CARD), "--arch", str(ARCH), "--timeline", str(d / "timeline.png")], "is a folder"


# -- YAML: anchor bombs under valid keys, and files no config is ----------------------------------------
@case("arch config with a billion laughs under name", isolated=True)
def _(d):
    return analytic(write(d / "arch.yaml", ARCH.read_text().replace("name: edge-45nm",
                                                                      "name: " + billion_laughs()))), "aliases"


@case("model card with a billion laughs under source", isolated=True)
def _(d):
    text = re.sub(r"(?m)^source: .*$", "source: " + billion_laughs(), CARD.read_text())
    return ops(write(d / "card.yaml", text)), "aliases"


@case("sweep spec with a billion laughs under description", isolated=True)
def _(d):
    return ["sweep", spec(d, f"description: {billion_laughs()}\n{SMALL}"), "--dry-run"], "aliases"


@case("sweep spec with a billion laughs in a model's card overrides", isolated=True)
def _(d):
    path = write(d / "spec.yaml", "name: hostile\nbase: edge-45nm\nmodels:\n  - {name: x, model: tiny-encoder, "
                 f"set: {{source: {billion_laughs()}}}}}\n")
    return ["sweep", path, "--dry-run"], "aliases"


@case("arch config with an alias that contains itself")
def _(d):
    return analytic(write(d / "arch.yaml", ARCH.read_text().replace("name: edge-45nm", "name: &me [*me]"))), \
        "cycle"


@case("arch config that is not text")
def _(d):
    return analytic(write(d / "arch.yaml", b"name: \xff\xfe\x00")), "not UTF-8"


@case("arch config with an impossible date")
def _(d):
    return analytic(write(d / "arch.yaml", ARCH.read_text().replace("name: edge-45nm", "name: 2020-13-45"))), \
        "YAML cannot read"


@case("arch config nested deeper than Python's stack")
def _(d):
    return analytic(write(d / "arch.yaml", "name: " + "[" * 5_000 + "]" * 5_000)), "nested too deeply"


@case("arch config larger than any config")
def _(d):
    return analytic(write(d / "arch.yaml", "# " + "x" * (17 << 20) + "\nname: big\n")), "MiB"


# -- numbers given as text ------------------------------------------------------------------------------
@case("arch config with cores.count as text")
def _(d):
    return analytic(write(d / "arch.yaml", ARCH.read_text().replace("count: 16 ", 'count: "16" '))), \
        "cores.count"


@case("arch config with cores.count as a float")
def _(d):
    return analytic(write(d / "arch.yaml", ARCH.read_text().replace("count: 16 ", "count: 16.0 "))), \
        "whole number"


@case("model card with layers as text")
def _(d):
    return ops(write(d / "card.yaml", CARD.read_text().replace("layers: 2", 'layers: "2"'))), "layers"


@case("sweep spec with an axis value as text")
def _(d):
    return ["sweep", spec(d, 'axes:\n  cores.count: ["16"]\n'), "--dry-run"], "cores.count"


@case("sweep spec with a model override as text")
def _(d):
    path = write(d / "spec.yaml", "name: hostile\nbase: edge-45nm\nmodels:\n  - {name: x, model: tiny-encoder, "
                 "set: {hidden: '16'}}\n")
    return ["sweep", path, "--dry-run"], "hidden"


# -- unbounded work -------------------------------------------------------------------------------------
HUGE_GRID = "axes:\n  cores.count: {from: 1, to: 10000, num: 10000}\n  clock_hz: {from: 1.0e8, to: 1.0e9, num: 10000}\n"


@case("sweep of a grid of 1e8 points")
def _(d):
    return sweep(spec(d, HUGE_GRID), d / "out"), "100,000,000 points"


@case("sweep --dry-run of a grid of 1e8 points")
def _(d):
    return ["sweep", spec(d, HUGE_GRID), "--dry-run"], "100,000,000 points"


@case("sweep drawing 1e9 random points")
def _(d):
    return ["sweep", spec(d, "sampling: {kind: random, n: 1000000000}\naxes:\n  cores.count: [4, 8]\n"),
            "--dry-run"], "1,000,000,000 points"


@case("sweep axis range of 1e9 values")
def _(d):
    return ["sweep", spec(d, "axes:\n  cores.count: {from: 1, to: 1000000000, num: 1000000000}\n"),
            "--dry-run"], "num"


@case("sweep of 100,000 simulated points without --yes", isolated=True)
def _(d):
    body = "engine: sim\naxes:\n  cores.count: {from: 1, to: 1000, num: 1000}\n  clock_hz: [1.0e8, 2.0e8, 3.0e8, " \
           "4.0e8, 5.0e8, 6.0e8, 7.0e8, 8.0e8, 9.0e8, 1.0e9]\n  global_buffer.bytes: " \
           "{from: 65536, to: 1048576, num: 10}\n"
    return sweep(spec(d, body), d / "out"), "--yes"


@case("model card with a billion timesteps")
def _(d):
    return ops(write(d / "card.yaml", CARD.read_text().replace("timesteps: [4, 2]", "timesteps: 1000000000"))), \
        "timesteps"


@case("model card with a hidden size of a million")
def _(d):
    text = re.sub(r"(?m)^hidden: \d+", "hidden: 1000000", CARD.read_text())
    return ops(write(d / "card.yaml", text)), "TiB"


@case("model card with a billion layers")
def _(d):
    text = re.sub(r"(?m)^layers: \d+", "layers: 1000000000", CARD.read_text()).replace("timesteps: [4, 2]",
                                                                                        "timesteps: 4")
    return ops(write(d / "card.yaml", text)), "layers"


# -- command-line arguments ------------------------------------------------------------------------------
@case("a negative --seed")
def _(d):
    return ["run", "--engine", "spikes", "--model", str(CARD), "--arch", str(ARCH), "--seed", "-1"], "--seed"


@case("an unknown --mapping")
def _(d):
    return ["run", "--model", str(CARD), "--mapping", "diagonal"], "--mapping"


# -- the checks ---------------------------------------------------------------------------------------
class TookTooLong(BaseException):
    """Not an Exception: code that records a failing point and goes on must not swallow it."""


@contextlib.contextmanager
def bounded(seconds: float = 30, headroom: int = 2 << 30):
    """Stop the block after `seconds`, and let it allocate at most `headroom` more bytes of address space
    (a MemoryError instead of the machine's memory)."""
    def stop(*_):
        raise TookTooLong(f"still running after {seconds} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = int(re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024
    limit = in_use + headroom if hard == resource.RLIM_INFINITY else min(hard, in_use + headroom)
    previous = signal.signal(signal.SIGALRM, stop)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)   # and every second after, should one be swallowed
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_command(args: list[str], memory: int = 2 << 30, seconds: float = 60) -> tuple[int, str]:
    """`neurosim ARGS` as a child process with at most `memory` bytes of address space: exit code, stderr."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        done = subprocess.run([sys.executable, "-m", "neurosim.cli", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=seconds, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        pytest.fail(f"neurosim {' '.join(args)[:200]} still running after {seconds} s")
    return done.returncode, done.stderr


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under `folder` with a hash of its bytes (folders: 'dir')."""
    return {str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_input_exits_2_with_one_error_line_and_changes_no_file(name, tmp_path, capsys):
    args, expected = CASES[name](tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    if name in ISOLATED:
        code, err = run_command(args)
    else:
        with bounded():
            try:
                code = main(args)
            except SystemExit as ended:   # argparse ends with SystemExit
                code = ended.code
        err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("neurosim: error: "), err
    assert expected in lines[0] and len(lines[0]) <= LINE_CHARS, lines[0][:LINE_CHARS]
    assert snapshot(tmp_path) == before


def test_an_error_message_echoes_only_a_short_repr_of_its_input():
    from neurosim.errors import brief

    laughs = ["lol"] * 9
    for _ in range(9):
        laughs = [laughs] * 9   # 9 ** 10 strings if expanded
    assert len(brief(laughs)) <= 80 and len(brief("x" * 10**6)) <= 80
    exc = NeurosimError("a\nfile", "field", "p" * 10**6, "fix")
    assert "\n" not in str(exc) and len(str(exc)) < LINE_CHARS


def test_a_grid_too_large_to_plan_runs_in_slices_with_limit_and_resume(tmp_path, capsys):
    spec_path, out = spec(tmp_path, HUGE_GRID), tmp_path / "out"
    with bounded():
        assert main(sweep(spec_path, out, "--limit", "3")) == 0
        assert main(sweep(spec_path, out, "--limit", "2", "--resume")) == 0
    rows = (out / "results.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == ["0", "1", "2", "3", "4"]   # the plan's first five points, in order


def test_a_long_simulation_starts_when_confirmed_with_yes(tmp_path):
    from neurosim.dse.spec import load_spec
    from neurosim.dse.sweep import CONFIRM_ABOVE_S, SIM_S_PER_POINT, check_simulation_time

    sweep_ = load_spec(spec(tmp_path, SMALL))
    n = int(CONFIRM_ABOVE_S / SIM_S_PER_POINT) + 1
    said = []
    with pytest.raises(NeurosimError, match="--yes"):
        check_simulation_time(sweep_, n, 1, False, said.append)
    check_simulation_time(sweep_, n, 1, True, said.append)
    assert said and f"{n:,} simulated points" in said[0]


def test_yaml_floats_with_an_exponent_are_numbers(tmp_path):
    from neurosim.arch import load_arch

    text = ARCH.read_text().replace("clock_hz: 200.0e6", "clock_hz: 2e8")
    assert load_arch(write(tmp_path / "arch.yaml", text)).clock_hz == 2e8


def test_the_readme_counts_the_hostile_cases():
    section = (REPO / "docs" / "refusals.md").read_text()   # moved out of README.md
    assert f"{len(CASES)} hostile inputs" in section
