"""Decoder workloads (neurosim.llm, decoder cards, ir.CausalAttention / ElementOps): counts, KV cache,
weight traffic, batch, links, chips needed, computed by hand on a one-block decoder."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from neurosim.arch import load_arch
from neurosim.cards import DecoderCard, DecoderPhase, decoder_network, load_decoder_card
from neurosim.cost.analytic import structural_counts
from neurosim.cost.chips import Chips
from neurosim.cost.layout import SequentialWeights
from neurosim.cost.workload import workload
from neurosim.errors import NeurosimError
from neurosim.ir import CausalAttention, ElementOps, Layer, Network
from neurosim.llm import run_workload
from neurosim.llm.memory import kv_access, kv_bits_per_token
from neurosim.llm.plan import decode_runs, groups
from neurosim.paths import ARCH_DIR
from neurosim.schema import validate

D, HEADS, KV_HEADS, HD, INTER, VOCAB, T = 8, 2, 1, 4, 12, 10, 2
RATES = dict(attn=0.5, o=0.25, mlp=0.5, down=0.75, head=1.0)


def card_data(**change) -> dict:
    data = dict(name="one-block", kind="spiking_decoder", source="test", layers=1, hidden=D, heads=HEADS,
                kv_heads=KV_HEADS, intermediate=INTER, vocab=VOCAB, context=64, weight_bits=8, kv_bits=16,
                spiking=dict(neuron=dict(model="lif"), timesteps=T, rates=dict(RATES)), rates_source="test",
                workload=dict(prompt=3, generate=4, batch=2))
    data.update(change)
    return data


def card(**change) -> DecoderCard:
    return validate(card_data(**change), DecoderCard, "test card")


def arch_data(**change) -> dict:
    data = yaml.safe_load((ARCH_DIR / "llm-45nm-hbm3-x4.yaml").read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split("__")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
    return data


def arch(tmp_path: Path, **change):
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(arch_data(**change)))
    return load_arch(path)


def counts(net: Network) -> dict:
    return structural_counts(net).set_index("layer").to_dict(orient="index")


# -- the IR of one block, counted by hand -------------------------------------------------------------
def test_one_block_prefill_counts_by_hand():
    b, n = 2, 3
    c = counts(decoder_network(card(), DecoderPhase(b, n)))
    tokens = b * n
    # q: spikes of the attention norm (rate 0.5) over T steps into a D x (HEADS x HD) projection
    assert c["block0.q"]["acs"] == tokens * T * 0.5 * D * HEADS * HD
    assert c["block0.k"]["acs"] == tokens * T * 0.5 * D * KV_HEADS * HD
    assert c["block0.o"]["acs"] == tokens * T * 0.25 * HEADS * HD * D
    assert c["block0.gate"]["acs"] == tokens * T * 0.5 * D * INTER
    assert c["block0.down"]["acs"] == tokens * T * 0.75 * INTER * D
    # causal prefill: each sequence's query i sees keys 0..i: 1 + 2 + 3 = 6 pairs, real K and V
    pairs = b * 6
    assert c["block0.attention"]["macs"] == 2 * HEADS * pairs * HD
    assert c["block0.attention"]["acs"] == 0
    assert c["block0.attention"]["other_ops"] == HEADS * pairs * 3       # softmax: exp, sum, divide
    # only each sequence's last token reaches the LM head (its norm spikes at rate 1.0)
    assert c["lm_head"]["acs"] == b * T * 1.0 * D * VOCAB
    assert c["block0.silu"]["other_ops"] == tokens * INTER * 5
    assert c["block0.attn_norm"]["neuron_updates"] == tokens * T * D


def test_a_decode_step_attends_to_the_cache_and_itself():
    b, past = 2, 7
    c = counts(decoder_network(card(), DecoderPhase(b, 1, past)))
    assert c["block0.attention"]["macs"] == 2 * HEADS * b * (past + 1) * HD
    assert c["block0.q"]["acs"] == b * T * 0.5 * D * HEADS * HD


def test_mac_based_card_has_no_acs_and_one_step():
    net = decoder_network(card(), DecoderPhase(2, 3), mac_based=True)
    c = counts(net)
    assert all(row["acs"] == 0 for row in c.values())
    assert c["block0.up"]["macs"] == 6 * D * INTER and c["lm_head"]["macs"] == 2 * D * VOCAB
    assert {layer.timesteps for layer in net.layers} == {1}


def test_spiking_attention_operands_are_accumulates_at_their_rates():
    spiking = card(attention=dict(scores="spiking", mix="spiking"),
                   spiking=dict(neuron=dict(model="lif"), timesteps=T, rates=dict(RATES, k=0.2, v=0.4)))
    c = counts(decoder_network(spiking, DecoderPhase(1, 1, 5)))
    per_operand = HEADS * 6 * HD * T
    assert c["block0.attention"]["acs"] == pytest.approx(per_operand * (0.2 + 0.4))
    assert c["block0.attention"]["macs"] == 0


def test_kv_bits_per_token_by_hand():
    real = decoder_network(card(), DecoderPhase(1, 1))
    assert kv_bits_per_token(real) == 2 * KV_HEADS * HD * 16
    gif = card(attention=dict(mix="spiking"), spiking=dict(neuron=dict(model="gif", levels=3), timesteps=T,
                                                           rates=dict(RATES, v=0.5)))
    # V as GIF spikes: T steps of 2-bit values; K stays fp16
    assert kv_bits_per_token(decoder_network(gif, DecoderPhase(1, 1))) == KV_HEADS * HD * (16 + T * 2)


def test_grouped_query_attention_reads_narrower_keys():
    net = decoder_network(card(), DecoderPhase(1, 1))
    assert net["block0.k"].out_features == KV_HEADS * HD and net["block0.q"].out_features == HEADS * HD


# -- the IR refuses what a decoder cannot be --------------------------------------------------------
def test_heads_not_divisible_by_kv_heads_is_refused():
    q = Layer("q", "linear", 4, 6)
    k = Layer("k", "linear", 4, 2)
    att = Layer("att", "causal_attention", 6, 6, inputs=["q", "k", "k"], spec=CausalAttention(3, 2, 2), neuron=None)
    with pytest.raises(NeurosimError) as exc:
        Network("n", [q, k, att], input_size=4)
    assert exc.value.field == "spec.kv_heads"


def test_queries_that_do_not_split_into_sequences_are_refused():
    q = Layer("q", "linear", 4, 4, seq_len=5)
    att = Layer("att", "causal_attention", 4, 4, inputs=["q", "q", "q"], seq_len=5, neuron=None,
                spec=CausalAttention(2, 2, 2, sequences=2))
    with pytest.raises(NeurosimError) as exc:
        Network("n", [q, att], input_size=4, )
    assert exc.value.field == "seq_len"


def test_unknown_elementwise_op_is_refused():
    with pytest.raises(NeurosimError) as exc:
        Network("n", [Layer("e", "elementwise", 4, 4, spec=ElementOps("gelu"))], input_size=4)
    assert exc.value.field == "spec.op" and "rmsnorm" in exc.value.fix


@pytest.mark.parametrize("change, key", [
    (dict(heads=3), "heads"),                                            # 8 not a multiple of 3
    (dict(kv_heads=3), "kv_heads"),
    (dict(workload=dict(prompt=60, generate=10, batch=1)), "context"),
    (dict(attention=dict(scores="spiking")), "rates.k"),
])
def test_bad_decoder_cards_are_refused(change, key):
    with pytest.raises(NeurosimError) as exc:
        card(**change)
    assert key in str(exc.value)


# -- the KV cache -------------------------------------------------------------------------------------
def test_kv_cache_lives_on_chip_while_it_fits():
    per_token = 64.0                                      # bits per token per sequence
    room = 2 * 10 * per_token / 8                         # bytes: 10 tokens of 2 sequences
    a = kv_access(per_token, 2, past=6, new=1, room_bytes=room)
    assert (a.read_on, a.read_off, a.write_on, a.write_off) == (6 * 128, 0, 128, 0)
    b = kv_access(per_token, 2, past=12, new=1, room_bytes=room)
    assert (b.read_on, b.read_off, b.write_on, b.write_off) == (10 * 128, 2 * 128, 0, 128)
    c = kv_access(per_token, 2, past=9.5, new=1, room_bytes=room)  # the write straddles the edge
    assert (c.write_on, c.write_off) == (0.5 * 128, 0.5 * 128)


def test_kv_peak_bytes_by_hand(tmp_path):
    r = run_workload(card(), arch(tmp_path))
    assert r.kv_peak_bytes == 2 * (3 + 4) * 2 * KV_HEADS * HD * 16 / 8


# -- weight traffic, batch, links ----------------------------------------------------------------------
def weights_bytes(c: DecoderCard) -> float:
    d, i, hd = c.hidden, c.intermediate, c.head_dim
    block = d * (c.heads * hd) * 2 + d * (c.kv_heads * hd) * 2 + 3 * d * i
    norms = 2 * d * c.layers + d
    return ((block * c.layers + d * c.vocab) + norms) * c.weight_bits / 8


def resident_bytes(c: DecoderCard, a) -> float:
    """Weights the sequential mapping keeps pinned in core SRAM on a decode step (cost.layout's decision)."""
    net = decoder_network(c, DecoderPhase(c.workload.batch, 1, 3))
    plan = SequentialWeights(workload(net, False), Chips.of(a))
    return float((workload(net, False).weight_bytes * plan.pinned[0]).sum())


def test_a_decode_steps_weight_traffic_is_the_weights_not_resident(tmp_path):
    c = card()
    embedding_per_token = D * c.weight_bits / 8
    tiny = arch(tmp_path, cores__count=1, cores__sram_bytes=256, chips__count=1)   # room for a few layers only
    resident = resident_bytes(c, tiny)
    assert 0 < resident < weights_bytes(c)
    streamed = run_workload(c, tiny)
    assert streamed.weight_bytes_per_token == pytest.approx((weights_bytes(c) - resident) / 2 + embedding_per_token)
    roomy = arch(tmp_path, chips__count=1)                                       # everything pinned
    assert resident_bytes(c, roomy) == weights_bytes(c)
    assert run_workload(c, roomy).weight_bytes_per_token == pytest.approx(embedding_per_token)


def test_batch_divides_weight_traffic_per_token(tmp_path):
    wide = dict(hidden=64, intermediate=96)                 # weights large beside the states of 1 or 4 sequences
    tiny = arch(tmp_path, cores__count=1, cores__sram_bytes=4096, chips__count=1)
    one, four = (card(**wide, workload=dict(prompt=3, generate=4, batch=b)) for b in (1, 4))
    assert resident_bytes(one, tiny) == resident_bytes(four, tiny)       # the same weights stay on chip
    embedding_per_token = 64 * one.weight_bits / 8
    per_token = [run_workload(c, tiny).weight_bytes_per_token - embedding_per_token for c in (one, four)]
    assert per_token[0] == pytest.approx(weights_bytes(one) - resident_bytes(one, tiny))
    assert per_token[1] == pytest.approx(per_token[0] / 4)


def test_two_chip_link_traffic_is_the_activations_crossing(tmp_path):
    c = card(layers=2)
    two = arch(tmp_path, chips__count=2, chips__topology="line")
    r = run_workload(c, two, prompt=3, generate=4, batch=2)
    act = two.precision.activation_bits
    # per decode step: each sequence's token crosses chip 0 -> 1 (D values), its sampled id goes back (32 bits)
    assert r.decode.link_bytes == pytest.approx(4 * 2 * (D * act + 32) / 8)
    assert r.prefill.link_bytes == pytest.approx(2 * (3 * D * act + 32) / 8)
    assert r.decode.energy_pj["link"] == pytest.approx(4 * 2 * (D * act + 32) * two.chips.link_pj_per_bit)


def test_one_chip_has_no_link_traffic(tmp_path):
    r = run_workload(card(), arch(tmp_path, chips__count=1))
    assert r.decode.link_bytes == 0 and r.decode.energy_pj["link"] == 0


# -- coarsening -------------------------------------------------------------------------------------------
def test_decode_groups_cover_every_step_once():
    runs = decode_runs(prompt=10, generate=7, batch=1, n_groups=3)
    assert [r.repeats for r in runs] == [3, 2, 2]
    assert sum(r.repeats * r.phase.past_tokens for r in runs) == sum(10 + i for i in range(7))
    assert groups(0, 2, 8) == [(0, 1), (1, 1)]


def test_coarsened_decode_counts_equal_the_step_by_step_ones(tmp_path):
    c, a = card(), arch(tmp_path)
    exact = run_workload(c, a, generate=6, decode_groups=6)
    coarse = run_workload(c, a, generate=6, decode_groups=2)
    for name in ("acs", "macs", "other_ops", "kv_read_bytes", "weight_bytes"):
        assert getattr(coarse.decode, name) == pytest.approx(getattr(exact.decode, name), rel=1e-12)
    for kind in ("compute", "sram", "dram", "link"):      # linear in the cache length: exact
        assert coarse.decode.energy_pj[kind] == pytest.approx(exact.decode.energy_pj[kind], rel=1e-9), kind
    # The on-chip network's energy and the time follow mapping decisions (over how many cores a layer's work
    # is spread, how values pack into packets) that step with the work, so a group priced at its mean cache
    # length may take another decision than some of its steps: close, not exact. The next test bounds it.
    for kind in ("interconnect", "leakage"):
        assert coarse.decode.energy_pj[kind] == pytest.approx(exact.decode.energy_pj[kind], rel=0.05), kind


@pytest.mark.parametrize("generate, n_groups", [(6, 2), (9, 2), (8, 3)])
def test_coarsened_interconnect_energy_lies_within_the_spread_of_each_groups_steps(tmp_path, generate, n_groups):
    """A group of steps priced once at its mean cache length is off by at most the group's size times the
    spread (largest less smallest) of its steps' own interconnect energies and times: the tight bound for a
    quantity that steps with the work rather than growing linearly (docs/llm.md)."""
    from neurosim.llm.workload import Priced, Pricer

    c, a = card(), arch(tmp_path)
    steps = decode_runs(3, generate, 2, generate)                                   # every step on its own
    grouped = decode_runs(3, generate, 2, n_groups)
    priced = Priced(c, a, steps + grouped, False, Pricer(a, "analytic"))
    rooms = priced.rooms()
    one = [priced.totals(r, rooms) for r in steps]
    start = 0
    for g in grouped:
        mine = one[start:start + g.repeats]
        start += g.repeats
        coarse = priced.totals(g, rooms)
        for value in (lambda t: t.energy_pj["interconnect"], lambda t: t.seconds):
            exact, spread = sum(map(value, mine)), max(map(value, mine)) - min(map(value, mine))
            assert abs(g.repeats * value(coarse) - exact) <= g.repeats * spread * (1 + 1e-9) + 1e-12 * exact


# -- feasibility and chips needed ---------------------------------------------------------------------------
def test_a_model_beyond_the_hbm_is_infeasible_with_the_chips_needed(tmp_path):
    small = arch(tmp_path, hbm__bytes_per_stack=64, hbm__stacks=1, cores__count=1, cores__sram_bytes=256,
                 chips__count=1)
    r = run_workload(card(layers=2), small)
    assert not r.feasible and r.chips_needed > 1 and "HBM" in r.notes[0]


def test_spatial_mapping_that_fits_no_chip_names_the_count_needed(tmp_path):
    c = card(layers=4)
    small = arch(tmp_path, cores__count=24, cores__sram_bytes=2048, chips__count=1)   # one block's layers fit
    r = run_workload(c, small, mapping="spatial")
    assert not r.feasible and r.chips_needed is not None and r.chips_needed > 1
    assert run_workload(c, small.model_copy(update={"chips": small.chips.model_copy(
        update={"count": r.chips_needed})}).loaded_from(small.path, small.energy), mapping="spatial").feasible


# -- arch: HBM stacks and chips -----------------------------------------------------------------------------
def test_hbm_stacks_are_the_dram_and_price_it():
    a = load_arch("llm-45nm-hbm3-x4")
    assert a.dram.bytes_per_s == 4 * 819.2e9
    assert a.energy.dram_read_pj_per_bit == 3.9 and a.hbm.capacity_bytes == 4 * 2**34


def test_dram_disagreeing_with_the_hbm_stacks_is_refused(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(arch_data(dram={"bytes_per_s": 1.0e9})))
    with pytest.raises(NeurosimError) as exc:
        load_arch(path)
    assert "hbm" in str(exc.value)


def test_unknown_chips_key_is_refused(tmp_path):
    data = arch_data()
    data["chips"]["bandwidth"] = 1
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(NeurosimError) as exc:
        load_arch(path)
    assert exc.value.field == "chips.bandwidth"


# -- shipped cards -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, params", [("llama2-7b", 6.74e9), ("llama2-13b", 13.0e9), ("tinyllama-1.1b", 1.1e9)])
def test_shipped_cards_have_their_published_parameter_counts(name, params):
    c = load_decoder_card(Path(__file__).parents[1] / "models" / f"{name}.yaml")
    net = decoder_network(c, DecoderPhase(1, 1))
    total = sum(layer.n_weights() for layer in net.layers) + c.vocab * c.hidden   # + the embedding table
    assert total == pytest.approx(params, rel=0.01)


def test_card_is_not_changed_by_pricing(tmp_path):
    c = card()
    before = copy.deepcopy(c.model_dump())
    run_workload(c, arch(tmp_path))
    assert c.model_dump() == before


# -- the closed form against the simulator ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def both_engines(tmp_path_factory):
    """A four-block card on two chips (and on as many as the spatial mapping needs), priced by both engines."""
    folder = tmp_path_factory.mktemp("engines")
    a = arch(folder, chips__count=2, cores__count=64, cores__sram_bytes=4096)
    c = card(layers=4, hidden=32, intermediate=48, heads=4, kv_heads=2)
    out = {}
    for mapping in ("sequential", "spatial"):
        for mac_based in (False, True):
            kw = dict(prompt=12, generate=5, batch=2, mapping=mapping, mac_based=mac_based)
            out[mapping, mac_based] = [run_workload(c, a, engine=e, **kw) for e in ("analytic", "sim")]
    return out


def test_engines_agree_on_every_count_byte_and_dynamic_energy(both_engines):
    for (mapping, mac_based), (closed, sim) in both_engines.items():
        assert closed.feasible and sim.feasible, (mapping, mac_based)
        for phase in ("prefill", "decode"):
            a, b = getattr(closed, phase), getattr(sim, phase)
            for name in ("acs", "macs", "other_ops", "weight_bytes", "kv_read_bytes", "link_bytes", "dram_bytes"):
                assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9), (mapping, phase, name)
            for kind in ("compute", "sram", "dram", "interconnect", "link"):
                assert a.energy_pj[kind] == pytest.approx(b.energy_pj[kind], rel=1e-9), (mapping, phase, kind)


