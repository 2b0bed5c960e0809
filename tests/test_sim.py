"""The discrete-event simulator: counts equal their source, hand-worked timings, stalls, deadlocks,
and agreement with the closed form where their assumptions coincide (and the named causes where not)."""

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import neurosim
from neurosim.arch import load_arch
from neurosim.cost.analytic import structural_counts
from neurosim.cost.estimate import estimate
from neurosim.cost import layout
from neurosim.cost.chips import Chips
from neurosim.cost.workload import with_timesteps, workload
from neurosim.errors import NeurosimError
from neurosim.ir import NETWORK_INPUT, Layer, Network
from neurosim.sim import SimOptions, SimulationDeadlock, run_simulation, simulate
from test_reuse_ports import without_ports


# The shipped chips without their memory ports' widths: the hand counts and measured ratios here are about the
# engines' bounds, which ports leave as they are (tests/test_reuse_ports.py checks them with ports).
@pytest.fixture(scope="module")
def edge():
    return without_ports(load_arch("edge-45nm"))


@pytest.fixture(scope="module")
def large():
    return without_ports(load_arch("spatial-45nm-large"))


@pytest.fixture(scope="module")
def bert():
    return neurosim.load_model("spikingbert-4l")


def _chip(arch, cores=None, acs_per_cycle=None, link_bits=None, **update):
    c = {k: v for k, v in dict(count=cores, acs_per_cycle=acs_per_cycle).items() if v is not None}
    update["cores"] = arch.cores.model_copy(update=c)
    if link_bits is not None:
        update["interconnect"] = arch.interconnect.model_copy(update={"link_bits_per_cycle": link_bits})
    return arch.model_copy(update=update)


def _chain(n_layers, t=10):
    """n_layers of 2 -> 2 neurons, one token, every neuron spikes every step."""
    layers = [Layer(f"l{i}", "linear", 2, 2, inputs=[f"l{i - 1}"] if i else [], timesteps=t, rate=1.0)
              for i in range(n_layers)]
    return Network("chain", layers, input_size=2, input_rate=1.0)


def _compute_rows(report, component):
    tl = report.timeline
    return tl[(tl.component == component) & (tl.kind == "compute")].sort_values("start")


# -- counts ----------------------------------------------------------------------------------------------
def test_counts_from_rates_equal_the_structural_count_exactly(bert, large, edge):
    counts = structural_counts(bert)
    for arch, mapping, carry in ((large, "spatial", None), (large, "sequential", "spikes"),
                                 (edge, "sequential", "rates")):
        r = simulate(bert, arch, mapping, carry)
        for key in ("acs", "macs", "other_ops", "neuron_updates"):
            assert r.per_layer[key].tolist() == counts[key].tolist()     # per layer, bit for bit
        total = 0.0
        for v in counts.acs:
            total += v
        assert r.acs == total


class _FakeLayer:
    """A duck-typed trace entry with uneven integer work per step."""

    def __init__(self, acs, macs, other_ops, neuron_updates, spikes):
        self.timesteps = len(acs)
        self.acs_per_step = np.asarray(acs, np.int64)
        self.macs, self.other_ops, self.neuron_updates = macs, other_ops, neuron_updates
        self.spikes_per_step = None if spikes is None else np.asarray(spikes, np.int64)


