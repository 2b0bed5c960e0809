"""Energy = counts x table, and first-order mapping estimates worked out by hand."""

import math

import pytest

from neurosim.arch import load_arch
from neurosim.cost.energy import EventCounts, energy_breakdown_pj
from neurosim.cost.estimate import estimate
from neurosim.ir import Layer, Network


@pytest.fixture(scope="module")
def edge():
    return load_arch("edge-45nm")


def test_energy_is_counts_times_table(edge):
    t = edge.energy
    ev = EventCounts(acs=10, ac_bit_ops=10, macs=3, other_ops=2, neuron_updates=5, rng_ops=7,
                     core_read_bits=64, core_write_bits=32, buffer_read_bits=6, buffer_write_bits=2,
                     dram_read_bits=100, dram_write_bits=50, bit_mm=40)
    e = energy_breakdown_pj(ev, t, core_array_bytes=8192, buffer_array_bytes=1 << 30, static_power_w=0.5,
                            latency_s=2e-6)
    # Horowitz 45 nm: AC 0.9, MAC 4.6, other 4.6, neuron 6.4, shift-add 0.1 pJ
    assert e["compute"] == pytest.approx(10 * 0.9 + 3 * 4.6 + 2 * 4.6 + 5 * 6.4 + 7 * 0.1)
    # 8 KB array: 10 pJ per 64 bits; a 1 GiB buffer is past the table's largest array (1 MiB, 100 pJ / 64 b)
    assert e["sram"] == pytest.approx(96 * 10 / 64 + 8 * 100 / 64)
    assert e["dram"] == pytest.approx(150 * 20.0)
    assert e["interconnect"] == pytest.approx(40 * 0.1)
    assert e["leakage"] == pytest.approx(0.5 * 2e-6 * 1e12)     # 1 uJ


def test_multilevel_spike_pricing():
    per_bit = load_arch("edge-45nm").energy              # a 2-bit spike = 2 ACs
    shift = load_arch("loihi").energy                    # one synaptic op, plus a shift-add for a multi-bit spike
    # 7 ACs fed by binary spikes and 3 by 2-bit spikes: 7 + 3 x 2 = 13 bit-ops
    ev = EventCounts(acs=10, ac_bit_ops=13, multilevel_acs=3)
    chip = dict(core_array_bytes=8192, buffer_array_bytes=8192, static_power_w=0, latency_s=0)
    assert energy_breakdown_pj(ev, per_bit, **chip)["compute"] == pytest.approx(13 * 0.9)
    # the shift-add is charged on the 3 multi-level ACs only, not on every AC of the network
    assert energy_breakdown_pj(ev, shift, **chip)["compute"] == pytest.approx(10 * 23.6 + 3 * 23.6)


def _one_layer(t=3):
    # 4 spiking inputs at rate 0.5 -> 2 LIF neurons, one token, t steps
    return Network("one", [Layer("fc", "linear", 4, 2, timesteps=t, weight_bits=8, rate=0.5)],
                   input_size=4, input_rate=0.5)


def _single_core(edge):
    # no memory levels inside the core (no reuse): one SRAM access per operation, as counted below
    cores = edge.cores.model_copy(update={"count": 1, "acs_per_cycle": 2, "levels": None, "dataflow": None})
    return edge.model_copy(update={"cores": cores})


def test_one_layer_one_core_by_hand(edge):
    arch = _single_core(edge)
    # ACs = 3 steps * 0.5 * 4 * 2 = 12; neuron updates = 3 * 2 = 6; 18 ops / 2 per cycle = 9 cycles
    r = estimate(_one_layer(), arch, mapping="sequential", carry="spikes")
    assert r.acs == 12 and r.neuron_updates == 6
    assert r.latency_cycles == 9
    assert r.latency_s == pytest.approx(9 / 200e6)
    assert r.energy_breakdown_pj["compute"] == pytest.approx(12 * 0.9 + 6 * 6.4)
    # SRAM (64 KB core array): 12 weight reads x 8 bits, 6 membrane reads + 6 writes x 32 bits
    per_bit = edge.energy.sram_pj_per_bit(65536, "read")
    gb_bits = 2 * 3  # output spike history written to the 512 KB global buffer
    expect = (12 * 8 + 12 * 32) * per_bit + gb_bits * edge.energy.sram_pj_per_bit(524288, "write")
    assert r.energy_breakdown_pj["sram"] == pytest.approx(expect)
    # spatial on the same core: T = 3, depth 1 -> (3 + 1 - 1) steps x 3 cycles per step
    assert estimate(_one_layer(), arch, mapping="spatial").latency_cycles == 9


