"""A small LLaMA-style decoder whose linear inputs and KV cache can be SpikeLLM GIF neurons.

Block b (names block{b}.<role>):

    h = x + o(attention(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))))      causal, `heads` heads
    out = h + down(silu(gate(n2(h))) * up(n2(h)))                        SwiGLU MLP

n1, n2 and the final norm are RMSNorms; the token embedding feeds block 0 and
the LM head (its own weights) reads the final norm. No biases, as in LLaMA.

`spiking` (a `Spiking`, or None for the real-valued twin) says how the same
weights run, as SpikeLLM's reference code runs a LLaMA layer
(models/spike_llama_layer.py there):

* every projection (q, k, v, o, gate, up, down) takes its input through GIF
  neurons (`spikellm.emit`: per-token n bits, multi-step channels
  n + addbit bits over 2^addbit steps, the Optimal Brain Spiking split in the
  layer's `multi` buffer); weights optionally quantized per output row;
* the attention's Q is quantized per (token, head) to n bits (a real operand,
  no spikes); K and V are GIF spikes per (token, head) with `kv_addbit`
  (the reference forces 1) and their own splits (`k_multi`, `v_multi`);
  the probabilities P stay real (the reference's 16-bit "fix0to1" quantizer
  returns them unchanged). One difference: the reference quantizes K^T along
  its last axis, i.e. each key channel over the sequence's tokens, which a
  growing KV cache cannot do; here each cached key is quantized once, per
  token and head, like V.
* the embedding, the norms, softmax, the LM head stay real, as there.

`mode` "fake" is the reference's training and evaluation path (quantize and
dequantize, straight-through gradients); "spike" sends real spike trains
(`gif_linear`, `gif_values`) and counts them in `counts` (a `SpikeCount` per
GIF input, named block{b}.<role>); they differ only by the residue the GIF
drops after its T steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import obs
from .spikellm import SpikeCount, check_bits, fake_quant, gif_linear, gif_values, quantize, two_path_fake_quant

MODES = ("fake", "spike")
ROPE_BASE = 10000.0   # LLaMA's rotary base (Touvron et al. 2023; Su et al.'s RoFormer)
RMSNORM_EPS = 1e-6    # the RMSNorm epsilon of LLaMA's reference code
LINEARS = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass
class Spiking:
    """How a decoder's activations spike (SpikeLLM's driver: n_bits 4, addbit 1, low_p 0.9, weight_bits 4)."""

    n_bits: int = 4
    addbit: int = 1
    kv_addbit: int = 1
    weight_bits: int | None = 4
    mode: str = "fake"

    def __post_init__(self):
        check_bits(self.n_bits, self.addbit, "Spiking")
        check_bits(self.n_bits, self.kv_addbit, "Spiking")
        if self.weight_bits is not None:
            check_bits(self.weight_bits, 0, "Spiking.weight_bits")
        if self.mode not in MODES:
            from ..errors import NeurosimError
            raise NeurosimError("Spiking", "mode", f"unknown mode {self.mode!r}", f"use one of {', '.join(MODES)}")


def quantized_weight(weight: torch.Tensor, spiking: Spiking) -> torch.Tensor:
    """Weights quantized per output row, asymmetric min-max (the reference's per-channel weight quantizer
    without its learned clipping)."""
    if spiking.weight_bits is None:
        return weight
    return fake_quant(weight, spiking.weight_bits)   # straight-through: trains the latent weights


class GIFLinear(nn.Linear):
    """nn.Linear (no bias) whose input goes through SpikeLLM GIF neurons when `spiking` is set.

    `multi` (bool buffer, one per input channel) is the Optimal Brain Spiking split; `saliency` collects
    calibration saliencies while `calibrating`; `count` collects spikes in spike mode.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)
        self.register_buffer("multi", torch.ones(in_features, dtype=torch.bool))
        self.spiking: Spiking | None = None
        self.count: SpikeCount | None = None
        self.calibrating = False
        self.saliency: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.saliency.append(obs.linear_saliency(x.detach().reshape(-1, x.shape[-1]), self.weight.detach()))
        s = self.spiking
        if s is None:
            return F.linear(x, self.weight)
        w = quantized_weight(self.weight, s)
        if s.mode == "spike":
            return gif_linear(x, w, None, s.n_bits, s.addbit, self.multi, self.count)
        return F.linear(two_path_fake_quant(x, s.n_bits, s.addbit, self.multi), w)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = RMSNORM_EPS):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(size)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """Rotary position embedding of (batch, heads, tokens, head_dim), LLaMA's rotate-half form."""
    tokens, dim = x.shape[-2], x.shape[-1]
    freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=x.device) / dim)
    angle = torch.arange(tokens, dtype=torch.float32, device=x.device)[:, None] * freq[None]
    cos, sin = torch.cat([angle.cos()] * 2, -1), torch.cat([angle.sin()] * 2, -1)
    half = dim // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.q, self.k, self.v, self.o = (GIFLinear(hidden, hidden) for _ in range(4))
        self.register_buffer("k_multi", torch.ones(heads, 1, self.head_dim, dtype=torch.bool))
        self.register_buffer("v_multi", torch.ones(heads, 1, self.head_dim, dtype=torch.bool))
        self.spiking: Spiking | None = None
        self.counts: dict[str, SpikeCount] | None = None
        self.calibrating = False
        self.saliency: dict[str, list[torch.Tensor]] = {"k": [], "v": []}

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def _kv(self, x: torch.Tensor, role: str) -> torch.Tensor:
        s, multi = self.spiking, getattr(self, f"{role}_multi")
        if s is None:
            return x
        if s.mode == "spike":
            # key (value) j of a sequence of n reaches the n - j queries that attend it (causal)
            n = x.shape[-2]
            reach = (n - torch.arange(n, device=x.device))[:, None]
            return gif_values(x, s.n_bits, s.kv_addbit, multi, self.counts[role] if self.counts else None, reach)
        return two_path_fake_quant(x, s.n_bits, s.kv_addbit, multi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rope(self._split(self.q(x))), rope(self._split(self.k(x))), self._split(self.v(x))
        if self.spiking is not None:
            q = fake_quant(q, self.spiking.n_bits) if self.spiking.mode == "fake" else \
                quantize(q, self.spiking.n_bits).dequantize()
        k, v = self._kv(k, "k"), self._kv(v, "v")
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=x.device).tril()
        p = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        if self.calibrating:
            self.saliency["k"].append(obs.key_saliency(q.detach(), k.detach()))
            self.saliency["v"].append(obs.value_saliency(p.detach(), v.detach()))
        out = (p @ v).transpose(1, 2).reshape(x.shape)
        return self.o(out)


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int):
        super().__init__()
        self.n1, self.n2 = RMSNorm(hidden), RMSNorm(hidden)
        self.attn = Attention(hidden, heads)
        self.gate, self.up = GIFLinear(hidden, intermediate), GIFLinear(hidden, intermediate)
        self.down = GIFLinear(intermediate, hidden)

    def linears(self) -> dict[str, GIFLinear]:
        a = self.attn
        return dict(q=a.q, k=a.k, v=a.v, o=a.o, gate=self.gate, up=self.up, down=self.down)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.attn(self.n1(x))
        m = self.n2(h)
        return h + self.down(F.silu(self.gate(m)) * self.up(m))