def test_sequential_simulator_is_slower_by_the_weight_loads_it_does_not_hide(both_engines):
    """The simulator waits for a layer's streamed weights where the SRAM has no room to load them during the
    layer before; the closed form overlaps every load. So the simulator is never faster, and within 25 %."""
    for mac_based in (False, True):
        closed, sim = both_engines["sequential", mac_based]
        for phase in ("prefill", "decode"):
            ratio = getattr(sim, phase).seconds / getattr(closed, phase).seconds
            assert 1 - 1e-9 <= ratio <= 1.25, (mac_based, phase, ratio)


def test_spatial_closed_form_is_an_upper_bound_of_the_simulated_pipeline(both_engines):
    """The closed form charges (T + depth - 1) x the slowest layer's step; the simulator runs the layers stage by
    stage, and a decode step (one token, few steps, many layers) lies well below that bound."""
    for mac_based in (False, True):
        closed, sim = both_engines["spatial", mac_based]
        for phase in ("prefill", "decode"):
            assert getattr(sim, phase).seconds <= getattr(closed, phase).seconds * (1 + 1e-9), (mac_based, phase)


def test_only_the_last_prefill_chunk_runs_the_lm_head(tmp_path):
    c, a = card(), arch(tmp_path, chips__count=1)
    whole, chunked = (run_workload(c, a, prefill_chunk=k) for k in (3, 1))
    # three one-token chunks: the blocks' work is the same as one chunk of three (attention pairs 1 + 2 + 3 either
    # way), and the LM head runs once per sequence
    assert chunked.prefill.acs == pytest.approx(whole.prefill.acs, rel=1e-12)
    assert chunked.prefill.macs == pytest.approx(whole.prefill.macs, rel=1e-12)


