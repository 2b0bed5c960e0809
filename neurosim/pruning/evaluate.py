"""Accuracy of a SpikingEncoder on labelled tokens, in any of its modes (seeded for `stochastic`)."""

from __future__ import annotations

import torch


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor, mode: str = "stochastic", seed: int = 1,
             batch: int = 256) -> float:
    """Fraction correct; batch i of `stochastic` mode draws with seed + i, as train_sentiment.py does."""
    was = model.training
    model.eval()
    correct = 0
    dev = model.device
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch].to(dev), mode=mode, seed=seed + i)
        correct += int((logits.argmax(1) == y[i:i + batch].to(dev)).sum())
    model.train(was)
    return correct / max(1, len(x))
