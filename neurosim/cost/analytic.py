"""Closed-form operation counts.

Two forms live side by side:

* **Paper form** — the seed paper's Appendix B (Jiang et al. 2025,
  arXiv:2508.20122), eq. 15-21 and the normalized #C of eq. 14. Eq. 18-20 are
  the ACs of one attention head (H = head dimension), eq. 21 those of one
  intermediate neuron; M(h, n, t) sums them over the live heads and neurons of
  every layer, each term at its own sublayer's timesteps (eq. 17: t_Q = t_Attn,
  t_K, t_V; eq. 19-20: t_Attn, t_FC; eq. 21: t_Inter, t_Output). Everything
  counts as an AC and rates are not used: it is a structural upper bound, and
  M(h, n, t) / M(1, 1, T) (`normalized_c`) is the structural ratio ("ACs %,
  structural"). Eq. 14 as printed (`eq14_normalized_c`) weighs each
  sublayer's ACs by the spiking rate of the layer that feeds it. Unpruned
  SpikingBERT-4L at T = 85 gives M = 3.1659e11.
* **Structural form** — one row per IR layer, using the real layer sizes,
  the masks, and (optionally) the spiking rates: ACs = spikes in x live
  fan-out. Real-valued work (the Query projection, Q.K^T scores, softmax,
  LayerNorm) is counted as MACs or other ops, never as ACs (docs/design.md).

Where the two differ on a dense network: the paper form counts the Query
projection and the Q.K^T scores as ACs, the structural form as MACs; eq. 21
prices every intermediate neuron at N x D per linear layer, which equals the
structure only while the FFN input and output both have width D; and the
paper form has no rates (it is the "all inputs spike every step" bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import NeurosimError
from ..ir import ELEMENT_OPS, Layer, Network

# Elementwise real-valued work, ops per element (a first-order convention):
SOFTMAX_OPS_PER_SCORE = 3     # exp, running sum, divide
LAYERNORM_OPS_PER_ELEMENT = 6  # residual add, mean, centre, square/variance, normalize, affine
# By what the LayerNorm normalizes (ir.Norm.statistics; frontend.encoder's layernorm): the running mean adds one
# add per element and step into the accumulator it normalizes (LayerNorm ignores the 1/t scale); frozen statistics
# leave the residual add and one affine map (centre and normalize fold into it, as a folded BatchNorm's do).
LAYERNORM_OPS_BY_STATISTICS = {"step": LAYERNORM_OPS_PER_ELEMENT, "running_mean": LAYERNORM_OPS_PER_ELEMENT + 1,
                               "frozen": 2}


# -- Paper form (Appendix B) ------------------------------------------------------
def acs_proj(n: int, d: int, h: int, t: int) -> int:
    """Eq. 18: one of the Q, K, V projections of one head: N x D x H per timestep."""
    return n * d * h * t


def acs_qkv(n: int, d: int, h: int, t: int) -> int:
    """Eq. 17-18 at one t: Q, K and V projections of one head: 3 x N x D x H per timestep."""
    return 3 * acs_proj(n, d, h, t)


def acs_attn(n: int, h: int, t: int) -> int:
    """Eq. 19: scores and weighted sum of one head: 2 x N^2 x H per timestep."""
    return 2 * n * n * h * t


def acs_fc(n: int, d: int, h: int, t: int) -> int:
    """Eq. 20: the attention-output projection's share of one head: N x D x H per timestep."""
    return n * d * h * t


def acs_ffn(n: int, d: int, t: int) -> int:
    """One term of eq. 21: one intermediate neuron's D inputs (t_Inter) or D outputs (t_Output), N x D per step."""
    return n * d * t


def acs_n(n: int, d: int, t: int) -> int:
    """Eq. 21 at one t: one intermediate neuron, in (D inputs) and out (D outputs): 2 x N x D per timestep."""
    return 2 * acs_ffn(n, d, t)