# -- a block's rows split over chips -------------------------------------------------------------------------------
def test_rows_split_over_two_chips_keep_the_synaptic_work_and_all_reduce(tmp_path):
    c = card(heads=2, kv_heads=2)
    one, two = arch(tmp_path, chips__count=1), arch(tmp_path, chips__count=2, chips__topology="ring")
    whole = run_workload(c, one, prompt=3, generate=4, batch=2)
    split = run_workload(c, two, prompt=3, generate=4, batch=2, tensor_split=2)
    for phase in ("prefill", "decode"):
        a, b = getattr(whole, phase), getattr(split, phase)
        assert b.acs == pytest.approx(a.acs) and b.macs == pytest.approx(a.macs)   # every row on one chip or the other
        assert b.other_ops > a.other_ops                                            # norms and residuals on both
    assert split.kv_peak_bytes == whole.kv_peak_bytes                               # each chip caches its kv heads
    act = two.precision.activation_bits
    # per decode step: two ring all-reduces of the block's stream (2 sequences x D values), in each of which both
    # chips send 2 (k - 1) / k = 1 stream; the second chip's best logit to the first (64 bits a sequence); the
    # token ids back over one ring link
    stream = 2 * D * act
    per_step = 2 * (2 * 1 * stream) + 2 * 64 + 2 * 32
    assert split.decode.link_bytes == pytest.approx(4 * per_step / 8)


