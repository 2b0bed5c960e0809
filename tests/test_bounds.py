"""Properties every reported figure must have, on every shipped model x arch x mapping, in both engines:
latency never below a physical lower bound, energy never below its compute part, a feasible design's
peak memory within what the chip holds, every figure finite."""

import math

import pytest

import neurosim
from neurosim.arch import load_arch
from neurosim.cost.chips import Chips
from neurosim.cost.estimate import estimate
from neurosim.sim import simulate

MODELS = ["tiny-encoder", "spiking-sentiment-2l", "spikingbert-4l"]
ARCHS = ["edge-45nm", "loihi", "spatial-45nm-large"]
MAPPINGS = [("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates")]


@pytest.fixture(scope="module")
def models():
    return {m: neurosim.load_model(m) for m in MODELS}


@pytest.fixture(scope="module")
def archs():
    return {a: load_arch(a) for a in ARCHS}


def _lower_bounds(r, arch) -> dict[str, float]:
    """Cycles no design can beat: all AC-path work on every core at once, every DRAM byte at full
    bandwidth, every bit-hop on every link of the mesh at once."""
    chip = Chips.of(arch)
    table = arch.energy
    ac_path = r.per_layer.acs.sum() + r.per_layer.neuron_updates.sum()
    bit_hops_mm = r.energy_breakdown_pj["interconnect"] / table.interconnect_pj_per_bit_mm
    return {"compute": ac_path / (arch.cores.count * arch.cores.acs_per_cycle),
            "dram": r.dram_traffic_bytes * 8 / chip.dram_bits_per_cycle[0] if arch.dram else 0.0,
            "network": bit_hops_mm / arch.interconnect.hop_mm / chip.mesh_bits_per_cycle[0]}


@pytest.mark.parametrize("engine", [estimate, simulate], ids=["closed form", "simulator"])
@pytest.mark.parametrize("arch_name", ARCHS)
def test_every_figure_is_finite_and_within_physical_bounds(models, archs, arch_name, engine):
    arch = archs[arch_name]
    capacity = arch.cores.count * arch.cores.sram_bytes + arch.global_buffer.bytes
    checked = 0
    for model in MODELS:
        for mapping, carry in MAPPINGS:
            r = engine(models[model], arch, mapping, carry)
            where = f"{model} {mapping}/{carry} on {arch_name}"
            if not r.feasible:
                assert r.notes and r.energy_pj is None, where
                continue
            checked += 1
            figures = [r.energy_pj, r.latency_cycles, r.latency_s, r.dram_traffic_bytes, *r.memory_bytes.values(),
                       *r.energy_breakdown_pj.values()]
            assert all(math.isfinite(v) and v >= 0 for v in figures), where
            for bound, cycles in _lower_bounds(r, arch).items():
                assert r.latency_cycles >= cycles * (1 - 1e-9), f"{where}: below the {bound} bound"
            assert r.energy_pj >= r.energy_breakdown_pj["compute"] > 0, where
            assert r.memory_bytes["peak_on_chip"] <= capacity * (1 + 1e-9), where
    assert checked >= 3