@dataclass(frozen=True)
class EncoderBlock:
    """What the paper form needs from one encoder layer of the IR."""

    seq_len: int
    hidden: int
    head_dim: int
    head_mask: np.ndarray
    neuron_mask: np.ndarray
    t_q: int      # = t_attn (the Query runs inside the attention sublayer, Appendix B)
    t_k: int
    t_v: int
    t_attn: int
    t_fc: int     # the attention-output sublayer (attn_out)
    t_inter: int
    t_out: int
    names: tuple = ()   # (input, k, v, attention, attn_out, intermediate) layer names; input "" for the network's

    def head_acs(self, t: int | None = None) -> int:
        """Eq. 16-20: the ACs of one head, each term at its sublayer's timesteps (all at `t` if given)."""
        n, d, h = self.seq_len, self.hidden, self.head_dim
        tq, tk, tv, ta, tf = (t,) * 5 if t else (self.t_q, self.t_k, self.t_v, self.t_attn, self.t_fc)
        return acs_proj(n, d, h, tq) + acs_proj(n, d, h, tk) + acs_proj(n, d, h, tv) + acs_attn(n, h, ta) \
            + acs_fc(n, d, h, tf)

    def neuron_acs(self, t: int | None = None) -> int:
        """Eq. 21: the ACs of one intermediate neuron, at t_Inter and t_Output (both `t` if given)."""
        ti, to = (t, t) if t else (self.t_inter, self.t_out)
        return acs_ffn(self.seq_len, self.hidden, ti) + acs_ffn(self.seq_len, self.hidden, to)


def encoder_blocks(net: Network) -> list[EncoderBlock]:
    """Read the SpikingBERT-style blocks (layers tagged with an EncoderTag) from the IR."""
    blocks: dict[int, dict[str, Layer]] = {}
    for layer in net.layers:
        if layer.tag is not None:
            blocks.setdefault(layer.tag.block, {})[layer.tag.role] = layer
    needed = {"k", "v", "attention", "attn_out", "intermediate", "output"}
    if not blocks or any(needed - set(roles) for roles in blocks.values()):
        raise NeurosimError(f"network '{net.name}'", "layers[].tag",
                            "the paper's Appendix B applies to SpikingBERT-style encoders only",
                            "use the structural count for this network, or tag encoder layers with "
                            "EncoderTag(block, role) (roles k, v, attention, attn_out, intermediate, output)")
    out = []
    for b in sorted(blocks):
        r = blocks[b]
        att, inter = r["attention"], r["intermediate"]
        source = r["k"].inputs[0] if r["k"].inputs else ""
        out.append(EncoderBlock(
            seq_len=att.seq_len, hidden=r["attn_out"].out_features, head_dim=att.spec.head_dim,
            head_mask=att.spec.live_heads(), neuron_mask=inter.live_outputs(), t_q=att.timesteps,
            t_k=r["k"].timesteps, t_v=r["v"].timesteps, t_attn=att.timesteps, t_fc=r["attn_out"].timesteps,
            t_inter=inter.timesteps, t_out=r["output"].timesteps,
            names=(source,) + tuple(r[role].name for role in ("k", "v", "attention", "attn_out", "intermediate"))))
    return out


def paper_m(net: Network, timesteps: int | None = None, unpruned: bool = False) -> int:
    """M(h, n, t) (eq. 15-17): sum over blocks of live heads x (eq. 18+19+20) + live neurons x eq. 21.

    `timesteps` replaces every sublayer's t^l by one T; `unpruned` sets all masks to 1.
    """
    total = 0
    for blk in encoder_blocks(net):
        heads = len(blk.head_mask) if unpruned else int(blk.head_mask.sum())
        neurons = len(blk.neuron_mask) if unpruned else int(blk.neuron_mask.sum())
        total += heads * blk.head_acs(timesteps) + neurons * blk.neuron_acs(timesteps)
    return total