def test_a_block_too_big_for_one_chip_maps_spatially_when_its_rows_are_split(tmp_path):
    c = card(layers=1, heads=2, kv_heads=2, hidden=32, intermediate=64)
    small = arch(tmp_path, cores__count=20, cores__sram_bytes=2048, chips__count=2)   # 20 cores: 22 needed whole
    whole = run_workload(c, small, mapping="spatial", tensor_split=1)
    assert not whole.feasible and whole.chips_needed is None and "split its rows" in whole.notes[0]
    split = run_workload(c, small, mapping="spatial", tensor_split=2)
    assert split.feasible
    searched = run_workload(c, small, mapping="spatial")           # the split is searched: 2, the only one that maps
    assert searched.tensor_split == 2 and searched.tpot_mean_s == split.tpot_mean_s


def test_the_searched_split_gives_the_fewest_chips_counted_by_hand(tmp_path):
    """Cores of 1 MiB hold any layer of this card, so the spatial mapping needs one core per layer: a stage of b
    blocks is the input layer, 15 layers a block, and (last stage) last_token, final_norm and lm_head. On chips
    of 20 cores: two chips hold 1 + 30 > 20 layers on the first; three chips hold 16, 16 and 19. Splitting rows
    does not cut the layers a chip holds, so K = 2 needs twice the chips: the fewest is three, unsplit."""
    c = card(layers=3, heads=2, kv_heads=2)
    one = arch(tmp_path, cores__count=20, cores__sram_bytes=2**20, chips__count=1)
    r = run_workload(c, one, mapping="spatial")
    assert not r.feasible and r.chips_needed == 3 and "split over 1 of them" in r.notes[0]
    assert run_workload(c, arch(tmp_path, cores__count=20, cores__sram_bytes=2**20, chips__count=3),
                        mapping="spatial").tensor_split == 1