def test_counts_from_a_trace_are_exact_and_drive_per_step_timing(edge):
    net = _chain(2, t=4)
    trace = {"l0": _FakeLayer([8, 0, 4, 3], 0, 0, 8, [2, 0, 1, 1]),
             "l1": _FakeLayer([4, 0, 2, 2], 7, 0, 8, [1, 1, 0, 2])}    # 7 MACs over 4 steps: 2, 2, 2, 1
    arch = _chip(edge, cores=2, acs_per_cycle=1)
    for mapping in ("spatial", "sequential"):
        r = simulate(net, arch, mapping, trace=trace, timeline=True)
        assert r.acs == 23 and r.macs == 7 and r.neuron_updates == 16
        assert r.per_layer.acs.tolist() == [15, 8]
    # spatial: one core per layer; step t of l0 takes ACs_t + 2 neuron updates cycles (1 AC per cycle)
    r = simulate(net, arch, "spatial", trace=trace, timeline=True)
    rows = _compute_rows(r, "tile l0")
    assert (rows.end - rows.start).tolist() == [10, 2, 6, 5]
    # l1: (ACs + 2) on the AC path plus MACs on the 4-per-cycle MAC path, 6.5, 2.5, 4.5 and 4.25 cycles,
    # each step rounded up to whole cycles
    rows = _compute_rows(r, "tile l1")
    assert (rows.end - rows.start).tolist() == [7, 3, 5, 5]


def test_counts_from_the_spike_engine_trace_equal_its_totals(edge):
    from neurosim import spikes
    net = spikes.random_weights(neurosim.load_model("tiny-encoder"), seed=0)
    for handoff, mapping, carry in (("lockstep", "spatial", None), ("history", "sequential", "spikes"),
                                    ("stochastic", "sequential", "rates")):
        trace = spikes.run(net, handoff=handoff, seed=3)
        r = simulate(net, edge, mapping, carry, trace=trace)
        assert r.acs == trace.acs and r.macs == trace.macs and r.other_ops == trace.other_ops
        assert r.per_layer.acs.tolist() == [lt.acs for lt in trace.layers.values()]


def test_a_spatial_trace_must_be_lockstep(edge):
    trace = {"l0": _FakeLayer([1, 1], 0, 0, 4, [1, 1]), "l1": _FakeLayer([1], 0, 0, 2, [1])}
    with pytest.raises(NeurosimError, match="lockstep"):
        simulate(_chain(2, t=2), edge, "spatial", trace=trace)


# -- hand-worked timings ---------------------------------------------------------------------------------
def test_one_layer_on_one_core_by_hand(edge):
    arch = _chip(edge, cores=1, acs_per_cycle=2)
    net = Network("one", [Layer("fc", "linear", 4, 2, timesteps=3, weight_bits=8, rate=0.5)],
                  input_size=4, input_rate=0.5)
    # per step: 0.5 x 4 inputs x 2 outputs = 4 ACs + 2 neuron updates = 6 ops / 2 per cycle = 3 cycles.
    # The spatial pipeline first waits for step 0 of the input (2 packets of 32 bits over one hop, on a
    # one-core mesh of 2 x 64 bits per cycle: 0.5 cycles; later steps stream in while it computes), and
    # ends when the last step's spike (32 bits, 0.25 cycles) has left through the port.
    for mapping, carry in (("sequential", "spikes"), ("sequential", "rates"), ("spatial", None)):
        r = simulate(net, arch, mapping, carry, timeline=True)
        first, last = (0.5, 0.25) if mapping == "spatial" else (0, 0)
        assert r.latency_cycles == first + 9 + last and r.acs == 12 and r.neuron_updates == 6
        rows = _compute_rows(r, "cores" if mapping == "sequential" else "tile fc")
        assert list(zip(rows.start, rows.end, rows.timestep)) == [(first + 3 * t, first + 3 * t + 3, t)
                                                                   for t in range(3)]
        assert r.stall_cycles == 0 and r.utilization["cores"] == 9 / r.latency_cycles
        assert r.energy_breakdown_pj["compute"] == pytest.approx(12 * 0.9 + 6 * 6.4)
        assert r.energy_breakdown_pj["leakage"] == pytest.approx(0.020 * r.latency_cycles / 200e6 * 1e12)


