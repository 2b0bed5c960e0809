"""A SpikingBERT student of a BERT teacher's shape: initialised from its weights, distilled layer by layer.

The method is SpikingBERT's (M. Bal and A. Sengupta, "SpikingBERT: Distilling
BERT to Train Spiking Language Models Using Implicit Differentiation", AAAI
2024; its code, NeuroCompLab-psu/SpikingBERT, spiking_bert_task_distill.py),
as the seed paper adopts it (Jiang, Bal et al. 2025, Sec. III and Sec. IV-B):
the student is trained at the equilibrium of its average spiking rates (ASR),
which lets its rates be matched to a real-valued teacher:

1. internal-layer distillation: for the embedding output and every encoder
   layer's output, MSE between a learned linear map of the student's rates
   (SpikingBERT's W_td) and the teacher's hidden state, plus a term on each
   layer's attention;
2. prediction-layer distillation / the task: cross-entropy on the task labels
   and on the teacher's soft labels.

Where we differ, and why: SpikingBERT shares one W_td across layers and matches
raw attention scores by MSE. We fit one map per layer, initialised from the
calibration below so that the loss starts near zero, and match attention
*distributions* (KL divergence, as MiniLM distils): our initialisation shifts
each query's scores by a constant, which softmax ignores but MSE would not.

Initialisation (ours; SpikingBERT starts from a generally distilled student).
A student rate r in [0, 1] stands for the teacher activation s * r + c, with
(s, c) read from the teacher on calibration sentences (`calibrate`), and every
affine factor is folded into the weights that read it (`init_from_teacher`):
Key scales fold into the Query (scores shift by a per-query constant), Value
offsets pass through the softmax's convex sum into the attention-output bias,
and the residual streams use one scale per layer, because LayerNorm ignores a
common factor of its input. GELU becomes the IF rate clamp(u / s, 0, 1). The
teacher's embedding LayerNorm has no counterpart in SpikingEncoder (a token
and a position embedding, summed): we normalise each word's embedding with the
mean position added and scale the position table by the median norm.

Spike-driven training (`spike_driven_logits`). A student distilled in rate
mode alone drifts from its rates once it runs in time steps: LayerNorm and
softmax act on each step's binary inputs, whose noise widens LayerNorm's
per-step spread and so shrinks its output (measured slope 0.4-0.8 per block on
the teacher-folded student), and six blocks compound the shrinkage until the
last layer no longer depends on the sentence. SpikingBERT trains on the
*simulated* network's ASR with the equilibrium model's gradient (implicit
differentiation at the spiking equilibrium; Meng et al.'s DSR, CVPR 2022, is
the same idea for feed-forward SNNs): the forward values are what the spiking
network computes, the backward pass the rate model's Jacobian at those values.
On the shipped student it did not help (models/spikingbert-minilm-polarity.md:
rate mode collapsed within an epoch, spike mode stayed at one class).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .encoder import SpikingEncoder
from .teacher import MiniLM, TeacherOutput, encode

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")   # kept first, in this order: student ids 0..3
LOW, HIGH = 0.01, 0.99        # quantiles of a teacher activation mapped to rates 0 and 1 (ours)
STREAM_QUANTILE = 0.9         # residual streams: this quantile over dims of the per-dim range (ours)


def student_vocabulary(tokenizer, texts: list[str]) -> torch.Tensor:
    """Teacher ids the student keeps: the special tokens, then every piece of `texts` (sorted); index = student id."""
    specials = [tokenizer.token_to_id(t) for t in SPECIAL]
    seen = sorted({i for enc in tokenizer.encode_batch(list(texts)) for i in enc.ids} - set(specials))
    return torch.tensor(specials + seen, dtype=torch.long)


def to_student_ids(teacher_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Map teacher ids to student ids; pieces the student does not keep become [UNK] (student id 1)."""
    lookup = torch.full((int(max(keep.max(), teacher_ids.max())) + 1,), 1, dtype=torch.long)
    lookup[keep] = torch.arange(len(keep))
    return lookup[teacher_ids]


def student_tokenizer(checkpoint: dict):
    """The tokenizer a distilled student's checkpoint carries (its `tokenizer` key, tokenizer.json as text)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(checkpoint["tokenizer"])
    tok.no_padding()
    tok.no_truncation()
    return tok


def encode_for_student(checkpoint: dict, texts: list[str], seq_len: int) -> torch.Tensor:
    """Student token ids (len(texts), seq_len) of `texts`, from the checkpoint alone (no teacher package)."""
    ids, _ = encode(student_tokenizer(checkpoint), texts, seq_len)
    return to_student_ids(ids, checkpoint["teacher_ids"])


@dataclass
class Affine:
    """A teacher activation ~ scale * rate + shift (scale: per dim or one number; shift: per dim)."""
    scale: torch.Tensor
    shift: torch.Tensor


def _range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dim LOW and HIGH quantiles of x (tokens, dims)."""
    q = torch.quantile(x.float(), torch.tensor([LOW, HIGH], device=x.device), dim=0)
    return q[0], q[1]


