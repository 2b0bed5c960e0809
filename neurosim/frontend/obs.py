"""Optimal Brain Spiking (SpikeLLM, Xing et al., ICLR 2025): which input channels get the multi-step GIF.

As its reference code does it (github.com/Xingrun-Xing2/SpikeLLM, spike_driven_quant/spike_linear.py:
`add_batch`, `static`, `get_channel_mask`; spike_matmul.py for the KV cache), in our words:

* **Linear layers**: for calibration inputs X (tokens x in) of a layer with
  weights W (out x in), g = (X W^T) W is the gradient of 1/2 |X W^T|^2 with
  respect to X, and g * X (elementwise) is each input element's share of
  that second-order term. Averaged over the calibration samples and then
  over tokens it gives one saliency per input channel.
* **The split**: the int(low_p x channels) channels of lowest saliency
  (every channel at or below the k-th smallest value, so ties may add more)
  take the single-step n-bit path; the rest take the multi-step GIF path
  (n + addbit bits over T = 2^addbit steps of n-bit spikes). The
  reference's driver uses low_p 0.9 with addbit 1 and 0.95 with addbit 2.
* **KV cache** (the matmuls Q K^T and P V): the same product with the other
  operand as the "weight". Keys: (K (Q^T Q)) * K per (token, channel), with
  Q (tokens x head_dim) of the same head; values: ((P^T P) V) * V with P the
  attention probabilities. Each is averaged over samples and tokens into one
  saliency per (head, channel), and the split runs over all heads' channels
  together (the reference's `width` is the hidden size).

One difference, on purpose: with low_p = 0 the reference indexes its sorted
saliencies at -1 and so puts every channel on the single-step path; here
low_p = 0 means none (tests/test_obs.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import NeurosimError
from .spikellm import check_bits, steps


def _samples(x: torch.Tensor, dims: int, name: str) -> torch.Tensor:
    """x with a leading samples axis: `dims` axes per sample."""
    if x.dim() == dims:
        return x[None]
    if x.dim() != dims + 1:
        raise NeurosimError("obs", name, f"has {x.dim()} axes", f"give {dims} axes per sample, or {dims + 1} with "
                            "calibration samples first")
    return x


def linear_saliency(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One saliency per input channel: mean over samples and tokens of ((X W^T) W) * X.

    `inputs`: (tokens, in) or (samples, tokens, in); `weight`: (out, in).
    """
    x = _samples(inputs, 2, "inputs").double()
    w = weight.double()
    if x.shape[-1] != w.shape[1]:
        raise NeurosimError("obs", "inputs", f"has {x.shape[-1]} channels but the weight takes {w.shape[1]}",
                            "give the layer's own inputs (tokens x in_features)")
    return (((x @ w.T) @ w) * x).mean((0, 1))


def key_saliency(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """One saliency per (head, key channel): mean over samples and tokens of (K (Q^T Q)) * K.

    `q`, `k`: (heads, tokens, head_dim), or with calibration samples first.
    """
    q, k = _samples(q, 3, "q").double(), _samples(k, 3, "k").double()
    return ((k @ (q.transpose(-1, -2) @ q)) * k).mean((0, 2))


def value_saliency(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One saliency per (head, value channel): mean over samples and tokens of ((P^T P) V) * V.

    `p`: attention probabilities (heads, queries, keys); `v`: (heads, keys, head_dim); samples may lead.
    """
    p, v = _samples(p, 3, "p").double(), _samples(v, 3, "v").double()
    return (((p.transpose(-1, -2) @ p) @ v) * v).mean((0, 2))


def check_low_p(low_p) -> float:
    if isinstance(low_p, bool) or not isinstance(low_p, (int, float)) or not 0.0 <= low_p <= 1.0:
        raise NeurosimError("obs", "low_p", f"must be a fraction in [0, 1], got {low_p!r}",
                            "give the share of channels on the single-step path (SpikeLLM uses 0.9 or 0.95)")
    return float(low_p)


def channel_split(saliency: torch.Tensor, low_p: float) -> torch.Tensor:
    """The multi-step mask (True = multi-step GIF path), same shape as `saliency`.

    The int(low_p x channels) lowest-saliency channels, and any tied with the last of them, go single-step.
    """
    low_p = check_low_p(low_p)
    flat = saliency.flatten()
    quota = int(low_p * flat.numel())
    if quota == 0:
        return torch.ones_like(saliency, dtype=torch.bool)
    threshold = flat.sort().values[quota - 1]
    return saliency > threshold


@dataclass(frozen=True)
class SplitCost:
    """What a channel split costs per token: spike slots and bits on each path.

    single: channels sent once as an n-bit spike; multi: channels sent over T steps of n-bit spikes.
    """

    single: int
    multi: int
    n_bits: int
    addbit: int

    @property
    def steps(self) -> int:
        return steps(self.addbit)

    @property
    def slots(self) -> int:
        """Spike slots per token (at most one event each): single + multi x T."""
        return self.single + self.multi * self.steps

    @property
    def bits(self) -> int:
        """Bits per token the spikes occupy: n per slot."""
        return self.slots * self.n_bits

    @property
    def mean_bits(self) -> float:
        """Bits per channel and token: n (low_p + (1 - low_p) T)."""
        return self.bits / (self.single + self.multi)

    @property
    def code_bits(self) -> float:
        """Bits per channel and token of the integers the spikes carry: n, or n + addbit on the multi path."""
        return (self.single * self.n_bits + self.multi * (self.n_bits + self.addbit)) / (self.single + self.multi)


def split_cost(multi: torch.Tensor, n_bits: int, addbit: int) -> SplitCost:
    check_bits(n_bits, addbit, "obs")
    n_multi = int(multi.sum())
    return SplitCost(single=int(multi.numel()) - n_multi, multi=n_multi, n_bits=n_bits, addbit=addbit)
