"""neurosim.pruning: Fisher scores, budgeted selection, greedy swaps, eq. 10, the torch M(h, n, t)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import neurosim
from neurosim.cost import analytic
from neurosim.frontend import SpikingEncoder, from_torch
from neurosim.frontend.encoder import ROLES
from neurosim.pruning import activity, budget, fisher, select, temporal
from neurosim.pruning.retrain import RelaxedMasks

VOCAB, HIDDEN, HEADS, INTER, LAYERS, SEQ, CLASSES = 40, 16, 2, 24, 2, 6, 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(timesteps=(8, 4)) -> SpikingEncoder:
    torch.manual_seed(0)
    model = SpikingEncoder(VOCAB, HIDDEN, HEADS, INTER, LAYERS, SEQ, CLASSES, timesteps=list(timesteps))
    model.eval()
    return model


def data(n=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (n, SEQ), generator=g), torch.randint(0, CLASSES, (n,), generator=g)


# -- Fisher -------------------------------------------------------------------------------
def test_fisher_equals_squared_per_sample_gradients_computed_one_by_one():
    model = tiny()
    model.blocks[1].neuron_mask[3] = 0  # an already-pruned neuron has gradient 0 (mask x gate)
    x, y = data(10)
    grads = fisher.mask_gradients(model, x, y, batch=4)  # batches of 4, 4, 2: rows must not mix
    fh, fn = grads.fisher()

    # independently: one sample at a time, the masks themselves as leaf tensors
    ref_h = np.zeros((LAYERS, 10, HEADS))
    ref_n = np.zeros((LAYERS, 10, INTER))
    saved = [(b.head_mask.clone(), b.neuron_mask.clone()) for b in model.blocks]
    for s in range(10):
        leaves = []
        for blk, (h, n) in zip(model.blocks, saved):
            blk.head_mask = h.clone().requires_grad_(True)
            blk.neuron_mask = n.clone().requires_grad_(True)
            leaves += [blk.head_mask, blk.neuron_mask]
        loss = F.cross_entropy(model(x[s:s + 1], mode="rate"), y[s:s + 1])
        g = torch.autograd.grad(loss, leaves)
        for b in range(LAYERS):
            ref_h[b, s] = g[2 * b].numpy()
            # d/dmask of (current x mask): the gradient at a pruned neuron's mask is not 0, but the
            # gate multiplies mask x gate, so its gradient is the mask's gradient x the mask (0 when pruned)
            ref_n[b, s] = g[2 * b + 1].numpy() * saved[b][1].numpy()
    for blk, (h, n) in zip(model.blocks, saved):
        blk.head_mask, blk.neuron_mask = h, n
    np.testing.assert_allclose(grads.heads.transpose(1, 0, 2), ref_h, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(grads.neurons.transpose(1, 0, 2), ref_n, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(fh, (ref_h ** 2).sum(axis=1), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(fn, (ref_n ** 2).sum(axis=1), rtol=1e-5, atol=1e-12)
    assert fn[1, 3] == 0 and (fh > 0).all()
    assert all(b.head_gate is None and b.neuron_gate is None for b in model.blocks)  # hooks removed


def test_asr_variants_multiply_fisher_by_spike_mode_rates():
    model = tiny()
    x, y = data(10)
    grads = fisher.mask_gradients(model, x, y)
    stats = activity.spike_stats(model, x)
    with torch.no_grad():
        model(x, mode="spike")  # the reference ASR: spike mode over the same sentences
    head_asr = np.stack([model.last_asr[f"block{b}.attention"].double().numpy().reshape(HEADS, -1).mean(1)
                         for b in range(LAYERS)])
    neuron_asr = np.stack([model.last_asr[f"block{b}.intermediate"].double().numpy() for b in range(LAYERS)])
    fh, fn = grads.fisher()
    for variant, (by_attn, by_neuron) in fisher.VARIANTS.items():
        imp = fisher.importance(grads, stats, model, variant)
        np.testing.assert_allclose(imp.heads, fh * (head_asr if by_attn else 1), rtol=1e-6)
        np.testing.assert_allclose(imp.neurons, fn * (neuron_asr if by_neuron else 1), rtol=1e-6)
        # the swap vectors square-sum to the scores (diagonal of the block Fisher)
        np.testing.assert_allclose((imp.neuron_vectors(1) ** 2).sum(0), imp.neurons[1], rtol=1e-9)


# -- M(h, n, t) ------------------------------------------------------------------------------
def _random_masks(seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((LAYERS, HEADS)) < 0.6, rng.random((LAYERS, INTER)) < 0.5


def test_torch_m_equals_paper_m_on_the_built_ir_exactly():
    model = tiny(timesteps=(8, 3))
    hk, nk = _random_masks()
    select.apply_masks(model, hk, nk)
    net = from_torch(model, data(2)[0])
    costs = budget.unit_costs(net)
    gates_h = [torch.tensor(h, dtype=torch.float64, requires_grad=True) for h in hk]
    gates_n = [torch.tensor(n, dtype=torch.float64, requires_grad=True) for n in nk]
    m = budget.m_torch(costs, gates_h, gates_n)
    assert float(m.detach()) == analytic.paper_m(net) == budget.masked_m(costs, hk, nk)
    # unpruned at one T: M(1, 1, T)
    full = budget.unit_costs(net, timesteps=[8, 8]).full()
    assert full == analytic.paper_m(net, timesteps=8, unpruned=True)
    # the gradient w.r.t. a gate is that unit's price (eq. 18+19+20 per head, eq. 21 per neuron)
    m.backward()
    n, d, h = SEQ, HIDDEN, HIDDEN // HEADS
    assert float(gates_h[1].grad[0]) == (3 * n * d * h + 2 * n * n * h + n * d * h) * 3
    assert float(gates_n[0].grad[0]) == 2 * n * d * 8


# -- selection --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["search", "rank"])
@pytest.mark.parametrize("frac", [0.05, 0.3, 0.6, 0.9])
def test_selected_masks_satisfy_the_budget(method, frac):
    model = tiny(timesteps=(8, 5))
    costs = budget.unit_costs(budget.structure(model))
    rng = np.random.default_rng(3)
    hs, ns = rng.random((LAYERS, HEADS)), rng.random((LAYERS, INTER)) * 0.1
    cap = frac * costs.full()
    hk, nk = select.select_masks(hs, ns, costs, cap, method)
    assert budget.masked_m(costs, hk, nk) <= cap
    select.apply_masks(model, hk, nk)
    assert analytic.paper_m(budget.structure(model)) == budget.masked_m(costs, hk, nk) <= cap
    # already-pruned units stay pruned
    allowed = (np.ones_like(hk), np.arange(INTER)[None, :].repeat(LAYERS, 0) % 2 == 0)
    hk2, nk2 = select.select_masks(hs, ns, costs, cap, method, allowed=allowed)
    assert not (nk2 & ~allowed[1]).any() and budget.masked_m(costs, hk2, nk2) <= cap


def test_search_keeps_the_most_important_units_first():
    model = tiny(timesteps=(4, 4))
    costs = budget.unit_costs(budget.structure(model))
    hs = np.array([[5.0, 4.0], [3.0, 2.0]])
    ns = np.tile(np.linspace(1, 0.01, INTER), (LAYERS, 1))
    hk, nk = select.select_masks(hs, ns, costs, 0.5 * costs.full())
    # whatever is kept of a ranked list is a prefix of it
    order = np.argsort(-hs.ravel())
    kept = hk.ravel()[order]
    assert (kept[:-1] >= kept[1:]).all()
    assert nk[0, 0] or not nk.any()


def test_greedy_swap_never_increases_pruned_importance():
    rng = np.random.default_rng(7)
    for trial in range(20):
        v = rng.normal(size=(15, 10)) * rng.random(10)
        keep = np.ones(10, bool)
        keep[rng.choice(10, 4, replace=False)] = False
        new, hist = select.greedy_swap(v, keep)
        assert all(b <= a + 1e-12 for a, b in zip(hist, hist[1:]))
        assert new.sum() == keep.sum()
        assert select.pruned_importance(v, new) == pytest.approx(hist[-1], rel=1e-9, abs=1e-12)
        assert hist[-1] <= select.pruned_importance(v, keep) + 1e-12
        # a local optimum: no single swap lowers it
        best = hist[-1]
        for p in np.flatnonzero(~new):
            for k in np.flatnonzero(new):
                trial_keep = new.copy()
                trial_keep[p], trial_keep[k] = True, False
                assert select.pruned_importance(v, trial_keep) >= best - 1e-9


def test_greedy_swap_prunes_units_whose_gradients_cancel():
    g = np.array([1.0, -2.0, 0.5, 3.0])
    small = np.array([0.1, 0.2, -0.1, 0.1])
    v = np.stack([g, -g, small], axis=1)          # units a, b cancel; c is small
    keep = np.array([False, True, False])          # diagonal ranking prunes c and a: I = |g + small|^2
    new, hist = select.greedy_swap(v, keep)
    assert new.tolist() == [False, False, True] and hist[-1] == pytest.approx(0.0, abs=1e-12)
    assert hist[0] == pytest.approx(((g + small) ** 2).sum())


def test_select_and_refine_records_importance_not_increasing():
    model = tiny()
    x, y = data(12)
    imp = fisher.importance(fisher.mask_gradients(model, x, y), activity.spike_stats(model, x), model, "fim_asr")
    costs = budget.unit_costs(budget.structure(model))
    sel = select.select_and_refine(imp, costs, 0.5 * costs.full())
    assert sel.m <= 0.5 * costs.full()
    assert all(after <= before + 1e-12 for before, after in sel.pruned_importance.values())


# -- temporal ------------------------------------------------------------------------------------
def test_eq10_by_hand():
    # c = (10, 20, 30, 40), b = 1.02, T_conv = 85; max_j b^c_j = 1.02^40, so t^l = ceil(1.02^(c^l - 40) x 85):
    #   1.02^-30 = 0.552071 -> 46.926 -> 47
    #   1.02^-20 = 0.672971 -> 57.203 -> 58
    #   1.02^-10 = 0.820348 -> 69.730 -> 70
    #   1.02^0   = 1        -> 85.000 -> 85 (exact: no extra step from rounding)
    assert temporal.allocate_timesteps([10, 20, 30, 40], 85, 1.02) == [47, 58, 70, 85]
    # c = (0, 85): 1.02^-85 = 0.185821 -> 15.795 -> 16
    assert temporal.allocate_timesteps([0, 85], 85, 1.02) == [16, 85]
    assert temporal.allocate_timesteps([7, 7, 7], 85) == [85, 85, 85]
    assert math.isclose(1.02 ** -30 * 85, 46.926, rel_tol=1e-4)


def test_pca_components_counts_the_rank():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 20))
    x = rng.normal(size=(50, 2)) @ basis + 3.0   # rank 2 after centring
    assert temporal.pca_components(x, 0.99999) == 2
    assert temporal.pca_components(np.ones((10, 5)), 0.99999) == 0
    x3 = np.concatenate([x, rng.normal(size=(50, 1)) * 1e-4], axis=1)  # a tiny third direction
    assert temporal.pca_components(x3, 0.9) <= 2 and temporal.pca_components(x3, 1 - 1e-15) == 3


def test_temporal_prune_per_block_sets_one_count_per_block():
    model = tiny(timesteps=(12, 12))
    x, _ = data(16)
    res = temporal.temporal_prune(model, x, t_conv=12, variance=0.999, granularity="block")
    assert model.timesteps == res.timesteps and max(res.timesteps) == 12 and not model.per_sublayer
    assert res.timesteps == temporal.allocate_timesteps(res.components, 12, 1.02)
    assert all(1 <= t <= 12 for t in res.timesteps)
    assert model.record_steps is False and model.step_asr == {}


def _stats_of_rank(ranks: list[list[int]], steps: int = 30, neurons: int = 7) -> activity.SpikeStats:
    """Hand-made spike statistics: sublayer (b, r)'s per-step ASR matrix has rank ranks[b][r] after centring."""
    rng = np.random.default_rng(5)
    neuron_steps = {}
    for b, row in enumerate(ranks):
        for role, c in zip(ROLES, row):
            low = rng.normal(size=(steps, c)) @ rng.normal(size=(c, neurons))
            neuron_steps[f"block{b}.{role}"] = 0.3 + 0.01 * low
    return activity.SpikeStats({}, {}, neuron_steps, steps, 1)


