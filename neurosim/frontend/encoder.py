"""A SpikingBERT-style spiking encoder, with three ways to run the same weights.

Block b (IR names block{b}.<role>, as `cards.encoder_network` lays them out):

    q            = W_q x + b                       real-valued Query (no neuron)
    k, v         = LIF(W_k x + b), LIF(W_v x + b)  spiking Key and Value
    attention    = LIF(softmax(q k^T / sqrt(head_dim)) v)   masked heads get 0 current
    attn_out     = LIF(LayerNorm(W_o attention + b + x))
    intermediate = LIF((W_i attn_out + b) * neuron_mask)   masked neurons get 0 current
    output       = LIF(LayerNorm(W_2 intermediate + b + attn_out))

x is the block input: the previous block's output spikes, or for block 0 the
token + position embedding, fed as a real input current. After the last
block, the output is averaged over time and tokens and a linear head gives
the class logits.

Timesteps: one count for the whole model, one per block (`[6, 4]`), or one per
spiking sublayer of each block (`[[k, v, attention, attn_out, intermediate,
output], ...]`, ROLES order; the seed paper's Appendix B gives every sublayer
its own t: t_K, t_V, t_Attn, t_FC, t_Inter, t_Output, with t_Q = t_Attn).
`model.timesteps` reads one count per block (its largest sublayer count, so a
uniform block reads as before) and accepts any of the three forms;
`model.sublayer_timesteps` reads the full (blocks x 6) table.

Modes, `forward(tokens, mode=...)`:

* `rate`: the equilibrium model. Every neuron outputs `rate(I) = clamp(I/vth,
  0, 1)` of the current computed from its inputs' rates. One pass, fully
  differentiable, and blind to the timesteps: use it to train at T_conv.
* `rate_t`: the same one pass, at each sublayer's own t^l (what retraining
  after temporal pruning needs). A sublayer's output is the spike count an IF
  neuron fires in t^l steps of a constant current, clamp(floor(t^l I / vth),
  0, t^l) / t^l, so it can only take t^l + 1 values; a spiking input is seen
  as the mean of t^l Bernoulli draws at the carried rate (as `stochastic`
  draws them), sampled from the normal approximation of Binomial(t^l, r) / t^l
  and rounded to a count. Both go straight through to the gradient of the
  `rate` model (surrogate), and the draws are seeded. With leak 1 and a
  constant current the count is exact (block 0's K and V equal `spike` mode's
  ASR, tests/test_frontend.py); elsewhere per-step softmax and LayerNorm make
  it an approximation of `stochastic`, as `rate` is of `spike`.
* `spike`: time-stepped simulation, all layers in lock-step for
  T = max(timesteps) steps (the spatial dataflow; layer l+1 consumes layer l's
  spikes of the same algorithmic step, which the hardware runs one clock step
  later: that is the pipeline fill, not a different spike train). The
  embedding is the same input current at every step. This is the readable
  reference that a fast engine is checked against.
* `stochastic`: the sequential dataflow carrying rates. Each sublayer runs its
  own t^l steps, one sublayer after another; a sublayer's spiking inputs are
  regenerated as Bernoulli draws at the per-neuron, per-token ASR its input
  layer measured (seeded torch.Generator). Q is real-valued, so what it
  carries is its time average (over the attention sublayer's steps, t_Q =
  t_Attn).

`spike`, `stochastic` and `rate_t` record `last_asr[name]` = per-neuron ASR (spike
count / timesteps run, averaged over batch and tokens); `rate` records the
equilibrium rates under the same names, so the two can be compared.

Hooks for pruning (neurosim.pruning), all off by default:

* `EncoderBlock.head_gate` / `neuron_gate`: a tensor multiplied into the
  head / neuron mask, shape (heads,) or (batch, heads), resp. (intermediate,)
  or (batch, intermediate). A per-sample gate of ones with requires_grad gives
  each sample's gradient w.r.t. the mask (Fisher scores); a sigmoid-relaxed
  gate lets masks train.
* `SpikingEncoder.record_steps = True`: `spike` mode also records
  `step_asr[name]`, a (batch, steps, neurons) tensor: each neuron's spike
  fraction over the tokens at each step (the per-timestep ASR of temporal
  pruning).
* `SpikingEncoder.keep_rates = True`: `rate` and `rate_t` modes also keep `last_rates[name]`,
  the (batch, tokens, neurons) rates with their graph, for an activity loss.
* `SpikingEncoder.keep_token_asr = True`: every mode also keeps `token_asr[name]`, the
  (batch, tokens, neurons) ASR (or rates) before the mean `last_asr` takes, without graph: what
  spike-driven training (neurosim.frontend.distill.spike_driven_logits) uses as its forward values.

Spike mode differs from the equilibrium beyond the 1/T discretization: the
per-step softmax and LayerNorm are nonlinear, so the mean of a per-step
output is not the output of the means. tests/test_frontend.py measures how
close the two come.

LayerNorm in the time-stepped modes (`layernorm=`, stored in a checkpoint's config):

* `"step"` (the default, and every checkpoint saved before the option): each step's
  LayerNorm normalizes that step's input (W s_t + b + residual s_t), as SpikingBERT's
  code does. The binary spikes' noise widens the spread it divides by, so the
  time-mean of its output is a shrunk copy of the equilibrium's.
* `"running_mean"`: step t normalizes the running mean of its input over the steps
  so far, (1/t) sum_{u<=t} (W s_u + b + residual s_u): an accumulator per element,
  like a membrane, that converges to the equilibrium's input (the rates), so its
  output converges to `rate` mode's LayerNorm output. LayerNorm ignores a common
  scale, so hardware can normalize the sum itself (with eps x t^2): one add per
  element and step more than `"step"` (cost.analytic.LAYERNORM_OPS_BY_STATISTICS).
  In `stochastic` mode the mean runs over the sublayer's own t^l steps.
  Measured on the distilled student it is not enough (docs/pruning.md).
* `"frozen"`: every LayerNorm, in every mode, uses one mean and one variance held
  fixed, measured once by `calibrate_layernorm` (rate mode with per-token
  LayerNorm, averaged over a calibration set's tokens) and saved in the state_dict
  (`layernorm_stats`). LayerNorm becomes a per-feature affine map, as a folded
  BatchNorm is at inference, so the time-mean of its output is exactly its output
  of the mean input: the time-stepped modes estimate `rate` mode without bias. It
  changes the rate model (by how much each token's statistics differ from the
  calibration's), and costs 2 ops per element instead of 6
  (cost.analytic.LAYERNORM_OPS_BY_STATISTICS). An uncalibrated model refuses to run.

`step` and `running_mean` leave `rate` and `rate_t` (one pass over rates) as they are.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..ir import NORM_STATISTICS
from .neurons import LIF

ROLES = ("k", "v", "attention", "attn_out", "intermediate", "output")  # the spiking sublayers
MODES = ("rate", "rate_t", "spike", "stochastic")
LAYERNORMS = NORM_STATISTICS   # what LayerNorm normalizes by (module docstring): step, running_mean, frozen


class BinaryLinear(nn.Linear):
    """nn.Linear with optional 1-bit weights: sign(W) x the row's mean |W|.

    The latent float weights are trained through a straight-through estimator
    (the gradient of the binarized weight is passed to W unchanged). sign(0) is
    taken as +1, so every row holds exactly two values, +-scale.
    """

    def __init__(self, in_features: int, out_features: int, binary: bool = False):
        super().__init__(in_features, out_features)
        self.binary = binary

    def effective_weight(self) -> torch.Tensor:
        w = self.weight
        if not self.binary:
            return w
        scale = w.abs().mean(dim=1, keepdim=True)
        wb = torch.where(w >= 0, scale, -scale).detach()
        return wb + (w - w.detach())  # value exactly wb; gradient passes straight to w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


class EncoderBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, binary: bool,
                 threshold: float, leak: float, learn_threshold: bool):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.heads, self.head_dim = heads, hidden // heads
        self.q = BinaryLinear(hidden, hidden, binary)
        self.k = BinaryLinear(hidden, hidden, binary)
        self.v = BinaryLinear(hidden, hidden, binary)
        self.attn_out = BinaryLinear(hidden, hidden, binary)
        self.intermediate = BinaryLinear(hidden, intermediate, binary)
        self.output = BinaryLinear(intermediate, hidden, binary)
        self.ln1 = nn.LayerNorm(hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.lif = nn.ModuleDict({role: LIF(threshold, leak, learn_threshold) for role in ROLES})
        # 1 = kept, 0 = pruned; buffers so they travel with state_dict.
        self.register_buffer("head_mask", torch.ones(heads))
        self.register_buffer("neuron_mask", torch.ones(intermediate))
        # Optional gates multiplied into the masks (pruning hooks; see the module docstring).
        self.head_gate: torch.Tensor | None = None
        self.neuron_gate: torch.Tensor | None = None

    @staticmethod
    def _gated(mask: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
        return mask if gate is None else mask * gate

    def neuron_scale(self) -> torch.Tensor:
        """What multiplies the intermediate current: (intermediate,) or (batch, 1, intermediate)."""
        g = self._gated(self.neuron_mask, self.neuron_gate)
        return g if g.dim() == 1 else g.unsqueeze(1)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T / sqrt(head_dim)) v per head; a masked head's output is exactly 0."""
        b, n, d = q.shape
        split = lambda x: x.view(b, n, self.heads, self.head_dim).transpose(1, 2)  # (b, heads, n, hd)
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(self.head_dim)
        out = torch.softmax(scores, dim=-1) @ split(v)
        g = self._gated(self.head_mask, self.head_gate)
        out = out * (g.view(1, -1, 1, 1) if g.dim() == 1 else g.view(b, -1, 1, 1))
        return out.transpose(1, 2).reshape(b, n, d)

    def forward(self, x: torch.Tensor, fire: Callable[[str, torch.Tensor], torch.Tensor],
                see: Callable[[str, str, torch.Tensor], torch.Tensor] | None = None,
                norm: Callable[[nn.LayerNorm, torch.Tensor], torch.Tensor] | None = None):
        """One pass of the block; `fire(role, current)` is the neuron (a rate, or one LIF step).

        `see(reader, source, value)` is what sublayer `reader` receives of `source`'s output ("input" for
        the block input); by default the value itself (`rate_t` mode samples it at the reader's t^l).
        `norm(ln, z)` applies LayerNorm `ln` to `z`; by default ln(z) (SpikingEncoder.norm gives the others).
        """
        see = see or (lambda reader, source, value: value)
        norm = norm or (lambda ln, z: ln(z))
        q = self.q(see("attention", "input", x))   # Q runs inside the attention sublayer (t_Q = t_Attn)
        k = fire("k", self.k(see("k", "input", x)))
        v = fire("v", self.v(see("v", "input", x)))
        a = fire("attention", self.attend(q, see("attention", "k", k), see("attention", "v", v)))
        h = fire("attn_out", norm(self.ln1, self.attn_out(see("attn_out", "attention", a))
                                  + see("attn_out", "input", x)))
        i = fire("intermediate", self.intermediate(see("intermediate", "attn_out", h)) * self.neuron_scale())
        o = fire("output", norm(self.ln2, self.output(see("output", "intermediate", i)) + see("output", "attn_out", h)))
        return o, dict(k=k, v=v, attention=a, attn_out=h, intermediate=i, output=o)


