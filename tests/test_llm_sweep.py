"""Decoder cards in sweeps: workload.prompt / generate / batch axes (card overrides) and chips.count (arch)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from neurosim.arch import load_arch
from neurosim.cards import load_decoder_card
from neurosim.dse.sweep import run_sweep
from neurosim.errors import NeurosimError
from neurosim.dse.spec import load_spec
from neurosim.llm import run_workload
from neurosim.llm.workload import with_chip_count

CARD = dict(name="two-block", kind="spiking_decoder", source="test", layers=2, hidden=16, heads=2, kv_heads=1,
            intermediate=24, vocab=20, context=64, weight_bits=8, kv_bits=16,
            spiking=dict(neuron=dict(model="lif"), timesteps=2, rates=dict(attn=0.5, o=0.5, mlp=0.5, down=0.5,
                                                                           head=0.5)),
            rates_source="test", workload=dict(prompt=6, generate=3, batch=1))


def files(tmp_path: Path, axes: dict) -> tuple[Path, Path]:
    card = tmp_path / "two-block.yaml"
    card.write_text(yaml.safe_dump(CARD))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "llm", "base": "llm-45nm-hbm3-x4", "models": [str(card)],
                                    "axes": axes, "engine": "analytic"}))
    return card, spec


def test_sweep_rows_are_the_workload_of_each_point(tmp_path):
    card_path, spec = files(tmp_path, {"workload.batch": [1, 3], "chips.count": [1, 2]})
    run_sweep(spec, tmp_path / "out", workers=0, progress=False)
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(df) == 4 and (df.status == "ok").all()
    card, arch = load_decoder_card(card_path), load_arch("llm-45nm-hbm3-x4")
    for _, row in df.iterrows():
        r = run_workload(card, with_chip_count(arch, int(row["chips.count"])), batch=int(row["workload.batch"]))
        energy = sum(p.energy_total_pj for p in (r.prefill, r.decode))
        assert row.energy_pj == pytest.approx(energy, rel=1e-9)
        assert row.latency_s == pytest.approx(r.prefill.seconds + r.decode.seconds, rel=1e-9)
        assert row.acs == pytest.approx(r.prefill.acs + r.decode.acs, rel=1e-9)
        assert f"TPOT {r.tpot_mean_s:.4g} s" in row.notes


def test_workload_axis_on_an_encoder_card_is_refused(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "x", "base": "edge-45nm", "models": ["tiny-encoder"],
                                    "axes": {"workload.batch": [1, 2]}}))
    from neurosim.dse.spec import plan
    from neurosim.dse.spec import check_models

    sweep = load_spec(spec)
    with pytest.raises(NeurosimError) as exc:
        check_models(sweep, plan(sweep))
    assert "workload" in str(exc.value)


def test_chips_count_without_links_is_refused(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "x", "base": "edge-45nm", "models": ["tiny-encoder"],
                                    "axes": {"chips.count": [1, 2]}}))
    with pytest.raises(NeurosimError) as exc:
        load_spec(spec)
    assert exc.value.field == "axes.chips.count"
