"""Where the shipped model cards and hardware configs live, name lookup, and the user's cache folder.

The shipped files (models/, arch_configs/, sweeps/) sit at the top of a source checkout, beside the
package folder (an editable install runs from there). A wheel carries the ones the defaults need inside
the package, as neurosim/shipped/ (setup.py copies them at build time); that folder is used where the
checkout's is absent.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import NeurosimError

PACKAGE_DIR = Path(__file__).resolve().parent
WHEEL_DATA = PACKAGE_DIR / "shipped"   # setup.py's SHIPPED files, in a built wheel


def _data_root() -> Path:
    checkout = PACKAGE_DIR.parent
    return checkout if (checkout / "arch_configs").is_dir() or not WHEEL_DATA.is_dir() else WHEEL_DATA


REPO_ROOT = _data_root()
ARCH_DIR = REPO_ROOT / "arch_configs"
ENERGY_DIR = ARCH_DIR / "energy"
MODELS_DIR = REPO_ROOT / "models"

DEFAULT_MODEL = "spiking-sentiment-2l"
DEFAULT_ARCH = "spatial-45nm-large"


def resolve(name_or_path: str | Path, folder: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """A path as given, or a shipped file found by its short name in `folder`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for suffix in suffixes:
        candidate = folder / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    shipped = sorted(p.stem for s in suffixes for p in folder.glob(f"*{s}")) if folder.is_dir() else []
    raise NeurosimError(
        str(name_or_path), what, f"no such file, and no shipped {what} of that name in {folder}",
        f"give a path to an existing file or one of the shipped names: {', '.join(shipped) or '(none found)'}",
    )


def check_output_file(path: str | Path, flag: str) -> None:
    """Refuse a file to write that cannot be written (a folder, or in a folder that does not exist),
    before any work is done for it."""
    path = Path(path)
    if path.is_dir():
        raise NeurosimError(str(path), flag, "is a folder", "give the path of a file to write")
    folder = path.parent
    if not folder.is_dir():
        raise NeurosimError(str(path), flag, f"the folder {folder} does not exist", "create it, or give a path in "
                            "an existing folder")
    if not os.access(folder, os.W_OK):
        raise NeurosimError(str(path), flag, f"the folder {folder} cannot be written", "give a path you can write to")


def writable(folder: Path) -> bool:
    """The folder can be made and a file written in it (Numba's own test of a cache folder)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False


def temp_cache_dir(name: str) -> Path:
    """A per-user folder of the temporary directory, for a cache that has nowhere else to go."""
    return Path(tempfile.gettempdir()) / f"{name}-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def user_cache_dir(kind: str) -> Path:
    """A folder for what neurosim caches between runs (`kind`: e.g. 'checkpoints'): $NEUROSIM_CACHE_DIR/kind,
    else $XDG_CACHE_HOME/neurosim/kind or ~/.cache/neurosim/kind where that can be written (it is made
    then), else a per-user folder of the temporary directory (no writable home, as in some containers)."""
    root = os.environ.get("NEUROSIM_CACHE_DIR")
    if root:
        return Path(root) / kind
    try:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "neurosim" / kind
    except RuntimeError:   # no home directory known at all
        home = None
    return home if home is not None and writable(home) else temp_cache_dir("neurosim") / kind
