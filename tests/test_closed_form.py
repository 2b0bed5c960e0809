"""The closed form is one code over arrays of design points: one point and many agree because they are the same code."""

from dataclasses import replace

import numpy as np
import pytest

from neurosim.arch import load_arch
from neurosim.cards import load_model
from neurosim.cost.chips import Chips, average_hops, mesh_bits_per_cycle
from neurosim.cost.estimate import estimate, evaluate
from neurosim.cost.workload import CACHE_SIZE, cached_workloads, workload
from neurosim.ir import Network


def _variants(arch, n=24):
    """Archs that differ in core count, SRAM, global buffer and banks: feasible, infeasible and spilling points."""
    out = []
    for i in range(n):
        cores = arch.cores.model_copy(update={"count": [4, 16, 64, 300, 1024, 4096][i % 6],
                                              "sram_bytes": [4096, 65536, 1 << 20][i % 3],
                                              "bank_bytes": [None, 4096][i % 2]})
        gb = arch.global_buffer.model_copy(update={"bytes": [1 << 18, 1 << 21, 1 << 23][(i // 3) % 3]})
        a = arch.model_copy(update={"cores": cores, "global_buffer": gb, "name": f"v{i}"})
        out.append(a.loaded_from(arch.path, arch.energy))
    return out


@pytest.mark.parametrize("mapping,carry", [("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates")])
def test_many_points_at_once_equal_each_point_alone_bit_for_bit(mapping, carry):
    net = load_model("spikingbert-4l")
    archs = [a.with_mapping(mapping, carry) for a in _variants(load_arch("edge-45nm"))]
    many = evaluate(net, Chips([a.model_dump() for a in archs]), archs[0].energy, mapping, carry)
    feasible = 0
    for j, arch in enumerate(archs):
        if many.refused[j] is not None:
            continue
        one = estimate(net, arch)
        assert one.feasible == (many.infeasible[j] is None)
        if not one.feasible:
            assert one.notes == [many.infeasible[j]]
            continue
        feasible += 1
        assert one.energy_pj == many.total_energy_pj[j]          # exact: the same code, not a restatement
        assert one.latency_cycles == many.cycles[j]
        assert one.energy_breakdown_pj == {k: v[j] for k, v in many.energy_pj.items()}
        assert one.memory_bytes == {k: v[j] for k, v in many.memory_bytes.items()}
    assert feasible >= 4


def test_mesh_formulas_by_hand():
    # 9 cores: a 3 x 3 mesh, 2(9-1)/9 = 16/9 hops on average, 2*3*2 = 12 links carrying 2 x 32 bits
    assert average_hops(np.array([9]))[0] == pytest.approx(16 / 9)
    assert mesh_bits_per_cycle(np.array([9]), np.array([32]))[0] == 12 * 2 * 32
    # a lone core still reaches the global buffer over one hop and one link
    assert average_hops(np.array([1]))[0] == 1.0
    assert mesh_bits_per_cycle(np.array([1]), np.array([32]))[0] == 2 * 32


def test_workload_cache_is_keyed_by_content_and_bounded():
    a, b = load_model("tiny-encoder"), load_model("tiny-encoder")
    assert a is not b and workload(a, spatial=False) is workload(b, spatial=False)
    # other weight values change no count: the same workload
    w = next(l for l in a.layers if l.kind == "linear" and l.spiking)
    heavier = Network(a.name, [replace(l, weights=np.ones((l.out_features, l.in_features))) if l is w else l
                               for l in a.layers], a.input_size, a.input_rate, a.input_spiking, dict(a.metadata))
    assert workload(heavier, spatial=False) is workload(a, spatial=False)
    # a different rate is a different network
    faster = Network(a.name, [replace(l, rate=l.rate / 2) if l is w else l for l in a.layers], a.input_size,
                     a.input_rate, a.input_spiking, dict(a.metadata))
    assert workload(faster, spatial=False) is not workload(a, spatial=False)
    assert workload(faster, spatial=False).spikes_out.sum() != workload(a, spatial=False).spikes_out.sum()
    for t in range(1, CACHE_SIZE + 5):
        workload(Network(f"n{t}", a.layers, a.input_size, a.input_rate, a.input_spiking, {}), spatial=True)
    assert cached_workloads() == CACHE_SIZE
