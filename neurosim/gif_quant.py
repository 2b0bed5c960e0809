"""SpikeLLM's per-token quantization in numpy: the reference's clamps, and the codes the spike engine sends.

The torch form (training, straight-through gradients) is `frontend.spikellm.quantize`; both follow the
reference (github.com/Xingrun-Xing2/SpikeLLM, spike_driven_quant/quantizer.py) and share these constants.
Per vector (the last axis): scale = (max - min) / (2^n - 1), clamped; zero point z = round(-min / scale),
clamped; codes = clamp(round(x / scale) + z, 0, 2^n - 1), rounding half to even. The same float32 operations
in the same order as the torch form, so that both give the same codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALE_MIN, SCALE_MAX = 1e-5, 1e4   # the reference's clamps of the scale (quantizer.py, CLIPMIN and 1e4)
ZERO_POINT_MAX = 1e4               # the reference clamps the zero point to +-1e4 before rounding


@dataclass
class Codes:
    """Integer codes (float32) of vectors along the last axis, with each vector's scale and zero point (..., 1)."""

    ints: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray

    def dequantize(self) -> np.ndarray:
        return (self.ints - self.zero_point) * self.scale


def quantize(x: np.ndarray, n_bits: int) -> Codes:
    """Asymmetric min-max quantization of float32 `x` to n-bit codes per vector (last axis)."""
    x = np.asarray(x, dtype=np.float32)
    top = np.float32(2 ** n_bits - 1)
    low, high = x.min(-1, keepdims=True), x.max(-1, keepdims=True)
    scale = np.clip((high - low) / top, np.float32(SCALE_MIN), np.float32(SCALE_MAX))
    zero_point = np.rint(np.clip(-low / scale, np.float32(-ZERO_POINT_MAX), np.float32(ZERO_POINT_MAX)))
    ints = np.clip(np.rint(x / scale) + zero_point, np.float32(0), top)
    return Codes(ints.astype(np.float32), scale.astype(np.float32), zero_point.astype(np.float32))
