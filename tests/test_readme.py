"""Every code block of the README and of docs/*.md runs as written.

```python blocks run one by one, each in a fresh namespace (so each must be
self-contained), in a scratch folder that holds the repository's top-level
files, as a fresh clone would. In ```bash blocks every `neurosim ...` command
runs through `neurosim.cli.main` in the same kind of folder and must exit 0.
Left out, each for its reason: `neurosim prune` (minutes of training),
`neurosim sweep` without `--dry-run` (a Dask cluster), and any command that
reads what a left-out command writes (its `--out`). Blocks are found anew at
every run, so sections other people add are picked up.
"""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
SLOW = {"prune": "trains a model for minutes"}


def blocks(language: str) -> list[tuple[str, str]]:
    """(where, source) of every fenced block of this language: where = 'file:line'."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            if m.group(1) == language:
                found.append((f"{page.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}", m.group(2)))
    return found


def commands() -> list[tuple[str, list[str], str | None]]:
    """(where, argv, why it is left out or None) of every `neurosim` command in a bash block."""
    out, skipped_outputs = [], set()
    for where, source in blocks("bash"):
        for line in source.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if not words or words[0] != "neurosim":
                    continue
                argv = words[1:]
                sub = argv[0] if argv else ""
                why = SLOW.get(sub)
                if sub == "sweep" and "--dry-run" not in argv:
                    why = "starts a Dask cluster"
                if why is None and any(w in skipped_outputs or Path(w).stem in skipped_outputs for w in argv):
                    why = "reads the output of a command left out"
                if why is not None and "--out" in argv[:-1]:
                    skipped_outputs.add(argv[argv.index("--out") + 1])
                out.append((where, argv, why))
    return out


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """A scratch folder that looks like the repository's root (its top-level entries linked), as cwd."""
    for entry in REPO.iterdir():
        if not entry.name.startswith(".") and entry.name not in ("build", "dist"):
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_pages_have_python_and_neurosim_blocks():
    assert len(blocks("python")) >= 3
    ran = [argv for _, argv, why in commands() if why is None]
    assert ["compare"] in ran and any(argv[:1] == ["list"] for argv in ran)


@pytest.mark.parametrize("where,source", blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_block_runs(where, source, fresh_clone, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the NIR export warns by design; the block must still run
        exec(compile(source, where, "exec"), {"__name__": "readme_block"})


@pytest.mark.parametrize("where,argv,why", commands(), ids=[f"{w} neurosim {' '.join(a)}" for w, a, _ in commands()])
def test_neurosim_command_runs(where, argv, why, fresh_clone, capsys):
    if why is not None:
        pytest.skip(why)
    from neurosim.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(argv)
        except SystemExit as exc:   # --help and --version exit through argparse
            code = exc.code
    assert code == 0, f"{where}: neurosim {' '.join(argv)} exited {code}: {capsys.readouterr().err}"
