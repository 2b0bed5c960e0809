"""A folder Numba can write its compiled kernels to, so that an installed package compiles them once.

Numba caches each kernel (cache=True) where it can write: the user's NUMBA_CACHE_DIR first, else beside the
source in the installed package's __pycache__, else its user-wide folder (~/.cache/numba). Where none can
be written (a read-only install and no writable home, as in some containers) Numba refuses to import the
kernels at all ("cannot cache function ...: no locator available"). Then, before the kernels are imported
(neurosim.spikes imports this first), the cache goes to a folder of the temporary directory, one per user:
compiled once per machine until that folder is cleared.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import temp_cache_dir, writable

SPIKES_DIR = Path(__file__).resolve().parent


def numba_user_dir() -> Path:
    from numba.misc.appdirs import AppDirs

    return Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)


def ensure_writable(package_dir: Path = SPIKES_DIR) -> Path | None:
    """Set NUMBA_CACHE_DIR to a per-user folder of the temporary directory where Numba would find no folder
    to write, and return it; else None (the user's NUMBA_CACHE_DIR, the package's __pycache__ or Numba's
    user folder serve)."""
    if os.environ.get("NUMBA_CACHE_DIR") or writable(package_dir / "__pycache__") or writable(numba_user_dir()):
        return None
    folder = temp_cache_dir("neurosim-numba")
    if not writable(folder):
        return None   # nowhere at all: Numba's own refusal says so
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    from numba.core import config   # read from the environment when numba was imported

    config.CACHE_DIR = str(folder)
    return folder