def test_two_layer_spatial_pipeline_is_fill_plus_t_stages(edge):
    # each layer on its own core: per step 2 x 2 ACs + 2 neuron updates = 6 cycles (1 AC per cycle).
    # l0's 2 spikes per step go to l1's one core as 2 x 32-bit packets over a 2 x 2 mesh of 4 links x 2
    # directions x 8 bits at 1 hop on average: 64 bits / 64 bits per cycle = 1 cycle. So do the input's 2
    # packets per step from the port (1 hop from the centre) and l1's 2 leaving: the pipeline waits 1 cycle
    # for the first input and ends 1 cycle after l1's last step.
    arch = _chip(edge, cores=2, acs_per_cycle=1, link_bits=8)
    r = simulate(_chain(2), arch, "spatial", timeline=True)
    stage, hop, T = 6, 1, 10
    assert r.latency_cycles == hop + (stage + hop) + T * stage + hop == 69     # input, fill, T x stage, out
    assert _compute_rows(r, "tile l1").start.tolist() == [hop + stage + hop + stage * t for t in range(T)]
    assert r.stall_cycles == 0
    # the closed form charges (T + depth - 1) x stage and no network hop on the fill
    assert estimate(_chain(2), arch, "spatial").latency_cycles == 66


def test_single_step_buffer_forces_the_stall_pattern_worked_by_hand(edge):
    # As above, but l0's output buffer holds one step. A step's spikes are emitted at its end and stay
    # until l1 has finished that step; the hop over the network keeps the slot busy one cycle longer than
    # l0 needs for its next step. By hand: the input's step 0 arrives at 1; l0 emits step 0 at 7, it
    # arrives at 8, l1 runs [8, 14] and frees the slot at 14; l0 finished step 1 at 13 and waits [13, 14];
    # its step 1 goes before l1's step 0 leaving the chip (both due in pipeline slot 2, and data that a
    # layer waits for goes first); from then on every step t >= 1 of l0 runs [7t, 7t + 6] and waits
    # [7t + 6, 7t + 7]; l1 runs [7t + 8, 7t + 14], idle one cycle before; its last step leaves at 78.
    arch = _chip(edge, cores=2, acs_per_cycle=1, link_bits=8)
    T = 10
    r = simulate(_chain(2), arch, "spatial", timeline=True, options=SimOptions(buffer_steps=1))
    assert r.latency_cycles == 1 + 7 * (T - 1) + 13 + 1 == 78
    assert _compute_rows(r, "tile l0").start.tolist() == [1] + [7 * t for t in range(1, T)]
    assert _compute_rows(r, "tile l1").start.tolist() == [7 * t + 8 for t in range(T)]
    tl = r.timeline
    stalls = tl[(tl.component == "tile l0") & (tl.kind == "stall")].sort_values("start")
    assert list(zip(stalls.start, stalls.end, stalls.timestep)) == [(7 * t + 6, 7 * t + 7, t) for t in range(1, T)]
    assert r.stall_cycles == T - 1                                        # back-pressure on l0 only
    row = r.per_layer.set_index("layer")
    assert row.loc["l0", "stall_output_cycles"] == 9 and row.loc["l1", "stall_output_cycles"] == 0
    assert row.loc["l1", "idle_input_cycles"] == 9                         # l1 starves as long
    assert row.loc["l0", "peak_buffer_bytes"] == 2 / 8                     # one step of 2 spike bits
    assert any("back-pressure" in n for n in r.notes)
    # double buffering hides the hop entirely:
    assert simulate(_chain(2), arch, "spatial").stall_cycles == 0


def test_sequential_weights_that_do_not_fit_wait_for_dram(edge):
    # 4 -> 256 fp32 weights (4 KiB) + 256 membranes (1 KiB) on one core of 2 KiB SRAM:
    # pinned: none (half of 2048 - 1024 B < 4 KiB); passes = ceil(5 KiB / 2 KiB) = 3, each loads 4096/3 B
    # from DRAM (64 B per cycle) before it computes: 21.33 cycles per pass, never hidden.
    arch = _chip(edge, cores=1, acs_per_cycle=1, link_bits=1024)     # a network fast enough not to matter
    arch = arch.model_copy(update={"cores": arch.cores.model_copy(update={"sram_bytes": 2048})})
    net = Network("wide", [Layer("fc", "linear", 4, 256, timesteps=2, rate=0.5)], input_size=4, input_rate=0.5)
    r = simulate(net, arch, "sequential", "rates")
    load = 4096 / 3 / 64
    compute = (2 * 0.5 * 4 * 256 + 2 * 256) / 3            # ACs + neuron updates per pass, 1 per cycle
    assert r.per_layer.passes[0] == 3
    assert r.latency_cycles == pytest.approx(3 * (load + compute))
    assert r.per_layer.stall_weight_cycles[0] == pytest.approx(3 * load)
    assert r.dram_traffic_bytes == pytest.approx(4096)


