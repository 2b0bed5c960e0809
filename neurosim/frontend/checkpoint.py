"""Load a SpikingEncoder checkpoint (.pt) into the IR, with rates measured on its shipped sample.

A checkpoint is a dict saved with torch.save: `config` (SpikingEncoder's
arguments), `state_dict`, `vocab` (list of words) and `sample_tokens` (a few
encoded sentences, the default input for measuring rates and for the spike
engine). models/training/train_sentiment.py writes one.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from ..errors import NeurosimError
from ..ir import Network
from .encoder import SpikingEncoder
from .extract import from_torch

REQUIRED = ("config", "state_dict", "sample_tokens")


def load_encoder(path: str | Path) -> tuple[SpikingEncoder, dict]:
    where = str(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise NeurosimError(where, "(file)", f"not a readable torch checkpoint ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200]})", "give a .pt file saved with torch.save") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED):
        missing = [k for k in REQUIRED if not isinstance(ckpt, dict) or k not in ckpt]
        raise NeurosimError(where, missing[0], "missing from the checkpoint",
                            f"save a dict with {', '.join(REQUIRED)} (see models/training/train_sentiment.py)")
    allowed = set(inspect.signature(SpikingEncoder).parameters)
    unknown = sorted(set(ckpt["config"]) - allowed)
    if unknown:
        raise NeurosimError(where, f"config.{unknown[0]}", "not an argument of SpikingEncoder",
                            f"use only: {', '.join(sorted(allowed))}")
    try:
        model = SpikingEncoder(**ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise NeurosimError(where, "state_dict", f"does not fit the model its config describes: "
                            f"{' '.join(line.strip() for line in first[:3])[:400]}",
                            "save the state_dict and config of the same model") from None
    model.eval()
    return model, ckpt


def load_checkpoint(path: str | Path) -> Network:
    model, ckpt = load_encoder(path)
    return from_torch(model, ckpt["sample_tokens"], name=Path(path).stem)
