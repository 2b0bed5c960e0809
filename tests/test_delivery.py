"""One delivery model for both mappings (issue 21, defect 2), worked out by hand.

A packet reaches several cores along a multicast tree (the distance to the destination region, then one
link per further core) or as one copy per core (unicast), as the arch says. Distances follow the mesh the
used cores fill (spatial) or the whole pool (sequential), measured from the centre where the global buffer
and the I/O port attach.
"""

import re

import numpy as np
import pytest

import neurosim
from neurosim.arch import load_arch
from neurosim.cost import layout
from neurosim.cost.chips import Chips, centre_hops
from neurosim.cost.estimate import estimate
from neurosim.cost.workload import workload
from neurosim.ir import Layer, Network
from neurosim.sim import simulate

AVG_3X3 = 16 / 9     # mean distance between two cores of a 3 x 3 mesh, 2(k^2 - 1)/(3k)
CENTRE_3X3 = 4 / 3   # mean distance from its centre to a core, (k^2 - 1)/(2k)


def _chain():
    """'a' (1 -> 8) feeds 'b' (8 -> 16); spiking input at rate 0.5; every rate 0.5; 1 token; T = 2."""
    return Network("chain", [Layer("a", "linear", 1, 8, timesteps=2, rate=0.5),
                             Layer("b", "linear", 8, 16, inputs=["a"], timesteps=2, rate=0.5)],
                   input_size=1, input_rate=0.5)


def _nine_cores(delivery: str):
    """9 cores of 75 B: 'a' needs 1 core (32 B weights + 32 B membranes + 2 B of output steps), 'b' 8
    (512 + 64 + 4 = 580 B), so the spatial mapping has no spare core and fills a 3 x 3 mesh."""
    edge = load_arch("edge-45nm")
    return edge.model_copy(update={
        "cores": edge.cores.model_copy(update={"count": 9, "sram_bytes": 75, "levels": None, "dataflow": None}),
        "interconnect": edge.interconnect.model_copy(update={"delivery": delivery})}).loaded_from(edge.path,
                                                                                                 edge.energy)


def _bit_hops(report, arch):
    return report.energy_breakdown_pj["interconnect"] / (arch.interconnect.hop_mm
                                                         * arch.energy.interconnect_pj_per_bit_mm)


def test_centre_distance_of_a_mesh_is_worked_out_by_hand():
    # 3 x 3: distances 0, 1 x 4, 2 x 4 -> 12 / 9; 2 x 2 (buffer at a corner router of the four): 0, 1, 1, 2 -> 1
    assert centre_hops(np.array([9, 4, 1]))[:2] == pytest.approx([12 / 9, 1.0])
    assert centre_hops(np.array([1]))[0] == 1.0    # a lone core still crosses its link to the buffer


@pytest.mark.parametrize("delivery", ["multicast", "unicast"])
def test_spatial_spikes_reach_every_core_of_their_consumer_by_tree_or_copy(delivery):
    arch = _nine_cores(delivery)
    a_spikes, b_spikes, input_spikes = 8 * 0.5 * 2, 16 * 0.5 * 2, 1 * 0.5 * 2
    to_b = AVG_3X3 + 8 - 1 if delivery == "multicast" else 8 * AVG_3X3
    # a's packets to b's 8 cores; b's packets leave through the port; the input arrives at a's one core
    expected = 32 * (a_spikes * to_b + b_spikes * CENTRE_3X3 + input_spikes * CENTRE_3X3)
    for run in (estimate, simulate):
        r = run(_chain(), arch, "spatial")
        assert "9 of 9 cores used" in r.notes[0]
        assert _bit_hops(r, arch) == pytest.approx(expected)


