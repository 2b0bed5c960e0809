"""A warm start reads a checkpoint's IR and measured rates from the cache, never stale ones; a wheel carries
the defaults (the speed itself is measured by benchmarks/first_run.py, not here)."""

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import neurosim.frontend.checkpoint as frontend_checkpoint
import neurosim.frontend.extract as extract
from neurosim import checkpoint_cache
from neurosim.cards import load_model
from neurosim.errors import NeurosimError
from neurosim.frontend.encoder import SpikingEncoder
from neurosim.paths import DEFAULT_ARCH, DEFAULT_MODEL, user_cache_dir
from neurosim.spikes.measure import default_input

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(vocab_size=20, hidden=8, heads=2, intermediate=16, layers=2, seq_len=6, classes=2, timesteps=[8, 4])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSIM_CACHE_DIR", str(tmp_path / "cache"))
    return user_cache_dir("checkpoints")


@pytest.fixture
def builds(monkeypatch):
    """How many times a checkpoint's IR was built (its rates measured by running its spiking forward)."""
    runs = []
    build = frontend_checkpoint.from_torch

    def counted(*args, **kwargs):
        runs.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(frontend_checkpoint, "from_torch", counted)
    return runs


def _save(path, scale=1.0):
    torch.manual_seed(0)
    model = SpikingEncoder(**CONFIG)
    state = {k: v * scale if k.endswith("weight") and "ln" not in k else v for k, v in model.state_dict().items()}
    torch.save({"config": dict(CONFIG), "state_dict": state, "sample_tokens": torch.randint(0, 20, (3, 6))}, path)
    return path


def _rates(net):
    return {layer.name: layer.rate for layer in net.layers if layer.spiking}


def _same_network(a, b):
    assert a.to_dict() == b.to_dict()   # every field, weights and rates included, exactly


def test_a_checkpoint_loaded_twice_is_built_once_and_equals_a_fresh_build(tmp_path, cache, builds):
    path = _save(tmp_path / "m.pt")
    first = load_model(path)
    assert len(builds) == 1 and len(list(cache.glob("*.pkl"))) == 1
    second = load_model(path)
    assert len(builds) == 1   # read from the cache
    fresh = frontend_checkpoint.load_checkpoint(path)   # measured now, no cache
    _same_network(first, second)
    _same_network(second, fresh)
    assert len(_rates(fresh)) == 12 and all(0 < r < 1 for r in _rates(fresh).values())


def test_rates_measured_on_one_torch_thread_equal_those_on_two_and_the_threads_come_back(tmp_path):
    path = _save(tmp_path / "m.pt")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model, ckpt = frontend_checkpoint.load_encoder(path)
        two = extract.from_torch(model, ckpt["sample_tokens"], name="m")   # torch's threads, no context
        one = frontend_checkpoint.load_checkpoint(path)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    _same_network(one, two)


def test_the_cached_sample_input_is_the_first_sentence_embedding(tmp_path, cache):
    path = _save(tmp_path / "m.pt")
    model, ckpt = frontend_checkpoint.load_encoder(path)
    expected = model.embedding(ckpt["sample_tokens"][:1]).detach().numpy()[0]
    for _ in range(2):   # built, then cached
        emb, note = default_input(load_model(path), path, None)
        assert emb.dtype == expected.dtype and np.array_equal(emb, expected) and "first sample" in note


def test_a_checkpoint_with_edited_weights_is_built_afresh(tmp_path, cache, builds):
    path = tmp_path / "m.pt"
    before = _rates(load_model(_save(path)))
    after = load_model(_save(path, scale=3.0))   # same file name, other bytes
    assert len(builds) == 2 and len(list(cache.glob("*.pkl"))) == 2
    assert _rates(after) != before
    _same_network(after, frontend_checkpoint.load_checkpoint(path))
    _same_network(load_model(path), after)
    assert len(builds) == 3   # the fresh build above; the last load was cached


def test_the_same_bytes_under_another_name_are_their_own_entry(tmp_path, cache, builds):
    a = _save(tmp_path / "a.pt")
    b = tmp_path / "b.pt"
    shutil.copy(a, b)
    assert load_model(a).name == "a" and load_model(b).name == "b" and len(builds) == 2