def test_per_sublayer_pca_gives_each_sublayer_its_own_timesteps():
    # data "step": X^l is the (steps x neurons) matrix itself, so c^l is its rank after centring.
    stats = _stats_of_rank([[1, 2, 3, 4, 5, 6], [2, 2, 2, 2, 2, 2]])
    res = temporal.temporal_allocation(stats, 2, variance=0.99999, b=1.5, data="step")
    assert res.components == [[1, 2, 3, 4, 5, 6], [2, 2, 2, 2, 2, 2]]
    # eq. 10 by hand, T_conv = 30, b = 1.5, max c = 6: ceil(1.5^(c - 6) x 30)
    # c=1: 3.951 -> 4, c=2: 5.926 -> 6, c=3: 8.889 -> 9, c=4: 13.33 -> 14, c=5: 20, c=6: 30
    assert res.timesteps == [[4, 6, 9, 14, 20, 30], [6, 6, 6, 6, 6, 6]]
    assert res.mean_t == pytest.approx((4 + 6 + 9 + 14 + 20 + 30 + 6 * 6) / 12)
    # pooled per block, the six sublayers' directions add up: one count per block (1.5^-9 x 30 = 0.78 -> 1)
    pooled = temporal.temporal_allocation(stats, 2, variance=0.99999, b=1.5, data="step", granularity="block")
    assert pooled.components == [1 + 2 + 3 + 4 + 5 + 6, 2 * 6] and pooled.timesteps == [30, 1]
    model = tiny()
    model.timesteps = res.timesteps
    assert model.sublayer_timesteps == res.timesteps and model.timesteps == [30, 6] and model.per_sublayer
    assert model.steps(0, "q") == model.steps(0, "attention") == 9   # t_Q = t_Attn (Appendix B)


