"""What a designer takes for granted, checked by changing one thing at a time on every shipped model x arch x
mapping, in both engines: more hardware never makes a slower chip; energy tables x k give dynamic energy
x k; fewer timesteps and lower rates never cost more. Where a property does not hold, the exception is
named below with its reason and its size, and the test fails if it grows or a new one appears."""

from dataclasses import replace

import pytest

import neurosim
from neurosim.arch import load_arch
from neurosim.cost.estimate import estimate
from neurosim.ir import Network
from neurosim.sim import simulate

MODELS = ["tiny-encoder", "spiking-sentiment-2l", "spikingbert-4l"]
ARCHS = ["edge-45nm", "loihi", "spatial-45nm-large"]
MAPPINGS = [("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates")]
ENGINES = {"closed form": estimate, "simulator": simulate}
MORE_HARDWARE = [("cores", "count"), ("cores", "acs_per_cycle"), ("cores", "macs_per_cycle"),
                 ("cores", "sram_bytes"), ("global_buffer", "bytes"), ("global_buffer", "bytes_per_cycle"),
                 ("interconnect", "link_bits_per_cycle")]

# Knobs that make each access dearer as well as the memory bigger: an SRAM access is priced at the size of
# the array it touches (the energy table's curve), so a bigger array costs more energy per access by
# physics. For these the property is latency, which never rises.
PRICED_BY_SIZE = {"sram_bytes", "bytes"}

# (engine, mapping, knob) -> (largest relative rise allowed, why it is not a defect of the model). The
# simulator's spatial allocation used to rise up to 10 % with more cores or faster datapaths (run-ahead traffic
# on a first-come-first-served network); with arbitration by pipeline slot no case rises.
EXCEPTIONS: dict[tuple[str, str, str], tuple[float, str]] = {
    ("closed form", "spatial", "acs_per_cycle"): (
        0.02, "the allocation's stage-time grid is cut from each layer's time on one core, which more AC lanes "
        "shorten for AC layers but not for MAC layers, and since a layer's AC lanes are capped by its "
        "accumulators (layout.compute_cycles) the grids of the two chips differ; the search then misses the "
        "better allocation: tiny-encoder on spatial-45nm-large, the same 156 cycles at 1.4 % more energy"),
}


def _scaled(arch, section, key, factor):
    sec = getattr(arch, section)
    value = getattr(sec, key)
    return arch.model_copy(update={section: sec.model_copy(update={key: type(value)(value * factor)})}) \
        .loaded_from(arch.path, arch.energy)


def _cases():
    """(model, arch, mapping, carry, engine name, its feasible baseline report), for every feasible case."""
    models = {m: neurosim.load_model(m) for m in MODELS}
    for arch_name in ARCHS:
        arch = load_arch(arch_name)
        for m, net in models.items():
            for mapping, carry in MAPPINGS:
                for name, run in ENGINES.items():
                    base = run(net, arch, mapping, carry)
                    if base.feasible:
                        yield net, arch, mapping, carry, name, base


@pytest.fixture(scope="module")
def cases():
    return list(_cases())


def _rise(before: float, after: float) -> float:
    return after / before - 1 if before > 0 else 0.0


def optimised(report, arch, mapping: str) -> float:
    """The figure a mapping's free choices optimise: the arch's objective (energy x delay by default), which
    the spatial allocation (`layout.SpatialCores`) and the sequential pool size (`closed_form.pool_cores`)
    are chosen for."""
    if arch.mapping.objective == "latency":
        return report.latency_cycles
    return report.energy_pj * (report.latency_cycles if arch.mapping.objective == "edp" else 1.0)


def test_more_hardware_never_makes_a_slower_chip_beyond_the_named_exceptions(cases):
    assert len(cases) >= 20
    unexpected = []
    for net, arch, mapping, carry, engine, base in cases:
        for section, key in MORE_HARDWARE:
            r = ENGINES[engine](net, _scaled(arch, section, key, 2), mapping, carry)
            figure = (lambda rep: rep.latency_cycles) if key in PRICED_BY_SIZE else \
                (lambda rep: optimised(rep, arch, mapping))
            rise = _rise(figure(base), figure(r)) if r.feasible else 0.0
            allowed = EXCEPTIONS.get((engine, mapping, key), (0.0, ""))[0]
            if not r.feasible or rise > allowed + 1e-9:
                unexpected.append(f"{net.name} on {arch.name} {mapping}/{carry} ({engine}), {key} x2: "
                                  f"{figure(base):.6g} -> {figure(r):.6g} "
                                  f"({base.latency_cycles:.6g} -> {r.latency_cycles:.6g} cycles)")
    assert not unexpected, "\n".join(unexpected)


