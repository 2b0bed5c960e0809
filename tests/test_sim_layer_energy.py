"""The simulator's energy per layer: its rows and the energy of no layer add up to the totals on every shipped
model and mapping, price the same events as the closed form's rows, and split leakage by the cores held."""

from __future__ import annotations

import numpy as np
import pytest

import neurosim
from neurosim.cost import closed_form
from neurosim.cost.chips import Chips
from neurosim.cost.workload import workload
from neurosim.report import BREAKDOWN, LEAKAGE_BY_LAYER, NO_LAYER, per_layer_table
from neurosim.sim import simulate
from test_reuse_ports import without_ports

MAPPINGS = [("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates")]
# The shipped models the simulator takes as one network, on a chip they fit: the encoders and the small decoder
# on the large 45 nm chip, TinyLlama's shape on the decoder chips (it maps sequentially only). Left out, for
# time only: LLaMA-2-7B and -13B (TinyLlama's layer kinds at larger sizes; a minute each to simulate here) and
# spikingbert-minilm-polarity (its checkpoint's rates take about 5 CPU minutes to measure on load).
MODELS = {"tiny-encoder": "spatial-45nm-large", "spiking-sentiment-2l": "spatial-45nm-large",
          "spikingbert-4l": "spatial-45nm-large", "spikellm-decoder-2l": "spatial-45nm-large",
          "tinyllama-1.1b": "llm-45nm-hbm3-x4"}
CHECKPOINTS = {"spiking-sentiment-2l"}   # .pt: rates measured with torch on load


@pytest.fixture(scope="module")
def networks():
    loaded = {}

    def get(name):
        if name not in loaded:
            if name in CHECKPOINTS:
                pytest.importorskip("torch")
            loaded[name] = neurosim.load_model(name)
        return loaded[name]
    return get


def without_levels(arch):
    """The arch without memory levels inside its cores (one SRAM access per operation: counts by hand)."""
    return arch.model_copy(update={"cores": arch.cores.model_copy(update={"levels": None, "dataflow": None})}) \
        .loaded_from(arch.path, arch.energy)


@pytest.mark.parametrize("mapping,carry", MAPPINGS)
@pytest.mark.parametrize("model", MODELS)
def test_simulated_layers_and_the_energy_of_no_layer_add_up_to_the_totals(networks, model, mapping, carry):
    report = simulate(networks(model), neurosim.load_arch(MODELS[model]), mapping, carry)
    if not report.feasible:
        assert report.per_layer is None and report.energy_outside_layers_pj is None
        return
    pl, outside = report.per_layer, report.energy_outside_layers_pj
    for kind in BREAKDOWN:
        column = pl[f"energy_{kind}_pj"].to_numpy()
        assert np.isfinite(column).all() and (column >= 0).all()
        assert column.sum() + outside[kind] == pytest.approx(report.energy_breakdown_pj[kind], rel=1e-9, abs=1e-6)
    assert {k: v for k, v in outside.items() if k != "leakage"} == dict.fromkeys(BREAKDOWN[:4], 0.0)


@pytest.mark.parametrize("mapping,carry", MAPPINGS)
def test_simulated_layers_price_the_same_events_as_the_closed_form_rows(networks, mapping, carry):
    # tiny-encoder on edge-45nm: both engines run the same work and decisions, so every layer's compute, SRAM,
    # DRAM and interconnect energy is the same; the two tallies are independent (events booked as the run goes,
    # against the closed form's arrays)
    net, arch = networks("tiny-encoder"), neurosim.load_arch("edge-45nm")
    sim, closed = simulate(net, arch, mapping, carry), neurosim.estimate(net, arch, mapping=mapping, carry=carry)
    for kind in ("compute", "sram", "dram", "interconnect"):
        np.testing.assert_allclose(sim.per_layer[f"energy_{kind}_pj"], closed.per_layer[f"energy_{kind}_pj"],
                                   rtol=1e-9, atol=1e-9, err_msg=kind)


