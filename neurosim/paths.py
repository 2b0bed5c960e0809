"""Where the shipped model cards and hardware configs live, and name lookup."""

from __future__ import annotations

from pathlib import Path

from .errors import NeurosimError

REPO_ROOT = Path(__file__).resolve().parent.parent
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
