"""`neurosim prune DECODER --obs`: Optimal Brain Spiking from the command line, on the shipped spiking decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurosim.cards import load_decoder_card
from neurosim.cli import main
from neurosim.frontend import decoder_ir
from neurosim.frontend.obs import split_cost
from neurosim.spikes import run


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    out = tmp_path_factory.mktemp("obs") / "decoder-obs05"
    argv = ["prune", "spikellm-decoder-2l", "--obs", "--low-p", "0.5", "--data", "sample", "--no-eval",
            "--out", str(out), "--json"]
    return out, argv


def test_prune_obs_writes_the_split_it_reports_and_it_costs_what_the_split_says(pruned, capsys):
    out, argv = pruned
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    model, spiking, ckpt = decoder_ir.load_decoder(out.with_suffix(".pt"))
    assert ckpt["low_p"] == 0.5 and record["was_low_p"] == 0.9
    for name, m in model.gif_inputs().items():
        single = int((~m.multi).sum())
        assert single >= int(0.5 * m.in_features) and single < m.in_features, name   # ties may add a few
        assert record["split"][name]["single"] == single
    # fewer single-step channels than the shipped 0.9: more multi-step spikes, more ACs
    assert record["after"]["acs_per_token"] > record["before"]["acs_per_token"]
    # the engine on the new split: a single-step channel sends its one n-bit spike at step 0, never later
    tokens = ckpt["sample_tokens"][:1, :8]
    net, current = decoder_ir.engine_network(model, spiking, tokens)
    trace = run(net, current, record_rasters=True)
    counts = decoder_ir.measure(model, tokens, spiking)
    for gif in ("block0.q", "block1.down"):
        multi = model.gif_inputs()[gif].multi
        raster = trace[decoder_ir.gif_emitter(net, gif)].raster
        assert not raster[1][:, ~multi.numpy()].any(), gif
        cost = split_cost(multi, spiking.n_bits, spiking.addbit)
        assert counts[gif].slots == tokens.numel() * cost.slots      # slots: T per multi-step channel, 1 per single
    assert trace.acs == pytest.approx(sum(c.acs for c in counts.values()))
    # the card it writes is priced by the cost model
    card = load_decoder_card(out.with_suffix(".yaml"))
    assert card.spiking.rates.attn == pytest.approx(np.mean(record["after"]["rates"]["attn"]))
    assert main(["run", "--model", str(out.with_suffix(".yaml")), "--engine", "analytic"]) == 0


def test_prune_obs_refuses_what_it_does_not_do(tmp_path, capsys):
    out = str(tmp_path / "x")
    assert main(["prune", "spikellm-decoder-2l", "--obs", "--spatial", "--out", out]) == 2
    assert "its own pass" in capsys.readouterr().err
    assert main(["prune", "spikellm-decoder-2l", "--obs", "--low-p", "2", "--out", out]) == 2
    assert "low_p" in capsys.readouterr().err
    assert main(["prune", "spiking-sentiment-2l", "--obs", "--data", "sample", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "not a spiking decoder checkpoint" in err and "Traceback" not in err
