"""Model cards: YAML specs that build a weightless IR `Network`.

A card gives a SpikingBERT-style encoder's sizes, its timesteps per encoder
layer, the spiking rates to assume for each sublayer (until a trained model
gives measured ones), and optionally head and neuron masks of a pruned model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .errors import NeurosimError
from .ir import Layer, Network, Neuron
from .paths import MODELS_DIR, resolve
from .schema import Strict, load_yaml

Rate = float


class NeuronSpec(Strict):
    model: Literal["if", "lif", "gif"] = "lif"
    vth: float = Field(1.0, gt=0)
    leak: float = Field(1.0, gt=0, le=1)
    levels: int = Field(1, ge=1)


class SublayerRates(Strict):
    """Assumed average spiking rate (ASR) of each sublayer's output neurons."""

    k: Rate = Field(ge=0, le=1)
    v: Rate = Field(ge=0, le=1)
    attention: Rate = Field(ge=0, le=1)
    attn_out: Rate = Field(ge=0, le=1)
    intermediate: Rate = Field(ge=0, le=1)
    output: Rate = Field(ge=0, le=1)


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
    input_rate: Rate = Field(ge=0, le=1)
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

    @model_validator(mode="after")
    def _shapes(self):
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if isinstance(self.timesteps, list) and len(self.timesteps) != self.layers:
            raise ValueError(f"timesteps lists {len(self.timesteps)} values for {self.layers} layers")
        for key, masks in (("head_masks", self.head_masks), ("neuron_masks", self.neuron_masks)):
            if masks is not None and len(masks) != self.layers:
                raise ValueError(f"{key} lists {len(masks)} masks for {self.layers} layers")
        return self

    def timesteps_of(self, block: int) -> int:
        return self.timesteps[block] if isinstance(self.timesteps, list) else self.timesteps


def encoder_network(card: EncoderCard) -> Network:
    """Expand an encoder card into IR layers, seven per encoder block.

    Q is a real-valued projection (compute='mac', no neuron): DESIGN.md counts
    the Query projection and the attention scores as real-valued work.
    """
    d, heads, n = card.hidden, card.heads, card.seq_len
    neuron = Neuron(**card.neuron.model_dump())
    r = card.rates
    layers: list[Layer] = []
    prev: list[str] = []
    for b in range(card.layers):
        t = card.timesteps_of(b)
        common = dict(seq_len=n, timesteps=t, weight_bits=card.weight_bits, block=b)
        neuron_mask = None if card.neuron_masks is None else np.asarray(card.neuron_masks[b])
        head_mask = None if card.head_masks is None else np.asarray(card.head_masks[b])
        p = f"block{b}."
        layers += [
            Layer(p + "q", "linear", d, d, inputs=prev, neuron=None, compute="mac", role="q", **common),
            Layer(p + "k", "linear", d, d, inputs=prev, neuron=neuron, rate=r.k, role="k", **common),
            Layer(p + "v", "linear", d, d, inputs=prev, neuron=neuron, rate=r.v, role="v", **common),
            Layer(p + "attention", "attention", d, d, inputs=[p + "q", p + "k", p + "v"], heads=heads,
                  head_dim=d // heads, head_mask=head_mask, neuron=neuron, rate=r.attention,
                  role="attention", **common),
            Layer(p + "attn_out", "linear", d, d, inputs=[p + "attention"], neuron=neuron, rate=r.attn_out,
                  layernorm=True, role="attn_out", **common),
            Layer(p + "intermediate", "linear", d, card.intermediate, inputs=[p + "attn_out"], neuron=neuron,
                  neuron_mask=neuron_mask, rate=r.intermediate, role="intermediate", **common),
            Layer(p + "output", "linear", card.intermediate, d, inputs=[p + "intermediate"], neuron=neuron,
                  rate=r.output, layernorm=True, role="output", **common),
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