def _wide(readers_of_a=("b",)):
    """64-neuron layers over 8 tokens, t = 15: a history is 8 x 64 x 15 bits = 960 B, a step 64 B."""
    layers = [Layer("a", "linear", 64, 64, seq_len=8, timesteps=15, rate=0.2)]
    layers += [Layer(n, "linear", 64, 64, inputs=["a"], seq_len=8, timesteps=15, rate=0.2) for n in readers_of_a]
    return Network("wide", layers, input_size=64, input_rate=0.2)


def test_rates_hold_less_inter_layer_memory_than_spikes_by_the_bit_ratio(edge):
    # a history is 15 bits per neuron and token, a count ceil(log2 16) = 4
    net = _wide()
    spikes = simulate(net, edge, "sequential", "spikes").memory_bytes["spike_buffers"]
    rates = simulate(net, edge, "sequential", "rates").memory_bytes["spike_buffers"]
    assert spikes == 2 * 8 * 64 * 15 / 8          # both histories in the global buffer while b runs
    assert rates == 2 * 8 * 64 * 4 / 8
    assert spikes / rates == 15 / math.ceil(math.log2(15 + 1))


# -- simulator vs closed form ---------------------------------------------------------------------------
ENERGY_KEYS = ("compute", "sram", "dram", "interconnect")


def _assert_same_events(sim, closed, rel=1e-9):
    """Everything but leakage (static power x each model's own latency) comes from identical event counts."""
    for key in ENERGY_KEYS:
        assert sim.energy_breakdown_pj[key] == pytest.approx(closed.energy_breakdown_pj[key], rel=rel, abs=1e-6)
    assert sim.dram_traffic_bytes == pytest.approx(closed.dram_traffic_bytes, rel=rel, abs=1e-6)


def test_sequential_agrees_with_the_closed_form_without_contention(large):
    # Stated tolerance: with weights pinned, no spill and spike histories carried, every task is bound by
    # the same resource the closed form picks, so each layer's time and the energy agree to 1e-9
    # (rounding). Named exception: a layer reading the network's constant real input gets it whole before
    # its first step (the closed form spreads it over the layer), so it is slower by at most that transfer.
    for model in ("tiny-encoder", "spiking-sentiment-2l"):
        net = neurosim.load_model(model)
        sim, closed = simulate(net, large, "sequential", "spikes"), estimate(net, large, "sequential", "spikes")
        work, chips = workload(net, False), Chips.of(large)
        to_pool = layout.PoolTraffic(chips).to_pool[0]
        arrives = layout.input_bits(work, chips)[0] * to_pool / chips.mesh_bits_per_cycle[0]
        slower = sim.per_layer.cycles.to_numpy() - closed.per_layer.cycles.to_numpy()
        reads_input = (arrives > 0) & (not net.input_spiking)
        assert np.all(slower[reads_input] <= arrives[reads_input] * (1 + 1e-9))
        assert slower[~reads_input] == pytest.approx(0, abs=1e-6)
        assert sim.latency_cycles == pytest.approx(closed.latency_cycles + slower.sum(), rel=1e-9)
        _assert_same_events(sim, closed)


