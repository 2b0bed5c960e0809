"""Data reuse inside a core (cost.reuse): loop-nest counts against brute force, event-driven row fetches
by hand, today's per-op counts as the 'no reuse' dataflow, and the arch schema's memory levels."""

import itertools

import numpy as np
import pytest

from neurosim.arch import load_arch
from neurosim.cards import load_model
from neurosim.cost import layout, reuse
from neurosim.cost.chips import Chips
from neurosim.cost.workload import Workload
from neurosim.errors import NeurosimError
from neurosim.schema import validate
from neurosim.arch import ArchConfig


def brute_force(nest: reuse.LoopNest, read_first: bool = False) -> reuse.Accesses:
    """Run the nest iteration by iteration. Each level (and the datapath, a one-element level below all
    loops) holds the tile that the current indices of the loops above it select; when that changes, the
    new tile is read from the next level up (inputs, weights; outputs only if visited before or
    `read_first`) and an output tile is written back up. Counted in elements."""
    acc = reuse.Accesses()
    bounds = [lp.bound for lp in nest.loops]
    for tensor, dims in reuse.RELEVANT.items():
        chain = nest.chain(tensor)
        current = [None] * len(chain)
        seen = [set() for _ in chain]

        def tile_size(level):
            return int(np.prod([lp.bound for lp in nest.loops[level.position:] if lp.dim in dims]))

        def leave(i):   # the tile at chain[i] goes back up to chain[i + 1]
            acc.add("write", chain[i + 1].name, tensor, tile_size(chain[i]))
            if chain[i].name != reuse.DATAPATH:
                acc.add("read", chain[i].name, tensor, tile_size(chain[i]))

        for idx in itertools.product(*(range(b) for b in bounds)):
            for i, level in enumerate(chain[:-1]):
                key = tuple(v for v, lp in zip(idx[:level.position], nest.loops) if lp.dim in dims)
                if key == current[i]:
                    continue
                if tensor == "outputs" and current[i] is not None:
                    leave(i)
                current[i] = key
                if tensor != "outputs" or key in seen[i] or read_first:
                    acc.add("read", chain[i + 1].name, tensor, tile_size(level))
                    if level.name != reuse.DATAPATH:
                        acc.add("write", level.name, tensor, tile_size(level))
                seen[i].add(key)
        if tensor == "outputs":
            for i in range(len(chain) - 1):
                leave(i)
    return acc


def same(a: reuse.Accesses, b: reuse.Accesses) -> None:
    for book in ("reads", "writes"):
        x, y = getattr(a, book), getattr(b, book)
        keys = {k for k in set(x) | set(y) if x.get(k, 0) or y.get(k, 0)}
        assert {k: int(x.get(k, 0)) for k in keys} == {k: int(y.get(k, 0)) for k in keys}, book


DIMS = dict(m=4, k=6, n=8)
TILES = dict(m=2, k=3, n=4)
INNER = [("rf", ("weights", "inputs")), ("acc", ("outputs",))]
TOP = ("sram", ("weights", "inputs", "outputs"))


@pytest.mark.parametrize("stationary", ["weight", "output", "input"])
def test_gemm_accesses_per_level_equal_a_brute_force_run_of_the_loop_nest(stationary):
    nest = reuse.gemm_nest(DIMS, TILES, stationary, INNER, TOP)
    same(reuse.nest_accesses(nest), brute_force(nest))
    same(reuse.nest_accesses(nest, read_first=True), brute_force(nest, read_first=True))


def test_an_arbitrary_nest_with_three_levels_equals_brute_force():
    loops = [reuse.Loop("k", 2), reuse.Loop("m", 3), reuse.Loop("n", 2), reuse.Loop("m", 2),
             reuse.Loop("k", 3), reuse.Loop("n", 2)]
    levels = [reuse.Level("reg", ("weights",), 5), reuse.Level("buf", ("inputs", "outputs"), 2),
              reuse.Level("acc", ("outputs",), 4)]
    nest = reuse.LoopNest(loops, sorted(levels, key=lambda lv: -lv.position)
                          + [reuse.Level("dram", ("weights", "inputs", "outputs"), 0)])
    same(reuse.nest_accesses(nest), brute_force(nest))