def test_per_sublayer_timesteps_price_each_appendix_b_term_at_its_own_t():
    # tiny encoder: N=4, D=8, H=4, 2 heads, 16 neurons. Per head and step: one projection NDH = 128, attention
    # 2 N^2 H = 128, FC NDH = 128; per neuron and step: ND = 32 in, ND = 32 out.
    from neurosim.cards import EncoderCard, encoder_network
    import yaml
    from neurosim.paths import MODELS_DIR

    net = encoder_network(EncoderCard.model_validate(yaml.safe_load((MODELS_DIR / "tiny-encoder.yaml").read_text())))
    for role, t in zip(("k", "v", "attention", "attn_out", "intermediate", "output"), (1, 2, 3, 4, 5, 6)):
        net[f"block0.{role}"].timesteps = t
    # block 0: heads 2 x (128 x (t_Q = t_Attn 3 + t_K 1 + t_V 2) + 128 x 3 + 128 x 4) = 2 x 1664 = 3328;
    #          neurons 16 x 32 x (5 + 6) = 5632. Block 1 unchanged at t = 2: 2304 x 2 = 4608.
    assert analytic.paper_m(net) == 3328 + 5632 + 4608


def test_relaxed_masks_are_hard_forward_and_sigmoid_backward():
    rm = RelaxedMasks(np.array([[True, False]]), np.array([[True, False, True]]), 2.0)
    gh, gn = rm.gates()
    assert gh[0].tolist() == [1.0, 0.0] and gn[0].tolist() == [1.0, 0.0, 1.0]
    (gh[0] * torch.tensor([1.0, 2.0])).sum().backward()
    s = torch.sigmoid(torch.tensor(2.0))
    assert torch.allclose(rm.h[0].grad, torch.tensor([1.0, 2.0]) * s * (1 - s))