def normalized_c(net: Network, baseline_timesteps: int | None = None) -> float:
    """The structural ratio M(h, n, t) / M(1, 1, T): the pruned model's Appendix B ACs relative to the unpruned
    one at T, rate-free ("ACs %, structural"; eq. 14 as printed is `eq14_normalized_c`)."""
    t_base = baseline_timesteps or net.metadata.get("baseline_timesteps") or net.max_timesteps
    return paper_m(net) / paper_m(net, timesteps=t_base, unpruned=True)


def _rate_of(net: Network, name: str) -> float:
    rate = net[name].rate
    if rate is None:
        raise NeurosimError(f"layer '{name}'", "rate", "eq. 14 weighs ACs by spiking rates, and none is known",
                            "measure rates (frontend.from_torch does) or give them in the model card")
    return float(rate)


def eq14_numerator(net: Network) -> float:
    """Eq. 14's sum of a_l x ACs^{l+1}: every Appendix B term (eq. 17-21, live units, each sublayer at its
    t^l) times the spiking rate of the layer feeding it: Q, K and V the block input's (for the first block the
    network input's, none when it is real-valued, as an embedding is: the printed sum starts at l = 2), the
    scores K's and the
    weighted sum V's (half of eq. 19 each), FC the attention output's, the intermediate's inputs attn_out's,
    its outputs the intermediate layer's own (rates are means over live neurons, as the IR keeps them)."""
    total = 0.0
    for blk in encoder_blocks(net):
        n, d, h = blk.seq_len, blk.hidden, blk.head_dim
        src, k, v, att, fc, inter = blk.names
        heads, neurons = int(blk.head_mask.sum()), int(blk.neuron_mask.sum())
        a_in = _rate_of(net, src) if src else (net.input_rate if net.input_spiking else 0.0)
        head = (acs_proj(n, d, h, blk.t_q) + acs_proj(n, d, h, blk.t_k) + acs_proj(n, d, h, blk.t_v)) * a_in
        head += acs_attn(n, h, blk.t_attn) / 2 * (_rate_of(net, k) + _rate_of(net, v))
        head += acs_fc(n, d, h, blk.t_fc) * _rate_of(net, att)
        neuron = acs_ffn(n, d, blk.t_inter) * _rate_of(net, fc) + acs_ffn(n, d, blk.t_out) * _rate_of(net, inter)
        total += heads * head + neurons * neuron
    return total


def eq14_normalized_c(net: Network, baseline_timesteps: int | None = None) -> float:
    """Eq. 14: sum_l a_l x ACs^{l+1} / sum of Layer ACs, the denominator being the unpruned network's Appendix B
    ACs at the baseline T (M(1, 1, T)), so pruned models compare with their baseline as Table III does; for an
    unpruned network it is its rate-weighted share of its own ACs (the paper's baselines: 0.219-0.272)."""
    t_base = baseline_timesteps or net.metadata.get("baseline_timesteps") or net.max_timesteps
    return eq14_numerator(net) / paper_m(net, timesteps=t_base, unpruned=True)


# -- Structural form ------------------------------------------------------------
def needed_outputs(net: Network, layer: Layer) -> np.ndarray:
    """Output neurons that are computed: unmasked, and used by a live head when they feed attention."""
    live = layer.live_outputs().copy()
    consumers = net.consumers(layer.name)
    if consumers and all(c.kind == "attention" for c in consumers):
        used = np.zeros_like(live)
        for c in consumers:
            used |= c.live_outputs()
        live &= used
    return live


def event_rate(layer: Layer, activity: bool = True) -> float:
    """A spiking layer's events per neuron and step: its measured rate, or every step where none is given
    (or where the count is not activity-weighted)."""
    return layer.rate if activity and layer.rate is not None else 1.0


