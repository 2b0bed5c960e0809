"""A warm start reads a checkpoint's measured rates from the cache, never stale ones; a wheel carries the
defaults (the speed itself is measured by benchmarks/first_run.py, not here)."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import neurosim.frontend.extract as extract
from neurosim.cards import load_model
from neurosim.frontend import rate_cache
from neurosim.frontend.checkpoint import load_encoder
from neurosim.frontend.encoder import SpikingEncoder
from neurosim.paths import DEFAULT_ARCH, DEFAULT_MODEL, user_cache_dir

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(vocab_size=20, hidden=8, heads=2, intermediate=16, layers=2, seq_len=6, classes=2, timesteps=[8, 4])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSIM_CACHE_DIR", str(tmp_path / "cache"))
    return user_cache_dir("rates")


@pytest.fixture
def forwards(monkeypatch):
    """How many times the spiking forward that measures rates ran."""
    runs = []
    measure = extract.measured_rates

    def counted(*args):
        runs.append(1)
        return measure(*args)

    monkeypatch.setattr(extract, "measured_rates", counted)
    return runs


def _save(path, scale=1.0):
    torch.manual_seed(0)
    model = SpikingEncoder(**CONFIG)
    state = {k: v * scale if k.endswith("weight") and "ln" not in k else v for k, v in model.state_dict().items()}
    torch.save({"config": dict(CONFIG), "state_dict": state, "sample_tokens": torch.randint(0, 20, (3, 6))}, path)
    return path


def _rates(net):
    return {layer.name: layer.rate for layer in net.layers if layer.spiking}


def _fresh_rates(path):
    """Measured now, without the cache (one more forward)."""
    model, ckpt = load_encoder(path)
    return _rates(extract.from_torch(model, ckpt["sample_tokens"]))


def test_a_checkpoint_loaded_twice_runs_its_forward_once_and_gives_the_measured_rates(tmp_path, cache, forwards):
    path = _save(tmp_path / "m.pt")
    first = load_model(path)
    assert len(forwards) == 1 and len(list(cache.glob("*.json"))) == 1
    second = load_model(path)
    assert len(forwards) == 1   # read from the cache
    fresh = _fresh_rates(path)
    assert _rates(first) == _rates(second) == fresh   # bit for bit
    assert len(fresh) == 12 and second.metadata == first.metadata


def test_a_checkpoint_with_edited_weights_is_measured_afresh(tmp_path, cache, forwards):
    path = tmp_path / "m.pt"
    before = _rates(load_model(_save(path)))
    after = _rates(load_model(_save(path, scale=3.0)))   # same file name, other bytes
    assert len(forwards) == 2 and len(list(cache.glob("*.json"))) == 2
    assert _rates(load_model(path)) == after and len(forwards) == 2
    assert after == _fresh_rates(path) and after != before


def test_a_change_to_the_measuring_code_is_a_new_key(tmp_path, cache, monkeypatch):
    data = _save(tmp_path / "m.pt").read_bytes()
    before = rate_cache.key(data)
    rate_cache.code_fingerprint.cache_clear()
    monkeypatch.setattr(rate_cache, "CODE", rate_cache.CODE[:-1])   # as if ir.py had other content
    assert rate_cache.key(data) != before
    rate_cache.code_fingerprint.cache_clear()


@pytest.mark.parametrize("entry", ["{not json", json.dumps({"block0.k": float("nan")}), json.dumps({"block0.k": 0.5}),
                                   json.dumps([0.1, 0.2])])
def test_a_bad_or_foreign_cache_entry_is_measured_again_and_replaced(tmp_path, cache, forwards, entry):
    path = _save(tmp_path / "m.pt")
    cache.mkdir(parents=True)
    (cache / f"{rate_cache.key(path.read_bytes())}.json").write_text(entry)
    net = load_model(path)
    assert len(forwards) == 1
    assert _rates(load_model(path)) == _rates(net)
    assert len(forwards) == 1   # the entry was rewritten with the measured rates
    assert _rates(net) == _fresh_rates(path)


def test_a_cache_folder_that_cannot_be_written_only_costs_a_measurement(tmp_path, monkeypatch, forwards):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NEUROSIM_CACHE_DIR", str(blocker / "under-a-file"))
    path = _save(tmp_path / "m.pt")
    first, second = _rates(load_model(path)), _rates(load_model(path))
    assert len(forwards) == 2 and not list(tmp_path.glob("**/*.tmp"))
    assert first == second == _fresh_rates(path)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the source tree (pip, no network, no build isolation)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in ("neurosim", "models", "arch_configs", "sweeps"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                          "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True)
    if out.returncode:
        pytest.fail(f"pip wheel failed: {out.stderr[-2000:]}")
    return next((tmp / "dist").glob("*.whl"))


def test_a_wheel_carries_the_default_model_and_arch_and_not_the_large_student(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = "neurosim/shipped/"
    for rel in (f"models/{DEFAULT_MODEL}.pt", f"arch_configs/{DEFAULT_ARCH}.yaml", "arch_configs/energy/horowitz-45nm.yaml",
                "arch_configs/area/horowitz-45nm.yaml", "models/spikingbert-4l.yaml", "sweeps/llm-decode.yaml"):
        assert shipped + rel in names
    assert shipped + "models/spikingbert-minilm-polarity.pt" not in names
    assert wheel.stat().st_size < 10 << 20


def test_a_wheel_install_finds_the_default_model_and_arch(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)   # a pure-Python wheel installs by unpacking
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), NEUROSIM_CACHE_DIR=str(tmp_path / "cache"))
    code = ("import neurosim, neurosim.paths as p; from neurosim.arch import load_arch; from neurosim.paths import resolve;"
            "print(neurosim.__file__); print(p.MODELS_DIR);"
            "print(resolve(p.DEFAULT_MODEL, p.MODELS_DIR, ('.yaml', '.pt'), 'model'));"
            "print(load_arch(p.DEFAULT_ARCH).name)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    package, models, model, arch = out.stdout.split("\n")[:4]
    assert Path(package).parent == site / "neurosim"
    assert Path(models) == site / "neurosim" / "shipped" / "models"
    assert Path(model) == Path(models) / f"{DEFAULT_MODEL}.pt" and arch
    listed = subprocess.run([sys.executable, "-m", "neurosim.cli", "list", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr[-2000:]
    groups = json.loads(listed.stdout)
    assert DEFAULT_MODEL in groups["models (--model)"] and DEFAULT_ARCH in groups["arch configs (--arch)"]
