"""The cost-model defects found by the audit, each worked out by hand (failed before the fix, passes after)."""

import numpy as np
import pytest

import neurosim
from neurosim.arch import load_arch
from neurosim.cost.estimate import estimate
from neurosim.ir import Layer, Network, Neuron
from neurosim.sim import simulate
from test_reuse_ports import without_ports


@pytest.fixture(scope="module")
def edge():
    return without_ports(load_arch("edge-45nm"))   # the hand counts here are of compute; ports: test_reuse_ports.py


def _cores(arch, **update):
    return arch.model_copy(update={"cores": arch.cores.model_copy(update=update)}).loaded_from(arch.path, arch.energy)


def _current_fed(t=3):
    """A real-valued input of 4 values per token (2 tokens) into 2 LIF neurons, t steps."""
    return Network("current", [Layer("fc", "linear", 4, 2, seq_len=2, timesteps=t, rate=0.5)],
                   input_size=4, input_spiking=False)


def test_a_constant_input_current_is_multiplied_once_and_held(edge):
    arch = _cores(edge, count=1)
    # 2 tokens x 4 inputs x 2 outputs = 16 MACs, once, not once per step (was 3 x 16 = 48)
    for run in (estimate, simulate):
        assert run(_current_fed(), arch, "sequential", "rates").macs == 16
    # a chip that recomputes it every step says so, and pays the product t times
    again = _cores(edge, count=1, recompute_constant_input=True)
    for run in (estimate, simulate):
        assert run(_current_fed(), again, "sequential", "rates").macs == 3 * 16
    # the held current takes a value per token and neuron beside the membranes: 2 x 2 x (32 + 32) bits
    assert estimate(_current_fed(), arch, "spatial").memory_bytes["membrane"] == 2 * 2 * 64 / 8
    assert estimate(_current_fed(), again, "spatial").memory_bytes["membrane"] == 2 * 2 * 32 / 8


def test_the_engine_counts_a_held_input_product_once_like_the_closed_form():
    from neurosim.spikes import random_weights, run

    net = random_weights(_current_fed(t=5), seed=0)
    trace = run(net, np.full((2, 4), 0.3), seed=0)
    assert trace["fc"].macs == 16 == estimate(trace.measured_network(net), load_arch("edge-45nm")).macs


def _gif_chain(levels=3, t=2):
    """A 3-level (2-bit) GIF layer feeding a binary LIF layer: 'b' reads multi-level spikes, 'a' binary ones."""
    return Network("gif", [
        Layer("a", "linear", 2, 2, timesteps=t, rate=0.5, neuron=Neuron(model="gif", levels=levels)),
        Layer("b", "linear", 2, 2, inputs=["a"], timesteps=t, rate=0.5),
    ], input_size=2, input_rate=0.5)


def test_shift_adds_are_charged_only_on_acs_fed_by_multilevel_spikes():
    loihi = load_arch("loihi")
    t = loihi.energy
    r = estimate(_gif_chain(), loihi, "sequential", "rates")
    # ACs: a = 2 steps x 0.5 x 2 x 2 = 4 (binary input), b = 4 (2-bit input); shift-adds on b's 4 only
    per_layer = r.per_layer.set_index("layer")
    assert per_layer.acs.tolist() == [4, 4]
    # b regenerates its 2 input neurons' spikes at each of its 2 steps, one token: a draw for the event, and
    # for a's multi-level events (rate 0.5) one more that rounds the value
    rng = 2 * 2 * (1 + 0.5)
    expect = 8 * t.ac_pj + 4 * t.shift_add_pj + 0 * t.mac_pj + 8 * t.neuron_update_pj + rng * t.shift_add_pj
    assert r.energy_breakdown_pj["compute"] == pytest.approx(expect)
    assert simulate(_gif_chain(), loihi, "sequential", "rates").energy_breakdown_pj["compute"] == pytest.approx(expect)


def test_a_bit_serial_multilevel_spike_takes_as_many_cycles_as_it_is_charged_acs(edge):
    arch = _cores(edge, count=1, acs_per_cycle=1)
    # edge-45nm pays a k-bit spike as k ACs ('per_bit'): b's 4 ACs of 2-bit spikes take 8 AC-lane cycles.
    # a: 4 ACs + 4 neuron updates = 8 cycles; b: 8 + 4 = 12 cycles; 2 steps each, whole cycles per step
    r = estimate(_gif_chain(), arch, "sequential", "rates")
    assert r.per_layer.cycles.tolist() == [8, 12]
    # a shift-add table (Loihi's) takes one AC-lane cycle per multi-level spike, as it charges one AC
    loihi = _cores(load_arch("loihi"), count=1, acs_per_cycle=1)
    assert estimate(_gif_chain(), loihi, "sequential", "rates").per_layer.cycles.tolist() == [8, 8]


