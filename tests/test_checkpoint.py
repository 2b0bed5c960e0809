"""Checkpoints (.pt) and NIR files through load_model and the command line."""

import json

import numpy as np
import pytest
import torch

from neurosim.cards import load_model
from neurosim.cli import main
from neurosim.errors import NeurosimError
from neurosim.frontend.encoder import SpikingEncoder

CONFIG = dict(vocab_size=20, hidden=8, heads=2, intermediate=16, layers=2, seq_len=6, classes=2, timesteps=[8, 4])


def _save(tmp_path, mutate=None, config=CONFIG):
    torch.manual_seed(0)
    model = SpikingEncoder(**CONFIG)
    ckpt = {"config": dict(config), "state_dict": model.state_dict(),
            "sample_tokens": torch.randint(0, 20, (3, 6)), "vocab": [f"w{i}" for i in range(20)]}
    if mutate:
        mutate(ckpt)
    path = tmp_path / "m.pt"
    torch.save(ckpt, path)
    return path


def test_checkpoint_loads_with_sizes_timesteps_and_measured_rates(tmp_path):
    net = load_model(_save(tmp_path))
    assert net.name == "m" and len(net.layers) == 14
    assert net["block0.intermediate"].weights.shape == (16, 8)
    assert [net[f"block{b}.k"].timesteps for b in (0, 1)] == [8, 4]
    assert all(0 <= l.rate <= 1 for l in net.layers if l.spiking)
    assert "measured" in net.metadata["rates_source"]


def test_wrong_shape_is_refused(tmp_path):
    def bad(ckpt):
        ckpt["state_dict"]["blocks.0.k.weight"] = torch.zeros(8, 9)
    with pytest.raises(NeurosimError) as exc:
        load_model(_save(tmp_path, bad))
    assert exc.value.field == "state_dict" and "blocks.0.k.weight" in exc.value.problem


def test_nan_weight_is_refused_naming_the_layer(tmp_path):
    def bad(ckpt):
        ckpt["state_dict"]["blocks.1.output.weight"][0, 0] = float("nan")
    with pytest.raises(NeurosimError) as exc:
        load_model(_save(tmp_path, bad))
    assert "block1.output" in exc.value.where and exc.value.field == "weights"


def test_unsupported_layer_in_checkpoint_is_refused(tmp_path):
    def bad(ckpt):
        ckpt["state_dict"]["blocks.0.lstm.weight_ih_l0"] = torch.zeros(4, 8)
    with pytest.raises(NeurosimError) as exc:
        load_model(_save(tmp_path, bad))
    assert "lstm" in exc.value.problem and "Fix:" in str(exc.value)


def test_unknown_config_key_and_non_checkpoint_are_refused(tmp_path):
    with pytest.raises(NeurosimError) as exc:
        load_model(_save(tmp_path, config={**CONFIG, "dropout": 0.1}))
    assert exc.value.field == "config.dropout"
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(NeurosimError) as exc:
        load_model(junk)
    assert exc.value.where == str(junk) and exc.value.field == "(file)"


def test_shipped_model_is_the_default_and_runs(capsys):
    net = load_model("spiking-sentiment-2l")
    assert net["block0.k"].weights.shape == (128, 128)
    assert net["block0.intermediate"].out_features == 256
    assert main(["run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "spiking-sentiment-2l" and out["acs"] > 0


def test_nir_file_runs_from_the_cli_with_an_assumed_rate(tmp_path, capsys):
    nir = pytest.importorskip("nir")
    from neurosim.frontend.nir_io import to_nir
    from neurosim.ir import Layer, Network
    rng = np.random.default_rng(0)
    net = Network("mlp", [Layer("fc1", "linear", 6, 4, weights=rng.normal(size=(4, 6))),
                          Layer("fc2", "linear", 4, 2, inputs=["fc1"], weights=rng.normal(size=(2, 4)))],
                  input_size=6, input_rate=0.5)
    path = tmp_path / "mlp.nir"
    nir.write(path, to_nir(net))
    assert main(["run", "--model", str(path), "--arch", "edge-45nm"]) == 2
    assert "rate" in capsys.readouterr().err  # no rate known: refused, with the fix
    assert main(["run", "--model", str(path), "--arch", "edge-45nm", "--rate", "0.25", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # fc1: 6 inputs at the NIR import's input rate x 4 outputs x 1 step; fc2: 4 x 0.25 x 2
    assert out["acs"] == pytest.approx(6 * load_model(path).input_rate * 4 + 4 * 0.25 * 2)