def test_two_layer_spatial_pipeline_fill_plus_t_stages(edge):
    arch = edge.model_copy(update={"cores": edge.cores.model_copy(update={"count": 2, "acs_per_cycle": 1})})
    net = Network("two", [
        Layer("a", "linear", 2, 2, timesteps=10, rate=1.0),
        Layer("b", "linear", 2, 2, inputs=["a"], timesteps=10, rate=1.0),
    ], input_size=2, input_rate=1.0)
    # each layer: per step 2*2 ACs + 2 neuron updates = 6 cycles on its own core
    # pipeline: (T + depth - 1) * stage = (10 + 2 - 1) * 6 = 66
    assert estimate(net, arch, mapping="spatial").latency_cycles == 66
    # sequential: both layers one after the other on 2 cores: 2 * (60 / 2) = 60
    assert estimate(net, arch, mapping="sequential").latency_cycles == 60


def test_rates_carry_less_than_spikes_by_the_bit_ratio(edge):
    # two layers of 64 neurons, 8 tokens, t = 15: spikes keep 15 bits per neuron, rates ceil(log2(16)) = 4
    net = Network("two", [
        Layer("a", "linear", 64, 64, seq_len=8, timesteps=15, rate=0.2),
        Layer("b", "linear", 64, 64, inputs=["a"], seq_len=8, timesteps=15, rate=0.2),
    ], input_size=64, input_rate=0.2)
    spikes = estimate(net, edge, mapping="sequential", carry="spikes").memory_bytes["spike_buffers"]
    rates = estimate(net, edge, mapping="sequential", carry="rates").memory_bytes["spike_buffers"]
    assert spikes == 2 * 8 * 64 * 15 / 8
    assert spikes / rates == pytest.approx(15 / math.ceil(math.log2(16)))


def test_spatial_shortfall_is_reported_not_run(edge):
    r = estimate(__import__("neurosim").load_model("spikingbert-4l"), edge, mapping="spatial")
    assert not r.feasible and r.energy_pj is None
    assert "short by" in r.notes[0] and "cores" in r.notes[0]


def test_no_dram_and_too_many_weights_is_infeasible():
    r = estimate(__import__("neurosim").load_model("spikingbert-4l"), load_arch("loihi"), mapping="sequential")
    assert not r.feasible and "no DRAM" in r.notes[0]


def test_weights_streamed_when_they_do_not_fit(edge):
    r = estimate(__import__("neurosim").load_model("spikingbert-4l"), edge, mapping="sequential", carry="rates")
    # 28.3 M fp32 weights = 113,246,208 B do not fit in 1 MiB of core SRAM: every layer streams
    assert r.memory_bytes["weights"] == 4 * (4 * 768 * 768 + 2 * 768 * 3072) * 4
    assert r.dram_traffic_bytes >= r.memory_bytes["weights"]


def test_pruned_heads_and_neurons_are_not_stored(edge):
    """Structured pruning compiles masked rows and columns away: memory counts only live weights."""
    import numpy as np

    from neurosim import load_model
    from neurosim.sim import simulate

    net = load_model("spikingbert-4l")
    dense = estimate(net, edge, mapping="sequential", carry="rates").memory_bytes["weights"]
    att = net["block1.attention"].spec
    att.head_mask = np.ones(12, bool)
    att.head_mask[[0, 5]] = False
    inter = net["block2.intermediate"]
    inter.neuron_mask = np.ones(3072, bool)
    inter.neuron_mask[:1000] = False
    pruned = estimate(net, edge, mapping="sequential", carry="rates").memory_bytes["weights"]
    # a head: its 64 columns of Q, K and V, and its 64 input rows of attn_out (768 wide), fp32;
    # a neuron: its row of 768 in the intermediate layer and its column of 768 in the output layer
    assert dense - pruned == 2 * 4 * 64 * 768 * 4 + 1000 * 2 * 768 * 4

    tiny = Network("two", [Layer("a", "linear", 4, 3, timesteps=2, weight_bits=8, rate=0.5,
                                 neuron_mask=np.array([True, False, True])),
                           Layer("b", "linear", 3, 2, timesteps=2, weight_bits=8, rate=0.5, inputs=["a"])],
                   input_size=4, input_rate=0.5)
    for mapping in ("spatial", "sequential"):
        # live weights: a keeps 2 rows of 4, b keeps 2 columns of its 2 rows -> 8 + 4 bytes at 8 bits
        assert estimate(tiny, edge, mapping=mapping).memory_bytes["weights"] == 12
        assert simulate(tiny, edge, mapping=mapping).memory_bytes["weights"] == 12
