"""The sequential mapping's pool: `closed_form.sequential_on_pool` prices a given pool size, and the search over
pool sizes (`closed_form.pool_cores`) picks what pricing each size on its own would pick, with the same numbers."""

import numpy as np
import pytest

from neurosim.arch import load_arch
from neurosim.cards import load_model
from neurosim.cost import closed_form, layout
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


ARCHS = ("edge-45nm", "loihi", "spatial-45nm-large", "h200", "llm-45nm-hbm3-x4")
SMALL_MODELS = ("tiny-encoder", "spikingbert-4l", "spikellm-decoder-2l")


def _points(name: str) -> list:
    """The shipped arch under each objective, and again on a third of its cores (so points have different
    sets of pool sizes)."""
    arch = load_arch(name)
    out = []
    for cores in (arch.cores.count, max(1, arch.cores.count // 3)):
        for objective in ("latency", "energy", "edp"):
            a = arch.model_copy(update={"mapping": arch.mapping.model_copy(update={"objective": objective}),
                                        "cores": arch.cores.model_copy(update={"count": cores})})
            out.append(a.loaded_from(arch.path, arch.energy))
    return out


def _one_size_at_a_time(work, archs: list, carry: str):
    """The search as it was before it was vectorised: each grid size priced on its own (the points whose
    chips have that many cores), ranked, and kept where it ranks lower than the best so far (smallest first)."""
    chips = Chips([a.model_dump() for a in archs])
    table = archs[0].energy
    best_size, best, priced = np.ones(chips.n, np.int64), None, {}
    for size in closed_form.pool_sizes(int(chips.cores.max())):
        fits = np.flatnonzero(size <= chips.cores)
        some = Chips([archs[j].model_dump() for j in fits])
        costs = closed_form.sequential_on_pool(work, some, table, carry, int(size))
        score = [np.full(chips.n, np.inf) for _ in range(3)]
        ok = np.array([a is None and b is None for a, b in zip(costs.infeasible, costs.refused)])
        for x, y in zip(score, layout.ranking(np.array(some.objective), costs.cycles, costs.total_energy_pj)):
            x[fits] = np.where(ok, y, np.inf)
        for i, j in enumerate(fits):
            priced[j, int(size)] = costs.total_energy_pj[i], costs.cycles[i]
        better = np.ones(chips.n, bool) if best is None else layout.lower(tuple(score), best)
        best_size = np.where(better, size, best_size)
        best = tuple(score) if best is None else tuple(np.where(better, a, b) for a, b in zip(score, best))
    return best_size, priced


def _check_search_equals_one_size_at_a_time(model: str, arch_name: str, carry: str) -> int:
    """Asserts the search's pick and numbers equal the one-size-at-a-time search's; returns the feasible points."""
    archs = _points(arch_name)
    work, chips, table = workload(load_model(model), False, False), Chips([a.model_dump() for a in archs]), \
        archs[0].energy
    expected, priced = _one_size_at_a_time(work, archs, carry)
    picked = closed_form.pool_cores(work, chips, table, carry)
    assert picked.tolist() == expected.tolist(), (model, arch_name, carry)
    costs = closed_form.sequential(work, chips, table, carry)
    for j, size in enumerate(picked):
        energy, cycles = priced[j, int(size)]
        # bit for bit: rows of one evaluation are the same arithmetic as a point priced alone
        if costs.infeasible[j] is None:
            assert (costs.total_energy_pj[j], costs.cycles[j]) == (energy, cycles)
    return sum(reason is None for reason in costs.infeasible)


@pytest.mark.parametrize("carry", ["spikes", "rates"])
@pytest.mark.parametrize("arch_name", ARCHS)
@pytest.mark.parametrize("model", SMALL_MODELS)
def test_the_pool_search_picks_and_prices_what_one_size_at_a_time_would(model, arch_name, carry):
    # SpikingBERT-4L's 108 MiB of weights fit in no pool of Loihi's 16 MiB, and Loihi has no DRAM
    no_fit = model == "spikingbert-4l" and arch_name == "loihi"
    assert _check_search_equals_one_size_at_a_time(model, arch_name, carry) == (0 if no_fit else 6)


@pytest.mark.parametrize("model", ["tinyllama-1.1b", "llama2-7b", "llama2-13b"])
def test_the_pool_search_on_the_shipped_decoder_cards_equals_one_size_at_a_time(model):
    """The large cards on the chip they ship for, one carry each (their layers are the small decoder's kinds)."""
    assert _check_search_equals_one_size_at_a_time(model, "llm-45nm-hbm3-x4", "spikes") == 6


def test_the_pool_search_in_chunks_scores_every_size_as_in_one_evaluation(monkeypatch):
    archs = _points("edge-45nm")
    work, chips = workload(load_model("spikingbert-4l"), False, False), Chips([a.model_dump() for a in archs])
    sizes = closed_form.pool_sizes(int(chips.cores.max()))
    whole = closed_form.pool_scores(work, chips, archs[0].energy, "rates", sizes)
    monkeypatch.setattr(closed_form, "POOL_SEARCH_CELLS", 7 * work.L)   # 7 rows per evaluation
    chunked = closed_form.pool_scores(work, chips, archs[0].energy, "rates", sizes)
    assert np.array_equal(whole, chunked)
    # sizes above a chip's cores are never candidates; every size up to them is
    assert np.isinf(whole[:, 3:, sizes > chips.cores[3]]).all() and np.isfinite(whole[0, :3, :]).any()


def test_take_repeats_points_field_by_field():
    archs = _points("edge-45nm")
    chips = Chips([a.model_dump() for a in archs])
    taken, rebuilt = chips.take([4, 0, 4]), Chips([archs[j].model_dump() for j in (4, 0, 4)])
    assert taken.n == 3 and taken.objective == rebuilt.objective and taken.names == rebuilt.names
    for name, value in vars(rebuilt).items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(getattr(taken, name), value), name
    assert np.array_equal(taken.levels.stationary, rebuilt.levels.stationary)
