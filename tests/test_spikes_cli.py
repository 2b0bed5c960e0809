"""`neurosim run --engine spikes` end to end."""

import json

import numpy as np
import pytest

from neurosim.cli import main


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("mapping,carry,handoff", [("spatial", None, "lockstep"), ("sequential", "spikes", "history"),
                                                   ("sequential", "rates", "stochastic")])
def test_engine_counts_fill_the_report(capsys, mapping, carry, handoff):
    argv = ["run", "--model", "tiny-encoder", "--engine", "spikes", "--mapping", mapping, "--json", "--per-layer"]
    out = _json(capsys, argv + (["--carry", carry] if carry else []))
    assert out["engine"] == "spikes" and out["acs"] > 0
    assert out["acs"] == pytest.approx(sum(row["acs"] for row in out["per_layer"]))  # priced what was counted
    assert any("seeded random" in note for note in out["notes"])  # the card has no weights: said so
    assert any(f"{handoff} handoff" in note and "measured ASR" in note for note in out["notes"])
    k = next(row for row in out["per_layer"] if row["layer"] == "block0.k")
    assert 0 < k["asr_measured"] <= 1


def test_engine_on_the_trained_checkpoint_uses_its_sample_and_weights(capsys):
    out = _json(capsys, ["run", "--engine", "spikes", "--json"])  # the default model: a trained checkpoint
    assert not any("seeded random" in note for note in out["notes"])
    assert any("sample sentence" in note for note in out["notes"])
    assert out["acs"] > 0 and out["macs"] > 0


def test_engine_input_file_and_seed(capsys, tmp_path):
    rng = np.random.default_rng(0)
    spikes = tmp_path / "in.npy"
    np.save(spikes, (rng.random((4, 4, 8)) < 0.5).astype(np.uint8))
    base = ["run", "--model", "tiny-encoder", "--engine", "spikes", "--json", "--input", str(spikes)]
    a, b = _json(capsys, base), _json(capsys, base)
    assert a["acs"] == b["acs"]
    assert any(str(spikes) in note for note in a["notes"])
    np.save(spikes, np.zeros((4, 3, 8)))
    assert main(base) == 2
    assert "expected (T, 4, 8)" in capsys.readouterr().err


def test_device_runs_the_torch_backend_with_the_counts_of_the_cpu_engine(capsys):
    base = ["run", "--model", "tiny-encoder", "--engine", "spikes", "--json", "--mapping", "spatial"]
    cpu, dev = _json(capsys, base), _json(capsys, base + ["--device", "cpu"])
    assert dev["macs"] == cpu["macs"]                          # dense work: the same whatever spikes
    assert dev["acs"] == pytest.approx(cpu["acs"], rel=0.01)   # random float weights: rounding may flip a spike
    assert any("spike engine (torch, cpu)" in note for note in dev["notes"])


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_device_cuda_without_a_gpu_and_device_without_the_engine_are_refused_in_one_line(capsys):
    assert main(["run", "--model", "tiny-encoder", "--engine", "spikes", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "torch sees no CUDA GPU" in err and "\n" not in err
    assert main(["run", "--model", "tiny-encoder", "--device", "cuda"]) == 2
    assert "only the spike engine runs on a device" in capsys.readouterr().err
