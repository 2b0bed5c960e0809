"""What sets a layer's pace (issue 22): the per-layer `pace` column names compute, or the memory port (a
level's, or the core SRAM's) that keeps a step longer than the datapath computes, in the closed form and
the simulator alike; the text report says so in one note when any layer is port-bound."""

import pytest

from neurosim.arch import load_arch
from neurosim.cost.estimate import estimate
from neurosim.report import per_layer_table
from neurosim.sim import simulate
from test_reuse_ports import one_layer, with_ports

RUNS = [(run, mapping) for run in (estimate, simulate) for mapping in ("spatial", "sequential")]


@pytest.fixture(scope="module")
def edge():
    return load_arch("edge-45nm")


@pytest.mark.parametrize("run, mapping", RUNS)
def test_a_core_sram_port_too_narrow_for_the_step_is_named_and_widened_gives_compute(edge, run, mapping):
    """One core of 1 AC a cycle (tests/test_reuse_ports.py, by hand): a step computes for 6 cycles and moves
    256 bits through the core SRAM, 256 through the weight RF and 384 through the accumulators. SRAM port
    32 bits a cycle: 8 cycles, longer than the compute and than the RF's 4 and the accumulators' 6 at 64:
    the SRAM port sets the pace. Widened to 1024: a quarter cycle, so compute does."""
    net = one_layer()
    narrow = with_ports(edge, {"weight_rf": 64, "accumulators": 64}, 32, count=1, acs_per_cycle=1)
    wide = with_ports(edge, {"weight_rf": 64, "accumulators": 64}, 1024, count=1, acs_per_cycle=1)
    slow, fast = run(net, narrow, mapping, "spikes"), run(net, wide, mapping, "spikes")
    assert list(slow.per_layer.pace) == ["core SRAM port"] and list(fast.per_layer.pace) == ["compute"]
    note = "paced by a memory port, not compute: 1 of 1 layers (core SRAM port: l0)"
    assert note in str(slow) and "paced by" not in str(fast)
    assert "core SRAM port" in per_layer_table(slow).splitlines()[1]


@pytest.mark.parametrize("run, mapping", RUNS)
def test_a_level_port_busier_than_the_sram_port_is_the_one_named(edge, run, mapping):
    """The weight RF at 16 bits a cycle: its 256 bits a step take 16 cycles, more than the SRAM's 8 at 32."""
    arch = with_ports(edge, {"weight_rf": 16, "accumulators": 64}, 32, count=1, acs_per_cycle=1)
    report = run(one_layer(), arch, mapping, "spikes")
    assert list(report.per_layer.pace) == ["weight_rf port"]
    assert "(weight_rf port: l0)" in str(report)


def test_serial_ports_name_the_largest_part_of_the_step(edge):
    """Serial: a step is compute 6 + SRAM 8 + RF 4 + accumulators 6 = 24 cycles; the SRAM's 8 is the
    largest part. With the SRAM port at 64 bits (4 cycles) compute's 6 ties the accumulators' 6: compute."""
    net = one_layer()
    for sram, named in ((32, "core SRAM port"), (64, "compute")):
        arch = with_ports(edge, {"weight_rf": 64, "accumulators": 64}, sram, serial=True, count=1, acs_per_cycle=1)
        for run in (estimate, simulate):
            assert list(run(net, arch, "sequential", "spikes").per_layer.pace) == [named]


def test_without_port_widths_every_layer_is_paced_by_compute_or_a_transfer(edge):
    """No shipped port width on edge-45nm's levels here: the closed form names compute, or, sequentially,
    a transfer (DRAM, the global buffer, the network) that takes longer than the pool; never a port."""
    import neurosim

    net = neurosim.load_model("tiny-encoder")
    plain = with_ports(edge, {})
    for mapping, carry in (("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates")):
        paces = set(estimate(net, plain, mapping, carry).per_layer.pace)
        assert paces <= {"compute", "DRAM", "global buffer", "interconnect"}, paces
        assert "paced by" not in str(estimate(net, plain, mapping, carry))


def test_a_chip_without_levels_names_its_core_sram_port(edge):
    """No levels: every AC reads its fp32 weight from SRAM and each update reads and writes a membrane, per
    step 4 x 32 + 2 x 32 + 2 x 32 = 256 bits; at 16 bits a cycle that is 16 cycles against 6 of compute."""
    c = edge.cores.model_copy(update={"levels": None, "dataflow": None, "sram_bits_per_cycle": 16, "count": 1,
                                      "acs_per_cycle": 1})
    arch = edge.model_copy(update={"cores": c}).loaded_from(edge.path, edge.energy)
    for run in (estimate, simulate):
        report = run(one_layer(), arch, "sequential", "spikes")
        assert list(report.per_layer.pace) == ["core SRAM port"] and report.latency_cycles == 10 * 16