def test_stationary_choices_read_the_sram_as_counted_by_hand():
    """4 x 6 x 8 GEMM (192 MACs), tiles 2 x 3 x 4: |W| = 48, |I| = 24, |O| = 32."""
    counts = {}
    for stationary in ("weight", "output", "input"):
        acc = reuse.nest_accesses(reuse.gemm_nest(DIMS, TILES, stationary, INNER, TOP))
        counts[stationary] = (acc.at("sram", "weights")[0], acc.at("sram", "inputs")[0], acc.at("sram", "outputs"))
    # weight-stationary: W once; I once per n tile (2); O written once per k tile (2), read back once
    assert counts["weight"] == (48, 48, (32, 64))
    # output-stationary: W once per m tile (2), I once per n tile (2), O written once, never read
    assert counts["output"] == (96, 48, (0, 32))
    # input-stationary: I once; W once per m tile (2); O per k tile as in weight-stationary
    assert counts["input"] == (96, 24, (32, 64))


def test_tiles_are_divisors_that_fill_the_levels_per_design_point():
    caps = {"outputs": np.array([8, 32, 1]), "weights": np.array([12, 48, 1]), "inputs": np.array([6, 24, 1])}
    tiles = reuse.gemm_tiles(DIMS, "output", caps)
    assert tiles["m"].tolist() == [2, 4, 1] and tiles["n"].tolist() == [4, 8, 1]
    assert tiles["k"].tolist() == [3, 6, 1]     # bounded by W (12 / 4) and I (6 / 2)


# -- spiking layers -----------------------------------------------------------------------------------------
RASTER = np.zeros((2, 4, 3), dtype=np.int8)    # [T = 2, tokens = 4, inputs = 3]
RASTER[0, 0, 0] = RASTER[0, 1, 0] = RASTER[0, 3, 0] = 1   # step 0, input 0: tokens 0, 1, 3
RASTER[0, 2, 2] = 1                                        # step 0, input 2: token 2
RASTER[1, 1, 1] = RASTER[1, 2, 1] = 1                      # step 1, input 1: tokens 1, 2


def test_row_fetches_from_a_hand_made_raster_are_counted_by_hand():
    assert reuse.active_inputs_exact(RASTER, token_tile=4, grouping="per_event") == 6    # one per spike
    # all 4 tokens in one tile: (t0, in0), (t0, in2), (t1, in1)
    assert reuse.active_inputs_exact(RASTER, token_tile=4, grouping="per_input") == 3
    # tiles {0,1}, {2,3}: t0 in0 in both; t0 in2 in the second; t1 in1 in both
    assert reuse.active_inputs_exact(RASTER, token_tile=2, grouping="per_input") == 5
    # tiles {0,1,2}, {3}: t0 in0 both; t0 in2 first; t1 in1 first
    assert reuse.active_inputs_exact(RASTER, token_tile=3, grouping="per_input") == 4


def test_expected_row_fetches_match_a_large_bernoulli_raster():
    rng = np.random.default_rng(0)
    rate, tile = 0.1, 8
    raster = rng.random((50, 20, 40)) < rate
    exact = reuse.active_inputs_exact(raster, tile, "per_input")
    expected = reuse.active_inputs_expected(rate, 20, tile, 40, 50, "per_input")
    # tiles of 8, 8, 4 tokens: 40 x 50 x (2 (1 - 0.9^8) + (1 - 0.9^4))
    assert expected == pytest.approx(2000 * (2 * (1 - 0.9**8) + 1 - 0.9**4))
    assert exact == pytest.approx(expected, rel=0.03)


def test_event_layer_accesses_follow_the_dataflow():
    layer = reuse.EventLayer(tokens=4, inputs=3, outputs=5, steps=2)
    acs = 6 * 5    # 6 spikes, each to 5 outputs
    active = reuse.active_inputs_exact(RASTER, 4, "per_input")
    grouped = reuse.event_accesses(layer, active, acs, "per_input", "held", "rf", "acc")
    assert grouped.at("core_sram", "weights") == (3 * 5, 0)       # three rows of five weights
    assert grouped.at("rf", "weights") == (acs, 3 * 5)
    assert grouped.at("core_sram", "outputs") == (40, 40)         # one per neuron update: 4 x 5 x 2
    assert grouped.at("acc", "outputs") == (acs + 40, acs + 40)
    per_event = reuse.event_accesses(layer, 6, acs, "per_event", "per_event", None, None)
    assert per_event.at("core_sram", "weights") == (acs, 0)
    assert per_event.at("core_sram", "outputs") == (acs + 40, acs + 40)