def test_bernoulli_regeneration_of_attentions_spiking_k_and_v_is_charged():
    tiny = neurosim.load_model("tiny-encoder")
    r = estimate(tiny, load_arch("edge-45nm"), "sequential", "rates")
    # each attention layer regenerates its K and V inputs (8 live features each, 4 tokens) at each of its
    # steps; its real-valued Q is carried as a time average and not regenerated
    layers = {l.name: l for l in tiny.layers}
    attention = [l for l in tiny.layers if l.kind == "attention"]
    by_hand = 0
    for l in tiny.layers:
        spiking_in = [s for s in dict.fromkeys(l.inputs) if layers[s].spiking]
        by_hand += l.seq_len * l.timesteps * sum(layers[s].out_features for s in spiking_in)
    att_part = sum(a.seq_len * a.timesteps * 2 * 8 for a in attention)
    assert att_part == 4 * 4 * 16 + 4 * 2 * 16
    shift = load_arch("edge-45nm").energy.shift_add_pj
    rng_energy = by_hand * shift
    with_rng = r.energy_breakdown_pj["compute"]
    spikes = estimate(tiny, load_arch("edge-45nm"), "sequential", "spikes").energy_breakdown_pj["compute"]
    assert with_rng - spikes == pytest.approx(rng_energy)


def test_a_timestep_takes_whole_cycles(edge):
    # 1 token, 1 input, 1 neuron: 0.5 AC + 1 neuron update per step = 1.5 AC-lane ops into its one accumulator
    # (16 lanes, one busy): 1.5 cycles, two whole ones
    net = Network("small", [Layer("a", "linear", 1, 1, timesteps=7, rate=0.5)], input_size=1, input_rate=0.5)
    for run in (estimate, simulate):
        assert run(net, edge, "sequential", "rates").latency_cycles == 7 * 2
    assert estimate(net, edge, "spatial").latency_cycles == 7 * 2
    # the simulated pipeline first waits for step 0 of the input (one 32-bit packet at rate 0.5 over the one
    # hop from the I/O port, on a one-core mesh's capacity of 2 links' width) and ends when the last step's
    # spike (the same size) has left
    packet = 0.5 * 32 / (2 * edge.interconnect.link_bits_per_cycle)
    assert simulate(net, edge, "spatial").latency_cycles == packet + 7 * 2 + packet
    # the tiny encoder's 6 layer-kinds x 2 blocks run 42 layer-steps: at least 42 cycles (was 6.3)
    tiny = neurosim.load_model("tiny-encoder")
    steps = sum(l.timesteps for l in tiny.layers)
    assert steps == 42 and estimate(tiny, load_arch("spatial-45nm-large"), "sequential", "rates").latency_cycles >= 42


def test_peak_on_chip_memory_is_what_is_held_together_and_fits_the_chip(edge):
    net = neurosim.load_model("spikingbert-4l")
    r = estimate(net, edge, "sequential", "rates")
    capacity = edge.cores.count * edge.cores.sram_bytes + edge.global_buffer.bytes
    # was 1.86 MB on a chip of 1.57 MB: the largest streamed slot plus the largest membrane state of
    # different layers; now the largest sum over one layer's run
    assert r.feasible and r.memory_bytes["peak_on_chip"] <= capacity
    # every layer here streams: its pass slice (streamed weights + membranes) fills the free core SRAM
    assert r.memory_bytes["peak_on_chip"] >= edge.cores.count * edge.cores.sram_bytes * 0.9


def test_a_recurrent_layers_own_spikes_are_counted_and_its_feedback_weights_stored(edge):
    from neurosim.ir import Recurrent

    fc = Layer("fc", "linear", 2, 3, timesteps=4, rate=0.5, weight_bits=8,
               recurrent=Recurrent(np.zeros((3, 3))))
    net = Network("rnn", [fc], input_size=2, input_rate=0.5)
    r = estimate(net, edge, "sequential", "rates")
    # input: 4 steps x 0.5 x 2 inputs x 3 outputs = 12; own spikes of steps 0..2: 3 x 0.5 x 3 x 3 = 13.5
    assert r.acs == 12 + 13.5
    assert r.memory_bytes["weights"] == (2 * 3 + 3 * 3) * 8 / 8


