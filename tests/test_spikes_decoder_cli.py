"""`neurosim run --engine spikes` on the shipped spiking decoder: the engine's counts are the torch decoder's."""

from __future__ import annotations

import json
import re

import torch

from neurosim.cli import main
from neurosim.frontend import decoder_ir
from neurosim.frontend.decoder import Spiking
from neurosim.paths import MODELS_DIR


def torch_acs(tokens: torch.Tensor) -> float:
    """The ACs the shipped decoder's own spike trains cause on `tokens` (frontend.spikellm.SpikeCount)."""
    model, spiking, _ = decoder_ir.load_decoder(MODELS_DIR / "weights" / "spikellm-decoder-2l.pt")
    counts = decoder_ir.measure(model, tokens, spiking)
    return sum(c.acs for c in counts.values())


def test_the_shipped_decoder_runs_on_the_spike_engine_with_the_torch_decoders_counts(capsys):
    assert main(["run", "--engine", "spikes", "--model", "spikellm-decoder-2l", "--prompt", "8", "--generate", "4",
                 "--arch", "spatial-45nm-large", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engine"] == "spikes" and report["feasible"] and report["prompt"] == 8
    counted = next(n for n in report["notes"] if n.startswith("spike engine"))
    prefill, decode = (int(x.replace(",", "")) for x in re.findall(r"(?:prefill|decode) ([\d,]+) ACs", counted))
    _, _, ckpt = decoder_ir.load_decoder(MODELS_DIR / "weights" / "spikellm-decoder-2l.pt")
    sample = ckpt["sample_tokens"][:1]
    assert prefill == torch_acs(sample[:, :8])
    assert decode == torch_acs(sample[:, :12]) - prefill      # 4 decode steps: the longer run's extra work
    assert report["decode"]["acs"] > 0 and report["energy_per_token_decode_j"] > 0
    assert any("measured rates" in n for n in report["notes"])


def test_a_decoder_card_without_trained_weights_is_refused_in_one_line(capsys):
    assert main(["run", "--engine", "spikes", "--model", "llama2-7b"]) == 2
    err = capsys.readouterr().err
    assert "trained weights" in err and "--engine analytic" in err and "Traceback" not in err
    assert main(["run", "--engine", "spikes", "--model", "spikellm-decoder-2l", "--batch", "9"]) == 2
    assert "sample windows" in capsys.readouterr().err
    # flags of an encoder run would do nothing here: refused, not ignored
    assert main(["run", "--engine", "spikes", "--model", "spikellm-decoder-2l", "--plot", "x.png", "--mac-based"]) == 2
    assert "'--mac-based/--plot'" in capsys.readouterr().err


def test_spiking_settings_of_the_checkpoint_are_the_cards():
    # the engine reads the spike encoding from the checkpoint and the card prices it: they must agree
    from neurosim.cards import load_decoder_card

    _, spiking, _ = decoder_ir.load_decoder(MODELS_DIR / "weights" / "spikellm-decoder-2l.pt")
    card = load_decoder_card(MODELS_DIR / "spikellm-decoder-2l.yaml")
    assert isinstance(spiking, Spiking)
    assert card.spiking.timesteps == 2 ** spiking.addbit and card.spiking.neuron.levels == 2 ** spiking.n_bits - 1
