"""Load a SpikingEncoder checkpoint (.pt) into the IR, with rates measured on its shipped sample.

A checkpoint is a dict saved with torch.save: `config` (SpikingEncoder's
arguments), `state_dict`, `vocab` (list of words) and `sample_tokens` (a few
encoded sentences, the default input for measuring rates and for the spike
engine). models/training/train_sentiment.py writes one.

Everything is checked before the model is built: the config's sizes (the
model they describe must be no larger than the weights the file holds, so a
config cannot make torch allocate terabytes), and the sample tokens
(integers, one row per sentence, each a word of the vocabulary).

Measuring the rates runs the sample through the model in spike mode; neurosim.checkpoint_cache keeps
the result between runs (cards.load_model reads checkpoints through it).
"""

from __future__ import annotations

import inspect
import io
import warnings
from contextlib import contextmanager
from numbers import Integral
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import NeurosimError, brief, clip
from ..ir import Network
from ..limits import MAX_TIMESTEPS
from .encoder import LAYERNORMS, ROLES, SpikingEncoder
from .extract import from_torch

REQUIRED = ("config", "state_dict", "sample_tokens")
SIZES = ("vocab_size", "hidden", "heads", "intermediate", "layers", "seq_len", "classes")
FIX = "save a dict with config, state_dict and sample_tokens (see models/training/train_sentiment.py)"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return clip(lines[0] if lines else type(exc).__name__, 200)


def _read(path: str | Path, data: bytes | None = None) -> dict:
    """The checkpoint in the file, or in `data` (its bytes, already read by neurosim.checkpoint_cache)."""
    where = str(path)
    try:
        data = Path(path).read_bytes() if data is None else data   # small models: read whole
    except OSError as exc:
        raise NeurosimError(where, "(file)", f"cannot be read: {exc.strerror or exc}", "check the path") from None
    if not data:
        raise NeurosimError(where, "(file)", "the file is empty (0 bytes)", "give a .pt file saved with torch.save")
    try:
        with warnings.catch_warnings():   # torch warns about what it then refuses: the refusal is the one line
            warnings.simplefilter("ignore")
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise NeurosimError(where, "(file)", f"not a readable torch checkpoint ({type(exc).__name__}: "
                            f"{_first_line(exc)})", "give a .pt file saved with torch.save") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED):
        missing = [k for k in REQUIRED if not isinstance(ckpt, dict) or k not in ckpt]
        raise NeurosimError(where, missing[0], "missing from the checkpoint", FIX)
    return ckpt


