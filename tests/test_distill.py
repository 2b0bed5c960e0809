"""The SpikingBERT student: initialised from a BERT teacher by folding, its losses, its data, its checkpoint."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from neurosim.frontend import distill  # noqa: E402
from neurosim.frontend.encoder import SpikingEncoder  # noqa: E402
from neurosim.frontend.teacher import MiniLM, TeacherConfig  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
STUDENT = REPO / "models" / "spikingbert-minilm-polarity.pt"


def tiny_teacher(seed: int = 0) -> MiniLM:
    torch.manual_seed(seed)
    model = MiniLM(TeacherConfig(vocab_size=40, hidden=16, heads=2, intermediate=32, layers=2, max_positions=12,
                                 type_vocab=2, eps=1e-12))
    with torch.no_grad():   # LayerNorm gains and biases away from 1 and 0, so folding them is tested
        for name, p in model.named_parameters():
            if "ln" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def student_error(student: SpikingEncoder, teacher: MiniLM, ids, mask, maps) -> list[float]:
    """Per layer: relative error of s * rate + c (the LayerMaps at initialisation) against the teacher's output."""
    fit = distill.LayerMaps(teacher.config.hidden, maps)
    student.keep_rates = True
    with torch.no_grad():
        student(ids, mode="rate")
        out = teacher(ids, mask)
        errs = []
        for b in range(len(student.blocks)):
            got = fit.fit[b + 1](student.last_rates[f"block{b}.output"])[mask]
            want = out.hidden[b + 1][mask]
            errs.append(float((got - want).norm() / want.norm()))
    return errs


def test_a_student_folded_from_the_teacher_reproduces_its_layers_far_better_than_a_fresh_one():
    teacher = tiny_teacher()
    ids = torch.randint(4, 40, (64, 10))
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        maps = distill.calibrate(teacher(ids, mask), mask)
    keep = torch.arange(40)
    config = dict(vocab_size=40, hidden=16, heads=2, intermediate=32, layers=2, seq_len=10, classes=2, timesteps=8)
    folded, fresh = SpikingEncoder(**config), SpikingEncoder(**config)
    distill.init_from_teacher(folded, teacher, keep, maps)
    err_folded = student_error(folded, teacher, ids, mask, maps)
    err_fresh = student_error(fresh, teacher, ids, mask, maps)
    assert all(f < 0.5 * r for f, r in zip(err_folded, err_fresh)), (err_folded, err_fresh)
    assert err_folded[0] < 0.35, err_folded   # clipping at the 1 % / 99 % quantiles and GELU -> clamp cost a little


def test_folded_key_scales_leave_the_attention_of_a_linear_teacher_unchanged():
    """With K taken from its own range, softmax(q k^T) sees the teacher's scores up to a per-query constant."""
    teacher = tiny_teacher(1)
    ids = torch.randint(4, 40, (8, 10))
    mask = torch.ones_like(ids, dtype=torch.bool)
    student = SpikingEncoder(vocab_size=40, hidden=16, heads=2, intermediate=32, layers=2, seq_len=10, classes=2)
    with torch.no_grad():
        maps = distill.calibrate(teacher(ids, mask), mask)
        distill.init_from_teacher(student, teacher, torch.arange(40), maps)
        # block 0's input is the student's own embedding: give the teacher layer that same input, and take
        # K's range from it with a margin, so that no key rate clips
        x = student.embedding(ids)
        _, want, parts = teacher.layers[0](x, mask)
        lo, hi = parts["k"].amin((0, 1)) - 0.01, parts["k"].amax((0, 1)) + 0.01
        maps[0]["k"] = distill.Affine(hi - lo, lo)
        distill.init_from_teacher(student, teacher, torch.arange(40), maps)
        student.keep_rates = True
        student(ids, mode="rate")
        probs = distill.student_attention(student, ids)[0]
    assert torch.allclose(probs, want, atol=1e-5)


def test_student_ids_keep_the_specials_first_and_map_unknown_pieces_to_unk():
    keep = torch.tensor([0, 100, 101, 102, 2000, 2010])      # [PAD] [UNK] [CLS] [SEP], then two pieces
    ids = torch.tensor([[101, 2000, 2005, 2010, 102, 0]])
    assert distill.to_student_ids(ids, keep).tolist() == [[2, 4, 1, 5, 3, 0]]


def test_prediction_loss_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])            # softmax (1/4, 3/4)
    labels = torch.tensor([0])
    teacher = torch.tensor([[math.log(3.0), 0.0]])           # softmax (3/4, 1/4)
    hard = math.log(4.0)                                     # -log(1/4)
    soft = -(0.75 * math.log(0.25) + 0.25 * math.log(0.75))
    assert distill.prediction_loss(logits, labels, teacher, soft_weight=0.0).item() == pytest.approx(hard)
    assert distill.prediction_loss(logits, labels, teacher, soft_weight=1.0).item() == pytest.approx(soft)
    assert distill.prediction_loss(logits, labels, teacher, soft_weight=0.5).item() == \
        pytest.approx(0.5 * hard + 0.5 * soft)


