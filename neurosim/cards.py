"""Model cards: YAML specs that build a weightless IR `Network`.

A card gives a SpikingBERT-style encoder's sizes, its timesteps per encoder
layer, the spiking rates to assume for each sublayer (until a trained model
gives measured ones), and optionally head and neuron masks of a pruned model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from .errors import NeurosimError
from .ir import NEURON_RULES, RATE, Attention, EncoderTag, Layer, Network, Neuron, Norm, Rule, check_mask
from .limits import MAX_ENCODER_LAYERS, check_encoder_size
from .paths import MODELS_DIR, resolve
from .schema import FIX_MARK, Strict, load_yaml


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


def load_card(path: str | Path) -> Network:
    card = load_yaml(path, EncoderCard)
    try:
        return encoder_network(card)
    except NeurosimError as exc:
        raise NeurosimError(f"{path} ({exc.where})", exc.field, exc.problem, exc.fix) from None


def load_model(name_or_path: str | Path) -> Network:
    """A shipped model by name (e.g. 'spikingbert-4l'), a card file (.yaml), a network JSON,
    a NIR graph (.nir) or a SpikingEncoder checkpoint (.pt)."""
    path = resolve(name_or_path, MODELS_DIR, (".yaml", ".yml", ".json", ".pt"), "model")
    if path.suffix == ".pt":
        from .frontend.checkpoint import load_checkpoint  # imports torch only when needed

        return load_checkpoint(path)
    if path.suffix == ".nir":
        from .frontend.nir_io import from_nir  # imports nir and h5py only when needed

        return from_nir(path)
    if path.suffix == ".json":
        return Network.from_json(path)
    return load_card(path)