def test_a_change_to_neurosims_code_is_a_new_key(tmp_path, monkeypatch):
    data = _save(tmp_path / "m.pt").read_bytes()
    package = tmp_path / "neurosim"
    shutil.copytree(checkpoint_cache.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__", "shipped"))
    monkeypatch.setattr(checkpoint_cache, "PACKAGE_DIR", package)
    checkpoint_cache.code_fingerprint.cache_clear()
    try:
        before = checkpoint_cache.key(data, "m")
        assert checkpoint_cache.key(data, "n") != before
        checkpoint_cache.code_fingerprint.cache_clear()
        assert checkpoint_cache.key(data, "m") == before   # the same code, hashed again
        checkpoint_cache.code_fingerprint.cache_clear()
        with open(package / "ir.py", "a") as f:
            f.write("\n# an edit\n")
        assert checkpoint_cache.key(data, "m") != before
    finally:
        checkpoint_cache.code_fingerprint.cache_clear()


@pytest.mark.parametrize("content", [b"", b"not a pickle", pickle.dumps({"network": None}),
                                     pickle.dumps(checkpoint_cache.Entry(None, np.zeros(1)))])
def test_a_bad_cache_entry_is_built_again_and_replaced(tmp_path, cache, builds, content):
    path = _save(tmp_path / "m.pt")
    cache.mkdir(parents=True)
    (cache / f"{checkpoint_cache.key(path.read_bytes(), 'm')}.pkl").write_bytes(content)
    net = load_model(path)
    assert len(builds) == 1
    _same_network(load_model(path), net)
    assert len(builds) == 1   # the entry was replaced by the built one


def test_the_cache_keeps_the_most_recently_used_entries(tmp_path, cache, builds, monkeypatch):
    monkeypatch.setattr(checkpoint_cache, "KEEP", 2)
    a, b, c = (_save(tmp_path / f"{name}.pt") for name in "abc")   # the same bytes, three names: three keys

    def entry(path):
        return checkpoint_cache.entry_path(checkpoint_cache.key(path.read_bytes(), path.stem))

    load_model(a), load_model(b)
    os.utime(entry(a), (1, 1)), os.utime(entry(b), (2, 2))   # both used long ago, a before b
    load_model(a)   # a hit: a is now the most recently used
    load_model(c)   # a third entry: b, the least recently used, goes
    assert len(builds) == 3 and sorted(cache.glob("*.pkl")) == sorted([entry(a), entry(c)])
    load_model(b)
    assert len(builds) == 4


def test_a_cache_folder_that_cannot_be_written_only_costs_a_build(tmp_path, monkeypatch, builds):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NEUROSIM_CACHE_DIR", str(blocker / "under-a-file"))
    path = _save(tmp_path / "m.pt")
    _same_network(load_model(path), load_model(path))
    assert len(builds) == 2 and not list(tmp_path.glob("**/*.tmp"))


def test_a_bad_checkpoint_is_refused_by_the_front_end_and_not_cached(tmp_path, cache):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x03garbage, not a pickle")
    for _ in range(2):
        with pytest.raises(NeurosimError, match="not a readable torch checkpoint"):
            load_model(bad)
    with pytest.raises(NeurosimError, match="cannot be read"):
        checkpoint_cache.load(tmp_path / "absent.pt")
    assert not cache.exists() or not list(cache.iterdir())


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


def test_a_read_only_install_without_a_writable_home_caches_its_kernels_in_the_temp_folder(tmp_path):
    """Numba alone would refuse to import the kernels ('no locator available'); compile_cache gives it a folder."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "neurosim", site / "neurosim", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "neurosim" / "spikes" / "__pycache__").write_text("")   # a file: no cache folder can be made there
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH", "XDG_CACHE_HOME")}
    env.update(PYTHONPATH=str(site), HOME=str(blocker / "home"), TMPDIR=str(tmp_path / "tmp"),
               PYTHONDONTWRITEBYTECODE="1")
    (tmp_path / "tmp").mkdir()
    code = ("import os, neurosim.spikes.kernels as k; print(os.environ['NUMBA_CACHE_DIR']); "
            "print(k.fire.serial._cache._cache_file._index_path); print(k.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    folder, index, source = out.stdout.split("\n")[:3]
    assert Path(source).is_relative_to(site)
    assert Path(folder).parent == tmp_path / "tmp" and Path(folder).name.startswith("neurosim-numba-")
    assert Path(index).is_relative_to(folder)


def test_a_writable_install_leaves_numbas_choice_alone(tmp_path, monkeypatch):
    from neurosim.spikes import compile_cache

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert compile_cache.ensure_writable(tmp_path / "spikes") is None and "NUMBA_CACHE_DIR" not in os.environ
    assert (tmp_path / "spikes" / "__pycache__").is_dir()


def test_the_user_cache_goes_to_the_temp_folder_without_a_writable_home(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for name in ("NEUROSIM_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(blocker / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert user_cache_dir("checkpoints") == tmp_path / "tmp" / f"neurosim-{os.getuid()}" / "checkpoints"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir("checkpoints") == tmp_path / "home" / ".cache" / "neurosim" / "checkpoints"
    assert user_cache_dir("checkpoints").is_dir()
