"""The command line, end to end, on the shipped defaults."""

import json

import pytest

from neurosim.cli import main

REQUIRED = {"model", "arch", "mapping", "acs", "macs", "energy_pj", "energy_breakdown_pj", "latency_cycles",
            "latency_s", "memory_bytes", "dram_traffic_bytes"}


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_run_json_has_every_field(capsys):
    out = _json(capsys, ["run", "--json"])
    assert REQUIRED <= set(out)
    assert set(out["energy_breakdown_pj"]) == {"compute", "sram", "dram", "interconnect", "leakage"}
    assert set(out["memory_bytes"]) == {"weights", "membrane", "spike_buffers", "peak_on_chip"}
    assert out["energy_pj"] == pytest.approx(sum(out["energy_breakdown_pj"].values()))


def test_compare_json_lists_both_mappings(capsys):
    out = _json(capsys, ["compare", "--json"])
    assert [(r["mapping"], r["carry"]) for r in out] == [("spatial", "spikes"), ("sequential", "spikes"),
                                                          ("sequential", "rates")]
    assert all(REQUIRED <= set(r) for r in out)
    # the same network: the sequential mappings do the same ACs at the same (uniform) timesteps
    assert out[1]["acs"] == out[2]["acs"]


def test_compare_table_has_units(capsys):
    assert main(["compare", "--model", "spikingbert-4l", "--arch", "edge-45nm"]) == 0
    text = capsys.readouterr().out
    for unit in ("J", "s", "MiB", " G\n"):  # SpikingBERT-4L: tens of G (10^9) ACs
        assert unit in text
    assert "short by" in text  # the spatial mapping does not fit the 16-core edge chip


def test_ops_json_paper_and_structural(capsys):
    out = _json(capsys, ["ops", "--model", "spikingbert-4l", "--json"])
    assert out["acs_paper"] == 316_586_065_920
    assert out["normalized_c"] == 1.0
    assert 0 < out["acs_structural"] < out["acs_structural_dense"] < out["acs_paper"]


def test_bad_model_name_is_one_clear_line(capsys):
    assert main(["run", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "no-such-model" in err and "spikingbert-4l" in err and "Fix:" in err
    assert "Traceback" not in err


def test_bad_arch_file_names_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((__import__("neurosim").paths.ARCH_DIR / "edge-45nm.yaml").read_text()
                   .replace("  count: 16", "  count: 0"))
    assert main(["run", "--arch", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "cores.count" in err


def test_run_defaults_to_the_simulator_and_analytic_stays_available(capsys):
    sim = _json(capsys, ["run", "--model", "tiny-encoder", "--arch", "edge-45nm", "--json"])
    closed = _json(capsys, ["run", "--model", "tiny-encoder", "--arch", "edge-45nm", "--engine", "analytic",
                            "--json"])
    assert sim["engine"] == "simulator" and closed["engine"] == "analytic"
    assert sim["acs"] == closed["acs"] and sim["macs"] == closed["macs"]   # same work, counted once
    assert {"utilization", "stall_cycles"} <= set(sim)


def test_compare_plot_and_run_timeline_write_pngs(tmp_path, capsys):
    plot, timeline = tmp_path / "cmp.png", tmp_path / "tl.png"
    assert main(["compare", "--model", "tiny-encoder", "--arch", "edge-45nm", "--plot", str(plot)]) == 0
    assert main(["run", "--model", "tiny-encoder", "--arch", "edge-45nm", "--timeline", str(timeline)]) == 0
    for path in (plot, timeline):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["run", "--model", "tiny-encoder", "--engine", "analytic", "--timeline", str(timeline)]) == 2
    assert "no event timeline" in capsys.readouterr().err