def _per_dim(x: torch.Tensor) -> Affine:
    lo, hi = _range(x)
    return Affine((hi - lo).clamp(min=1e-3), lo)


def _stream(x: torch.Tensor) -> Affine:
    lo, hi = _range(x)
    return Affine(torch.quantile(hi - lo, STREAM_QUANTILE).clamp(min=1e-3), lo)


@torch.no_grad()
def calibrate(out: TeacherOutput, mask: torch.Tensor) -> list[dict[str, Affine]]:
    """Per layer: Affine maps of k, v (per dim), attn_out and output (streams), intermediate (GELU's top)."""
    real = mask.bool()
    maps = []
    for p in out.parts:
        take = lambda t: t[real][:10000]  # torch.quantile takes at most 2^24 values; 10,000 tokens suffice
        gelu_top = torch.quantile(F.gelu(take(p["intermediate"])).float(), HIGH, dim=0).clamp(min=1e-3)
        maps.append(dict(k=_per_dim(take(p["k"])), v=_per_dim(take(p["v"])), attn_out=_stream(take(p["attn_out"])),
                         intermediate=Affine(gelu_top, torch.zeros_like(gelu_top)),
                         output=_stream(take(p["output"]))))
    return maps


@torch.no_grad()
def _init_embedding(student: SpikingEncoder, teacher: MiniLM, keep: torch.Tensor) -> None:
    ln = teacher.ln_embed
    pos = teacher.position.weight[: student.seq_len]
    mean_pos = pos.mean(0)
    word = teacher.word.weight[keep] + teacher.token_type.weight[0] + mean_pos
    centred = word - word.mean(-1, keepdim=True)
    sigma = (centred.pow(2).mean(-1, keepdim=True) + ln.eps).sqrt()
    student.embed.weight.copy_(ln.weight * centred / sigma + ln.bias)
    p = pos - mean_pos
    student.pos.copy_(ln.weight * (p - p.mean(-1, keepdim=True)) / sigma.median())


@torch.no_grad()
def _fold_linear(dst: nn.Linear, w: torch.Tensor, b: torch.Tensor) -> None:
    dst.weight.copy_(w)
    dst.bias.copy_(b)


@torch.no_grad()
def _init_block(blk, lay, m: dict[str, Affine], x_in: Affine | None) -> None:
    """Fold the teacher layer `lay` into the student block `blk` (see the module docstring)."""
    dev = lay.q.weight.device
    s_x = x_in.scale if x_in is not None else torch.tensor(1.0, device=dev)
    c_x = x_in.shift if x_in is not None else torch.zeros(lay.q.in_features, device=dev)
    k, v, h, i, o = m["k"], m["v"], m["attn_out"], m["intermediate"], m["output"]
    for name, aff in (("k", k), ("v", v)):   # rate = (W x_T + b - c) / s, with x_T = s_x r + c_x
        t = getattr(lay, name)
        _fold_linear(getattr(blk, name), t.weight * s_x / aff.scale[:, None], (t.weight @ c_x + t.bias - aff.shift)
                     / aff.scale)
    _fold_linear(blk.q, lay.q.weight * s_x * k.scale[:, None], (lay.q.weight @ c_x + lay.q.bias) * k.scale)
    _fold_linear(blk.attn_out, lay.attn_out.weight * v.scale[None, :] / s_x,
                 (lay.attn_out.weight @ v.shift + lay.attn_out.bias + c_x) / s_x)
    _fold_linear(blk.intermediate, lay.intermediate.weight * h.scale / i.scale[:, None],
                 (lay.intermediate.weight @ h.shift + lay.intermediate.bias) / i.scale)
    _fold_linear(blk.output, lay.output.weight * i.scale[None, :] / h.scale, (lay.output.bias + h.shift) / h.scale)
    for dst, src, aff in ((blk.ln1, lay.ln1, h), (blk.ln2, lay.ln2, o)):
        dst.weight.copy_(src.weight / aff.scale)
        dst.bias.copy_((src.bias - aff.shift) / aff.scale)


