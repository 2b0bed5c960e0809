"""Model cards: YAML specs that build a weightless IR `Network`.

A card (`kind: spiking_encoder`) gives a SpikingBERT-style encoder's sizes, its timesteps per encoder
layer, the spiking rates to assume for each sublayer (until a trained model
gives measured ones), and optionally head and neuron masks of a pruned model.
A decoder card (`kind: spiking_decoder`) gives a LLaMA-style decoder's sizes,
how its linear layers' inputs spike, and a default prompt/generate/batch
workload; `decoder_network` builds the IR of one phase (prefill or decode step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from .errors import NeurosimError
from .ir import (NEURON_RULES, RATE, Attention, CausalAttention, ElementOps, EncoderTag, Layer, Network, Neuron, Norm,
                 Rule, check_mask)
from .limits import MAX_ENCODER_LAYERS, check_encoder_size
from .paths import MODELS_DIR, resolve
from .schema import FIX_MARK, Strict, load_yaml, read_yaml


def _by(rule: Rule) -> AfterValidator:
    """One of the IR's rules as a schema check; schema.explain names the file, the key and the value."""
    def check(value):
        if not rule.holds(value):
            raise ValueError(f"{rule.problem}{FIX_MARK}{rule.fix}")
        return value
    return AfterValidator(check)


Rate = Annotated[float, _by(RATE)]


class NeuronSpec(Strict):
    model: Annotated[str, _by(NEURON_RULES["model"])] = "lif"
    vth: Annotated[float, _by(NEURON_RULES["vth"])] = 1.0
    leak: Annotated[float, _by(NEURON_RULES["leak"])] = 1.0
    levels: Annotated[int, _by(NEURON_RULES["levels"])] = 1
    reset: Annotated[str, _by(NEURON_RULES["reset"])] = "subtract"
    v_reset: Annotated[float, _by(NEURON_RULES["v_reset"])] = 0.0
    reset_order: Annotated[str, _by(NEURON_RULES["reset_order"])] = "leak_first"
    fire: Annotated[str, _by(NEURON_RULES["fire"])] = ">="
    syn_decay: Annotated[float | None, _by(NEURON_RULES["syn_decay"])] = None


class SublayerRates(Strict):
    """Assumed average spiking rate (ASR) of each sublayer's output neurons."""

    k: Rate
    v: Rate
    attention: Rate
    attn_out: Rate
    intermediate: Rate
    output: Rate


class EncoderCard(Strict):
    name: str
    kind: Literal["spiking_encoder"]
    source: str
    layers: int = Field(ge=1)
    hidden: int = Field(ge=1)
    heads: int = Field(ge=1)
    intermediate: int = Field(ge=1)
    seq_len: int = Field(ge=1)
    timesteps: int | list[int]
    weight_bits: int = Field(32, ge=1, le=64)
    neuron: NeuronSpec = NeuronSpec()
    input_rate: Rate
    rates: SublayerRates
    rates_source: str
    head_masks: list[list[int]] | None = None
    neuron_masks: list[list[int]] | None = None

    @field_validator("timesteps")
    @classmethod
    def _positive(cls, v):
        values = v if isinstance(v, list) else [v]
        if any(t < 1 for t in values):
            raise ValueError("every timestep count must be >= 1")
        return v

    @field_validator("head_masks", "neuron_masks")
    @classmethod
    def _masks(cls, masks, info: ValidationInfo):
        """One mask per encoder layer, each as the IR's mask rule wants it (one 0/1 per head or neuron)."""
        sizes = info.data
        if masks is None or not {"layers", "heads", "intermediate"} <= set(sizes):
            return masks  # a size was refused already; that error is the one to report
        if len(masks) != sizes["layers"]:
            raise ValueError(f"lists {len(masks)} masks for {sizes['layers']} layers"
                             f"{FIX_MARK}give one mask per encoder layer")
        length, unit = ((sizes["heads"], "heads") if info.field_name == "head_masks" else
                        (sizes["intermediate"], "intermediate neurons"))
        for b, mask in enumerate(masks):
            try:
                check_mask(mask, length, unit, "card", f"{info.field_name}[{b}]")
            except NeurosimError as exc:
                raise ValueError(f"mask {b} {exc.problem}{FIX_MARK}{exc.fix}") from None
        return masks

    @model_validator(mode="after")
    def _shapes(self):
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if isinstance(self.timesteps, list) and len(self.timesteps) != self.layers:
            raise ValueError(f"timesteps lists {len(self.timesteps)} values for {self.layers} layers")
        return self

    def timesteps_of(self, block: int) -> int:
        return self.timesteps[block] if isinstance(self.timesteps, list) else self.timesteps