class RunningMeanNorm:
    """`layernorm="running_mean"`: each LayerNorm normalizes the mean of the inputs it has been given so far.

    One instance per time-stepped run: a LayerNorm's k-th call sees the mean of its k inputs (its steps so far).
    """

    def __init__(self):
        self._sums: dict[int, tuple[torch.Tensor, int]] = {}

    def __call__(self, ln: nn.LayerNorm, z: torch.Tensor) -> torch.Tensor:
        total, count = self._sums.get(id(ln), (0, 0))
        total, count = total + z, count + 1
        self._sums[id(ln)] = (total, count)
        return ln(total / count)


class FrozenNorm:
    """`layernorm="frozen"`: LayerNorm with a mean and variance held fixed: (z - mean) / sqrt(var + eps) w + b."""

    def __init__(self, blocks, stats: torch.Tensor):
        if torch.isnan(stats).any():
            raise ValueError("layernorm='frozen' needs statistics: call calibrate_layernorm(tokens) first")
        self._stats = {id(ln): stats[b, i] for b, blk in enumerate(blocks) for i, ln in enumerate((blk.ln1, blk.ln2))}

    def __call__(self, ln: nn.LayerNorm, z: torch.Tensor) -> torch.Tensor:
        mean, var = self._stats[id(ln)]
        return (z - mean) * torch.rsqrt(var + ln.eps) * ln.weight + ln.bias


