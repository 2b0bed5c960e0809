"""Build step that pyproject.toml cannot say: a wheel carries the shipped models and hardware configs.

In the source tree they sit beside the package (models/, arch_configs/, sweeps/). A wheel copies them
into the package as neurosim/shipped/, where neurosim.paths finds them when no checkout is beside the
package. Left out: the checkpoints no default needs that would bloat the wheel (LEFT_OUT; they stay in
the source tree, and MANIFEST.in leaves them out of the sdist too). A shipped file over MAX_BYTES stops
the build, so a new large file is left out or shipped on purpose, not by accident.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("arch_configs", "models", "sweeps")
LEFT_OUT = {"models/spikingbert-minilm-polarity.pt"}   # 33 MB distilled student; no default uses it
MAX_BYTES = 8 << 20


def shipped_files() -> list[str]:
    """Paths (relative to the source root) of the files a wheel carries."""
    files = []
    for folder in SHIPPED:
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_file() and rel not in LEFT_OUT and "__pycache__" not in path.parts \
                    and not path.name.startswith("."):
                if path.stat().st_size > MAX_BYTES:
                    raise SystemExit(f"setup.py: {rel} is {path.stat().st_size >> 20} MiB; add it to LEFT_OUT "
                                     f"or raise MAX_BYTES on purpose")
                files.append(rel)
    return files


class BuildWithShippedData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):   # an editable install reads the checkout's own folders
            return
        for rel in shipped_files():
            target = Path(self.build_lib) / "neurosim" / "shipped" / rel
            self.mkpath(str(target.parent))
            self.copy_file(str(ROOT / rel), str(target))


setup(cmdclass={"build_py": BuildWithShippedData})