@torch.no_grad()
def init_from_teacher(student: SpikingEncoder, teacher: MiniLM, keep: torch.Tensor,
                      maps: list[dict[str, Affine]], head: nn.Linear | None = None) -> None:
    """Copy the teacher into the student (same hidden, heads, intermediate, layers), folding `maps` in.

    `head`: the teacher's classifier on its mean-pooled last layer, folded onto the student's rates.
    Student, teacher, maps and head on one device.
    """
    _init_embedding(student, teacher, keep)
    x_in = None
    for blk, lay, m in zip(student.blocks, teacher.layers, maps):
        _init_block(blk, lay, m, x_in)
        x_in = m["output"]
    if head is not None:
        o = maps[-1]["output"]
        _fold_linear(student.classifier, head.weight * o.scale, head.bias + head.weight @ o.shift)


class LayerMaps(nn.Module):
    """SpikingBERT's W_td, one per matched layer: student rates (or the embedding) -> the teacher's space."""

    def __init__(self, hidden: int, maps: list[dict[str, Affine]]):
        super().__init__()
        self.fit = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(len(maps) + 1))
        with torch.no_grad():
            self.fit[0].weight.copy_(torch.eye(hidden))   # the embedding is real-valued: identity
            self.fit[0].bias.zero_()
            for f, m in zip(self.fit[1:], maps):
                f.weight.copy_(torch.eye(hidden) * m["output"].scale.cpu())
                f.bias.copy_(m["output"].shift.cpu())


def student_attention(student: SpikingEncoder, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Each block's attention distribution (batch, heads, n, n) from the rates of the last `rate` pass.

    Needs `student.keep_rates = True` during that pass; recomputes q from the block input, the same
    softmax(q k^T / sqrt(head_dim)) as EncoderBlock.attend.
    """
    probs = []
    for b, blk in enumerate(student.blocks):
        x = student.embedding(tokens) if b == 0 else student.last_rates[f"block{b - 1}.output"]
        q, k = blk.q(x), student.last_rates[f"block{b}.k"]
        n = tokens.shape[1]
        split = lambda t: t.view(t.shape[0], n, blk.heads, blk.head_dim).transpose(1, 2)  # noqa: E731
        probs.append(torch.softmax(split(q) @ split(k).transpose(-1, -2) / blk.head_dim ** 0.5, dim=-1))
    return probs


def internal_loss(student: SpikingEncoder, tokens: torch.Tensor, maps: LayerMaps, target: TeacherOutput,
                  mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(representation MSE, attention KL) of one batch, over the real tokens; runs the student in rate mode."""
    student.keep_rates = True
    try:
        logits = student(tokens, mode="rate")
        reps = [student.embedding(tokens)] + [student.last_rates[f"block{b}.output"]
                                              for b in range(len(student.blocks))]
        real = mask.bool()
        rep = sum(F.mse_loss(f(r)[real], t[real]) for f, r, t in zip(maps.fit, reps, target.hidden))
        rows = real[:, None, :, None].float()    # real query rows; the teacher puts no weight on padding keys
        att = 0.0
        for ps, pt in zip(student_attention(student, tokens), target.attention):
            kl = (pt * (pt.clamp(min=1e-12).log() - ps.clamp(min=1e-12).log())).sum(-1, keepdim=True)
            att = att + (kl * rows).sum() / (rows.sum() * pt.shape[1])
    finally:
        student.keep_rates = False
        student.last_rates = {}
    del logits
    return rep, att


def prediction_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float = 1.0, soft_weight: float = 0.5) -> torch.Tensor:
    """(1 - w) x cross-entropy on the labels + w x soft cross-entropy on the teacher's logits / temperature."""
    soft = -(F.softmax(teacher_logits / temperature, -1) * F.log_softmax(logits / temperature, -1)).sum(-1).mean()
    return (1 - soft_weight) * F.cross_entropy(logits, labels) + soft_weight * soft


def spike_driven_logits(student: SpikingEncoder, tokens: torch.Tensor, mode: str = "spike",
                        seed: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(logits, each block's output) whose values are a time-stepped pass's and whose gradient is the rate model's.

    One `mode` pass ("spike" or "stochastic", at the student's timesteps) without gradient gives every
    sublayer's per-token ASR; then one rate pass where each sublayer outputs its rate with the ASR's value
    (straight through: rate + (ASR - rate).detach()), so its inputs are the spiking network's values too.
    """
    student.keep_token_asr = True
    try:
        with torch.no_grad():
            student(tokens, mode=mode, seed=seed)
        asr = dict(student.token_asr)
    finally:
        student.keep_token_asr = False
        student.token_asr = {}
    x, outputs = student.embedding(tokens), []
    norm = student.norm(time_stepped=False)   # frozen statistics where the model has them: the rate model's LN
    for b, blk in enumerate(student.blocks):
        def fire(role, current, b=b, blk=blk):
            r = blk.lif[role].rate(current)
            return r + (asr[f"block{b}.{role}"] - r).detach()
        x, _ = blk(x, fire, norm=norm)
        outputs.append(x)
    return student.classifier(x.mean(dim=1)), outputs
