"""A design that cannot physically hold its state is infeasible and says why; absurd numbers are refused;
every reported figure is finite; the simulator never runs unbounded."""

import pytest

import neurosim
from neurosim.arch import ArchConfig, load_arch
from neurosim.cost.estimate import estimate
from neurosim.errors import NeurosimError
from neurosim.schema import validate
from neurosim.sim import SimOptions, simulate


@pytest.fixture(scope="module")
def bert():
    return neurosim.load_model("spikingbert-4l")


def _with_sram(arch, sram_bytes):
    return arch.model_copy(update={"cores": arch.cores.model_copy(update={"sram_bytes": sram_bytes})}) \
        .loaded_from(arch.path, arch.energy)


@pytest.mark.parametrize("mapping,carry", [("spatial", "spikes"), ("sequential", "rates")])
@pytest.mark.parametrize("engine", [estimate, simulate], ids=["closed form", "simulator"])
def test_a_core_that_cannot_hold_one_neuron_is_infeasible_and_names_the_layer(bert, mapping, carry, engine):
    arch = _with_sram(load_arch("edge-45nm"), 1)    # was reported feasible with a sub-byte membrane memory
    r = engine(bert, arch, mapping, carry)
    assert not r.feasible and r.energy_pj is None
    # block0.q: 128 tokens x 32-bit state = 512 B and a 768 x 32-bit weight row = 3072 B (spatial also holds
    # two output steps, 2 x 128 x 32 bits = 1024 B)
    need = 512 + 3072 + (1024 if mapping == "spatial" else 0)
    assert "one output neuron of layer 'block0.q'" in r.notes[0] and f"({need} B" in r.notes[0]


def test_a_core_just_big_enough_for_one_neuron_per_layer_is_not_refused_for_it(bert):
    # the largest single neuron of SpikingBERT-4L's spatial mapping: an output neuron reading 3072 inputs
    r = estimate(bert, _with_sram(load_arch("edge-45nm"), 3072 * 4 + 512 + 1024), "spatial")
    assert not r.feasible and "one output neuron" not in r.notes[0] and "short by" in r.notes[0]


@pytest.mark.parametrize("field,value,words", [
    ("clock_hz", 1e-300, "greater than or equal to 1000"),          # was energy_pj = inf, feasible
    ("static_power_w", 1e308, "less than or equal to 100000"),
    ("cores.count", 10**12, "less than or equal to 100000000"),
    ("interconnect.hop_mm", 5e3, "less than or equal to 1000"),
])
def test_numbers_outside_physical_sense_are_refused_with_the_bound(field, value, words):
    data = load_arch("edge-45nm").model_dump()
    section, _, key = field.rpartition(".")
    (data[section] if section else data)[key] = value
    with pytest.raises(NeurosimError) as info:
        validate(data, ArchConfig, "chip.yaml")
    assert info.value.field == field and words in info.value.problem


def test_a_spatial_run_over_the_task_budget_is_refused_up_front_with_its_size(bert):
    with pytest.raises(NeurosimError) as info:
        simulate(bert, load_arch("spatial-45nm-large"), "spatial", options=SimOptions(max_spatial_tasks=1000))
    # 28 layers x 85 steps
    assert info.value.field == "max_spatial_tasks" and "2,380 tasks" in info.value.problem
    assert "--engine analytic" in info.value.fix


def test_a_run_past_its_wall_time_is_stopped_with_how_far_it_got(bert):
    # SpikingBERT-4L sequential on the edge chip takes about 12,000 simpy events; the guard looks every 10,000
    with pytest.raises(NeurosimError) as info:
        simulate(bert, load_arch("edge-45nm"), "sequential", "rates", options=SimOptions(max_wall_s=0.0))
    assert info.value.field == "max_wall_s" and "10000 events" in info.value.problem
