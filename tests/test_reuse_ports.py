"""Memory ports per level (issue 22): a level moving b bits at w bits per cycle is busy ceil(b / w) cycles a
step, beside the compute (overlapped) or after it (serial), in the closed form and the simulator alike
(`cost.layout.busy_cycles`); an arch that gives no port widths keeps the time it had."""

import pytest

import neurosim
from neurosim.arch import ArchConfig, load_arch
from neurosim.errors import NeurosimError
from neurosim.cost.estimate import estimate
from neurosim.ir import Layer, Network
from neurosim.schema import validate
from neurosim.sim import simulate

MAPPINGS = [("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates")]


@pytest.fixture(scope="module")
def edge():
    return load_arch("edge-45nm")


def with_ports(arch, widths: dict, sram=None, serial=False, **cores):
    """`arch` with port widths (bits per cycle) for the named levels and the core SRAM."""
    c = arch.cores
    levels = [lv.model_copy(update={"bits_per_cycle": widths.get(lv.name)}) for lv in c.levels]
    flow = c.dataflow.model_copy(update={"ports": "serial" if serial else "overlapped"})
    c = c.model_copy(update={"levels": levels, "dataflow": flow, "sram_bits_per_cycle": sram, **cores})
    return arch.model_copy(update={"cores": c}).loaded_from(arch.path, arch.energy)


def without_ports(arch):
    """`arch` with no port widths: the time it had before ports (the shipped 45 nm configs give them)."""
    return with_ports(arch, {})


def one_layer():
    """2 inputs -> 2 outputs, one token, 10 steps, every input and output spikes every step."""
    return Network("one", [Layer("l0", "linear", 2, 2, timesteps=10, rate=1.0)], input_size=2, input_rate=1.0)


@pytest.mark.parametrize("serial, per_step", [(False, 8), (True, 24)])
def test_a_level_port_sets_the_step_time_worked_by_hand(edge, serial, per_step):
    """edge-45nm on one core of 1 AC a cycle: a step is 4 ACs + 2 neuron updates = 6 cycles of compute.
    Per step (fp32, per_input rows, held membranes): the core SRAM reads 2 rows of 2 weights (128 bits) and
    2 membranes (64) and writes 2 (64): 256 bits at 32 a cycle = 8 cycles; the weight RF takes the 4
    weights in and gives 4 out (256 bits at 64 = 4 cycles); the accumulators move the 2 membranes in and
    out and 4 accumulations in and out (384 bits at 64 = 6). Overlapped: max(6, 8, 4, 6) = 8 a step;
    serial: 6 + 8 + 4 + 6 = 24."""
    net = one_layer()
    plain = with_ports(edge, {}, count=1, acs_per_cycle=1)
    arch = with_ports(edge, {"weight_rf": 64, "accumulators": 64}, 32, serial, count=1, acs_per_cycle=1)
    for mapping in ("sequential", "spatial"):
        before, closed, sim = (run(net, a, mapping, "spikes") for run, a in
                               ((estimate, plain), (estimate, arch), (simulate, arch)))
        assert list(before.per_layer.cycles) == [10 * 6]
        assert list(closed.per_layer.cycles) == [10 * per_step]
        assert list(sim.per_layer.busy_cycles) == [10 * per_step]
        # the ports take time, not energy: only leakage (static power x latency) moves
        moved = closed.energy_pj - before.energy_pj
        assert moved == pytest.approx(closed.energy_breakdown_pj["leakage"] - before.energy_breakdown_pj["leakage"])
    assert simulate(net, arch, "sequential", "spikes").latency_cycles == 10 * per_step


def test_ports_too_wide_to_bind_leave_the_reports_as_without_ports(edge):
    wide, edge = with_ports(edge, {lv.name: 2**26 for lv in edge.cores.levels}, 2**26), without_ports(edge)
    for model in ("tiny-encoder", "spiking-sentiment-2l"):
        net = neurosim.load_model(model)
        for mapping, carry in MAPPINGS:
            runs = ((estimate,) if model != "tiny-encoder" else (estimate, simulate))
            for run in runs:
                a, b = run(net, edge, mapping, carry), run(net, wide, mapping, carry)
                assert (a.latency_cycles, a.energy_pj, a.notes) == (b.latency_cycles, b.energy_pj, b.notes)


def test_the_closed_form_bounds_the_simulator_with_ports_as_without(edge):
    """docs/cost-model.md, 'Which engine bounds which': sequential, the closed form is a lower bound;
    spatial and compute-bound (here: bound by the ports), an upper bound."""
    net = neurosim.load_model("tiny-encoder")
    for serial in (False, True):
        arch = with_ports(edge, {"weight_rf": 64, "input_rf": 64, "accumulators": 64}, 64, serial)
        plain = estimate(net, without_ports(edge), "spatial")
        closed, sim = estimate(net, arch, "spatial"), simulate(net, arch, "spatial")
        assert closed.latency_cycles > plain.latency_cycles          # the ports bind
        assert sim.latency_cycles <= closed.latency_cycles
        for carry in ("spikes", "rates"):
            closed, sim = estimate(net, arch, "sequential", carry), simulate(net, arch, "sequential", carry)
            assert sim.latency_cycles >= closed.latency_cycles * (1 - 1e-9)
            assert sim.energy_breakdown_pj["sram"] == pytest.approx(closed.energy_breakdown_pj["sram"], rel=1e-9)


@pytest.mark.parametrize("where, value", [("level", 0), ("sram", -8), ("ports", "sometimes")])
def test_impossible_ports_are_refused_with_the_field(edge, where, value):
    data = edge.model_dump()
    if where == "level":
        data["cores"]["levels"][0]["bits_per_cycle"] = value
    elif where == "sram":
        data["cores"]["sram_bits_per_cycle"] = value
    else:
        data["cores"]["dataflow"]["ports"] = value
    with pytest.raises(NeurosimError) as err:
        validate(data, ArchConfig, "test.yaml")
    assert "cores" in err.value.field and err.value.fix, str(err.value)
