"""Any arch config and model card, inside and beyond the valid ranges: either a clear NeurosimError, or a
report whose figures are finite and positive, whose feasibility agrees with the memory it needs, and
whose counts agree between the closed form and the simulator (the same work, two engines)."""

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurosim.arch import ArchConfig, load_arch, load_energy_table
from neurosim.cards import EncoderCard, encoder_network
from neurosim.cost.estimate import estimate
from neurosim.errors import NeurosimError
from neurosim.paths import MODELS_DIR
from neurosim.schema import validate
from neurosim.sim import simulate

BASE_ARCH = load_arch("edge-45nm").model_dump()
TABLES = {name: load_energy_table(name) for name in ("horowitz-45nm", "loihi-14nm")}
BASE_CARD = yaml.safe_load(Path(MODELS_DIR / "tiny-encoder.yaml").read_text())

# Values around and beyond each field's valid range: zero, negative, tiny, huge, not a number, wrong type.
WILD_INT = st.one_of(st.integers(-2, 2), st.sampled_from([10**9, 10**13, 1 << 60]), st.just("16"))
WILD_REAL = st.sampled_from([-1.0, 0.0, 1e-300, 1e308, float("nan"), math.inf, "1e8"])


@st.composite
def archs(draw, wild=True):
    def mostly(valid, odd):
        """With `wild`, now and then a value around or beyond the valid range instead of a valid one."""
        return st.one_of(valid, odd) if wild else valid

    a = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE_ARCH.items()}
    sram = draw(mostly(st.sampled_from([1, 64, 4096, 65536, 1 << 20]), WILD_INT))
    a["cores"].update(count=draw(mostly(st.integers(1, 4096), WILD_INT)), sram_bytes=sram,
                      acs_per_cycle=draw(mostly(st.integers(1, 64), WILD_INT)),
                      bank_bytes=draw(mostly(st.sampled_from([None, 1, 1024]), WILD_INT)))
    a["global_buffer"].update(bytes=draw(mostly(st.sampled_from([16, 4096, 1 << 16, 1 << 22]), WILD_INT)),
                              bytes_per_cycle=draw(mostly(st.integers(1, 256), WILD_INT)))
    a["clock_hz"] = draw(mostly(st.sampled_from([1e3, 1e8, 1e9, 1e11]), WILD_REAL))
    a["static_power_w"] = draw(mostly(st.sampled_from([0.0, 0.02, 1.0, 1e5]), WILD_REAL))
    bandwidth = mostly(st.sampled_from([1e3, 1e9, 1.6e10, 1e16]), WILD_REAL)
    a["dram"] = draw(st.one_of(st.none(), st.builds(lambda b: {"bytes_per_s": b}, bandwidth)))
    a["mapping"] = draw(st.sampled_from([{"kind": "spatial", "carry": "spikes"},
                                         {"kind": "sequential", "carry": "spikes"},
                                         {"kind": "sequential", "carry": "rates"}]))
    a["energy_table"] = draw(st.sampled_from(sorted(TABLES)))
    return a


@st.composite
def cards(draw, wild=True):
    def mostly(valid, odd):
        return st.one_of(valid, odd) if wild else valid

    c = dict(BASE_CARD)
    c.update(hidden=draw(mostly(st.sampled_from([8, 12, 16]), WILD_INT)),
             heads=draw(mostly(st.sampled_from([1, 2, 4]), WILD_INT)),
             intermediate=draw(mostly(st.integers(1, 48), WILD_INT)),
             seq_len=draw(mostly(st.integers(1, 6), WILD_INT)),
             timesteps=draw(mostly(st.one_of(st.integers(1, 6), st.just([3, 1])), WILD_INT)),
             weight_bits=draw(mostly(st.sampled_from([1, 8, 32]), WILD_INT)),
             input_rate=draw(mostly(st.floats(0, 1), WILD_REAL)))
    c["rates"] = {k: draw(mostly(st.floats(0, 1), WILD_REAL)) for k in BASE_CARD["rates"]}
    c["neuron"] = {"model": "lif", "vth": 1.0, "leak": draw(mostly(st.floats(0.1, 1), WILD_REAL)),
                   "levels": draw(mostly(st.integers(1, 3), WILD_INT))}
    return c


def _build(arch_data, card_data):
    arch = validate(arch_data, ArchConfig, "arch.yaml").loaded_from("arch.yaml", TABLES[arch_data["energy_table"]])
    return arch, encoder_network(validate(card_data, EncoderCard, "card.yaml"))


def _check(arch_data, card_data) -> str:
    """Build and price one input in both engines; 'refused', 'infeasible' or 'priced'."""
    try:
        arch, net = _build(arch_data, card_data)
        closed = estimate(net, arch)
        sim = simulate(net, arch)
    except NeurosimError as exc:
        text = str(exc)
        assert "\n" not in text and "Fix:" in text and len(text) < 2000
        return "refused"
    assert closed.feasible == sim.feasible, (closed.notes, sim.notes)
    if not closed.feasible:
        assert closed.notes and sim.notes and closed.energy_pj is None
        return "infeasible"
    capacity = arch.cores.count * arch.cores.sram_bytes + arch.global_buffer.bytes
    for r in (closed, sim):
        figures = [r.energy_pj, r.latency_cycles, r.latency_s, r.dram_traffic_bytes, *r.memory_bytes.values()]
        assert all(math.isfinite(v) and v >= 0 for v in figures)
        assert r.energy_pj > 0 and r.latency_cycles > 0
        assert r.memory_bytes["peak_on_chip"] <= capacity * (1 + 1e-9)
    for count in ("acs", "macs", "neuron_updates", "other_ops"):
        assert getattr(sim, count) == pytest.approx(getattr(closed, count), rel=1e-9)
    return "priced"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archs(), cards())
def test_any_input_is_refused_in_one_clear_line_or_priced_with_finite_consistent_figures(arch_data, card_data):
    _check(arch_data, card_data)


SEEN = set()


# derandomized: the coverage check below asserts what these 60 draws reach, so they are the same draws on
# every run (random ones missed an infeasible design about once in seven runs)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(archs(wild=False), cards(wild=False))
def test_any_valid_input_is_priced_or_infeasible_never_inconsistent(arch_data, card_data):
    SEEN.add(_check(arch_data, card_data))


def test_the_valid_inputs_reach_both_feasible_and_infeasible_designs():
    assert {"priced", "infeasible"} <= SEEN   # runs after the property above (tests run in file order)
