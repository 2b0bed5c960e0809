"""A decoder's causal attention through the memory levels (issue 22): Q.K^T and the scores x V are two
products, as encoder attention's (tests/test_reuse_attention.py); the causal mask lets query i see only
the keys up to its own position, so a prefill's scores are triangular. Counted here by hand on one tiny
head, in elements of 32 bits (edge-45nm's levels, membranes held)."""

import numpy as np
import pytest

import neurosim
from neurosim.arch import load_arch
from neurosim.cards import DecoderPhase, decoder_network, load_decoder_card
from neurosim.cost import reuse
from neurosim.cost.estimate import estimate
from neurosim.cost.workload import Workload
from neurosim.ir import CausalAttention, Layer, Network
from neurosim.sim import simulate

BITS = 32


def tiny_causal(past: float = 0.0, queries: int = 3, spiking: bool = True) -> Network:
    """One head of 2 features, no grouping; `queries` new tokens after `past` cached ones. Spiking: K and V
    spike at rate 0.5 over 2 steps, the attention's output spikes; else every operand is real (MAC-based)."""
    operand = dict(timesteps=2, rate=0.5) if spiking else dict(neuron=None, compute="mac")
    layers = [Layer("q", "linear", 2, 2, seq_len=queries, timesteps=2 if spiking else 1, neuron=None, compute="mac"),
              Layer("k", "linear", 2, 2, seq_len=queries, **operand),
              Layer("v", "linear", 2, 2, seq_len=queries, **operand),
              Layer("attn", "causal_attention", 2, 2, inputs=["q", "k", "v"], seq_len=queries,
                    spec=CausalAttention(1, 1, 2, past_tokens=past),
                    **(dict(timesteps=2, rate=0.25) if spiking else dict(neuron=None)))]
    return Network("tiny-causal", layers, input_size=2, input_rate=0.5)


def attention_elements(net: Network, events: str = "per_event") -> dict:
    """The attention layer's (SRAM read, SRAM write, accumulator-level read and write, weight-level read)
    in 32-bit elements, on edge-45nm's levels with the given event grouping."""
    work = Workload(net)
    arch = load_arch("edge-45nm").model_dump()
    arch["cores"]["dataflow"]["events"] = events
    only = np.array([0, 0, 0, 1.0])
    bits = reuse.level_bits(work, reuse.CoreLevels([arch]), [BITS], [BITS], False, work.acs * only,
                            work.macs * only, work.neuron_updates * only)
    at = lambda x: float(np.asarray(x)[0, 3]) / BITS  # noqa: E731
    return dict(sram_read=at(bits.sram_read), sram_write=at(bits.sram_write), outputs=at(bits.read["outputs"]),
                outputs_written=at(bits.write["outputs"]), weights=at(bits.read["weights"]), work=work)


def test_a_prefill_head_is_two_event_products_over_triangular_scores_counted_by_hand():
    """3 tokens, no cache: query i sees keys 0..i, so 1 + 2 + 3 = 6 scores a step (not 9), 12 over 2 steps.
    ACs: K's 12 x 2 features x rate 0.5 = 12 (each adds a Q value into a score), V's 12.
    Per event, every AC of Q.K^T reads its Q value from SRAM (12) and accumulates its score in the
    accumulators (12 read, 12 written); the 12 scores are written to SRAM once; the softmax reads and
    writes each (12, 12); every AC of the weighted sum reads its score from SRAM (12) and accumulates into
    a membrane in the accumulators (12, 12). Membranes: 3 tokens x 2 outputs x 2 steps = 12 updates, each
    read and written at SRAM and at the accumulators.
    SRAM: read 12 + 12 + 12 + 12 = 48, written 12 + 12 + 12 = 36; accumulators 36 and 36."""
    got = attention_elements(tiny_causal())
    work = got.pop("work")
    assert work.scores[3] == 12 and work.acs[3] == 24 and work.neuron_updates[3] == 12
    assert got == dict(sram_read=48, sram_write=36, outputs=36, outputs_written=36, weights=0)