def test_spatial_with_equal_stages_agrees_up_to_the_network_hops(edge):
    # Stated tolerance: equal stages, ample buffers, no network contention -> the simulated pipeline is
    # the closed form's (T + depth - 1) x stage plus one network hop per layer boundary on the fill, one
    # for the first input to arrive and one for the last output to leave.
    arch = _chip(edge, cores=3, acs_per_cycle=1, link_bits=8)
    net = _chain(3)
    sim, closed = simulate(net, arch, "spatial"), estimate(net, arch, "spatial")
    hop = 1   # 3 cores sit on a 2 x 2 mesh, as above: 64 bits of spikes per step in 1 cycle
    assert closed.latency_cycles == (10 + 3 - 1) * 6
    assert sim.latency_cycles == pytest.approx(closed.latency_cycles + 2 * hop + 2 * hop)
    _assert_same_events(sim, closed)


def _critical_path(report, net, T):
    """Ample buffers: finish(l, t) = max(finish(l, t-1), arrival of each source's step t) + stage(l).

    Arrivals are the network transfers' ends (transfers that finish at the same instant queue for a
    moment behind each other on the one network server; with a fast network that is all they do)."""
    tl = report.timeline
    arrival = tl[tl.component == "interconnect"].set_index(["layer", "timestep"])["end"]
    stage = report.per_layer.set_index("layer")["busy_cycles"] / T
    finish = {}
    for layer in net.layers:
        prev = 0.0
        for t in range(T):
            sources = layer.inputs or [f"{NETWORK_INPUT} -> {layer.name}"]    # the input streams in from the port
            ready = max([prev] + [arrival[s, t] for s in sources])
            finish[layer.name, t] = prev = ready + stage[layer.name]
    return max(finish.values())


def test_spatial_fill_differs_from_the_closed_form_by_the_critical_path(bert, large):
    # Named cause: pipeline fill. The closed form charges (depth - 1) slowest stages for the fill; the
    # simulator follows each layer's own stage time along the critical path. With the network made fast
    # and buffers ample, the simulated latency is exactly that critical path.
    fast = large.model_copy(update={"interconnect": large.interconnect.model_copy(
        update={"link_bits_per_cycle": 2**20})})
    net = neurosim.load_model("tiny-encoder")
    T = net.max_timesteps
    r = simulate(net, fast, "spatial", timeline=True, options=SimOptions(buffer_steps=100))
    assert r.latency_cycles == pytest.approx(_critical_path(r, with_timesteps(net, T), T), rel=1e-6)
    # On SpikingBERT-4L the slowest stage (attention) sets the pace: sim between T x slowest stage and the
    # closed form, 11% below it at T = 85 (measured; see benchmarks/results/simulator.md).
    sim, closed = simulate(bert, large, "spatial"), estimate(bert, large, "spatial")
    slowest = sim.per_layer.busy_cycles.max() / 85
    assert 85 * slowest < sim.latency_cycles < closed.latency_cycles
    assert sim.latency_cycles / closed.latency_cycles == pytest.approx(0.888, abs=0.005)
    _assert_same_events(sim, closed)


def test_network_contention_makes_the_simulator_slower_than_the_closed_form(large):
    # Named cause: contention. With 2-bit links the spatial pipeline of the shipped 2-layer model is bound
    # by the network even at its smallest allocation, and the closed form charges total bits / network
    # bandwidth. The simulator moves the same bits (the network is busy exactly that long) but transfers
    # arrive in bursts at step ends and queue, and the fill is not hidden: slower, though only slightly,
    # since the network serves the data the pipeline waits for first (by pipeline slot).
    net = neurosim.load_model("spiking-sentiment-2l")
    narrow = large.model_copy(update={"interconnect": large.interconnect.model_copy(
        update={"link_bits_per_cycle": 2})}).loaded_from(large.path, large.energy)
    sim, closed = simulate(net, narrow, "spatial"), estimate(net, narrow, "spatial")
    assert "latency bound by the on-chip network" in closed.notes
    assert sim.utilization["interconnect"] * sim.latency_cycles == pytest.approx(closed.latency_cycles, rel=1e-9)
    assert closed.latency_cycles < sim.latency_cycles < 1.02 * closed.latency_cycles
    assert any("interconnect contention" in n for n in sim.notes)
    _assert_same_events(sim, closed)