def _is_count(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= 1


def _check_config(config: Any, where: str) -> None:
    """The config's keys and sizes: SpikingEncoder's arguments, positive integers where it takes sizes."""
    if not isinstance(config, Mapping):
        raise NeurosimError(where, "config", f"expected a dict of SpikingEncoder's arguments, got {brief(config)}",
                            FIX)
    allowed = set(inspect.signature(SpikingEncoder).parameters)
    unknown = sorted(set(map(str, config)) - allowed)
    if unknown:
        raise NeurosimError(where, f"config.{unknown[0]}", "not an argument of SpikingEncoder",
                            f"use only: {', '.join(sorted(allowed))}")
    for key in SIZES:
        if key in config and not _is_count(config[key]):
            raise NeurosimError(where, f"config.{key}", f"expected a positive integer, got {brief(config[key])}",
                                "save the config of the model whose state_dict this is")
    if config.get("layernorm", "step") not in LAYERNORMS:   # absent: a checkpoint saved before the option
        raise NeurosimError(where, "config.layernorm", f"expected one of {', '.join(LAYERNORMS)}, got "
                            f"{brief(config['layernorm'])}", "save the model's layernorm (see frontend/encoder.py)")
    steps = config.get("timesteps", 16)
    steps = list(steps) if isinstance(steps, (list, tuple)) else [steps]
    # one per layer, or one per spiking sublayer of each layer (a list of 6, encoder.ROLES order)
    nested = [e for e in steps if isinstance(e, (list, tuple))]
    steps = [t for entry in steps for t in (entry if isinstance(entry, (list, tuple)) and entry else [entry])]
    if any(len(e) != len(ROLES) for e in nested) or not steps or \
            not all(_is_count(t) and t <= MAX_TIMESTEPS for t in steps):
        raise NeurosimError(where, "config.timesteps", f"expected one integer in 1..{MAX_TIMESTEPS:,}, one per "
                            f"layer or six per layer (one per spiking sublayer), got {brief(config.get('timesteps'))}",
                            "save the model's timesteps")


def _parameters(config: Mapping) -> int:
    """How many weights SpikingEncoder(**config) allocates (embedding, positions, blocks, classifier)."""
    h, i = config.get("hidden", 0), config.get("intermediate", 0)
    block = 4 * (h * h + h) + 2 * h * i + h + i + 4 * h + 1 + i   # Q, K, V, out; FFN; LayerNorms; masks
    return (config.get("vocab_size", 0) * h + config.get("seq_len", 0) * h + config.get("layers", 0) * block
            + (h + 1) * config.get("classes", 0))


def _check_state_dict(state: Any, config: Mapping, where: str) -> None:
    """A mapping of tensors at least as large as the model the config describes (checked before it is built)."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NeurosimError(where, "state_dict", "expected a dict of tensors (model.state_dict())", FIX)
    held = sum(v.numel() for v in state.values())
    wanted = _parameters(config)
    if wanted > 2 * held + 1_000_000:   # the config's model must be the one saved, not one a million times larger
        raise NeurosimError(where, "config", f"describes a model of {wanted:,} weights, but the state_dict holds "
                            f"{held:,}", "save the state_dict and config of the same model")


def _check_tokens(tokens: Any, model: SpikingEncoder, where: str) -> None:
    """(sentences, words) integers, each a word of the vocabulary, at most seq_len words per sentence."""
    vocab = model.embed.num_embeddings
    if not isinstance(tokens, torch.Tensor) or tokens.dtype.is_floating_point or tokens.dtype.is_complex \
            or tokens.dtype == torch.bool:
        kind = tokens.dtype if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise NeurosimError(where, "sample_tokens", f"expected a tensor of integer word ids, got {kind}",
                            "save the encoded sample sentences as a LongTensor")
    if tokens.dim() != 2 or tokens.shape[0] < 1 or not 1 <= tokens.shape[1] <= model.seq_len:
        raise NeurosimError(where, "sample_tokens", f"shape {tuple(tokens.shape)}, expected (sentences, words) "
                            f"with 1..{model.seq_len} words", "save one row of word ids per sample sentence")
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= vocab:
        raise NeurosimError(where, "sample_tokens", f"word ids from {low} to {high}, outside the vocabulary "
                            f"(0..{vocab - 1})", "encode the samples with the checkpoint's own vocabulary")


def load_encoder(path: str | Path, data: bytes | None = None) -> tuple[SpikingEncoder, dict]:
    where = str(path)
    ckpt = _read(path, data)
    _check_config(ckpt["config"], where)
    _check_state_dict(ckpt["state_dict"], ckpt["config"], where)
    try:
        model = SpikingEncoder(**ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise NeurosimError(where, "state_dict", f"does not fit the model its config describes: "
                            f"{' '.join(line.strip() for line in first[:3])[:400]}",
                            "save the state_dict and config of the same model") from None
    _check_tokens(ckpt["sample_tokens"], model, where)
    model.eval()
    return model, ckpt


@contextmanager
def one_torch_thread():
    """Torch on one thread while the rates are measured. The forward is many small ops (a few sentences by
    the hidden size, step by step), so a second thread costs more in synchronization than it gives, and on
    a busy machine far more: the shipped default took 0.7 CPU-s on one thread against 39 on two at load 15
    on 2 cores, with the same rates (benchmarks/results/spike_engine.md, first run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _network(model: SpikingEncoder, ckpt: dict, path: str | Path) -> Network:
    with one_torch_thread():
        return from_torch(model, ckpt["sample_tokens"], name=Path(path).stem)


def load_checkpoint(path: str | Path, data: bytes | None = None) -> Network:
    """The checkpoint's IR, its rates measured now on its sample sentences (uncached: see
    neurosim.checkpoint_cache)."""
    model, ckpt = load_encoder(path, data)
    return _network(model, ckpt, path)


def load_with_samples(path: str | Path, data: bytes | None = None) -> tuple[Network, np.ndarray]:
    """The IR (as load_checkpoint) and each sample sentence's embedding, (sentences, words, hidden): what
    neurosim.checkpoint_cache keeps."""
    model, ckpt = load_encoder(path, data)
    with torch.no_grad():
        samples = model.embedding(ckpt["sample_tokens"]).numpy()
    return _network(model, ckpt, path), samples