def test_a_decode_step_attends_to_every_cached_key_and_itself():
    """One new token after 4 cached: it sees keys 0..4, 5 scores a step, 10 over 2 steps; 10 ACs per
    operand. SRAM read 10 (Q values) + 10 (softmax) + 10 (scores into V's sum) + 4 membranes = 34; written
    10 (scores) + 10 (softmax) + 4 = 24; accumulators 10 + 10 + 4 = 24 each way."""
    got = attention_elements(tiny_causal(past=4, queries=1))
    work = got.pop("work")
    assert work.scores[3] == 10 and work.acs[3] == 20
    assert got == dict(sram_read=34, sram_write=24, outputs=24, outputs_written=24, weights=0)


def test_a_mac_based_head_runs_two_gemms_on_the_live_share_of_the_rectangle():
    """Both operands real: one pass (t = 1), 6 live scores of the 3 x 3 queries x keys rectangle (2/3).
    Q.K^T (3 queries x 2 features x 3 keys) fits the levels in one tile: SRAM reads K's 6 and Q's 6 once
    and writes the 9 scores once, 2/3 of it live: 4 + 4 read, 6 written. Softmax: 6 read, 6 written.
    Scores x V (3 queries x 3 keys x 2 features): V's 6 and the 9 scores read once, the 6 real outputs
    written once: 4 + 6 read, 4 written. SRAM read 4 + 4 + 6 + 4 + 6 = 24, written 6 + 6 + 4 = 16."""
    got = attention_elements(tiny_causal(spiking=False))
    work = got.pop("work")
    assert work.scores[3] == 6 and work.macs[3] == 24 and work.acs[3] == 0
    assert (got["sram_read"], got["sram_write"]) == pytest.approx((24, 16))


def test_rows_grouped_per_key_tile_fetch_the_live_share_of_each_row():
    """Rows per input (edge-45nm's dataflow): a K spike's row is Q's feature over the queries; one row per
    (feature, step, tile of the 3 keys) with a spike, 2 x 2 x (1 - 0.5^3) = 3.5, of 3 queries, 2/3 of them
    live on average: 7 Q values from SRAM instead of 12. V's rows: scores of a key over the queries, one
    per (key, step, tile of the 2 features), 3 x 2 x (1 - 0.5^2) = 4.5 rows of 3, 2/3 live: 9 instead of
    12. SRAM read 48 - 5 - 3 = 40; the weight RF is read by every AC (24) and written with the rows (16)."""
    got = attention_elements(tiny_causal(), "per_input")
    assert got["sram_read"] == pytest.approx(40) and got["weights"] == pytest.approx(24)


@pytest.fixture(scope="module")
def decoder_prefill():
    """The decoder trained here (2 blocks, hidden 96, 4 heads of 24, GIF K and V), a prefill of 8 tokens."""
    card = load_decoder_card("models/spikellm-decoder-2l.yaml")
    return decoder_network(card, DecoderPhase(batch=1, query_tokens=8))


def test_a_decoder_on_a_chip_with_levels_stores_and_softmaxes_its_causal_scores(decoder_prefill):
    """edge-45nm, per-event rows, membranes held: each attention layer's SRAM writes are its scores twice
    (Q.K^T's sums, the softmax's output) and its membranes' state once per update; the scores are
    triangular (8 x 9 / 2 = 36 pairs per head and step)."""
    work = Workload(decoder_prefill)
    arch = load_arch("edge-45nm").model_dump()
    arch["cores"]["dataflow"]["events"] = "per_event"
    bits = reuse.level_bits(work, reuse.CoreLevels([arch]), [BITS], [BITS], False, work.acs, work.macs,
                            work.neuron_updates)
    attention = [i for i, layer in enumerate(decoder_prefill.layers) if layer.kind == "causal_attention"]
    assert len(attention) == 2
    for i in attention:
        assert work.scores[i] == 4 * 36 * work.timesteps[i]
        state = work.neuron_updates[i] * BITS * work.state_words[i]
        assert bits.sram_write[0, i] == pytest.approx(2 * work.scores[i] * BITS + state)


def test_the_simulator_prices_a_decoder_with_levels_as_the_closed_form(decoder_prefill):
    for name, mapping in (("edge-45nm", "sequential"), ("spatial-45nm-large", "spatial")):
        arch = neurosim.load_arch(name)
        closed, sim = estimate(decoder_prefill, arch, mapping, "spikes"), simulate(decoder_prefill, arch, mapping, "spikes")
        assert sim.energy_breakdown_pj["sram"] == pytest.approx(closed.energy_breakdown_pj["sram"], rel=1e-9)