def test_weight_reloads_make_the_simulator_slower_than_the_closed_form(bert, edge):
    # Named causes: reloads, and the network they share. On the edge chip every layer streams its weights;
    # a pass fills more than half of the free SRAM, so the next pass cannot be prefetched and compute waits
    # for each load, which the closed form hides behind compute. The loads cross the network that also
    # broadcasts the pool's inputs, so tasks also wait for their transfers behind them (the closed form
    # overlaps the two). The difference is those two waits.
    sim, closed = simulate(bert, edge, "sequential", "rates"), estimate(bert, edge, "sequential", "rates")
    waits = sim.per_layer.stall_weight_cycles.sum()
    transfers = sim.per_layer.stall_memory_cycles.sum()
    assert waits > 0 and transfers > 0 and sim.latency_cycles > closed.latency_cycles
    assert sim.latency_cycles - closed.latency_cycles == pytest.approx(waits + transfers, rel=0.01)
    assert any("streamed from DRAM" in n for n in sim.notes)


def test_spills_follow_real_lifetimes_in_both_models(bert, large):
    # Carrying spikes, the Query's fp32 history overflows the 4 MB buffer. Both models keep each history
    # until its last reader ran and send only what overflows to DRAM, once, read by each pass of each
    # reader: the spill per layer, the DRAM traffic and energy, and the buffer's peak agree exactly.
    sim, closed = simulate(bert, large, "sequential", "spikes"), estimate(bert, large, "sequential", "spikes")
    assert sim.per_layer.spill_bytes.sum() > 0 and sim.memory_bytes["spike_buffers"] == large.global_buffer.bytes
    assert closed.memory_bytes["spike_buffers"] == large.global_buffer.bytes
    assert list(sim.per_layer.spill_bytes) == pytest.approx(list(closed.per_layer.spill_bytes), rel=1e-12)
    assert sim.dram_traffic_bytes == pytest.approx(closed.dram_traffic_bytes, rel=1e-12)
    for part in ("compute", "sram", "dram", "interconnect"):
        assert sim.energy_breakdown_pj[part] == pytest.approx(closed.energy_breakdown_pj[part], rel=1e-12)
    # the Query's history (85 steps x 128 tokens x 768 fp32 values) is written first, into an empty buffer
    q_spill = closed.per_layer.set_index("layer").spill_bytes["block0.q"]
    assert q_spill == 85 * 128 * 768 * 32 / 8 - large.global_buffer.bytes


# -- determinism, infeasible, deadlock ------------------------------------------------------------------
def test_same_seed_same_report(bert, edge):
    a = simulate(bert, edge, "sequential", "spikes", seed=7, timeline=True)
    b = simulate(bert, edge, "sequential", "spikes", seed=7, timeline=True)
    assert a.to_dict() == b.to_dict()
    pd.testing.assert_frame_equal(a.per_layer, b.per_layer)
    pd.testing.assert_frame_equal(a.timeline, b.timeline)


def test_infeasible_spatial_mapping_reports_the_shortfall(bert, edge):
    r = simulate(bert, edge, "spatial")
    assert not r.feasible and r.engine == "simulator" and r.energy_pj is None
    assert "short by 2028" in r.notes[0]