def input_rate(net: Network, layer: Layer, activity: bool) -> float:
    """Mean spiking rate of the layer's live inputs (1.0 when not activity-weighted)."""
    if not activity:
        return 1.0
    if not layer.inputs:
        return net.input_rate
    rates = [net[src].rate for src in layer.inputs]
    if any(r is None for r in rates):
        missing = [src for src in layer.inputs if net[src].rate is None]
        raise NeurosimError(f"layer '{missing[0]}'", "rate", "no spiking rate is known for this layer",
                            "give assumed rates in the model card, or measure them with the spike engine")
    return float(np.mean(rates))


def live_inputs(net: Network, layer: Layer) -> int:
    if not layer.inputs:
        return net.input_size
    return int(needed_outputs(net, net[layer.inputs[0]]).sum())


def input_spike_bits(net: Network, layer: Layer) -> int:
    srcs = [net[s] for s in layer.inputs]
    return max((s.neuron.spike_bits for s in srcs if s.neuron is not None), default=1)


def live_synapses(net: Network, layer: Layer, out_live: int) -> float:
    """Connections from live inputs to live outputs (conv: taps that fall inside the input only)."""
    return layer.spec.connections(layer, live_inputs(net, layer), out_live)


def stored_weights(net: Network, layer: Layer) -> float:
    """Weights the hardware holds: structured pruning compiles away the rows of masked (or unused)
    outputs and the columns of masked inputs, so only live-input x live-output weights are stored."""
    live_out = int(needed_outputs(net, layer).sum())
    recurrent = live_out * live_out if layer.recurrent is not None else 0   # W_rec among live outputs
    return layer.spec.weights_between(layer, live_inputs(net, layer), live_out) + recurrent


def nonzero_fraction(net: Network, layer: Layer) -> float:
    """The share of a layer's synapses to its live outputs whose weight is nonzero: an event's effective
    ACs over its dense ACs (1 where the layer holds no weights to tell)."""
    live_out = needed_outputs(net, layer)
    nonzero = layer.spec.nonzero_connections(layer, live_out)
    dense = layer.spec.connections(layer, layer.in_features, int(live_out.sum()))
    return 1.0 if nonzero is None or dense <= 0 else min(1.0, nonzero / dense)


def sparse_weight_bits(net: Network, layer: Layer) -> tuple[float, float]:
    """(bits stored, index bits read per weight) of a linear layer's live weights held as compressed sparse
    columns: per nonzero its value and its row (ceil(log2 L_out) bits), per live input column plus one a
    pointer (ceil(log2(nnz + 1)) bits). Other kinds are held dense: (dense bits, 0)."""
    dense = stored_weights(net, layer) * layer.weight_bits
    if layer.kind != "linear" or layer.weights is None:
        return dense, 0.0
    live_out, live_in = int(needed_outputs(net, layer).sum()), live_inputs(net, layer)
    nnz = stored_weights(net, layer) * nonzero_fraction(net, layer)
    row_bits = math.ceil(math.log2(max(live_out, 2)))
    return nnz * (layer.weight_bits + row_bits) + (live_in + 1) * math.ceil(math.log2(nnz + 1)), float(row_bits)


def reads_constant_current(net: Network, layer: Layer) -> bool:
    """Does the layer multiply the network's real-valued input, the same current at every step?"""
    return not layer.inputs and not net.input_spiking and net.compute_of(layer) == "mac"


# -- decoder kinds (ir.ElementOps, ir.CausalAttention) --------------------------------------------
def causal_attention_counts(net: Network, layer: Layer, activity: bool, row: dict) -> None:
    """Q.K^T and P.V over every (query, key) pair of every query head (`CausalAttention.score_pairs`), at the
    layer's timesteps when an operand spikes (else once): ACs where the key (or value) operand arrives as
    spikes (the real operand accumulated where it spiked, at the source's rate), MACs where it is real;
    softmax as other ops per score."""
    spec = layer.spec
    t = layer.timesteps if any(net[src].spiking for src in layer.inputs[1:]) else 1   # real operands: once
    per_operand = spec.heads * spec.score_pairs(layer) * spec.head_dim * t
    for src in layer.inputs[1:]:          # K for the scores, V for the weighted sum
        if net[src].spiking:
            row["acs"] += per_operand * event_rate(net[src], activity)
        else:
            row["macs"] += per_operand
    row["other_ops"] = attention_scores(net, layer) * SOFTMAX_OPS_PER_SCORE


