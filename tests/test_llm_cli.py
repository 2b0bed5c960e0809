"""Decoder workloads through the command line: --prompt/--generate/--batch, compare, refusals."""

import json

import pytest

from neurosim.cli import main

SMALL = ["--model", "tinyllama-1.1b", "--arch", "llm-45nm-hbm3-x4", "--engine", "analytic"]


def test_run_prices_the_requested_workload(capsys):
    assert main(["run", *SMALL, "--prompt", "16", "--generate", "4", "--batch", "2", "--json"]) == 0
    (out,) = json.loads(capsys.readouterr().out)
    assert (out["prompt"], out["generate"], out["batch"], out["feasible"]) == (16, 4, 2, True)
    # the cache at the last token: 2 sequences x 20 tokens x 22 layers x K and V of 4 heads x 64 values at fp16
    assert out["kv_peak_bytes"] == 2 * 20 * 22 * 2 * 4 * 64 * 2
    decode = out["decode"]
    assert out["energy_per_token_decode_j"] == pytest.approx(sum(decode["energy_pj"].values()) * 1e-12 / 8)


def test_mac_based_run_does_no_accumulates(capsys):
    assert main(["run", *SMALL, "--prompt", "8", "--generate", "2", "--mac-based", "--json"]) == 0
    (out,) = json.loads(capsys.readouterr().out)
    assert out["mac_based"] and out["decode"]["acs"] == 0 and out["decode"]["macs"] > 0


def test_compare_puts_spiking_mappings_beside_mac_based(capsys):
    assert main(["compare", *SMALL, "--prompt", "8", "--generate", "2"]) == 0
    text = capsys.readouterr().out
    for column in ("spiking, sequential", "spiking, spatial", "MAC-based, sequential", "MAC-based, spatial"):
        assert column in text
    assert "time per output token" in text and "energy/token, decode" in text


def test_workload_flags_on_an_encoder_are_refused(capsys):
    assert main(["run", "--model", "tiny-encoder", "--prompt", "8", "--engine", "analytic"]) == 2
    assert "decoder models" in capsys.readouterr().err


def test_a_prompt_beyond_the_context_is_refused(capsys):
    assert main(["run", *SMALL, "--prompt", "2048", "--generate", "1"]) == 2
    assert "context" in capsys.readouterr().err


def test_zero_generated_tokens_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", *SMALL, "--generate", "0"])
    assert exc.value.code == 2 and ">= 1" in capsys.readouterr().err


def test_a_batch_beyond_the_cards_bound_is_refused(capsys):
    assert main(["run", *SMALL, "--batch", "1000000"]) == 2
    assert "batch" in capsys.readouterr().err