@dataclass
class DecoderConfig:
    vocab_size: int
    hidden: int = 128
    heads: int = 4
    intermediate: int = 352
    layers: int = 3
    seq_len: int = 128


class SpikingDecoder(nn.Module):
    """LLaMA-style decoder; `set_spiking` switches between the real-valued twin and SpikeLLM spiking."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        c = self.config = config
        if c.hidden % c.heads or (c.hidden // c.heads) % 2:
            from ..errors import NeurosimError
            raise NeurosimError("DecoderConfig", "heads", f"hidden {c.hidden} / heads {c.heads} must be an even "
                                "head size", "choose heads dividing hidden into an even head_dim")
        self.embed = nn.Embedding(c.vocab_size, c.hidden)
        self.blocks = nn.ModuleList(Block(c.hidden, c.heads, c.intermediate) for _ in range(c.layers))
        self.norm = RMSNorm(c.hidden)
        self.head = nn.Linear(c.hidden, c.vocab_size, bias=False)
        self.spiking: Spiking | None = None
        self.counts: dict[str, SpikeCount] = {}

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def gif_inputs(self) -> dict[str, GIFLinear]:
        return {f"block{b}.{role}": m for b, block in enumerate(self.blocks) for role, m in block.linears().items()}

    def set_spiking(self, spiking: Spiking | None) -> None:
        """Run as SpikeLLM spiking (`spiking`) or as the real-valued twin (None); spike mode starts counting."""
        self.spiking = spiking
        self.counts = {}
        for name, m in self.gif_inputs().items():
            m.spiking = spiking
            m.count = self.counts.setdefault(name, SpikeCount()) if spiking and spiking.mode == "spike" else None
        for b, block in enumerate(self.blocks):
            block.attn.spiking = spiking
            block.attn.counts = None
            if spiking and spiking.mode == "spike":
                block.attn.counts = {r: self.counts.setdefault(f"block{b}.{r}_cache", SpikeCount()) for r in "kv"}

    @torch.no_grad()
    def calibrate(self, batches: list[torch.Tensor], low_p: float) -> None:
        """Optimal Brain Spiking: saliencies on calibration token batches (run as the model is set), then
        the low_p split of every GIF input and of K and V."""
        obs.check_low_p(low_p)
        attns = [b.attn for b in self.blocks]
        modules = list(self.gif_inputs().values()) + attns
        for m in modules:
            m.calibrating = True
        try:
            for tokens in batches:
                self(tokens)
        finally:
            for m in modules:
                m.calibrating = False
        for m in self.gif_inputs().values():
            m.multi = obs.channel_split(torch.stack(m.saliency).mean(0), low_p)
            m.saliency = []
        for a in attns:
            for role in "kv":
                split = obs.channel_split(torch.stack(a.saliency[role]).mean(0), low_p)
                setattr(a, f"{role}_multi", split[:, None, :])
                a.saliency[role] = []

    def settings(self) -> dict:
        return {} if self.spiking is None else asdict(self.spiking)
