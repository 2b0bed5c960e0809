"""Per-layer energy, cycles and memory from the closed form: by hand on the tiny encoder, and summing to the totals."""

from __future__ import annotations

import numpy as np
import pytest

import neurosim
from neurosim.report import BREAKDOWN, per_layer_table

MAPPINGS = [("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates")]


@pytest.fixture(scope="module")
def tiny():
    return neurosim.load_model("tiny-encoder")


@pytest.mark.parametrize("arch", ["edge-45nm", "loihi", "spatial-45nm-large"])
@pytest.mark.parametrize("mapping,carry", MAPPINGS)
def test_layers_add_up_to_the_totals(tiny, arch, mapping, carry):
    report = neurosim.estimate(tiny, neurosim.load_arch(arch), mapping=mapping, carry=carry)
    pl, outside = report.per_layer, report.energy_outside_layers_pj   # outside: the idle cores' leakage
    for kind in BREAKDOWN:
        assert pl[f"energy_{kind}_pj"].sum() + outside[kind] == pytest.approx(report.energy_breakdown_pj[kind],
                                                                              rel=1e-12, abs=1e-9)
    if mapping == "sequential":   # layers run one after another
        assert pl["cycles"].sum() == pytest.approx(report.latency_cycles, rel=1e-12)


def test_block0_k_by_hand(tiny):
    # tiny-encoder (hidden 8, 4 tokens, T = 4 in block 0, input rate 0.5, 8-bit weights) on edge-45nm,
    # sequential carrying spikes. block0.k reads the network input: 4 tokens x 8 features x 0.5 x 4 steps
    # = 64 events, each reaching its 8 outputs: 512 ACs; 4 tokens x 8 neurons x 4 steps = 128 updates.
    # Without the chip's memory levels inside the cores (no reuse: one SRAM access per operation).
    edge = neurosim.load_arch("edge-45nm")
    edge = edge.model_copy(update={"cores": edge.cores.model_copy(update={"levels": None, "dataflow": None})}) \
        .loaded_from(edge.path, edge.energy)
    report = neurosim.estimate(tiny, edge, mapping="sequential", carry="spikes")
    row = report.per_layer.set_index("layer").loc["block0.k"]
    assert (row["acs"], row["neuron_updates"]) == (512, 128)
    assert row["energy_compute_pj"] == pytest.approx(512 * 0.9 + 128 * 6.4)          # fp32 add, LIF step
    # core SRAM of 64 KiB: 0.3125 + (log 2 / log 32) x (1.5625 - 0.3125) = 0.5625 pJ/bit; reads: 512 weights
    # x 8 bits + 128 membranes x 32 bits, writes: 128 x 32. Global buffer of 512 KiB: 1.3125 pJ/bit for the
    # 4 x 8 x 4 = 128 output spike bits it keeps for block 0's attention.
    core = (512 * 8 + 128 * 32 + 128 * 32) * 0.5625
    assert row["energy_sram_pj"] == pytest.approx(core + 128 * 1.3125)
    assert row["energy_dram_pj"] == 0
    # leakage: 20 mW over the layer's own cycles at 200 MHz
    assert row["energy_leakage_pj"] == pytest.approx(0.020 * row["cycles"] / 200e6 * 1e12)
    # memory while it runs: 8 x 8 one-byte weights, 4 x 8 fp32 membranes, its 16-byte output history
    assert row["memory_bytes"] == 64 + 128 + 16


def test_spatial_leakage_is_split_by_cores_held(tiny):
    # each layer is charged its cores' share of the chip's 16 for the whole run; the idle cores' leakage is
    # the energy of no layer, and the rows and it add up to the chip's leakage
    report = neurosim.estimate(tiny, neurosim.load_arch("edge-45nm"), mapping="spatial")
    pl, leakage = report.per_layer, report.energy_breakdown_pj["leakage"]
    assert np.allclose(pl["energy_leakage_pj"], leakage * pl["cores"] / 16, rtol=1e-12)
    idle = report.energy_outside_layers_pj["leakage"]
    assert idle == pytest.approx(leakage * (16 - pl["cores"].sum()) / 16, rel=1e-12)
    assert pl["energy_leakage_pj"].sum() + idle == pytest.approx(leakage, rel=1e-12)


def test_sequential_leakage_is_the_pools_while_each_layer_runs(tiny):
    report = neurosim.estimate(tiny, neurosim.load_arch("spatial-45nm-large"), mapping="sequential", carry="rates")
    pl, leakage = report.per_layer, report.energy_breakdown_pj["leakage"]
    pool = int(report.notes[0].split(" on a pool of ")[1].split()[0])
    chip = neurosim.load_arch("spatial-45nm-large").cores.count
    assert pool < chip      # the pool search leaves cores idle here, so the split is not the time share alone
    share = pool / chip * pl["cycles"] / report.latency_cycles
    assert np.allclose(pl["energy_leakage_pj"], leakage * share, rtol=1e-12)
    assert report.energy_outside_layers_pj["leakage"] == pytest.approx(leakage * (1 - pool / chip), rel=1e-12)


def test_run_per_layer_prints_the_table_and_json_rows(capsys):
    import json

    from neurosim.cli import main

    args = ["run", "--engine", "analytic", "--model", "tiny-encoder", "--arch", "edge-45nm", "--per-layer"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "layer" in out and "interconnect" in out and "block1.output" in out
    assert main(args + ["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["per_layer"]
    assert len(rows) == 14 and {f"energy_{k}_pj" for k in BREAKDOWN} <= set(rows[0])


def test_per_layer_table_of_the_simulator_has_energy_cycles_and_stalls(tiny):
    from neurosim.sim import simulate

    report = simulate(tiny, neurosim.load_arch("edge-45nm"))
    table = per_layer_table(report)
    assert table.splitlines()[0].split()[-8:] == [*BREAKDOWN, "cycles", "stall", "memory"]
    # a header, 14 layers, a '(no layer)' row where the pool leaves cores idle, and how leakage is split
    idle = report.energy_outside_layers_pj["leakage"] > 0
    assert len(table.splitlines()) == 16 + idle and table.splitlines()[-1].startswith("leakage:")