def attention_scores(net: Network, layer: Layer) -> float:
    """Scores an attention layer computes over its run: one per (query, key) pair of every live head, at each
    of its steps (encoder attention; causal attention when an operand spikes, else once); 0 for other kinds."""
    if layer.kind == "attention":
        return int(layer.spec.live_heads().sum()) * layer.seq_len ** 2 * layer.timesteps
    if layer.kind == "causal_attention":
        t = layer.timesteps if any(net[src].spiking for src in layer.inputs[1:]) else 1
        return layer.spec.heads * layer.spec.score_pairs(layer) * t
    return 0.0


def elementwise_counts(net: Network, layer: Layer, activity: bool, row: dict) -> None:
    """Ops per output element (`ir.ELEMENT_OPS`), once per token on a real input (the value does not change
    over the steps the layer's neuron encodes it in), every step on a spiking one."""
    steps = layer.timesteps if net.input_spiking_of(layer) else 1
    row["other_ops"] = layer.seq_len * steps * int(needed_outputs(net, layer).sum()) * ELEMENT_OPS[layer.spec.op]


DECODER_COUNTS = {"causal_attention": causal_attention_counts, "elementwise": elementwise_counts}


def layer_counts(net: Network, layer: Layer, activity: bool = True) -> dict:
    """Op counts of one layer over its whole run (all tokens, all its timesteps)."""
    n, t = layer.seq_len, layer.timesteps
    out_live = int(needed_outputs(net, layer).sum())
    row = dict(layer=layer.name, kind=layer.kind, timesteps=t, acs=0.0, macs=0.0, other_ops=0.0,
               neuron_updates=0.0, spikes_out=0.0, input_spike_bits=input_spike_bits(net, layer))
    if layer.kind == "attention":
        heads = int(layer.spec.live_heads().sum())
        value = net[layer.inputs[2]]
        r_v = event_rate(value, activity)
        per_head = n * n * layer.spec.head_dim * t
        row["macs"] = heads * per_head                       # Q.K^T with real Q
        row["acs"] = heads * per_head * r_v                  # scores accumulated where V spiked
        row["other_ops"] = attention_scores(net, layer) * SOFTMAX_OPS_PER_SCORE
    elif layer.kind in DECODER_COUNTS:
        DECODER_COUNTS[layer.kind](net, layer, activity, row)
    else:
        synapses = live_synapses(net, layer, out_live)
        if net.compute_of(layer) == "ac":
            row["acs"] = n * t * input_rate(net, layer, activity) * synapses
        elif reads_constant_current(net, layer):
            row["macs"] = n * synapses      # the same product every step: computed once and held
        else:
            row["macs"] = n * t * synapses  # dense: every input, every step
    if layer.norm is not None and layer.norm.layernorm:
        row["other_ops"] += n * t * out_live * LAYERNORM_OPS_BY_STATISTICS[layer.norm.statistics]
    if layer.spiking:
        row["neuron_updates"] = n * t * out_live
        row["spikes_out"] = n * t * out_live * event_rate(layer, activity)
    if layer.recurrent is not None:   # its own spikes of steps 0..t-2, each to every live output
        row["acs"] += n * (t - 1) * event_rate(layer, activity) * out_live * out_live
    return row


def structural_counts(net: Network, activity: bool = True) -> pd.DataFrame:
    """Per-layer op counts; `activity=False` gives the dense bound (every input spikes every step)."""
    return pd.DataFrame([layer_counts(net, layer, activity) for layer in net.layers])