@pytest.mark.parametrize("objective", ["latency", "energy", "edp"])
def test_the_searched_split_is_the_best_fixed_split_by_the_objective(tmp_path, objective):
    from neurosim.llm.split import request_score

    c = card(heads=4, kv_heads=4, layers=2)
    four = arch(tmp_path, chips__count=4, mapping__objective=objective)
    fixed = {k: run_workload(c, four, tensor_split=k, decode_groups=1) for k in (1, 2, 4)}
    best = min(fixed, key=lambda k: request_score(fixed[k], objective))
    searched = run_workload(c, four, decode_groups=1)
    assert searched.tensor_split == best
    assert request_score(searched, objective) == pytest.approx(request_score(fixed[best], objective), rel=1e-12)


def test_a_split_that_does_not_divide_the_kv_heads_is_refused(tmp_path):
    with pytest.raises(NeurosimError) as exc:
        run_workload(card(), arch(tmp_path, chips__count=2), tensor_split=2)     # one kv head
    assert "kv_heads" in exc.value.fix


@pytest.mark.parametrize("name", ["prefill_chunk", "tensor_split", "decode_groups"])
def test_workload_options_below_one_are_refused(tmp_path, name):
    with pytest.raises(NeurosimError) as exc:
        run_workload(card(), arch(tmp_path), mapping="spatial", **{name: 0})
    assert exc.value.field == name


