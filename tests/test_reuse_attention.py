"""Attention through the memory levels (issue 22): Q.K^T and the weighted sum of V are two products with
their own operand shapes, real Q against spiking K, and the scores applied where V spiked; counted here
by hand on one tiny head."""

import numpy as np
import pytest

from neurosim.arch import load_arch
from neurosim.cost import reuse
from neurosim.cost.workload import Workload
from neurosim.ir import Attention, Layer, Network


def tiny_attention() -> Network:
    """3 tokens, 2 steps; Q real, K and V spiking at rate 0.5; 2 heads of 4 features, the second pruned."""
    layers = [Layer("q", "linear", 4, 8, seq_len=3, timesteps=2, neuron=None, compute="mac"),
              Layer("k", "linear", 4, 8, seq_len=3, timesteps=2, rate=0.5),
              Layer("v", "linear", 4, 8, seq_len=3, timesteps=2, rate=0.5),
              Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], seq_len=3, timesteps=2,
                    spec=Attention(2, 4, np.array([1, 0])), rate=0.25)]
    return Network("tiny-attention", layers, input_size=4, input_rate=0.5)


def attention_bits(dataflow: dict | None = None) -> reuse.LevelBits:
    work = Workload(tiny_attention())
    arch = load_arch("edge-45nm").model_dump()
    arch["cores"]["dataflow"].update(dataflow or {})
    only = np.array([0, 0, 0, 1.0])
    bits = reuse.level_bits(work, reuse.CoreLevels([arch]), [32], [32], False, work.acs * only, work.macs * only,
                            work.neuron_updates * only)
    assert work.macs[3] == 72 and work.acs[3] == 36 and work.neuron_updates[3] == 24
    return bits


def total(x) -> float:
    return float(np.asarray(x)[0].sum())


def test_scores_and_weighted_sum_are_two_products_counted_by_hand():
    """edge-45nm's levels (256 B weight RF, 256 B input RF, 1 KB accumulators), output stationary, rows per
    input, membranes held. One live head, 2 steps.

    Q.K^T, per step: 3 queries x 4 features x 3 keys = 36 MACs. K is 12 one-bit spikes, Q 12 fp32 values,
    the scores 9 fp32 sums: all fit their levels, so one tile. SRAM: K once (12 x 1 bit), Q once (12 x 32),
    the 9 scores written once (the reduction stays in the datapath); the softmax reads and writes each
    score. RF reads: every MAC reads its K spike and its Q value (36 each).

    Scores x V: a V spike at (key j, feature d) adds the scores of key j to the 3 queries' feature d: 36
    ACs at rate 0.5. The rows of key j are fetched once per (key, step, tile of the 4 features) in which V
    spiked: 3 keys x 2 steps x (1 - 0.5^4) = 5.625 rows of 3 scores, 16.875 x 32 bits from SRAM into the
    weight RF, which the 36 ACs read. Membranes: 24 updates read and written at SRAM (32 bits), held in the
    accumulators, which also take each AC."""
    bits = attention_bits()
    steps, rows = 2, 3 * 2 * (1 - 0.5 ** 4)
    qk_read = steps * (12 * 1 + 12 * 32)
    scores = steps * 9 * 32
    assert total(bits.sram_read) == pytest.approx(qk_read + scores + rows * 3 * 32 + 24 * 32)
    assert total(bits.sram_write) == pytest.approx(scores + scores + 24 * 32)
    assert total(bits.read["weights"]) == pytest.approx(steps * 36 * 1 + 36 * 32)     # K spikes, then scores
    assert total(bits.write["weights"]) == pytest.approx(steps * 12 * 1 + rows * 3 * 32)
    assert total(bits.read["inputs"]) == steps * 36 * 32 and total(bits.write["inputs"]) == steps * 12 * 32
    assert total(bits.read["outputs"]) == pytest.approx(scores + 24 * 32 + 36 * 32)
    assert total(bits.write["outputs"]) == pytest.approx(scores + 24 * 32 + 36 * 32)


def test_without_row_grouping_each_ac_reads_its_score_from_sram():
    grouped, per_event = attention_bits(), attention_bits({"events": "per_event"})
    rows = 3 * 2 * (1 - 0.5 ** 4)
    assert total(per_event.sram_read) - total(grouped.sram_read) == pytest.approx((36 - rows * 3) * 32)
    assert total(per_event.read["weights"]) == 2 * 36 * 1           # only K through the weight RF