# -- 'no reuse' is today's model ---------------------------------------------------------------------------
def test_no_reuse_dataflow_reproduces_todays_core_sram_bits_on_shipped_layers():
    net = load_model("spiking-sentiment-2l")
    edge = load_arch("edge-45nm")
    arch = edge.model_copy(update={"cores": edge.cores.model_copy(update={"levels": None, "dataflow": None})})
    work, chips = Workload(net), Chips.of(arch)
    bits_w, bits_m = work.weight_bits, int(arch.precision.membrane_bits)
    for name in ("block1.q", "block1.intermediate"):
        i = work.names.index(name)
        only = np.zeros(work.L)
        only[i] = 1
        reads, writes = layout.core_access_bits(work, chips, False, work.acs * only, work.macs * only,
                                                work.neuron_updates * only, work.timesteps * only)
        tokens, outputs, steps = int(work.seq_len[i]), int(work.live[i]), int(work.timesteps[i])
        if work.spiking[i]:
            layer = reuse.EventLayer(tokens, 128, outputs, steps, int(work.state_words[i]))
            acc = reuse.event_accesses(layer, work.acs[i] / outputs, work.acs[i], "per_event", "held", None, None)
            state_bits = bits_m
        else:
            inputs = int(work.macs[i] // (tokens * outputs * steps))
            acc = reuse.nest_accesses(reuse.no_reuse_nest(tokens, inputs, outputs, steps), read_first=True)
            state_bits = int(arch.precision.activation_bits)
            assert acc.at("core_sram", "weights")[0] == work.macs[i]   # one weight read per MAC
        w_read = acc.at("core_sram", "weights")[0]
        o_read, o_write = acc.at("core_sram", "outputs")
        assert w_read * bits_w[i] + o_read * state_bits == pytest.approx(reads[0])
        assert o_write * state_bits == pytest.approx(writes[0])


# -- the arch schema ---------------------------------------------------------------------------------------
def _arch_with(levels, dataflow=None):
    data = load_arch("edge-45nm").model_dump()
    data["cores"]["levels"] = levels
    data["cores"]["dataflow"] = dataflow
    return validate(data, ArchConfig, "test.yaml")


RF = {"name": "rf", "bytes": 256, "holds": ["weights"], "width_bits": 64, "read_pj": 2.0, "write_pj": 2.6}


def test_an_arch_without_levels_keeps_no_reuse():
    data = load_arch("edge-45nm").model_dump()
    del data["cores"]["levels"], data["cores"]["dataflow"]
    cores = validate(data, ArchConfig, "test.yaml").cores
    assert cores.levels is None and cores.dataflow is None


def test_every_shipped_arch_has_cited_levels():
    for name in ("edge-45nm", "spatial-45nm-large", "loihi"):
        arch = load_arch(name)
        assert arch.cores.levels and arch.cores.dataflow is not None
        text = open(arch.path).read()
        for level in arch.cores.levels:
            block = text[text.index(f"name: {level.name}"):]
            for key in ("bytes:", "read_pj:", "write_pj:"):
                line = block[block.index(key):].splitlines()[0]
                assert "#" in line, (name, level.name, key)   # each number says where it comes from


def test_levels_are_read_and_priced_per_bit():
    arch = _arch_with([RF], {"stationary": "weight", "events": "per_input"})
    assert arch.cores.levels[0].pj_per_bit("read") == pytest.approx(2.0 / 64)
    assert arch.cores.dataflow.membranes == "held"


@pytest.mark.parametrize("levels, dataflow, words", [
    ([RF, dict(RF, holds=["outputs"])], None, "two levels are named 'rf'"),
    ([RF, dict(RF, name="acc")], None, "weights are held in two levels"),
    ([dict(RF, bytes=1 << 20)], None, "larger than the core SRAM"),
    ([dict(RF, width_bits=4096)], None, "width_bits <= 8 x bytes"),
    ([dict(RF, holds=["outputs"])], {"events": "per_input"}, "no level holds weights"),
    (None, {"events": "per_input"}, "the core has no levels"),
    ([dict(RF, holds=["weights", "weights"])], None, "names a tensor twice"),
])
def test_impossible_levels_are_refused_with_the_fix(levels, dataflow, words):
    with pytest.raises(NeurosimError) as err:
        _arch_with(levels, dataflow)
    assert words in str(err.value) and "cores" in str(err.value)


# -- ZigZag ------------------------------------------------------------------------------------------------
def _zigzag_script():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "analysis" / "reuse_vs_zigzag.py"
    spec = importlib.util.spec_from_file_location("reuse_vs_zigzag", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMALL = dict(m=8, k=12, n=16)
SMALL_LEVELS = [("weight_rf", ("weights",), 32, 0.03, 0.04), ("input_rf", ("inputs",), 32, 0.03, 0.04),
                ("accumulators", ("outputs",), 64, 0.04, 0.08),
                ("sram", ("weights", "inputs", "outputs"), 1024, 1.5, 1.5),
                ("dram", ("weights", "inputs", "outputs"), 1 << 20, 20.0, 20.0)]
SMALL_ORDER = [("k", 2), ("n", 4), ("m", 4), ("k", 6), ("m", 2), ("n", 4)]   # innermost first


def test_zigzag_counts_the_same_nest_as_neurosim_at_every_level():
    pytest.importorskip("zigzag")
    zz = _zigzag_script()
    macs = SMALL["m"] * SMALL["k"] * SMALL["n"]
    # ZigZag's memories as given: all agree but the partial sums at the lowest output level, which ZigZag
    # reads and writes on every MAC (its MAC holds nothing) and neurosim once per run of the reduction
    # loop inside the MAC (k = 2: half as often)
    _, (mine, _), (theirs, _) = zz.compare(SMALL, SMALL_LEVELS, SMALL_ORDER)
    low = ("accumulators", "outputs")
    assert {k: v for k, v in mine.items() if k != low} == {k: v for k, v in theirs.items() if k != low}
    assert theirs[low] == (macs, macs) and mine[low] == (macs // 2, macs // 2)
    # with a one-element register for the partial sum in ZigZag (neurosim's datapath), all agree but that
    # register, and so does the energy outside it
    levels = [*SMALL_LEVELS[:2], ("psum_register", ("outputs",), 4, 0.0, 0.0), *SMALL_LEVELS[2:]]
    _, (mine, mine_pj), (theirs, theirs_pj) = zz.compare(SMALL, levels, SMALL_ORDER)
    reg = ("psum_register", "outputs")
    assert {k: v for k, v in mine.items() if k != reg} == {k: v for k, v in theirs.items() if k != reg}
    assert sum(mine_pj.values()) == pytest.approx(sum(theirs_pj.values()), rel=0.01)


# -- a network on design points (what the closed form will call) -------------------------------------------
def _one_layer(work, name):
    only = np.zeros(work.L)
    only[work.names.index(name)] = 1
    return only


def test_level_bits_of_a_real_layer_follow_its_output_stationary_nest_by_hand():
    """block1.q of the shipped model on edge-45nm: 32 tokens x 128 inputs x 128 outputs, 32 steps, fp32;
    RFs of 64 weights and 64 inputs, 256 accumulators: tiles m 16, n 16, k 4."""
    work, arch = Workload(load_model("spiking-sentiment-2l")), load_arch("edge-45nm")
    levels = reuse.CoreLevels([arch.model_dump()])
    only = _one_layer(work, "block1.q")
    bits = reuse.level_bits(work, levels, [32], [32], False, work.acs * only, work.macs * only,
                            work.neuron_updates * only)
    steps, macs = 32, 32 * 128 * 128
    # SRAM: W once per token tile (2), I once per output tile (8), outputs written once, never read back
    assert bits.sram_read[0].sum() == (128 * 128 * 2 + 32 * 128 * 8) * 32 * steps
    assert bits.sram_write[0].sum() == 32 * 128 * 32 * steps
    assert bits.read["weights"][0].sum() == macs * 32 * steps and bits.write["weights"][0].sum() == 128 * 128 * 2 * 32 * steps
    assert bits.read["inputs"][0].sum() == macs * 32 * steps and bits.write["inputs"][0].sum() == 32 * 128 * 8 * 32 * steps
    # partial sums: 4 reduction steps inside the MAC, so 32 visits of each output; 31 of them read back
    visits = 32 * 128 * (128 // 4)
    assert bits.write["outputs"][0].sum() == visits * 32 * steps
    assert bits.read["outputs"][0].sum() == (visits - 32 * 128 + 32 * 128) * 32 * steps


def test_level_bits_of_a_spiking_layer_fetch_rows_per_input_and_token_tile():
    """block1.intermediate on edge-45nm: 128 inputs -> 256 outputs, 32 tokens, 32 steps; a row tile of 64
    weights; 256 membranes in the accumulators = 4 tokens x 64 outputs, so 8 token tiles."""
    work, arch = Workload(load_model("spiking-sentiment-2l")), load_arch("edge-45nm")
    levels = reuse.CoreLevels([arch.model_dump()])
    name = "block1.intermediate"
    i = work.names.index(name)
    only = _one_layer(work, name)
    bits = reuse.level_bits(work, levels, [32], [32], False, work.acs * only, work.macs * only,
                            work.neuron_updates * only)
    acs, updates = work.acs[i], 32 * 256 * 32
    rate = acs / (32 * 32 * 128 * 256)
    rows = 128 * 32 * 8 * (1 - (1 - rate) ** 4)
    assert bits.sram_read[0].sum() == pytest.approx((rows * 256 + updates) * 32)
    assert bits.sram_write[0].sum() == pytest.approx(updates * 32)
    assert bits.read["weights"][0].sum() == pytest.approx(acs * 32)
    assert bits.write["weights"][0].sum() == pytest.approx(rows * 256 * 32)
    assert bits.read["outputs"][0].sum() == pytest.approx((acs + updates) * 32)


def test_level_bits_vary_with_each_points_levels():
    """Two points in one call: the shipped levels, and a weight RF four times larger (fewer row tiles do
    not change the rows' weights, but larger token tiles share more rows)."""
    work = Workload(load_model("spiking-sentiment-2l"))
    base = load_arch("edge-45nm").model_dump()
    big = load_arch("edge-45nm").model_dump()
    big["cores"]["levels"][2] = dict(big["cores"]["levels"][2], bytes=4096)
    levels = reuse.CoreLevels([base, big])
    only = _one_layer(work, "block1.intermediate")
    bits = reuse.level_bits(work, levels, [32, 32], [32, 32], False, work.acs * only, work.macs * only,
                            work.neuron_updates * only)
    one = reuse.level_bits(work, reuse.CoreLevels([big]), [32], [32], False, work.acs * only, work.macs * only,
                           work.neuron_updates * only)
    assert bits.sram_read[1].sum() == one.sram_read[0].sum() < bits.sram_read[0].sum()


# -- wired into the closed form --------------------------------------------------------------------------------
def _without_levels(arch):
    return arch.model_copy(update={"cores": arch.cores.model_copy(update={"levels": None, "dataflow": None})})


def test_a_point_without_levels_is_priced_alike_beside_points_with_levels():
    from neurosim.cost.estimate import evaluate
    net, edge = load_model("spiking-sentiment-2l"), load_arch("edge-45nm")
    plain = _without_levels(edge)
    for mapping, carry in (("spatial", "spikes"), ("sequential", "rates")):
        both = evaluate(net, Chips([edge.model_dump(), plain.model_dump()]), edge.energy, mapping, carry)
        alone = evaluate(net, Chips.of(plain), edge.energy, mapping, carry)
        assert both.total_energy_pj[1] == alone.total_energy_pj[0]
        assert both.events.core_read_bits[1] == alone.events.core_read_bits[0]
        assert both.events.level_pj[1] == 0 < both.events.level_pj[0]


def test_levels_move_sram_bits_and_add_their_energy_to_the_sram_share():
    from neurosim.cost.estimate import estimate
    net, edge = load_model("spiking-sentiment-2l"), load_arch("edge-45nm")
    with_levels, plain = estimate(net, edge), estimate(net, _without_levels(edge))
    note = next(n for n in with_levels.notes if n.startswith("memory levels"))
    assert "weight_rf" in note and "accumulators" in note
    assert not any(n.startswith("memory levels") for n in plain.notes)
    # the same work: ops, latency inputs and compute energy do not move; only the SRAM share does
    assert with_levels.acs == plain.acs and with_levels.macs == plain.macs
    assert with_levels.energy_breakdown_pj["compute"] == plain.energy_breakdown_pj["compute"]
    work, chips = Workload(net), Chips.of(edge)
    bits = reuse.level_bits(work, chips.levels, [32], [32], False, work.acs, layout.macs(work, chips),
                            work.neuron_updates)
    level_pj = float(bits.level_pj(chips.levels).sum())
    sram_pj = edge.energy.sram_pj_per_bit(65536, "read")   # edge's 64 KB arrays: reads and writes priced alike
    reads, writes = layout.core_access_bits(work, Chips.of(_without_levels(edge)), False, work.acs,
                                            layout.macs(work, chips), work.neuron_updates, work.timesteps)
    core_after, core_plain = bits.sram_read.sum() + bits.sram_write.sum(), reads[0] + writes[0]
    moved = with_levels.energy_breakdown_pj["sram"] - plain.energy_breakdown_pj["sram"]
    assert moved == pytest.approx(level_pj + (core_after - core_plain) * sram_pj, rel=1e-9)