def test_each_destination_core_queues_what_it_receives():
    arch = _nine_cores("multicast")
    t, core = arch.energy, arch.cores.sram_bytes
    queued = 32 * (8 * 0.5 * 2) * 8      # a's 8 packets written into, and read from, each of b's 8 cores
    weights = 32 * (1 * 8 + 8 * 16)      # a weight read per AC: 1 input spike x 8, then 8 spikes x 16
    membranes = 32 * (8 + 16) * 2        # each neuron's membrane read and written every step
    assert not t.ac_includes_memory
    expected = ((weights + membranes + queued) * t.sram_pj_per_bit(core, "read")
                + (membranes + queued) * t.sram_pj_per_bit(core, "write"))
    for run in (estimate, simulate):
        assert run(_chain(), arch, "spatial").energy_breakdown_pj["sram"] == pytest.approx(expected)


@pytest.mark.parametrize("delivery", ["multicast", "unicast"])
def test_sequential_inputs_go_to_every_core_of_the_pool_and_outputs_back_from_one(delivery):
    arch = _nine_cores(delivery)
    a_history, b_history, net_input = 8 * 1 * 2, 16 * 1 * 2, 1 * 0.5 * 2 * 32   # dense bitmaps, T = 2
    for run in (estimate, simulate):
        r = run(_chain(), arch, "sequential", "spikes")
        pool = int(re.search(r"on a pool of (\d+) of 9 cores", " ".join(r.notes)).group(1))
        centre = centre_hops(np.array([pool]))[0]
        to_pool = centre + pool - 1 if delivery == "multicast" else pool * centre
        # a reads the network input and b reads a's history, each pass (both to every core of the pool); each
        # history, and the weights streamed from DRAM where the pool cannot hold them, go between one core and
        # the centre
        layers = r.per_layer.set_index("layer")
        streamed = layers.streamed_weight_bytes.sum() * 8
        expected = ((net_input * layers.passes["a"] + a_history * layers.passes["b"]) * to_pool
                    + (a_history + b_history + streamed) * centre)
        assert _bit_hops(r, arch) == pytest.approx(expected)


def test_attention_needs_a_query_on_one_core_and_keys_and_values_on_every_core_of_their_head():
    net = neurosim.load_model("tiny-encoder")
    arch = load_arch("edge-45nm")
    work = workload(net, True)
    traffic = layout.SpatialTraffic(work, Chips.of(arch))
    cores = np.full((1, work.L), 5.0)
    copies = traffic.copies(cores)[0]
    att = next(layer for layer in net.layers if layer.kind == "attention")
    heads = int(att.spec.live_heads().sum())
    q, k, v = (work.names.index(name) for name in att.inputs)
    assert [len(work.consumers[i]) for i in (q, k, v)] == [1, 1, 1]
    assert copies[q] == 1 and copies[k] == copies[v] == np.ceil(5 / heads)


@pytest.mark.parametrize("objective", ["latency", "energy", "edp"])
def test_more_cores_never_score_worse_on_the_spatial_objective(objective):
    """Idle cores cost nothing and a bigger chip has every allocation of a smaller one, so the stated
    objective never gets worse with more cores (and, for energy, at the same plan energy is unchanged)."""
    def score(r):
        return {"latency": r.latency_cycles, "energy": r.energy_pj, "edp": r.latency_cycles * r.energy_pj}[objective]

    for name in ("tiny-encoder", "spiking-sentiment-2l"):
        net = neurosim.load_model(name)
        for arch_name in ("loihi", "spatial-45nm-large"):
            arch = load_arch(arch_name)
            arch = arch.model_copy(update={"mapping": arch.mapping.model_copy(update={"objective": objective})})
            before = None
            for count in (arch.cores.count, 2 * arch.cores.count, 4 * arch.cores.count):
                sized = arch.model_copy(update={"cores": arch.cores.model_copy(update={"count": count})})
                r = estimate(net, sized.loaded_from(arch.path, arch.energy), "spatial")
                if not r.feasible:
                    continue
                if before is not None:
                    assert score(r) <= before * (1 + 1e-9), (name, arch_name, count)
                before = score(r)
