"""Sweep points' models and energy tables, built once per process (each Dask worker is its own process).

A `ModelRef` is what travels to a worker; `load_point_model` builds the model
there (a card with overrides, or any model file) and keeps it for the next
point. spec (checking models before a sweep), evaluate and report_page use it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..arch import EnergyTable, load_energy_table
from ..cards import DecoderCard, DecoderPhase, EncoderCard, decoder_network, encoder_network, load_model
from ..errors import NeurosimError, brief
from ..ir import Network
from ..schema import read_yaml, set_dotted, validate


@dataclass(frozen=True)
class ModelRef:
    """What a worker needs to build a model: the file, card overrides, a default rate."""

    label: str
    path: str
    set: tuple = ()          # sorted (key, value) pairs of card overrides
    rate: float | None = None

    def key(self) -> str:
        # made once per distinct model (a sweep asks it of every point, several times); repr tells 1 from 1.0
        found = _KEYS.get(ident := (self.path, repr(self.set), repr(self.rate)))
        if found is None:
            found = _KEYS[ident] = json.dumps({"path": self.path, "set": [list(kv) for kv in self.set],
                                               "rate": self.rate}, sort_keys=True, default=str)
        return found


_KEYS: dict[tuple, str] = {}


# Per-process caches (each Dask worker is its own process): a model is built once per worker.
_MODELS: dict[str, Network] = {}
_TABLES: dict[str, EnergyTable] = {}
_CARD_KINDS: dict[str, str | None] = {}   # card path -> its kind, read once
MODEL_LOADS: Counter = Counter()


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def _build_model(ref: ModelRef) -> Network:
    if ref.set:
        overrides = {k: _thaw(v) for k, v in ref.set}
        data, _ = read_yaml(ref.path)
        for key, value in overrides.items():
            set_dotted(data, key, value)
        where = f"{ref.path} with {brief(overrides, 200)}"
        decoder = data.get("kind") == "spiking_decoder"
        card = validate(data, DecoderCard if decoder else EncoderCard, where)
        try:
            net = decoder_network(card, DecoderPhase(card.workload.batch, card.workload.prompt)) if decoder \
                else encoder_network(card)
        except NeurosimError as exc:
            raise NeurosimError(f"{where} ({exc.where})", exc.field, exc.problem, exc.fix) from None
    else:
        net = load_model(ref.path)
    return net.with_default_rate(ref.rate) if ref.rate is not None else net


def load_point_model(ref: ModelRef) -> Network:
    """The point's network, built once per process."""
    key = ref.key()
    if key not in _MODELS:
        _MODELS[key] = _build_model(ref)
        MODEL_LOADS[key] += 1
    return _MODELS[key]


def load_point_card(ref: ModelRef) -> DecoderCard | None:
    """The point's decoder card (with its overrides), or None when the model is not a decoder card: a decoder
    point is priced as a workload (`llm.sweep`), not as the one network `load_point_model` builds. Which
    files are decoder cards is read once per process (a sweep asks for every point)."""
    if not ref.path.endswith((".yaml", ".yml")):
        return None
    if ref.path not in _CARD_KINDS:
        _CARD_KINDS[ref.path] = read_yaml(ref.path)[0].get("kind")
    if _CARD_KINDS[ref.path] != "spiking_decoder":
        return None
    data, _ = read_yaml(ref.path)
    if data.get("kind") != "spiking_decoder":
        return None
    for key, value in ref.set:
        set_dotted(data, key, _thaw(value))
    return validate(data, DecoderCard, f"{ref.path} with {brief(dict(ref.set), 200)}")


def forget_models() -> None:
    """Empty this process's model cache and its load counts, so that the next loads build (and count) again."""
    _MODELS.clear()
    _CARD_KINDS.clear()
    MODEL_LOADS.clear()


def energy_table(path: str) -> EnergyTable:
    """The energy table at `path`, read once per process."""
    if path not in _TABLES:
        _TABLES[path] = load_energy_table(path)
    return _TABLES[path]