def test_a_synaptic_current_and_per_neuron_parameters_are_state_held_beside_the_membrane(edge):
    def one(neuron):
        net = Network("n", [Layer("fc", "linear", 2, 3, seq_len=2, timesteps=2, rate=0.5, neuron=neuron)],
                      input_size=2, input_rate=0.5)
        return estimate(net, edge, "spatial").memory_bytes["membrane"]

    # 2 tokens x 3 neurons x 32-bit values: the membrane; + the synaptic current; + a threshold per neuron
    assert one(Neuron()) == 2 * 3 * 4
    assert one(Neuron(model="cubalif", syn_decay=0.5)) == 2 * 2 * 3 * 4
    assert one(Neuron(model="cubalif", syn_decay=0.5, vth=np.array([1.0, 0.5, 2.0]))) == 3 * 2 * 3 * 4


def _energy_table(arch, **update):
    return arch.model_copy(update={"energy": arch.energy.model_copy(update=update)}).loaded_from(
        arch.path, arch.energy.model_copy(update=update))


def test_a_neuron_update_that_includes_its_state_access_is_not_charged_the_sram_again():
    """Loihi's 52 pJ neuron update is measured on the compartment pipeline, state read and write included."""
    loihi = _cores(load_arch("loihi"), count=1)
    assert loihi.energy.neuron_update_includes_memory
    apart = _energy_table(loihi, neuron_update_includes_memory=False)
    # 2 tokens x 3 steps x 2 neurons = 12 updates, each a 24-bit state read and write at the core's 128 KiB array
    per_update = 24 * sum(loihi.energy.sram_pj_per_bit(128 * 1024, op) for op in ("read", "write"))
    for run in (estimate, simulate):
        included, charged = (run(_current_fed(), a, "sequential", "spikes") for a in (loihi, apart))
        assert included.neuron_updates == charged.neuron_updates == 12
        extra = charged.energy_breakdown_pj["sram"] - included.energy_breakdown_pj["sram"]
        assert extra == pytest.approx(12 * per_update)
        assert charged.energy_breakdown_pj["compute"] == included.energy_breakdown_pj["compute"]


def _lif_chain(t=3):
    """Two LIF layers of 2 neurons, one token, t steps: 'b' reads 'a''s spikes."""
    return Network("chain", [Layer("a", "linear", 2, 2, timesteps=t, rate=0.5),
                             Layer("b", "linear", 2, 2, inputs=["a"], timesteps=t, rate=0.5)],
                   input_size=2, input_rate=0.5)


def test_carried_counts_are_read_at_every_step_where_their_spikes_are_regenerated(edge):
    from neurosim.cost.chips import Chips
    from neurosim.cost.estimate import evaluate

    arch = _cores(edge, count=1)
    chips, table = Chips.of(arch), arch.energy
    rates = evaluate(_lif_chain(), chips, table, "sequential", "rates")
    spikes = evaluate(_lif_chain(), chips, table, "sequential", "spikes")
    # a's 2 neurons carry a count of ceil(log2(3 + 1)) = 2 bits each: 4 bits written; b reads them at each of
    # its 3 steps (12 bits), drawing 2 spikes a step at the buffer's port; carrying spikes, b reads a's
    # 3-step history of 2 x 3 = 6 bits once
    b = 1
    assert rates.layer_events.buffer_write_bits[0, 0] == 4 and spikes.layer_events.buffer_write_bits[0, 0] == 6
    assert rates.layer_events.buffer_read_bits[0, b] == 3 * 4 and spikes.layer_events.buffer_read_bits[0, b] == 6
    assert rates.layer_events.rng_ops[0, b] == 3 * 2
    # both send the pool the same spikes (2 bits a step, 6 in all); b's own output goes back to the buffer
    # from one core: 4 bits of counts, or 6 of history
    from neurosim.cost.layout import PoolTraffic
    pool, mm = PoolTraffic(chips), chips.hop_mm[0]
    assert rates.layer_events.bit_mm[0, b] == pytest.approx((6 * pool.to_pool[0] + 4 * pool.one_core[0]) * mm)
    assert spikes.layer_events.bit_mm[0, b] == pytest.approx((6 * pool.to_pool[0] + 6 * pool.one_core[0]) * mm)
    # and the simulator books the same traffic: its energy equals the closed form's, kind by kind
    sim = simulate(_lif_chain(), arch, "sequential", "rates")
    for kind, pj in estimate(_lif_chain(), arch, "sequential", "rates").energy_breakdown_pj.items():
        if kind != "leakage":
            assert sim.energy_breakdown_pj[kind] == pytest.approx(pj, rel=1e-9), kind


