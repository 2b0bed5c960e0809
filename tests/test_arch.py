"""Arch configs and energy tables (neurosim.arch): loading, refusals, SRAM interpolation.

Each refusal must name the file (`.where` == the path), the dotted key
(`.field`) and give a fix ("Fix: ..." in the message).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from neurosim.arch import ArchConfig, EnergyTable, load_arch, load_energy_table
from neurosim.cards import load_model
from neurosim.cost.estimate import estimate
from neurosim.errors import NeurosimError
from neurosim.paths import ARCH_DIR, ENERGY_DIR

EDGE = ARCH_DIR / "edge-45nm.yaml"
SHIPPED_ARCHS = sorted(ARCH_DIR.glob("*.yaml"))
SHIPPED_TABLES = sorted(ENERGY_DIR.glob("*.yaml"))


# -- helpers ------------------------------------------------------------------------
def edge_config() -> dict:
    return yaml.safe_load(EDGE.read_text())


def write(tmp_path: Path, data, name: str = "arch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def mutated(tmp_path: Path, mutate) -> Path:
    """A copy of edge-45nm.yaml with one thing changed by `mutate(dict)`."""
    data = copy.deepcopy(edge_config())
    mutate(data)
    return write(tmp_path, data)


def set_key(dotted: str, value):
    def mutate(data: dict) -> None:
        *parents, last = dotted.split(".")
        for p in parents:
            data = data[p]
        data[last] = value
    return mutate


def del_key(dotted: str):
    def mutate(data: dict) -> None:
        *parents, last = dotted.split(".")
        for p in parents:
            data = data[p]
        del data[last]
    return mutate


def refusal(build) -> NeurosimError:
    with pytest.raises(NeurosimError) as info:
        build()
    return info.value


def assert_refusal(exc: NeurosimError, path: Path, field: str, *in_fix: str) -> None:
    assert exc.where == str(path)
    assert exc.field == field
    text = str(exc)
    assert text.startswith(f"{path}: field '{field}': ")
    assert "Fix:" in text and exc.fix and f"Fix: {exc.fix}" in text
    for part in in_fix:
        assert part in exc.fix, f"{part!r} not in fix {exc.fix!r}"


# -- the base copy is valid, so each refusal below is about the one mutation ----------------
def test_unmodified_copy_of_edge_config_loads(tmp_path):
    path = mutated(tmp_path, lambda d: None)
    arch = load_arch(path)
    assert arch.path == str(path)
    assert arch.name == "edge-45nm"
    assert arch.cores.count == 16 and arch.global_buffer.bytes == 524288
    assert arch.mapping.kind == "sequential" and arch.mapping.carry == "rates"
    assert arch.energy is not None and arch.energy.name == "horowitz-45nm"


# -- unknown and missing keys ---------------------------------------------------------------
def test_unknown_top_level_key_is_refused(tmp_path):
    path = mutated(tmp_path, set_key("clock_hzz", 2.0e8))  # a typo'd duplicate of clock_hz
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "clock_hzz", "remove it", "clock_hz", "cores", "mapping")
    assert "unknown key" in exc.problem


def test_unknown_nested_key_is_refused(tmp_path):
    path = mutated(tmp_path, set_key("cores.acs_per_cylce", 32))
    exc = refusal(lambda: load_arch(path))
    # The fix lists the keys allowed in 'cores', not the top-level ones.
    assert_refusal(exc, path, "cores.acs_per_cylce", "acs_per_cycle", "sram_bytes")
    assert "clock_hz" not in exc.fix


def test_unknown_key_inside_nullable_section_is_refused(tmp_path):
    path = mutated(tmp_path, set_key("dram.bandwidth", 1e9))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "dram.bandwidth", "bytes_per_s")


@pytest.mark.parametrize("key", ["clock_hz", "energy_table", "cores", "dram", "mapping"])
def test_missing_top_level_key_is_refused(tmp_path, key):
    path = mutated(tmp_path, del_key(key))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, key, f"add '{key}'")
    assert "missing" in exc.problem


def test_missing_nested_key_is_refused(tmp_path):
    path = mutated(tmp_path, del_key("cores.acs_per_cycle"))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "cores.acs_per_cycle", "add 'acs_per_cycle'")


# -- impossible values --------------------------------------------------------------------------
@pytest.mark.parametrize("dotted, value", [
    ("cores.count", 0),
    ("cores.count", -4),
    ("cores.acs_per_cycle", 0),
    ("cores.sram_bytes", -65536),
    ("cores.sram_bytes", 0),
    ("clock_hz", 0),
    ("clock_hz", -200.0e6),
    ("clock_hz", float("nan")),
    ("dram.bytes_per_s", -12.8e9),
    ("dram.bytes_per_s", 0),
    ("global_buffer.bytes", 0),
    ("global_buffer.bytes_per_cycle", -1),
    ("interconnect.hop_mm", 0),
    ("static_power_w", -0.02),
])
def test_non_positive_values_are_refused(tmp_path, dotted, value):
    path = mutated(tmp_path, set_key(dotted, value))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, dotted)
    assert "greater than" in exc.problem or (value != value and "finite" in exc.problem)  # NaN: not finite


def test_fractional_core_count_is_refused(tmp_path):
    path = mutated(tmp_path, set_key("cores.count", 2.5))
    assert_refusal(refusal(lambda: load_arch(path)), path, "cores.count")


def test_membrane_bits_above_64_are_refused(tmp_path):
    path = mutated(tmp_path, set_key("precision.membrane_bits", 65))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "precision.membrane_bits")
    assert "64" in exc.problem


def test_mapping_kind_must_be_spatial_or_sequential(tmp_path):
    path = mutated(tmp_path, set_key("mapping.kind", "diagonal"))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "mapping.kind")
    assert "'spatial'" in exc.problem and "'sequential'" in exc.problem and "'diagonal'" in exc.problem


def test_carry_must_be_spikes_or_rates(tmp_path):
    path = mutated(tmp_path, set_key("mapping.carry", "voltages"))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "mapping.carry")
    assert "'spikes'" in exc.problem and "'rates'" in exc.problem and "'voltages'" in exc.problem


def test_unknown_interconnect_topology_is_refused(tmp_path):
    path = mutated(tmp_path, set_key("interconnect.topology", "torus"))
    assert_refusal(refusal(lambda: load_arch(path)), path, "interconnect.topology")


def test_dram_may_be_null(tmp_path):
    arch = load_arch(mutated(tmp_path, set_key("dram", None)))
    assert arch.dram is None


# -- energy table reference -----------------------------------------------------------------------
def test_unknown_energy_table_name_is_refused_naming_the_arch_file(tmp_path):
    path = mutated(tmp_path, set_key("energy_table", "horowitz-4nm"))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "energy_table", "horowitz-45nm", "loihi-14nm")
    assert "no such file" in exc.problem


def test_energy_table_by_path_is_loaded(tmp_path):
    table = yaml.safe_load((ENERGY_DIR / "horowitz-45nm.yaml").read_text())
    table["name"] = "custom"
    table["ac_pj"] = 0.5
    table_path = write(tmp_path, table, "custom-table.yaml")
    arch = load_arch(mutated(tmp_path, set_key("energy_table", str(table_path))))
    assert arch.energy.name == "custom" and arch.energy.ac_pj == 0.5


def test_bad_energy_table_is_refused_naming_the_table_file(tmp_path):
    table = yaml.safe_load((ENERGY_DIR / "horowitz-45nm.yaml").read_text())
    table["ac_pj"] = -0.9
    table_path = write(tmp_path, table, "bad-table.yaml")
    path = mutated(tmp_path, set_key("energy_table", str(table_path)))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, table_path, "ac_pj")


def test_energy_table_unknown_key_is_refused(tmp_path):
    table = yaml.safe_load((ENERGY_DIR / "horowitz-45nm.yaml").read_text())
    table["ac_pJ"] = 0.9
    table_path = write(tmp_path, table, "typo-table.yaml")
    exc = refusal(lambda: load_energy_table(table_path))
    assert_refusal(exc, table_path, "ac_pJ", "ac_pj")


def test_energy_table_sram_points_must_increase(tmp_path):
    table = yaml.safe_load((ENERGY_DIR / "horowitz-45nm.yaml").read_text())
    table["sram"] = list(reversed(table["sram"]))
    table_path = write(tmp_path, table, "unsorted-table.yaml")
    exc = refusal(lambda: load_energy_table(table_path))
    assert exc.where == str(table_path) and "increasing" in exc.problem and "Fix:" in str(exc)


# -- files that are not configs -----------------------------------------------------------------
def test_invalid_yaml_is_refused(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: edge\ncores: {count: 16, acs_per_cycle: [32\n")
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "(file)", "YAML syntax")
    assert "not valid YAML" in exc.problem


@pytest.mark.parametrize("text", ["- name: edge-45nm\n- clock_hz: 2.0e8\n", "just a string\n", "", "42\n"])
def test_top_level_that_is_not_a_mapping_is_refused(tmp_path, text):
    path = tmp_path / "notmap.yaml"
    path.write_text(text)
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "(top level)", "key: value")
    assert "mapping" in exc.problem


def test_unknown_config_name_is_refused():
    exc = refusal(lambda: load_arch("no-such-chip"))
    assert exc.where == "no-such-chip"
    assert "edge-45nm" in exc.fix and "loihi" in exc.fix and "spatial-45nm-large" in exc.fix


# -- shipped configs ------------------------------------------------------------------------------
def test_there_are_shipped_configs():
    assert {p.stem for p in SHIPPED_ARCHS} >= {"edge-45nm", "loihi", "spatial-45nm-large"}


@pytest.mark.parametrize("path", SHIPPED_ARCHS, ids=lambda p: p.stem)
def test_every_shipped_config_loads_with_its_energy_table(path):
    arch = load_arch(path)
    assert isinstance(arch, ArchConfig)
    assert arch.path == str(path)
    assert arch.name == path.stem
    assert isinstance(arch.energy, EnergyTable)
    assert arch.energy.name == arch.energy_table
    assert arch.energy.source  # every table cites its source
    # loading by short name finds the same file
    by_name = load_arch(path.stem)
    assert by_name.path == str(ARCH_DIR / path.name) and by_name.energy == arch.energy


@pytest.mark.parametrize("path", SHIPPED_TABLES, ids=lambda p: p.stem)
def test_every_shipped_energy_table_loads(path):
    table = load_energy_table(path)
    assert table.name == path.stem
    sizes = [p.bytes for p in table.sram]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


# -- SRAM energy interpolation ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def horowitz() -> EnergyTable:
    return load_energy_table("horowitz-45nm")


@pytest.mark.parametrize("name", [p.stem for p in SHIPPED_TABLES])
@pytest.mark.parametrize("op", ["read", "write"])
def test_sram_energy_at_a_table_point_is_that_point(name, op):
    table = load_energy_table(name)
    for point in table.sram:
        assert table.sram_pj_per_bit(point.bytes, op) == getattr(point, f"{op}_pj_per_bit")


@pytest.mark.parametrize("size", [16384, 20000, 32767, 100000, 524288])
def test_sram_energy_between_points_is_log_interpolated(horowitz, size):
    pts = horowitz.sram
    lo, hi = next((a, b) for a, b in zip(pts, pts[1:]) if a.bytes < size < b.bytes)
    got = horowitz.sram_pj_per_bit(size, "read")
    assert lo.read_pj_per_bit < got < hi.read_pj_per_bit
    frac = (math.log(size) - math.log(lo.bytes)) / (math.log(hi.bytes) - math.log(lo.bytes))
    assert got == pytest.approx(lo.read_pj_per_bit + frac * (hi.read_pj_per_bit - lo.read_pj_per_bit), rel=1e-12)


def test_sram_energy_half_way_in_log_size_by_hand(horowitz):
    # 16 KB is half way between 8 KB and 32 KB in log(size): ln(2)/ln(4) = 1/2,
    # so 0.15625 + (0.3125 - 0.15625) / 2 = 0.234375 pJ/bit (linear in size would give 0.2083).
    assert horowitz.sram_pj_per_bit(16384, "read") == pytest.approx(0.234375, rel=1e-12)
    assert horowitz.sram_pj_per_bit(16384, "write") == pytest.approx(0.234375, rel=1e-12)
    # 128 KB: ln(4)/ln(32) = 2/5 of the way from 32 KB (0.3125) to 1 MB (1.5625): 0.3125 + 0.4 * 1.25 = 0.8125.
    assert horowitz.sram_pj_per_bit(131072, "read") == pytest.approx(0.8125, rel=1e-12)


@pytest.mark.parametrize("size", [1048577, 4 * 2**20, 1e12])
def test_sram_energy_beyond_the_largest_point_is_the_largest_point(horowitz, size):
    for op in ("read", "write"):
        assert horowitz.sram_pj_per_bit(size, op) == getattr(horowitz.sram[-1], f"{op}_pj_per_bit") == 1.5625


@pytest.mark.parametrize("size", [1, 1024, 8191])
def test_sram_energy_below_the_smallest_point_is_the_smallest_point(horowitz, size):
    assert horowitz.sram_pj_per_bit(size, "read") == horowitz.sram[0].read_pj_per_bit == 0.15625


def test_sram_read_and_write_are_interpolated_separately(tmp_path):
    table = yaml.safe_load((ENERGY_DIR / "horowitz-45nm.yaml").read_text())
    table["sram"] = [{"bytes": 1000, "read_pj_per_bit": 1.0, "write_pj_per_bit": 2.0},
                     {"bytes": 100000, "read_pj_per_bit": 3.0, "write_pj_per_bit": 10.0}]
    t = load_energy_table(write(tmp_path, table, "t.yaml"))
    # 10000 B is half way between 1e3 and 1e5 in log(size)
    assert t.sram_pj_per_bit(10000, "read") == pytest.approx(2.0, rel=1e-12)
    assert t.sram_pj_per_bit(10000, "write") == pytest.approx(6.0, rel=1e-12)


# -- global buffer too small for one timestep ------------------------------------------------------
def test_global_buffer_smaller_than_one_timestep_is_refused(tmp_path):
    # tiny-encoder: seq_len 4, hidden 8, intermediate 16. One timestep of a layer's output:
    #   widest spiking output: 'intermediate', 4 tokens x 16 neurons x 1 bit = 64 bits = 8 B;
    #   real-valued 'q' (no neuron): 4 tokens x 8 x activation_bits (32 in edge-45nm) = 1024 bits = 128 B.
    # So the buffer needs at least 128 B; 4 B is refused.
    path = mutated(tmp_path, set_key("global_buffer.bytes", 4))
    arch = load_arch(path)
    net = load_model("tiny-encoder")
    exc = refusal(lambda: estimate(net, arch, mapping="sequential"))
    assert_refusal(exc, path, "global_buffer.bytes", "at least 128 B")
    assert "block0.q" in exc.problem


@pytest.mark.parametrize("carry", ["spikes", "rates"])
def test_global_buffer_of_exactly_one_timestep_is_accepted(tmp_path, carry):
    net = load_model("tiny-encoder")
    short = load_arch(mutated(tmp_path, set_key("global_buffer.bytes", 127)))
    exc = refusal(lambda: estimate(net, short, mapping="sequential", carry=carry))
    assert exc.field == "global_buffer.bytes" and "at least 128 B" in exc.fix
    (tmp_path / "arch.yaml").unlink()
    enough = load_arch(mutated(tmp_path, set_key("global_buffer.bytes", 128)))
    report = estimate(net, enough, mapping="sequential", carry=carry)
    assert report.feasible


def test_global_buffer_check_uses_activation_bits(tmp_path):
    # With 8-bit activations q needs 4 x 8 x 8 bits = 32 B, and the widest spiking output (8 B) is smaller.
    def small(d):
        d["precision"]["activation_bits"] = 8
        d["global_buffer"]["bytes"] = 31
    path = mutated(tmp_path, small)
    exc = refusal(lambda: estimate(load_model("tiny-encoder"), load_arch(path), mapping="sequential"))
    assert_refusal(exc, path, "global_buffer.bytes", "at least 32 B")


# -- regressions: bugs found while writing these tests, now fixed --------------------------------------------------------------
def test_infinite_clock_is_refused(tmp_path):
    path = mutated(tmp_path, set_key("clock_hz", float("inf")))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, "clock_hz")


def test_loader_filled_fields_are_not_config_keys(tmp_path):
    path = mutated(tmp_path, set_key("clock_hzz", 1))
    exc = refusal(lambda: load_arch(path))
    assert "clock_hz" in exc.fix
    assert "path" not in exc.fix.split("use one of: ")[1].split(", ")
    assert "energy" not in exc.fix.split("use one of: ")[1].split(", ")


@pytest.mark.parametrize("right, wrong", [("clock_hz", "clock_hzz"), ("cores.acs_per_cycle", "cores.acs_per_cylce")])
def test_misspelled_key_is_named_in_the_refusal(tmp_path, right, wrong):
    def rename(d):
        *parents, last = right.split(".")
        for p in parents:
            d = d[p]
        d[wrong.split(".")[-1]] = d.pop(last)
    path = mutated(tmp_path, rename)
    exc = refusal(lambda: load_arch(path))
    assert exc.where == str(path)
    assert wrong.split(".")[-1] in str(exc)


@pytest.mark.parametrize("dotted,size_key", [("cores.bank_bytes", "cores.sram_bytes"),
                                             ("global_buffer.bank_bytes", "global_buffer.bytes")])
def test_bank_larger_than_its_array_is_refused(tmp_path, dotted, size_key):
    path = mutated(tmp_path, set_key(dotted, 2**30))
    exc = refusal(lambda: load_arch(path))
    assert_refusal(exc, path, dotted, f"bank_bytes <= {size_key.split('.')[1]}")
    assert "larger than" in exc.problem


def test_banked_sram_is_priced_at_the_bank_size(tmp_path):
    """Same traffic, same result: 1 MiB of core SRAM in 32 KiB banks costs what 32 KiB arrays cost."""
    net = load_model("tiny-encoder")
    cfg = edge_config()
    cfg["cores"]["sram_bytes"], cfg["global_buffer"]["bytes"] = 2**20, 2**20
    for key in ("levels", "dataflow"):   # no memory levels inside the cores: every access is an SRAM access
        cfg["cores"].pop(key, None)
    whole = write(tmp_path, cfg, "whole.yaml")
    cfg["cores"]["bank_bytes"] = cfg["global_buffer"]["bank_bytes"] = 32768
    banked = write(tmp_path, cfg, "banked.yaml")
    a, b = estimate(net, load_arch(whole), "sequential"), estimate(net, load_arch(banked), "sequential")
    assert a.latency_cycles == b.latency_cycles and a.memory_bytes == b.memory_bytes
    # Horowitz: 1 MB arrays 100 pJ / 64 bits, 32 KB arrays 20 pJ / 64 bits: SRAM energy is 5x lower
    assert b.energy_breakdown_pj["sram"] == pytest.approx(a.energy_breakdown_pj["sram"] / 5, rel=1e-12)
    assert b.energy_breakdown_pj["compute"] == a.energy_breakdown_pj["compute"]