def test_internal_loss_is_zero_for_a_student_that_matches_exactly():
    """Representation MSE through identity maps on a student whose rates are the target; attention KL to itself."""
    student = SpikingEncoder(vocab_size=20, hidden=8, heads=2, intermediate=16, layers=1, seq_len=6, classes=2)
    ids = torch.randint(0, 20, (3, 6))
    mask = torch.ones_like(ids, dtype=torch.bool)
    student.keep_rates = True
    with torch.no_grad():
        student(ids, mode="rate")
        hidden = [student.embedding(ids), student.last_rates["block0.output"].clone()]
        attention = [p.clone() for p in distill.student_attention(student, ids)]
    maps = distill.LayerMaps(8, [dict(output=distill.Affine(torch.tensor(1.0), torch.zeros(8)))])
    target = distill.TeacherOutput(hidden, attention, [], hidden[-1].mean(1))
    rep, att = distill.internal_loss(student, ids, maps, target, mask)
    assert rep.item() == pytest.approx(0.0, abs=1e-10) and att.item() == pytest.approx(0.0, abs=1e-6)
    assert student.keep_rates is False and student.last_rates == {}


def test_five_classes_cut_the_rating_at_ssts_boundaries():
    sys.path.insert(0, str(REPO / "models" / "training"))
    import distill_data

    ratings = [-4, -2.4, -2.39, -0.8, -0.79, 0, 0.8, 0.81, 2.4, 2.41, 4]
    assert distill_data.five_class(ratings).tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]


@pytest.mark.skipif(not STUDENT.is_file(), reason="the distilled student is not in models/")
def test_shipped_student_is_under_50_mb_and_has_the_teachers_shape():
    from neurosim.frontend.checkpoint import load_encoder

    assert STUDENT.stat().st_size < 50e6
    model, ckpt = load_encoder(STUDENT)
    assert (len(model.blocks), model.hidden, model.heads, model.intermediate_size) == (6, 384, 12, 1536)
    assert len(ckpt["vocab"]) == len(ckpt["teacher_ids"]) == model.embed.num_embeddings
    assert ckpt["vocab"][:4] == list(distill.SPECIAL)


@pytest.mark.skipif(not STUDENT.is_file() or importlib.util.find_spec("tokenizers") is None,
                    reason="needs the shipped student and tokenizers")
def test_shipped_student_encodes_text_with_its_own_tokenizer():
    ckpt = torch.load(STUDENT, map_location="cpu", weights_only=True)
    ids = distill.encode_for_student(ckpt, ["a gripping , funny film"], 8)[0].tolist()
    words = [ckpt["vocab"][i] for i in ids]
    assert words == ["[CLS]", "a", "gripping", ",", "funny", "film", "[SEP]", "[PAD]"]


@pytest.mark.parametrize("mode", ["spike", "stochastic"])
def test_spike_driven_logits_carry_the_time_stepped_values_and_the_rate_models_gradient(mode):
    torch.manual_seed(0)
    student = SpikingEncoder(vocab_size=20, hidden=8, heads=2, intermediate=16, layers=2, seq_len=6, classes=2,
                             timesteps=5)
    ids = torch.randint(0, 20, (3, 6))
    with torch.no_grad():
        want = student(ids, mode=mode, seed=4)
    logits, outputs = distill.spike_driven_logits(student, ids, mode, seed=4)
    assert torch.allclose(logits, want, atol=1e-5)
    assert len(outputs) == 2 and all(((o * 5).round() - o * 5).abs().max() < 1e-4 for o in outputs)  # counts / T
    logits.sum().backward()
    grad = student.blocks[0].k.weight.grad
    assert grad is not None and grad.abs().sum() > 0       # reaches the first block through the rate model
    assert student.keep_token_asr is False and student.token_asr == {}


def test_spike_driven_gradient_is_the_frozen_layernorm_rate_models_gradient():
    # driven by rate mode's own values, the straight-through pass must be the rate model itself, LayerNorm
    # included: with frozen statistics its backward pass must not normalize per token
    torch.manual_seed(2)
    student = SpikingEncoder(vocab_size=20, hidden=8, heads=2, intermediate=16, layers=2, seq_len=6, classes=2,
                             timesteps=5, layernorm="frozen")
    ids = torch.randint(0, 20, (3, 6))
    student.calibrate_layernorm(ids[:1])   # one sentence's statistics: other sentences' tokens differ from them
    grads = []
    for run in (lambda: distill.spike_driven_logits(student, ids, "rate")[0], lambda: student(ids, mode="rate")):
        student.zero_grad()
        run().sum().backward()
        grads.append(student.blocks[0].ln1.weight.grad.clone())
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-6)


def test_token_asr_is_the_per_token_rate_that_last_asr_averages():
    torch.manual_seed(1)
    student = SpikingEncoder(vocab_size=20, hidden=8, heads=2, intermediate=16, layers=1, seq_len=6, classes=2,
                             timesteps=7)
    student.keep_token_asr = True
    with torch.no_grad():
        student(torch.randint(0, 20, (2, 6)), mode="spike")
    for name, per_token in student.token_asr.items():
        assert per_token.shape[:2] == (2, 6)
        assert torch.allclose(per_token.mean(dim=(0, 1)), student.last_asr[name])
