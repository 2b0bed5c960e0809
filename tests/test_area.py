"""Chip area (cost.area) by hand, on the shipped configs and through run, compare and the sweep."""

from __future__ import annotations

import pytest

import neurosim
from neurosim.cost.area import AREA_DIR, AreaTable, area_table, chip_area_mm2, provided_sram_bytes
from neurosim.paths import ENERGY_DIR
from neurosim.schema import load_yaml

CELL_45, CELL_14, EFFICIENCY = 0.346, 0.0588, 0.7    # um^2 per SRAM cell (Intel 45 / 14 nm), cells per macro area


def test_tiny_encoder_on_edge_45nm_area_by_hand():
    report = neurosim.estimate(neurosim.load_model("tiny-encoder"), neurosim.load_arch("edge-45nm"))
    bit = CELL_45 / EFFICIENCY                           # um^2 per bit of an SRAM macro
    want = {"core_sram": 16 * 65536 * 8 * bit / 1e6,     # 16 cores x 64 KiB: 4.146 mm^2
            "global_buffer": 524288 * 8 * bit / 1e6,     # 512 KiB: 2.073 mm^2
            "accumulators": 16 * 32 * 4184 / 1e6,        # 32 fp32 adders per core: 2.142 mm^2
            "mac_units": 16 * 4 * (7700 + 4184) / 1e6,   # 4 fp32 mult + add per core: 0.761 mm^2
            "routers": 16 * 64 * 4178 / 1e6}             # a router per core, 64-bit links: 4.278 mm^2
    assert report.area_breakdown_mm2 == pytest.approx(want, rel=1e-12)
    assert report.area_mm2 == pytest.approx(sum(want.values()), rel=1e-12)
    assert report.area_mm2 == pytest.approx(13.40, abs=0.01)
    assert report.sram_provided_bytes == 16 * 65536 + 524288
    assert report.to_dict()["area_mm2"] == report.area_mm2


def test_area_is_the_chips_whatever_the_model_or_mapping():
    arch = neurosim.load_arch("loihi")
    tiny = neurosim.estimate(neurosim.load_model("tiny-encoder"), arch, mapping="sequential")
    big = neurosim.estimate(neurosim.load_model("spikingbert-4l"), arch)   # 108 MiB of weights, no DRAM: infeasible
    assert not big.feasible and big.area_mm2 == tiny.area_mm2 and big.sram_provided_bytes == tiny.sram_provided_bytes


def test_loihi_model_is_a_lower_bound_on_its_published_die():
    # Loihi: 60 mm^2 in 14 nm, 16 MB of synaptic memory (Davies et al. 2018). The model counts its SRAM,
    # accumulators and routers, not its learning engines, axon tables, x86 cores or I/O: below the die,
    # above the synaptic memory alone.
    report = neurosim.estimate(neurosim.load_model("tiny-encoder"), neurosim.load_arch("loihi"))
    synaptic = 128 * 131072 * 8 * CELL_14 / EFFICIENCY / 1e6
    assert report.area_breakdown_mm2["core_sram"] == pytest.approx(synaptic)
    assert synaptic < report.area_mm2 < 60
    assert report.area_breakdown_mm2["mac_units"] == 0   # no multiplier: MACs are emulated


def test_every_shipped_energy_table_has_an_area_table_with_sources():
    for energy in ENERGY_DIR.glob("*.yaml"):
        table = area_table(energy.stem)
        assert table is not None and table.name == energy.stem and table.source
        text = (AREA_DIR / f"{energy.stem}.yaml").read_text()
        for key in AreaTable.model_fields:                # every number says where it comes from
            if key not in ("name", "source"):
                line = next(line for line in text.splitlines() if line.startswith(f"{key}:"))
                assert "#" in line, line


def test_an_area_table_refuses_an_efficiency_above_one(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((AREA_DIR / "horowitz-45nm.yaml").read_text().replace("sram_array_efficiency: 0.7",
                                                                         "sram_array_efficiency: 1.5"))
    with pytest.raises(neurosim.NeurosimError, match="sram_array_efficiency"):
        load_yaml(bad, AreaTable)


def test_no_area_table_leaves_area_empty_with_a_note(tmp_path):
    energy = tmp_path / "my-node.yaml"
    energy.write_text((ENERGY_DIR / "horowitz-45nm.yaml").read_text().replace("name: horowitz-45nm", "name: my-node"))
    arch = tmp_path / "arch.yaml"
    arch.write_text(neurosim.load_arch("edge-45nm").path and open(neurosim.load_arch("edge-45nm").path).read()
                    .replace("energy_table: horowitz-45nm", f"energy_table: {energy}"))
    report = neurosim.estimate(neurosim.load_model("tiny-encoder"), neurosim.load_arch(arch))
    assert report.area_mm2 is None and report.sram_provided_bytes == 16 * 65536 + 524288
    assert any("no area table for technology 'my-node'" in n for n in report.notes)


def test_area_over_many_points_equals_each_point():
    archs = [neurosim.load_arch(n).model_dump() for n in ("edge-45nm", "spatial-45nm-large")]
    table = area_table("horowitz-45nm")
    many = chip_area_mm2(archs, table)
    for j, arch in enumerate(archs):
        one = chip_area_mm2([arch], table)
        assert all(many[k][j] == one[k][0] for k in many)
    assert list(provided_sram_bytes(archs)) == [16 * 65536 + 524288, 1296 * 131072 + 4194304]


def test_run_and_compare_print_the_area(capsys):
    from neurosim.cli import main

    assert main(["compare", "--engine", "analytic", "--model", "tiny-encoder", "--arch", "edge-45nm"]) == 0
    out = capsys.readouterr().out
    area_line = next(line for line in out.splitlines() if line.startswith("chip area"))
    assert area_line.split()[2:] == ["13.4", "mm²"] * 3
    assert "SRAM on chip (provided)" in out and "  routers" in out