def test_deadlock_names_the_blocked_buffer(edge):
    # No DRAM. a feeds b and c; b is a network output. Each history is 8 tokens x 64 x 15 bits = 960 B.
    # One layer's input + output (1920 B) fits the 2500 B buffer. But while c runs, a's history (c still
    # reads it) and b's (kept as output) are held: 1920 B, and c's 960 B cannot fit. Nothing will ever
    # free them -> the simulator reports a deadlock, not a hang; the closed form, which follows the same
    # lifetimes, reports the mapping infeasible.
    net = _wide(readers_of_a=("b", "c"))
    arch = edge.model_copy(update={"dram": None, "global_buffer": edge.global_buffer.model_copy(
        update={"bytes": 2500})})
    closed = estimate(net, arch, "sequential", "spikes")
    assert not closed.feasible and "layer 'c' keeps 2880 B" in closed.notes[0] and "no DRAM" in closed.notes[0]
    with pytest.raises(SimulationDeadlock) as err:
        simulate(net, arch, "sequential", "spikes")
    e = err.value
    assert e.field.startswith("global_buffer")
    assert "core pool waits for" in e.problem and "layer 'c'" in e.problem
    assert "'a' (960 B)" in e.problem and "'b' (960 B)" in e.problem
    assert "deadlock" in e.problem and "global_buffer.bytes" in e.fix
    # with room for the three histories it runs
    roomy = arch.model_copy(update={"global_buffer": edge.global_buffer.model_copy(update={"bytes": 2880})})
    assert simulate(net, roomy, "sequential", "spikes").memory_bytes["spike_buffers"] == 2880


def test_a_deadlock_is_seen_through_simpys_public_api_only(edge):
    # The run loop peeks at the next event time (an empty schedule peeks as infinity) instead of reading
    # simpy's queue or matching the text of its error; a step's arrival is a number, not an event whose
    # private fields are set by hand. No module of the simulator touches another object's private names.
    sim_dir = Path(neurosim.__file__).parent / "sim"
    for path in sorted(sim_dir.glob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                assert isinstance(node.value, ast.Name) and node.value.id == "self", \
                    f"{path.name}:{node.lineno} reads .{node.attr}"
        assert "No scheduled events" not in source
    # the deadlock of test_deadlock_names_the_blocked_buffer, found with the queue empty
    net = _wide(readers_of_a=("b", "c"))
    arch = edge.model_copy(update={"dram": None, "global_buffer": edge.global_buffer.model_copy(
        update={"bytes": 2500})})
    with pytest.raises(SimulationDeadlock, match=r"the event queue emptied at cycle [\d.]+ with work left"):
        simulate(net, arch, "sequential", "spikes")


def test_the_simulated_time_limit_stops_a_run_and_says_where_it_was(edge):
    # The guard against a run that never finishes, here set far too low: by cycle 30 l0 has finished steps
    # 0-3 (6 cycles each, after the first input's 1-cycle hop) and l1, one step and a hop behind, steps
    # 0-2; each tile says where it was.
    arch = _chip(edge, cores=2, acs_per_cycle=1, link_bits=8)
    with pytest.raises(SimulationDeadlock, match="simulated-time limit of 30 cycles") as err:
        simulate(_chain(2), arch, "spatial", options=SimOptions(time_limit_cycles=30))
    assert err.value.blocked == ["tile l0 was busy (pass 0, 4 steps done)", "tile l1 was busy (pass 0, 3 steps done)"]


def test_a_buffer_smaller_than_one_step_is_refused(edge):
    with pytest.raises(NeurosimError, match="buffer_steps"):
        simulate(_chain(2), _chip(edge, cores=2), "spatial", options=SimOptions(buffer_steps=0.5))
    tiny_gb = edge.model_copy(update={"global_buffer": edge.global_buffer.model_copy(update={"bytes": 63})})
    with pytest.raises(NeurosimError, match="global_buffer.bytes"):
        simulate(_wide(), tiny_gb, "sequential")          # one step of a layer is 64 B


def test_run_stats_and_report_fields(bert, large):
    r, stats = run_simulation(bert, large, "spatial")
    assert stats.tasks == 28 * 85 and stats.events > 0
    assert set(r.utilization) == {"cores", "dram", "global_buffer", "interconnect"}
    assert 0 < r.utilization["cores"] <= 1
    assert set(r.memory_bytes) == {"weights", "membrane", "spike_buffers", "peak_on_chip"}
    assert "timeline" not in r.to_dict() and r.timeline is None
    assert r.per_layer.seconds.tolist() == pytest.approx((r.per_layer.cycles / large.clock_hz).tolist())
