"""A checkpoint's measured rates, kept between runs so that loading it does not rerun its spiking forward.

Measuring a SpikingEncoder checkpoint's rates runs its sample sentences through the model in spike mode
(frontend.extract.measured_rates): most of a warm `neurosim run` before this cache. The rates are a
function of the checkpoint's bytes, of the code that runs the model and of torch, so the key is a hash
of all three: the file's SHA-256, the source of this package's front end and IR, and torch's version. A
checkpoint edited in any byte, or a change to the code that measures, gets a new key and is measured
afresh; nothing is ever looked up by file name or modification time.

Where: user_cache_dir('rates') (neurosim.paths: $NEUROSIM_CACHE_DIR, else ~/.cache/neurosim), one small
JSON file per key. An entry that cannot be read, or does not name a finite rate in [0, 1] for every
spiking layer, counts as absent; a folder that cannot be written leaves every load measuring, as before.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from ..paths import PACKAGE_DIR, user_cache_dir

# The code a measured rate depends on: the model and its neurons, the IR (live neurons, neuron rules), the
# extraction. The whole front end is hashed, so an edit to any of it measures afresh rather than risk a
# stale rate.
CODE = sorted((PACKAGE_DIR / "frontend").glob("*.py")) + [PACKAGE_DIR / "ir.py"]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    import torch

    digest = hashlib.sha256(f"torch {torch.__version__}".encode())
    for path in CODE:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def key(checkpoint_bytes: bytes) -> str:
    """The cache key of a checkpoint file's content, under the current code."""
    return hashlib.sha256(hashlib.sha256(checkpoint_bytes).digest() + code_fingerprint().encode()).hexdigest()


def entry(key: str) -> Path:
    return user_cache_dir("rates") / f"{key}.json"


def read(key: str) -> dict[str, float] | None:
    """The cached rates (layer name -> rate), or None: absent, unreadable, or not all finite rates in [0, 1].
    (frontend.extract.encoder_network measures anyway unless they name exactly the model's spiking layers.)"""
    try:
        rates = json.loads(entry(key).read_text())
    except (OSError, ValueError):
        return None
    valid = isinstance(rates, dict) and all(isinstance(r, float) and math.isfinite(r) and 0.0 <= r <= 1.0
                                            for r in rates.values())
    return rates if valid else None


def write(key: str, rates: dict[str, float]) -> None:
    """Store the rates (written whole, then renamed, so a reader never sees half a file); a folder that cannot
    be written is skipped: the next load measures again."""
    folder, tmp = entry(key).parent, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as tmp:
            json.dump(rates, tmp)   # json writes floats by repr: they read back bit for bit
        os.replace(tmp.name, entry(key))
    except OSError:
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