def test_attention_scores_are_written_and_read_twice_at_activation_precision(edge):
    from neurosim.cost.chips import Chips
    from neurosim.cost.estimate import evaluate
    from neurosim.ir import Attention

    arch = _cores(edge, count=1, levels=None, dataflow=None)
    layers = [Layer("q", "linear", 4, 8, seq_len=3, timesteps=2, neuron=None, compute="mac"),
              Layer("k", "linear", 4, 8, seq_len=3, timesteps=2, rate=0.5),
              Layer("v", "linear", 4, 8, seq_len=3, timesteps=2, rate=0.5),
              Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], seq_len=3, timesteps=2,
                    spec=Attention(2, 4, np.array([1, 0])), rate=0.25)]
    net = Network("scores", layers, input_size=4, input_rate=0.5)
    costs = evaluate(net, Chips.of(arch), arch.energy, "sequential", "spikes")
    # one live head x 3 x 3 (query, key) pairs x 2 steps = 18 scores, each stored twice (Q.K^T's, the
    # softmax's) at 32 bits; beside them the 4 live outputs' membranes, 3 tokens x 2 steps, 32 bits each
    assert costs.layer_events.core_write_bits[0, 3] == 2 * 18 * 32 + 4 * 3 * 2 * 32
    assert simulate(net, arch, "sequential", "spikes").energy_breakdown_pj["sram"] == pytest.approx(
        estimate(net, arch, "sequential", "spikes").energy_breakdown_pj["sram"], rel=1e-9)


def test_a_multilevel_neuron_carries_its_event_count_and_its_value_sum(edge):
    from neurosim.cost.chips import Chips
    from neurosim.cost.estimate import evaluate

    arch = _cores(edge, count=1)
    costs = evaluate(_gif_chain(), Chips.of(arch), arch.energy, "sequential", "rates")
    # a (3 levels, 2 steps): events 0..2 in ceil(log2 3) = 2 bits and a value sum 0..6 in ceil(log2 7) = 3 bits,
    # for each of its 2 neurons and 1 token; b (binary) carries its event count alone: 2 x 2 bits
    assert costs.layer_events.buffer_write_bits[0].tolist() == [2 * (2 + 3), 2 * 2]


def test_ac_lanes_beyond_a_layers_accumulators_idle(edge):
    # one token into 2 neurons: 2 accumulators. Input spikes every step: 4 x 2 = 8 ACs and 2 neuron updates a
    # step, 10 AC-path ops, which 64 lanes would do in one cycle but 2 accumulators take 5 cycles for
    net = Network("narrow", [Layer("fc", "linear", 4, 2, timesteps=3, rate=0.5)], input_size=4, input_rate=1.0)
    wide = _cores(edge, count=1, acs_per_cycle=64, levels=None, dataflow=None)
    for run in (estimate, simulate):
        r = run(net, wide, "sequential", "spikes")
        assert r.acs == 3 * 8 and r.per_layer.set_index("layer").loc["fc", "cycles"] == 3 * 5


def test_mac_lanes_beyond_a_layers_accumulators_idle_unless_adder_trees_feed_them(edge):
    from neurosim.cost.chips import Chips
    from neurosim.cost.layout import compute_cycles

    # 2 tokens x 2 outputs = 4 accumulators, 16 MACs (the held input's product, once) on 64 MAC lanes: 4 MACs
    # a cycle, 4 cycles; with 16-input adder trees in front of each accumulator, all 64 lanes: a quarter cycle
    assert estimate(_current_fed(), edge, "sequential", "spikes").macs == 16
    for adds, cycles in ((1, 16 / 4), (16, 16 / 64)):
        arch = _cores(edge, count=1, macs_per_cycle=64, adds_per_accumulator=adds)
        assert compute_cycles(np.zeros(1), np.array([16.0]), np.ones(1, np.int64), Chips.of(arch),
                              np.array([4.0]))[0, 0] == cycles


def test_a_chip_that_cannot_hold_the_weights_says_what_its_whole_sram_holds():
    # SpikingBERT-4L's 108 MiB on Loihi's 128 cores of 128 KiB (16 MiB), no DRAM: the pool search finds no
    # size that fits, and the reason names the whole chip's SRAM, not the smallest pool's
    for run in (estimate, simulate):
        r = run(neurosim.load_model("spikingbert-4l"), load_arch("loihi"), "sequential", "spikes")
        assert not r.feasible and "in the 16.0 MiB of core SRAM" in " ".join(r.notes)
