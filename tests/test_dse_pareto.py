"""Pareto fronts on hand-made tables (fronts picked by hand), best points, and the report page."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from neurosim.dse.pareto import best_per_objective, pareto_front, pareto_mask
from neurosim.dse.report_page import write_report
from neurosim.dse.sweep import run_sweep
from neurosim.errors import NeurosimError

NAN = math.nan

# name, energy_pj, latency_s, SRAM bytes the design provides ('memory'). Hand analysis (energy, latency):
#   a (1, 10), b (2, 5), c (4, 2), e (8, 1) trade off -> on the front
#   d (3, 6) is beaten by b (2, 5); f (4, 2) ties c exactly -> on the front too (neither dominates);
#   g (2, 7) is beaten by b (same energy, slower); h (9, 1) by e (same latency, more energy)
#   i has no energy (infeasible) -> never on a front
HAND = [("a", 1, 10, 50), ("b", 2, 5, 80), ("c", 4, 2, 90), ("d", 3, 6, 10), ("e", 8, 1, 70),
        ("f", 4, 2, 95), ("g", 2, 7, 60), ("h", 9, 1, 100), ("i", NAN, 3, 1)]


def hand_table() -> pd.DataFrame:
    df = pd.DataFrame(HAND, columns=["point_id", "energy_pj", "latency_s", "sram_provided_bytes"])
    return df.assign(model="m", engine="analytic", index=range(len(df)))


def test_two_objective_front_is_the_hand_picked_rows():
    front = pareto_front(hand_table(), ["energy", "latency"])
    assert list(front["point_id"]) == ["a", "b", "c", "f", "e"]   # sorted by energy, then latency


def test_three_objective_front_is_the_hand_picked_rows():
    # Adding memory: d (3, 6, 10) now trades off (least memory of the feasible rows); g (2, 7, 60) is still
    # beaten? b has (2, 5, 80): g uses less memory, so g joins. f (4, 2, 95) is beaten by c (4, 2, 90).
    # h (9, 1, 100) is beaten by e (8, 1, 70).
    front = pareto_front(hand_table(), ["energy", "latency", "memory"])
    assert sorted(front["point_id"]) == ["a", "b", "c", "d", "e", "g"]


def test_front_per_group_and_ungrouped():
    two = pd.concat([hand_table(), hand_table().assign(model="n", energy_pj=lambda d: d["energy_pj"] * 0.5)])
    per_model = pareto_front(two, ["energy", "latency"])
    assert len(per_model) == 10 and set(per_model["model"]) == {"m", "n"}
    one = pareto_front(two, ["energy", "latency"], by=None)
    assert set(one["model"]) == {"n"} and len(one) == 5


def test_mask_edge_cases():
    assert pareto_mask(np.empty((0, 2))).tolist() == []
    assert pareto_mask([[NAN, 1.0], [1.0, NAN]]).tolist() == [False, False]
    assert pareto_mask([[1.0, 1.0], [1.0, 1.0]]).tolist() == [True, True]
    rng = np.random.default_rng(0)
    v = rng.random((300, 3))
    mask = pareto_mask(v)
    for i in range(len(v)):   # brute force: dominated iff some row is <= everywhere and < somewhere
        dominated = np.any(np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1))
        assert mask[i] == (not dominated)


def test_best_per_objective_and_bad_objectives():
    # i (no energy: infeasible) holds the least memory but is not a valid design point.
    best = best_per_objective(hand_table(), ["energy", "latency", "memory"])
    assert list(zip(best["best_for"], best["point_id"])) == [("energy_pj", "a"), ("latency_s", "e"),
                                                             ("sram_provided_bytes", "d")]
    with pytest.raises(NeurosimError, match="two or three"):
        pareto_front(hand_table(), ["energy"])
    with pytest.raises(NeurosimError, match="no such result column"):
        pareto_front(hand_table(), ["energy", "watts"])


def test_report_page_and_figures(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "report-test", "base": "edge-45nm",
        "models": ["tiny-encoder", {"name": "tiny-long", "model": "tiny-encoder", "set": {"seq_len": 16}}],
        "axes": {"cores.count": [4, 16, 64], "global_buffer.bytes": [16, 65536],
                 "mapping": ["spatial", "sequential:spikes", "sequential:rates"]}}))
    out = tmp_path / "out"
    run_sweep(spec, out, workers=0, progress=False)
    page = write_report(out)
    text = page.read_text()
    for heading in ("# Sweep report: report-test", "## Pareto front", "## Best point per objective",
                    "## Figures", "## Failed points", "## Infeasible points"):
        assert heading in text
    for fig in ("energy_latency", "front_breakdown", "per_layer_latency", "mapping_comparison"):
        png = out / "figures" / f"{fig}.png"
        assert png.stat().st_size > 10_000 and f"figures/{fig}.png" in text
    assert (out / "pareto.csv").is_file()
    html = write_report(out, ["energy", "latency"], fmt="html", per_layer=False)
    assert html.suffix == ".html" and "<table" in html.read_text()