def steps_table(timesteps, layers: int) -> list[list[int]]:
    """(layers x 6) timesteps, ROLES order, from one count, one per block, or one per sublayer (a list of 6 or
    a {role: t} dict per block); ValueError naming what is wrong otherwise."""
    def count(t) -> int:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or int(t) != t or t < 1:
            raise ValueError(f"timesteps must be integers >= 1, got {t!r} in {timesteps!r}")
        return int(t)

    if not isinstance(timesteps, (list, tuple)):
        return [[count(timesteps)] * len(ROLES) for _ in range(layers)]
    if len(timesteps) != layers:
        raise ValueError(f"timesteps must be one integer, or one entry per layer ({layers}), got {timesteps!r}")
    table = []
    for entry in timesteps:
        if isinstance(entry, dict):
            if set(entry) != set(ROLES):
                raise ValueError(f"a block's timesteps dict needs exactly the roles {ROLES}, got {sorted(entry)}")
            entry = [entry[r] for r in ROLES]
        if isinstance(entry, (list, tuple)):
            if len(entry) != len(ROLES):
                raise ValueError(f"a block's per-sublayer timesteps need {len(ROLES)} counts ({', '.join(ROLES)}), "
                                 f"got {entry!r}")
            table.append([count(t) for t in entry])
        else:
            table.append([count(entry)] * len(ROLES))
    return table


