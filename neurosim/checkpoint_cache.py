"""A checkpoint's IR and sample input, kept between runs: the warm start of `neurosim run` on a .pt model.

Building a SpikingEncoder checkpoint's IR imports torch, builds the model and runs its sample sentences
through it in spike mode to measure its rates (frontend.checkpoint.load_checkpoint): most of a warm
`neurosim run --engine spikes`, and the same on every run of the same file. So the result is kept,
keyed by everything it is a function of: the file's bytes (SHA-256) and name (the network's name),
and the code that builds it (the SHA-256 of every neurosim source file, and numpy's and torch's
versions). A checkpoint edited in any byte, or any change to neurosim's code, is a new key, built and
measured afresh: never a stale rate. Nothing is looked up by modification time.

An entry holds the IR Network and the embeddings of the sample sentences (the engine's default input,
spikes.measure.default_input), pickled, in user_cache_dir('checkpoints') (neurosim.paths:
$NEUROSIM_CACHE_DIR, else ~/.cache/neurosim), the user's own folder like the installed package. An entry
that cannot be read is built again; a folder that cannot be written leaves every run building, as before.
A hit imports neither torch nor the front end. The folder keeps the KEEP most recently used entries (every
code edit in a checkout makes new keys; the default model's entry is 2 MB, the distilled student's ~85 MB).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from .ir import Network
from .paths import PACKAGE_DIR, user_cache_dir

KEEP = 8   # entries kept, the most recently used


@dataclass
class Entry:
    network: Network
    samples: np.ndarray   # (sentences, words, hidden): each sample sentence's embedding, float32


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """neurosim's source, and the versions of numpy and torch that built and pickled the entry."""
    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    digest = hashlib.sha256(f"numpy {np.__version__} torch {installed('torch')}".encode())
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def key(data: bytes, name: str) -> str:
    """The key of a checkpoint file's bytes under this name, with the current code."""
    parts = (hashlib.sha256(data).hexdigest(), name, code_fingerprint())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def entry_path(key: str) -> Path:
    return user_cache_dir("checkpoints") / f"{key}.pkl"


def load(path: str | Path) -> Entry:
    """The checkpoint's IR and sample embeddings: from the cache, else built (and then cached)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        data = None   # the front end says what is wrong with the file
    k = None if data is None else key(data, path.stem)
    cached = None if k is None else read(k)
    if cached is not None:
        return cached
    from .frontend.checkpoint import load_with_samples   # torch, only on a miss

    built = Entry(*load_with_samples(path, data))
    if k is not None:
        write(k, built)
    return built


def read(key: str) -> Entry | None:
    try:
        with open(entry_path(key), "rb") as f:
            entry = pickle.load(f)
        os.utime(entry_path(key))   # used now: the last to go (prune)
    except Exception:   # absent, cut short, or from code that no longer unpickles: build it again
        return None
    return entry if isinstance(entry, Entry) and isinstance(entry.network, Network) else None


def write(key: str, entry: Entry) -> None:
    """Store the entry: written whole, then renamed, so a reader never sees half a file; a folder that cannot
    be written is skipped (the next run builds again)."""
    folder, tmp = entry_path(key).parent, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=folder, suffix=".tmp", delete=False) as tmp:
            pickle.dump(entry, tmp, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp.name, entry_path(key))
        prune(folder)
    except OSError:
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)


def prune(folder: Path) -> None:
    """Delete all but the KEEP most recently used entries."""
    def used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:   # deleted meanwhile by another process
            return 0.0

    for old in sorted(folder.glob("*.pkl"), key=used, reverse=True)[KEEP:]:
        old.unlink(missing_ok=True)