def test_block0_k_simulated_energy_by_hand(networks):
    # tiny-encoder on edge-45nm without its memory levels, sequential carrying spikes. block0.k reads the
    # network input: 4 tokens x 8 features x 0.5 x 4 steps = 64 events reaching 8 outputs each, 512 ACs;
    # 4 tokens x 8 neurons x 4 steps = 128 LIF updates.
    net, edge = networks("tiny-encoder"), without_levels(neurosim.load_arch("edge-45nm"))
    report = simulate(net, edge, "sequential", "spikes")
    pl = report.per_layer.set_index("layer")
    row = pl.loc["block0.k"]
    assert row["energy_compute_pj"] == pytest.approx(512 * 0.9 + 128 * 6.4)     # fp32 add, LIF step
    # core SRAM of 64 KiB at 0.5625 pJ/bit: 512 one-byte weights and 128 fp32 membranes read, the membranes
    # written; the global buffer (512 KiB, 1.3125 pJ/bit) keeps its 4 x 8 x 4 = 128 output spike bits
    assert row["energy_sram_pj"] == pytest.approx((512 * 8 + 128 * 32 + 128 * 32) * 0.5625 + 128 * 1.3125)
    assert row["energy_dram_pj"] == 0
    # leakage: 20 mW split over 16 cores, the pool's cores from block0.q's end to block0.k's, at 200 MHz
    pool = int(closed_form.pool_cores(workload(net, False, False), Chips.of(edge), edge.energy, "spikes")[0])
    slot = row["end_cycle"] - pl.loc["block0.q", "end_cycle"]
    assert row["energy_leakage_pj"] == pytest.approx(0.020 * pool / 16 * slot / 200e6 * 1e12)
    assert report.energy_outside_layers_pj["leakage"] == pytest.approx(
        0.020 * (16 - pool) / 16 * report.latency_cycles / 200e6 * 1e12)


def test_spatial_stages_leak_their_cores_share_and_idle_cores_leak_outside_every_layer(networks):
    # without its ports' widths, tiny-encoder's pipeline leaves edge-45nm cores idle (with them it takes all 16)
    report = simulate(networks("tiny-encoder"), without_ports(neurosim.load_arch("edge-45nm")), "spatial")
    pl, seconds = report.per_layer, report.latency_s
    np.testing.assert_allclose(pl["energy_leakage_pj"], 0.020 * pl["cores"] / 16 * seconds * 1e12, rtol=1e-12)
    idle = 16 - pl["cores"].sum()
    assert idle > 0
    assert report.energy_outside_layers_pj["leakage"] == pytest.approx(0.020 * idle / 16 * seconds * 1e12)


def test_run_engine_sim_per_layer_prints_energy_and_the_no_layer_row(capsys, tmp_path):
    import json

    from neurosim.cli import main

    # the 1296-core chip: tiny-encoder's pipeline leaves cores idle, whose leakage is the '(no layer)' row
    args = ["run", "--engine", "sim", "--model", "tiny-encoder", "--arch", "spatial-45nm-large", "--mapping", "spatial",
            "--per-layer"]
    assert main(args + ["--plot", str(tmp_path / "layers.png")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("layer ")):]
    assert table[0].split()[3:10] == ["pace", "energy", *BREAKDOWN]
    assert table[15].startswith(NO_LAYER) and table[15].split()[-4] == "100%"   # all of it leakage
    assert (tmp_path / "layers.png").stat().st_size > 0
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows, outside = data["per_layer"], data["energy_outside_layers_pj"]
    assert len(rows) == 14 and all(f"energy_{k}_pj" in rows[0] for k in BREAKDOWN)
    assert sum(r["energy_sram_pj"] for r in rows) + outside["sram"] == pytest.approx(data["energy_breakdown_pj"]["sram"])


def test_the_closed_form_splits_leakage_as_the_simulator_does(networks):
    net, arch = networks("tiny-encoder"), neurosim.load_arch("edge-45nm")
    for mapping in ("spatial", "sequential"):
        closed = neurosim.estimate(net, arch, mapping=mapping)
        simulated = simulate(net, arch.with_mapping(mapping, arch.mapping.carry))
        table = per_layer_table(closed)
        assert table.splitlines()[-1] == LEAKAGE_BY_LAYER == per_layer_table(simulated).splitlines()[-1]
        # the same cores held: each layer's share of the leakage agrees (run times differ by stalls)
        share = [r.per_layer["energy_leakage_pj"].to_numpy() / r.energy_breakdown_pj["leakage"]
                 for r in (closed, simulated)]
        np.testing.assert_allclose(*share, rtol=0.05, atol=1e-3)
