"""Low-bit weights: what the engine reads for a linear layer whose IR says `weight_bits` <= 8.

The IR holds a layer's weights as real numbers (the dequantized values) and
says how many bits each one has. The engine stores them as integer codes and
one scale per live output (a row of W), w = code x scale:

* weight_bits 2-8: int8 codes in [-(2^(b-1) - 1), 2^(b-1) - 1] (symmetric, as
  SpikeLLM's and the front end's quantizers make them), summed exactly in
  integers by the event-driven `kernels.accumulate`, a quarter of fp32's bytes;
* weight_bits 1: signs (w >= 0 -> +1); on binary input spikes packed 64 to a
  word and summed by popcounts (`kernels_bits`, the engine packs them), else as
  int8 codes (the same kernel, with byte partial sums), or (PACK_SIGNS) packed 8
  to a byte and read by `kernels.accumulate_packed`, 1/32 of the bytes.

The engine sums the codes of the input events and multiplies the sum by the
scale once per output and step (in `fire`, where the fp32 path multiplies by 1).
On weights that are codes x a power-of-two scale (and sums below 2^24) both
sums are exact, so the low-bit engine gives the same spikes as the fp32 engine
on the dequantized weights; with any other scale the two differ by float32
rounding of the sum (ties at the threshold can then flip).

The scale is found from the weights: one scale for the layer (its largest
|w| / the largest code) when every weight is a code times it, else one per
row (the row's largest |w| / the largest code; 1-bit: the row's |w|, which must
be the same for the whole row). Rows that are not codes x a scale are
quantized (rounded to the nearest code; 1-bit: sign x mean |w|, the front
end's BinaryLinear) and the run says so in a note.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

LOW_BITS = 8   # weight_bits at or below this run on integer codes

# 1-bit layers run on their +-1 codes as int8 (kernels.accumulate) unless this is set: the packed-sign
# kernel reads 1/8 of the bytes but decodes each byte through a table, and on the 2-core AVX-512 Xeon
# of benchmarks/results/spike_engine.md (an earlier version of it) the int8 kernel was the faster of the two.
PACK_SIGNS = False


def _sign_table() -> np.ndarray:
    """(256, 8) float32: the +-1 weights of the 8 outputs one packed byte holds (bit k: output k; 1 = +1)."""
    bits = (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1
    return np.where(bits == 1, 1.0, -1.0).astype(np.float32)


SIGN_TABLE = _sign_table()


@dataclass
class LowBitWeights:
    """A layer's weights (in, live outputs) as codes x per-output scale."""

    codes: np.ndarray          # (in, L) int8, C-contiguous
    scale: np.ndarray          # (L,) float32
    exact: bool                # codes x scale == the IR's weights (float32), for every weight
    packed: np.ndarray | None  # 1-bit: (in, ceil(L / 8)) uint8, bit k of byte j = output 8j + k is +1

    @property
    def nonzero_fan_out(self) -> np.ndarray:
        """Per input, the live outputs its weight reaches with a nonzero value (effective ACs)."""
        return np.count_nonzero((self.codes != 0) & (self.scale != 0)[None, :], axis=1).astype(np.int64)


def _codes(wt: np.ndarray, scale: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes of wt under a scale per column, and which columns they reproduce exactly (float32)."""
    safe = np.where(scale == 0, 1, scale).astype(np.float32)
    q = np.clip(np.rint(wt / safe), -top, top)
    exact = (q.astype(np.float32) * scale == wt).all(axis=0)
    return q.astype(np.int8), exact


SAMPLE_ROWS = 16   # inputs tried first: a scale that fails on them is not tried on the whole matrix


def _grid_scale(wt: np.ndarray, peak: np.ndarray, top: int) -> np.ndarray | None:
    """Scales (one per column) that make every weight of their column a code, NaN where none was found.

    The largest code of a column is some m <= top, so its scale is peak / m (to an ulp or two): try
    m = 1, 2, ..., top, the coarsest grid first (integer weights get their largest common divisor, e.g.
    scale 1), each first on a few rows.
    """
    found = np.full(wt.shape[1], np.nan, np.float32)
    open_ = peak > 0
    found[~open_] = 0.0
    head = wt[:SAMPLE_ROWS]
    for m in range(1, top + 1):
        for ulps in ULPS:
            cols = np.flatnonzero(open_)
            if len(cols) == 0:
                return found
            s = _ulps_away((peak[cols] / np.float32(m)).astype(np.float32), ulps)
            _, ok = _codes(head[:, cols], s, top)
            if ok.any():
                ok[ok] = _codes(wt[:, cols[ok]], s[ok], top)[1]   # the sample's survivors, on every row
                found[cols[ok]] = s[ok]
                open_[cols[ok]] = False
    return found


# float32 codes x s round their largest one, so peak / m can miss s by an ulp: its neighbours are tried too
ULPS = (0, -1, 1, -2, 2)


def _ulps_away(x: np.ndarray, ulps: int) -> np.ndarray:
    for _ in range(abs(ulps)):
        x = np.nextafter(x, np.float32(np.inf if ulps > 0 else 0))
    return x


def quantize(wt: np.ndarray, bits: int) -> LowBitWeights:
    """wt (in, L) real weights -> codes and scales for a `bits`-bit layer (1 <= bits <= LOW_BITS)."""
    wt = np.asarray(wt, dtype=np.float32)
    a = np.abs(wt)
    peak = a.max(axis=0, initial=0)
    if bits == 1:
        exact_rows = (a == peak).all(axis=0)
        scale = np.where(exact_rows, peak, a.mean(axis=0)).astype(np.float32)
        codes = np.where(wt >= 0, 1, -1).astype(np.int8)
        packed = np.packbits(codes > 0, axis=1, bitorder="little")
        return LowBitWeights(np.ascontiguousarray(codes), scale, bool(exact_rows.all()),
                             np.ascontiguousarray(packed))
    top = 2 ** (bits - 1) - 1
    whole = _grid_scale(a.reshape(-1, 1), peak.max(initial=0, keepdims=True), top)[0]   # one scale for the layer
    scale = np.full(wt.shape[1], whole, np.float32) if not np.isnan(whole) else _grid_scale(wt, peak, top)
    exact = not np.isnan(scale).any()
    scale = np.where(np.isnan(scale), peak / top, scale).astype(np.float32)   # rows off every grid: rounded
    codes, _ = _codes(wt, scale, top)
    return LowBitWeights(np.ascontiguousarray(codes), scale, exact, None)


def dequantized(low: LowBitWeights) -> np.ndarray:
    """The (in, L) float32 weights the codes stand for: codes x scale."""
    return low.codes.astype(np.float32) * low.scale


_KEPT: dict[tuple, object] = {}


def once_per_array(array: np.ndarray, key: tuple, make):
    """make(), once per (array, key), kept while the array lives: what the engines derive from a layer's IR
    weights (codes, fan-outs, a copy on the GPU) is made when a network first runs and reused when it runs
    again (a benchmark, a sweep of inputs), as a model is loaded once."""
    full = (id(array),) + key
    if full not in _KEPT:
        _KEPT[full] = make()
        weakref.finalize(array, _KEPT.pop, full, None)
    return _KEPT[full]


def prepared(weights: np.ndarray, live_idx: np.ndarray, bits: int) -> LowBitWeights:
    """quantize() of a layer's (out, in) IR weights for its live outputs (kept per weights array when
    every output is live)."""
    w = np.asarray(weights)
    if len(live_idx) != w.shape[0] or w is not weights:
        return quantize(w.T[:, live_idx], bits)
    return once_per_array(weights, ("codes", bits), lambda: quantize(w.T, bits))