def encoder_network(card: EncoderCard) -> Network:
    """Expand an encoder card into IR layers, seven per encoder block.

    Q is a real-valued projection (compute='mac', no neuron): docs/design.md counts
    the Query projection and the attention scores as real-valued work.
    """
    d, heads, n = card.hidden, card.heads, card.seq_len
    check_encoder_size("card", card.layers, d, card.intermediate, n,   # before any layer is built
                       [card.timesteps_of(b) for b in range(min(card.layers, MAX_ENCODER_LAYERS + 1))],
                       card.weight_bits)
    neuron = Neuron(**card.neuron.model_dump())
    r = card.rates
    layers: list[Layer] = []
    prev: list[str] = []
    for b in range(card.layers):
        t = card.timesteps_of(b)
        common = dict(seq_len=n, timesteps=t, weight_bits=card.weight_bits)
        neuron_mask = None if card.neuron_masks is None else np.asarray(card.neuron_masks[b])
        head_mask = None if card.head_masks is None else np.asarray(card.head_masks[b])
        p = f"block{b}."
        layers += [
            Layer(p + "q", "linear", d, d, inputs=prev, neuron=None, compute="mac", tag=EncoderTag(b, "q"), **common),
            Layer(p + "k", "linear", d, d, inputs=prev, neuron=neuron, rate=r.k, tag=EncoderTag(b, "k"), **common),
            Layer(p + "v", "linear", d, d, inputs=prev, neuron=neuron, rate=r.v, tag=EncoderTag(b, "v"), **common),
            Layer(p + "attention", "attention", d, d, inputs=[p + "q", p + "k", p + "v"],
                  spec=Attention(heads, d // heads, head_mask), neuron=neuron, rate=r.attention,
                  tag=EncoderTag(b, "attention"), **common),
            Layer(p + "attn_out", "linear", d, d, inputs=[p + "attention"], neuron=neuron, rate=r.attn_out,
                  norm=Norm(), tag=EncoderTag(b, "attn_out"), **common),
            Layer(p + "intermediate", "linear", d, card.intermediate, inputs=[p + "attn_out"], neuron=neuron,
                  neuron_mask=neuron_mask, rate=r.intermediate, tag=EncoderTag(b, "intermediate"), **common),
            Layer(p + "output", "linear", card.intermediate, d, inputs=[p + "intermediate"], neuron=neuron,
                  rate=r.output, norm=Norm(), tag=EncoderTag(b, "output"), **common),
        ]
        prev = [p + "output"]
    meta = {"card": card.name, "source": card.source, "rates_source": card.rates_source,
            "hidden": d, "heads": heads, "intermediate": card.intermediate, "encoder_layers": card.layers,
            "baseline_timesteps": max(card.timesteps_of(b) for b in range(card.layers))}
    return Network(card.name, layers, input_size=d, input_rate=card.input_rate, metadata=meta)


# -- decoder cards (kind: spiking_decoder) ------------------------------------------------------------
LINEAR_INPUTS = ("attn", "o", "mlp", "down", "head")   # the inputs of Q/K/V, out proj, gate/up, down, LM head
BLOCK_RATE_ROLES = ("attn", "o", "mlp", "down", "k", "v")   # the spikes inside a block (not the LM head's input)


class DecoderRates(Strict):
    """Assumed rate of the spikes at each linear input (and at K, V when attention spikes)."""

    attn: Rate
    o: Rate
    mlp: Rate
    down: Rate
    head: Rate
    k: Rate | None = None
    v: Rate | None = None


class DecoderSpiking(Strict):
    """How the linear layers' inputs are encoded: one neuron (LIF, or GIF with levels > 1) over `timesteps`."""

    neuron: NeuronSpec = NeuronSpec()
    timesteps: int = Field(ge=1, le=4096)
    real_inputs: list[Literal[LINEAR_INPUTS]] = []   # these linear inputs stay real-valued (MACs)
    rates: DecoderRates
    # rates measured per block (a trained model's): block b's spikes of a role take entry b, `rates` the rest
    block_rates: dict[Literal[BLOCK_RATE_ROLES], list[Rate]] = {}


class AttentionMode(Strict):
    scores: Literal["real", "spiking"] = "real"   # Q.K^T: real K (MACs) or K as spikes (ACs)
    mix: Literal["real", "spiking"] = "real"      # P.V: real V (MACs) or V as spikes (ACs)


class DecoderWorkload(Strict):
    prompt: int = Field(ge=1, le=10**7)
    generate: int = Field(ge=1, le=10**7)
    batch: int = Field(ge=1, le=10**5)


class DecoderCard(Strict):
    name: str
    kind: Literal["spiking_decoder"]
    source: str
    layers: int = Field(ge=1, le=MAX_ENCODER_LAYERS)
    hidden: int = Field(ge=1, le=2**20)
    heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    intermediate: int = Field(ge=1, le=2**22)
    vocab: int = Field(ge=1, le=2**24)
    context: int = Field(ge=1)                       # positions the model was trained for
    weight_bits: int = Field(16, ge=1, le=64)
    kv_bits: int = Field(16, ge=1, le=64)            # bits of a real-valued K or V element in the cache
    spiking: DecoderSpiking
    attention: AttentionMode = AttentionMode()
    rates_source: str
    workload: DecoderWorkload

    @model_validator(mode="after")
    def _shapes(self):
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        for operand, rate in (("scores", "k"), ("mix", "v")):
            if getattr(self.attention, operand) == "spiking" and getattr(self.spiking.rates, rate) is None:
                raise ValueError(f"attention.{operand} is spiking, so spiking.rates.{rate} is needed"
                                 f"{FIX_MARK}give spiking.rates.{rate}, the assumed rate of those spikes")
        for role, per_block in self.spiking.block_rates.items():
            if len(per_block) != self.layers:
                raise ValueError(f"spiking.block_rates.{role} has {len(per_block)} rates for {self.layers} blocks"
                                 f"{FIX_MARK}give one rate per block")
        w = self.workload
        if w.prompt + w.generate > self.context:
            raise ValueError(f"workload.prompt + workload.generate = {w.prompt + w.generate} is beyond the model's "
                             f"context of {self.context} positions{FIX_MARK}give a shorter prompt or fewer tokens")
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class DecoderPhase:
    """One pass of the decoder over `batch` sequences: `query_tokens` new tokens each, appended to a cache
    of `past_tokens` (a prefill of N: query N, past 0; decode step i: query 1, past N + i, or the mean past
    of a group of coarsened steps)."""

    batch: int
    query_tokens: int
    past_tokens: float = 0.0


class _DecoderBuilder:
    """Builds a phase's IR layers block by block; `mac_based` makes every activation real (no neurons, t = 1)."""

    def __init__(self, card: DecoderCard, phase: DecoderPhase, mac_based: bool, shards: int = 1):
        self.card, self.phase, self.mac_based = card, phase, mac_based
        # one chip's rows of every layer when a block is split over `shards` chips (heads, FFN rows, vocabulary)
        self.heads, self.kv_heads = card.heads // shards, card.kv_heads // shards
        self.intermediate, self.vocab = -(-card.intermediate // shards), -(-card.vocab // shards)
        self.tokens = phase.batch * phase.query_tokens
        self.layers: list[Layer] = []
        self.by_name: dict[str, Layer] = {}
        self.block_index: int | None = None   # the block being built (None: the input and the LM head)

    def encoder(self, role: str) -> tuple[Neuron | None, float | None, int]:
        """(neuron, rate, timesteps) of the spikes at a linear input or attention operand, or real (None, None, 1)."""
        spiking = self.card.spiking
        real = role in spiking.real_inputs or (role == "k" and self.card.attention.scores == "real") or \
            (role == "v" and self.card.attention.mix == "real")
        if self.mac_based or real:
            return None, None, 1
        per_block = spiking.block_rates.get(role) if self.block_index is not None else None
        rate = per_block[self.block_index] if per_block else getattr(spiking.rates, role)
        return Neuron(**spiking.neuron.model_dump()), rate, spiking.timesteps

    def add(self, name, kind, n_in, n_out, inputs, role=None, spec=None, tokens=None) -> str:
        """One layer; `role` names the spikes it emits (its neuron), else its output is real."""
        neuron, rate, t = self.encoder(role) if role else (None, None, 1)
        steps = max([t] + [self.by_name[s].timesteps for s in inputs if self.by_name[s].spiking])
        self.layers.append(Layer(name, kind, n_in, n_out, inputs=list(inputs), seq_len=tokens or self.tokens,
                                 timesteps=steps, neuron=neuron, rate=rate, spec=spec,
                                 weight_bits=self.card.kv_bits if kind == "causal_attention" else self.card.weight_bits))
        self.by_name = {lay.name: lay for lay in self.layers}
        return name

    def block(self, b: int, stream: str) -> str:
        self.block_index = b          # the block whose measured rates (`block_rates`) its spikes take
        c, p, d = self.card, f"block{b}.", self.card.hidden
        hd, q_out, kv_out = c.head_dim, self.heads * c.head_dim, self.kv_heads * c.head_dim
        norm = self.add(p + "attn_norm", "elementwise", d, d, [stream], "attn", ElementOps("rmsnorm"))
        q = self.add(p + "q", "linear", d, q_out, [norm])
        k = self.add(p + "k", "linear", d, kv_out, [norm])
        v = self.add(p + "v", "linear", d, kv_out, [norm], "v")
        rq = self.add(p + "rope_q", "elementwise", q_out, q_out, [q], spec=ElementOps("rotary"))
        rk = self.add(p + "rope_k", "elementwise", kv_out, kv_out, [k], "k", ElementOps("rotary"))
        attention = CausalAttention(self.heads, self.kv_heads, hd, self.phase.batch, self.phase.past_tokens)
        att = self.add(p + "attention", "causal_attention", q_out, q_out, [rq, rk, v], "o", attention)
        o = self.add(p + "o", "linear", q_out, d, [att])
        res = self.add(p + "attn_residual", "elementwise", d, d, [stream, o], spec=ElementOps("add"))
        norm2 = self.add(p + "mlp_norm", "elementwise", d, d, [res], "mlp", ElementOps("rmsnorm"))
        gate = self.add(p + "gate", "linear", d, self.intermediate, [norm2])
        up = self.add(p + "up", "linear", d, self.intermediate, [norm2])
        act = self.add(p + "silu", "elementwise", self.intermediate, self.intermediate, [gate, up], "down",
                       ElementOps("silu_product"))
        down = self.add(p + "down", "linear", self.intermediate, d, [act])
        return self.add(p + "mlp_residual", "elementwise", d, d, [res, down], spec=ElementOps("add"))

    def head(self, stream: str) -> str:
        self.block_index = None
        d, batch = self.card.hidden, self.phase.batch
        if self.phase.query_tokens > 1:      # only each sequence's last token goes on to the LM head
            stream = self.add("last_token", "elementwise", d, d, [stream], spec=ElementOps("last_token", self.tokens),
                              tokens=batch)
        norm = self.add("final_norm", "elementwise", d, d, [stream], "head", ElementOps("rmsnorm"), tokens=batch)
        return self.add("lm_head", "linear", d, self.vocab, [norm], tokens=batch)


def decoder_network(card: DecoderCard, phase: DecoderPhase, blocks: range | None = None, head: bool = True,
                    mac_based: bool = False, shards: int = 1) -> Network:
    """The IR of one phase of a decoder card: an `input` layer (the embedding rows, or activations from the
    chip before), `blocks` LLaMA-style blocks (default: all), then (`head`) the final RMSNorm and LM head
    over each sequence's last token. `mac_based`: the same model with real activations (MACs, t = 1).
    `shards` > 1: one chip's share of a block split over that many chips by rows (Megatron-style: its
    heads, kv_heads, FFN and vocabulary rows; norms and residuals on every chip)."""
    blocks = range(card.layers) if blocks is None else blocks
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1 or card.kv_heads % shards:
        raise NeurosimError(f"model '{card.name}'", "tensor split", f"{shards} does not divide the {card.kv_heads} "
                            "key/value heads", f"split rows over a divisor of kv_heads ({card.kv_heads})")
    build = _DecoderBuilder(card, phase, mac_based, shards)
    stream = build.add("input", "elementwise", card.hidden, card.hidden, [], spec=ElementOps("input"))
    for b in blocks:
        stream = build.block(b, stream)
    if head:
        build.head(stream)
    meta = {"card": card.name, "source": card.source, "rates_source": card.rates_source, "decoder": True,
            "mac_based": mac_based, "blocks": [blocks.start, blocks.stop], "phase": asdict(phase), "shards": shards}
    name = card.name + (" (MAC-based)" if mac_based else "")
    return Network(name, build.layers, input_size=card.hidden, input_rate=1.0, input_spiking=False, metadata=meta)


def load_decoder_card(path: str | Path) -> DecoderCard:
    return load_yaml(path, DecoderCard)


def load_card(path: str | Path) -> Network:
    """An encoder card's network, or a decoder card's prefill of its default workload (neurosim.llm prices
    the whole prefill and decode)."""
    data, _ = read_yaml(path)
    if data.get("kind") == "spiking_decoder":
        card = load_decoder_card(path)
        build = lambda: decoder_network(card, DecoderPhase(card.workload.batch, card.workload.prompt))  # noqa: E731
    else:
        card = load_yaml(path, EncoderCard)
        build = lambda: encoder_network(card)  # noqa: E731
    try:
        return build()
    except NeurosimError as exc:
        raise NeurosimError(f"{path} ({exc.where})", exc.field, exc.problem, exc.fix) from None


def load_model(name_or_path: str | Path) -> Network:
    """A shipped model by name (e.g. 'spikingbert-4l'), a card file (.yaml), a network JSON,
    a NIR graph (.nir) or a SpikingEncoder checkpoint (.pt)."""
    path = resolve(name_or_path, MODELS_DIR, (".yaml", ".yml", ".json", ".pt"), "model")
    if path.suffix == ".pt":   # built once per file content and code (a warm start imports no torch)
        from .checkpoint_cache import load

        return load(path).network
    if path.suffix == ".nir":
        from .frontend.nir_io import from_nir  # imports nir and h5py only when needed

        return from_nir(path)
    if path.suffix == ".json":
        return Network.from_json(path)
    return load_card(path)
