"""The sequential mapping's pool: `closed_form.sequential_on_pool` prices a given pool size, and the search over
pool sizes (`closed_form.pool_cores`) picks what pricing each size on its own would pick, with the same numbers."""

import numpy as np
import pytest

from neurosim.arch import load_arch
from neurosim.cards import load_model
from neurosim.cost import closed_form
from neurosim.cost.chips import Chips
from neurosim.cost.workload import workload
from neurosim.errors import NeurosimError


def _tiny_on_edge():
    arch = load_arch("edge-45nm")
    return workload(load_model("tiny-encoder"), False, False), Chips.of(arch), arch.energy


def test_sequential_is_sequential_on_pool_at_the_searched_size():
    work, chips, table = _tiny_on_edge()
    size = closed_form.pool_cores(work, chips, table, "spikes")
    searched = closed_form.sequential(work, chips, table, "spikes")
    given = closed_form.sequential_on_pool(work, chips, table, "spikes", size)
    assert given.total_energy_pj[0] == searched.total_energy_pj[0]
    assert given.cycles[0] == searched.cycles[0]
    assert f"on a pool of {int(size[0])} of {int(chips.cores[0])} cores" in given.notes[0][0]


def test_a_pool_of_every_core_names_the_whole_chip_and_a_smaller_one_leaks_the_same():
    """The cores left out of the pool idle and leak: static power is the chip's whatever the pool's size."""
    work, chips, table = _tiny_on_edge()
    whole = closed_form.sequential_on_pool(work, chips, table, "spikes", int(chips.cores[0]))
    one = closed_form.sequential_on_pool(work, chips, table, "spikes", 1)
    assert f"on a pool of {int(chips.cores[0])} of {int(chips.cores[0])} cores" in whole.notes[0][0]
    assert "on a pool of 1 of" in one.notes[0][0]
    watts = lambda c: c.energy_pj["leakage"][0] * 1e-12 / c.latency_s[0]  # noqa: E731
    assert watts(one) == pytest.approx(watts(whole), rel=1e-12)
    assert watts(one) == pytest.approx(chips.static_power_w[0], rel=1e-12)


@pytest.mark.parametrize("cores", [0, -3, 10**6, 2.5, [1, 2]])
def test_a_pool_that_is_not_a_whole_count_of_the_chips_cores_is_refused(cores):
    work, chips, table = _tiny_on_edge()
    with pytest.raises(NeurosimError) as err:
        closed_form.sequential_on_pool(work, chips, table, "spikes", cores)
    assert err.value.field == "cores" and "from 1 to its chip's core count" in err.value.fix


def test_sequential_on_pool_takes_one_size_per_point():
    arch = load_arch("edge-45nm")
    work, table = workload(load_model("tiny-encoder"), False, False), arch.energy
    chips = Chips([arch.model_dump()] * 3)
    both = closed_form.sequential_on_pool(work, chips, table, "rates", np.array([1, 4, 16]))
    for j, size in enumerate([1, 4, 16]):
        alone = closed_form.sequential_on_pool(work, Chips.of(arch), table, "rates", size)
        assert both.total_energy_pj[j] == alone.total_energy_pj[0] and both.cycles[j] == alone.cycles[0]