def test_eq14_by_hand_on_the_tiny_encoder_with_its_rates():
    # tiny encoder card: N=4, D=8, H=4, 2 heads, 16 neurons, t = (4, 2), baseline T = 4; rates: input .5 (spiking),
    # k .5, v .25, attention .5, attn_out .25, intermediate .5, output .25 in both blocks.
    # Each Appendix B term x the rate of the layer feeding it:
    # block 0 (t 4), per head: QKV 3 x 128 x 4 x .5 (input) = 768, scores 64 x 4 x .5 (K) = 128,
    #   weighted sum 64 x 4 x .25 (V) = 64, FC 128 x 4 x .5 (attention) = 256 -> 1216; x 2 heads = 2432
    #   per neuron: in 32 x 4 x .25 (attn_out) = 32, out 32 x 4 x .5 (intermediate) = 64 -> 96; x 16 = 1536
    # block 1 (t 2), per head: QKV 3 x 128 x 2 x .25 (block 0's output) = 192, scores 64 x 2 x .5 = 64,
    #   weighted sum 64 x 2 x .25 = 32, FC 128 x 2 x .5 = 128 -> 416; x 2 = 832
    #   per neuron: 32 x 2 x .25 + 32 x 2 x .5 = 48; x 16 = 768
    # sum 5568 over the unpruned M(1, 1, 4) = 2304 x 4 x 2 = 18,432
    from neurosim.cards import EncoderCard, encoder_network
    import yaml
    from neurosim.paths import MODELS_DIR

    card = yaml.safe_load((MODELS_DIR / "tiny-encoder.yaml").read_text())
    net = encoder_network(EncoderCard.model_validate(card))
    assert analytic.eq14_numerator(net) == pytest.approx(5568)
    assert analytic.eq14_normalized_c(net) == pytest.approx(5568 / 18432)
    # pruning head 1 of block 1 removes its 416; the denominator stays the unpruned baseline's
    card.update(head_masks=[[1, 1], [1, 0]])
    pruned = encoder_network(EncoderCard.model_validate(card))
    assert analytic.eq14_normalized_c(pruned) == pytest.approx((5568 - 416) / 18432)
    # the structural ratio is rate-free: (13,824 - 640 x 2) / 18,432
    assert analytic.normalized_c(pruned) == pytest.approx((13824 - 1280) / 18432)