def test_energy_tables_and_static_power_times_k_give_energy_times_k_at_the_same_latency(cases):
    for net, arch, mapping, carry, engine, base in cases:
        t = arch.energy
        scaled_table = t.model_copy(update={
            **{k: getattr(t, k) * 3 for k in ("ac_pj", "mac_pj", "neuron_update_pj", "other_op_pj", "shift_add_pj",
                                               "dram_read_pj_per_bit", "dram_write_pj_per_bit",
                                               "interconnect_pj_per_bit_mm")},
            "sram": [p.model_copy(update={"read_pj_per_bit": p.read_pj_per_bit * 3,
                                          "write_pj_per_bit": p.write_pj_per_bit * 3}) for p in t.sram]})
        # static power x 3 as well, so that an energy-aware allocation sees every price x 3 and chooses the same
        # and the access energies of the memory levels inside the cores, which the arch gives (not the table)
        levels = [lv.model_copy(update={"read_pj": lv.read_pj * 3, "write_pj": lv.write_pj * 3})
                  for lv in arch.cores.levels or []] or None
        hot = arch.model_copy(update={"static_power_w": arch.static_power_w * 3,
                                      "cores": arch.cores.model_copy(update={"levels": levels})})
        r = ENGINES[engine](net, hot.loaded_from(arch.path, scaled_table), mapping, carry)
        assert r.energy_pj == pytest.approx(3 * base.energy_pj, rel=1e-9), (net.name, arch.name, mapping, engine)
        assert r.latency_cycles == pytest.approx(base.latency_cycles, rel=1e-12)


def _fewer_steps(net: Network) -> Network:
    return Network(net.name, [replace(l, timesteps=max(1, l.timesteps - 1)) for l in net.layers], net.input_size,
                   net.input_rate, net.input_spiking, dict(net.metadata))


def _quieter(net: Network) -> Network:
    return Network(net.name, [replace(l, rate=l.rate / 2) if l.rate is not None else l for l in net.layers],
                   net.input_size, net.input_rate / 2, net.input_spiking, dict(net.metadata))


@pytest.mark.parametrize("change", [_fewer_steps, _quieter], ids=["one timestep fewer", "half the rates"])
def test_less_work_never_costs_more_energy_or_time(cases, change):
    for net, arch, mapping, carry, engine, base in cases:
        r = ENGINES[engine](change(net), arch, mapping, carry)
        where = (net.name, arch.name, mapping, carry, engine)
        assert r.feasible, where
        if arch.mapping.objective != "latency":
            # less work makes every allocation cheaper; the allocation then trades as its objective says
            assert optimised(r, arch, mapping) <= optimised(base, arch, mapping) * (1 + 1e-9), where
            continue
        assert r.energy_pj <= base.energy_pj * (1 + 1e-9), where
        assert r.latency_cycles <= base.latency_cycles * (1 + 1e-9), where


@pytest.mark.parametrize("model, arch_name", [("tiny-encoder", "loihi"), ("spiking-sentiment-2l", "spatial-45nm-large")])
def test_any_larger_core_count_never_ranks_worse_in_either_mapping(model, arch_name):
    """Not only x2: the spatial candidates and the sequential pool sizes are grids fixed for every chip, so any
    chip with more cores has every choice of a smaller one (closed form, counts x0.75 to x3)."""
    net, arch = neurosim.load_model(model), load_arch(arch_name)
    for mapping, carry in MAPPINGS:
        figures = [optimised(estimate(net, _scaled(arch, "cores", "count", f), mapping, carry), arch, mapping)
                   for f in (0.75, 1, 1.5, 2, 3)]
        assert all(b <= a * (1 + 1e-9) for a, b in zip(figures, figures[1:])), (mapping, carry, figures)