class SpikingEncoder(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, heads: int, intermediate: int, layers: int,
                 seq_len: int, classes: int, timesteps: int | list[int] = 16, binary_weights: bool = False,
                 threshold: float = 1.0, leak: float = 1.0, learn_threshold: bool = False,
                 layernorm: str = "step"):
        super().__init__()
        self._steps = steps_table(timesteps, layers)
        self.hidden, self.heads, self.intermediate_size = hidden, heads, intermediate
        self.seq_len, self.binary_weights = seq_len, binary_weights
        self.embed = nn.Embedding(vocab_size, hidden)
        self.pos = nn.Parameter(torch.zeros(seq_len, hidden))
        self.blocks = nn.ModuleList(EncoderBlock(hidden, heads, intermediate, binary_weights, threshold, leak,
                                                 learn_threshold) for _ in range(layers))
        self.classifier = nn.Linear(hidden, classes)
        self.last_asr: dict[str, torch.Tensor] = {}
        # Pruning hooks (see the module docstring); off by default.
        self.record_steps = False
        self.step_asr: dict[str, torch.Tensor] = {}
        self.keep_rates = False
        self.last_rates: dict[str, torch.Tensor] = {}
        self.keep_token_asr = False
        self.token_asr: dict[str, torch.Tensor] = {}
        self.set_layernorm(layernorm)

    def set_layernorm(self, layernorm: str) -> None:
        """Choose what LayerNorm normalizes by (module docstring); `frozen` starts uncalibrated."""
        if layernorm not in LAYERNORMS:
            raise ValueError(f"layernorm must be one of {', '.join(LAYERNORMS)}, got {layernorm!r}")
        self.layernorm = layernorm
        if layernorm == "frozen":   # (block, ln1/ln2, mean/variance); NaN until calibrate_layernorm
            self.register_buffer("layernorm_stats", torch.full((len(self.blocks), 2, 2), float("nan"),
                                                               device=self.embed.weight.device))
        elif hasattr(self, "layernorm_stats"):
            del self.layernorm_stats

    # -- timesteps: one count per spiking sublayer -------------------------------------
    @property
    def timesteps(self) -> list[int]:
        """One count per block: its largest sublayer count (a uniform block's count)."""
        return [max(row) for row in self._steps]

    @timesteps.setter
    def timesteps(self, value) -> None:
        self._steps = steps_table(value, len(self._steps))

    @property
    def sublayer_timesteps(self) -> list[list[int]]:
        """(blocks x 6) timesteps of the spiking sublayers, ROLES order."""
        return [list(row) for row in self._steps]

    @property
    def per_sublayer(self) -> bool:
        """Do the sublayers of some block run different timesteps?"""
        return any(len(set(row)) > 1 for row in self._steps)

    def steps(self, block: int, role: str) -> int:
        """t^l of one sublayer (`q` runs with the attention sublayer: t_Q = t_Attn)."""
        return self._steps[block][ROLES.index("attention" if role == "q" else role)]

    def timesteps_config(self) -> list:
        """What a checkpoint's config saves: one count per block, or the per-sublayer table where blocks differ
        inside."""
        return self.sublayer_timesteps if self.per_sublayer else self.timesteps

    @property
    def device(self) -> torch.device:
        """Where the weights live (CPU or a GPU); callers move their token batches here."""
        return self.embed.weight.device

    def norm(self, time_stepped: bool) -> Callable[[nn.LayerNorm, torch.Tensor], torch.Tensor] | None:
        """The `norm` a run hands its blocks: None (LayerNorm of the input it is given), a fresh running mean
        (time-stepped runs of `running_mean`) or the frozen statistics."""
        if self.layernorm == "frozen":
            return FrozenNorm(self.blocks, self.layernorm_stats)
        return RunningMeanNorm() if self.layernorm == "running_mean" and time_stepped else None

    @torch.no_grad()
    def calibrate_layernorm(self, tokens: torch.Tensor, batch: int = 256) -> None:
        """`frozen`: each LayerNorm's mean and variance, from `rate` mode with per-token LayerNorm: the means over
        all sentences and tokens of each token's mean and variance over the features."""
        if self.layernorm != "frozen":
            raise ValueError(f"calibrate_layernorm is for layernorm='frozen', this model's is {self.layernorm!r}")
        sums = torch.zeros_like(self.layernorm_stats, dtype=torch.float64)
        index = {id(ln): (b, i) for b, blk in enumerate(self.blocks) for i, ln in enumerate((blk.ln1, blk.ln2))}

        def per_token(ln, z):
            b, i = index[id(ln)]
            sums[b, i, 0] += z.mean(-1).sum().double()
            sums[b, i, 1] += z.var(-1, unbiased=False).sum().double()
            return ln(z)
        for start in range(0, len(tokens), batch):
            x = self.embedding(tokens[start:start + batch].to(self.device))
            for blk in self.blocks:
                x, _ = blk(x, lambda role, current, blk=blk: blk.lif[role].rate(current), norm=per_token)
        self.layernorm_stats.copy_((sums / tokens.numel()).to(self.layernorm_stats.dtype))

    def embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed(tokens) + self.pos[: tokens.shape[1]]

    def forward(self, tokens: torch.Tensor, mode: str = "rate", seed: int | None = None) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] > self.seq_len:
            raise ValueError(f"tokens must be (batch, n <= {self.seq_len}), got {tuple(tokens.shape)}")
        if mode == "rate":
            out = self._rate(tokens)
        elif mode == "spike":
            out = self._spike(tokens)
        elif mode == "stochastic":
            out = self._stochastic(tokens, seed)
        elif mode == "rate_t":
            out = self._rate_t(tokens, seed)
        else:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        return self.classifier(out.mean(dim=1))  # mean-pool over tokens

    def _record(self, b: int, per_token: dict[str, torch.Tensor]) -> None:
        for role, r in per_token.items():
            self.last_asr[f"block{b}.{role}"] = r.detach().mean(dim=(0, 1))
            if self.keep_token_asr:
                self.token_asr[f"block{b}.{role}"] = r.detach()

    # -- rate: the equilibrium model --------------------------------------------
    def _rate(self, tokens: torch.Tensor) -> torch.Tensor:
        self.last_asr = {}
        self.last_rates = {}
        x = self.embedding(tokens)
        norm = self.norm(time_stepped=False)
        for b, blk in enumerate(self.blocks):
            x, rates = blk(x, lambda role, current: blk.lif[role].rate(current), norm=norm)
            self._record(b, rates)
            if self.keep_rates:
                self.last_rates.update({f"block{b}.{role}": r for role, r in rates.items()})
        return x

    # -- rate_t: the equilibrium model at each sublayer's own t^l -------------------------
    def _rate_t(self, tokens: torch.Tensor, seed: int | None) -> torch.Tensor:
        gen = _generator(tokens.device, seed)
        self.last_asr = {}
        self.last_rates = {}
        norm = self.norm(time_stepped=False)
        x = self.embedding(tokens)
        for b, blk in enumerate(self.blocks):
            def fire(role, current, b=b, blk=blk):
                t = self.steps(b, role)
                r = blk.lif[role].rate(current)
                levels = blk.lif[role].levels
                count = torch.clamp(torch.floor(t * current / blk.lif[role].threshold), 0, t * levels)
                return r + (count / t - r).detach()      # the value of t steps, the gradient of the rate

            def see(reader, source, r, b=b):
                if b == 0 and source == "input":           # the embedding is a real current, not spikes
                    return r
                t = self.steps(b, reader)
                p = r.detach().clamp(0, 1)
                noise = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
                k = torch.round(t * p + torch.sqrt(t * p * (1 - p)) * noise).clamp(0, t)   # ~ Binomial(t, p)
                return r + (k / t - r).detach()

            x, rates = blk(x, fire, see, norm=norm)
            self._record(b, rates)
            if self.keep_rates:
                self.last_rates.update({f"block{b}.{role}": r for role, r in rates.items()})
        return x

    # -- spike: lock-step time-stepped simulation ---------------------------------
    def _spike(self, tokens: torch.Tensor) -> torch.Tensor:
        steps = max(self.timesteps)
        emb = self.embedding(tokens)
        mem: list[dict[str, torch.Tensor]] = [{} for _ in self.blocks]
        counts: list[dict[str, torch.Tensor]] = [{} for _ in self.blocks]
        out_sum = torch.zeros_like(emb)
        per_step: dict[str, list[torch.Tensor]] = {}
        norm = self.norm(time_stepped=True)
        for _ in range(steps):
            x = emb  # constant input current every step
            for b, blk in enumerate(self.blocks):
                def fire(role, current, b=b, blk=blk):
                    spk, mem[b][role] = blk.lif[role](current, mem[b].get(role))
                    return spk
                x, spikes = blk(x, fire, norm=norm)
                for role, s in spikes.items():
                    counts[b][role] = counts[b].get(role, 0) + s
                    if self.record_steps:
                        per_step.setdefault(f"block{b}.{role}", []).append(s.detach().mean(dim=1))
            out_sum = out_sum + x
        self.last_asr = {}
        for b in range(len(self.blocks)):
            self._record(b, {role: c / steps for role, c in counts[b].items()})
        self.step_asr = {name: torch.stack(v, dim=1) for name, v in per_step.items()}
        return out_sum / steps

    # -- stochastic: each sublayer its own steps, Bernoulli inputs at the carried ASR
    def _stochastic(self, tokens: torch.Tensor, seed: int | None) -> torch.Tensor:
        gen = _generator(tokens.device, seed)
        bern = lambda r: torch.bernoulli(r.clamp(0, 1), generator=gen)
        norm = self.norm(time_stepped=True) or (lambda ln, z: ln(z))
        self.last_asr = {}
        x_rate = None
        for b, blk in enumerate(self.blocks):
            if x_rate is None:  # block 0: the embedding is a real current, not spikes
                emb = self.embedding(tokens)
                x_in = lambda: emb
            else:
                prev = x_rate
                x_in = lambda prev=prev: bern(prev)

            def run(role, current, b=b):
                """Run one sublayer for its t^l steps; its ASR per (batch, token, neuron)."""
                steps = self.steps(b, role)
                mem, count = None, 0
                for _ in range(steps):
                    spk, mem = blk.lif[role](current(), mem)
                    count = count + spk
                return count / steps

            r = {}
            t_q = self.steps(b, "q")
            q = sum(blk.q(x_in()) for _ in range(t_q)) / t_q  # real-valued: carried as its mean
            r["k"] = run("k", lambda: blk.k(x_in()))
            r["v"] = run("v", lambda: blk.v(x_in()))
            r["attention"] = run("attention", lambda: blk.attend(q, bern(r["k"]), bern(r["v"])))
            r["attn_out"] = run("attn_out", lambda: norm(blk.ln1, blk.attn_out(bern(r["attention"])) + x_in()))
            r["intermediate"] = run("intermediate", lambda: blk.intermediate(bern(r["attn_out"])) * blk.neuron_scale())
            r["output"] = run("output", lambda: norm(blk.ln2, blk.output(bern(r["intermediate"]))
                                                     + bern(r["attn_out"])))
            self._record(b, r)
            x_rate = r["output"]
        return x_rate


def _generator(device, seed: int | None) -> torch.Generator:
    """A torch.Generator on `device`, seeded with `seed` (a fresh random seed when None)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))
    return gen