def test_table_one_values_load_from_constants_with_their_source():
    from neurosim.pruning import constants
    from neurosim.pruning.retrain import RetrainConfig

    sst2 = constants.TABLE_I["SST-2"]
    # the paper's Table I, SST-2 column, as printed
    assert (sst2["t_conv"], sst2["vth"], sst2["lam"], sst2["variance"], sst2["train_batch"], sst2["test_batch"],
            sst2["lr"], sst2["budget"], sst2["b"], sst2["eta"]) == (85, 1.0, 5e-12, 0.99999, 16, 32, 5e-10, 0.6,
                                                                     1.02, 0.001)
    assert [constants.TABLE_I[t]["lam"] for t in ("MNLI", "QQP", "QNLI", "SST-2", "MRPC")] == [1e-12, 2e-12, 2e-12,
                                                                                              5e-12, 5e-12]
    assert "Table I" in constants.TABLE_I_SOURCE and "2508.20122" in constants.TABLE_I_SOURCE
    # lambda on normalised M = lambda on raw M x M(1, 1, 85) of the paper's SpikingBERT-4L (its Appendix B count)
    bert = neurosim.load_model("spikingbert-4l")
    assert constants.PAPER_M0 == analytic.paper_m(bert, timesteps=85, unpruned=True)
    assert constants.DEFAULT_LAMBDA == pytest.approx(5e-12 * 316_586_065_920) == pytest.approx(1.5829, abs=1e-4)
    cfg = RetrainConfig()
    assert (cfg.lam, cfg.eta, cfg.batch, cfg.mode) == (constants.DEFAULT_LAMBDA, 0.001, 16, "rate_t")
    assert (constants.DEFAULT_BUDGET, constants.DEFAULT_VARIANCE, constants.DEFAULT_B) == (0.6, 0.99999, 1.02)
    # every default in the module says where it comes from (a comment on its line or the Table I column)
    for line in Path(constants.__file__).read_text().splitlines():
        if line.startswith("DEFAULT_") and "TABLE_I[TASK]" not in line:
            assert "#" in line, line