# -- a fixed time per kernel (arch `kernels`, issue 20) ----------------------------------------------------------
def test_each_stage_adds_its_kernels_fixed_time_one_a_layer_unless_the_workload_says(tmp_path):
    """Two chips, two blocks: stage 0 is the input layer and 15 block layers, stage 1 the same and the final norm
    and LM head; the stages run one after another, so a decode step adds (16 + 18) fixed times; an RMSNorm
    launched as 8 kernels adds 7 more per norm, two norms a block."""
    c = card(layers=2)
    plain = run_workload(c, arch(tmp_path, chips__count=2), tensor_split=1)
    timed = arch(tmp_path, chips__count=2, kernels={"fixed_s": 1e-6})
    fused = run_workload(c, timed, tensor_split=1)
    assert fused.tpot_last_s - plain.tpot_last_s == pytest.approx((16 + 18) * 1e-6, rel=1e-9)
    norms = run_workload(c, timed, tensor_split=1, kernels_per_layer={"decode": {"attn_norm": 8, "mlp_norm": 8}})
    assert norms.tpot_last_s - fused.tpot_last_s == pytest.approx(2 * 2 * 7 * 1e-6, rel=1e-9)
    assert norms.ttft_s == pytest.approx(fused.ttft_s)                  # the counts were given for decode only
    for kind in ("compute", "sram", "dram", "interconnect", "link"):    # time, not work: only leakage moves
        assert norms.decode.energy_pj[kind] == plain.decode.energy_pj[kind]
    extra_s = norms.decode.seconds - plain.decode.seconds
    assert norms.decode.energy_pj["leakage"] - plain.decode.energy_pj["leakage"] == pytest.approx(
        2 * timed.static_power_w * extra_s * 1e12, rel=1e-9)
