"""Binary spikes x +-1 weights as bits: a 1-bit layer's synaptic input by AND and popcount.

A (step, token) row of binary spikes packed 64 inputs to a word, and a +-1 weight column packed the same
way (bit set: +1), give the row's sum of the weights of the inputs that fired without visiting events:
sum = (#fired with +1) - (#fired with -1) = 2 * popcount(s & plus) - popcount(s), word by word. Exact
integers, the sums `kernels.accumulate_codes` forms from the same signs, so the same spikes; one AND and
one popcount per 64 (input, output) pairs, whatever the rate, where the event kernel adds one code per
event and output. The engine still counts one AC per (input event, live output), as the cost model does.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .kernels import Kernel

WORD = 64   # inputs per packed word


@intrinsic
def _popcount(typingctx, x):
    """LLVM's ctpop on a uint64 (vpopcntq on AVX-512 VPOPCNTDQ; a few instructions elsewhere)."""
    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)
    return types.uint64(types.uint64), codegen


_GATHER = np.uint64(0x0102040810204080)   # times 8 little-endian 0/1 bytes: their bits in the top byte


@Kernel
def pack_rows(words, out):
    """Binary spike rows (R, in) uint8 read as (R, in / 8) uint64 -> bits (R, in / 8) uint8, input k of a
    row at bit k % 8 of byte k // 8 (np.packbits' little bit order). Values must be 0 or 1."""
    for r in prange(words.shape[0]):
        row, dst = words[r], out[r]
        for j in range(row.shape[0]):
            dst[j] = np.uint8((row[j] * _GATHER) >> np.uint64(56))


def packed_rows(spikes: np.ndarray) -> np.ndarray:
    """(R, in) binary uint8 -> (R, ceil(in / 64)) uint64 words, zero-padded."""
    R, m = spikes.shape
    words = -(-m // WORD)
    out = np.zeros((R, words * 8), np.uint8)
    if m % 8 == 0 and spikes.flags.c_contiguous:
        pack_rows(spikes.size, spikes.view(np.uint64), out)
    else:
        out[:, :-(-m // 8)] = np.packbits(spikes, axis=1, bitorder="little")
    return out.view(np.uint64)


def packed_signs(codes: np.ndarray) -> np.ndarray:
    """(in, L) +-1 codes -> (ceil(in / 64), L) uint64: bit k of word w of column o set where code[64w + k, o] > 0."""
    n_in, L = codes.shape
    words = -(-n_in // WORD)
    bits = np.zeros((L, words * 8), np.uint8)
    bits[:, :-(-n_in // 8)] = np.packbits(codes.T > 0, axis=1, bitorder="little")
    return np.ascontiguousarray(bits.view(np.uint64).T)


# Outputs summed at a time: two rows' sums of that many outputs stay in L1 while the sign words are read once
# for both rows (the words of a 768 x 3072 layer are 288 KiB: read per row, from L2, they bound the kernel).
CHUNK = 1024


@Kernel
def accumulate_signs(rows, plus, cur, fired):
    """cur[r, o] = float32(2 * sum_w popcount(rows[r, w] & plus[w, o]) - popcount(rows[r])), fired[r] =
    popcount(rows[r]) (the row's events). rows (R, words) and plus (words, L) uint64 (`packed_rows`,
    `packed_signs`). Two rows at a time, each sign word read once for both, two words per add into the
    sums, outputs in chunks of CHUNK."""
    R, words = rows.shape
    L = plus.shape[1]
    for b in prange((R + 1) // 2):
        r0 = 2 * b
        r1 = min(r0 + 1, R - 1)            # an odd last row is summed twice, the same
        s0, s1 = rows[r0], rows[r1]
        t0, t1 = 0, 0
        for w in range(words):
            t0 += _popcount(s0[w])
            t1 += _popcount(s1[w])
        a0, a1 = np.empty(min(L, CHUNK), np.int64), np.empty(min(L, CHUNK), np.int64)
        for c0 in range(0, L, CHUNK):
            m = min(CHUNK, L - c0)
            a0[:m] = 0
            a1[:m] = 0
            w = 0
            while w + 2 <= words:
                p, q = plus[w, c0:c0 + m], plus[w + 1, c0:c0 + m]
                x0, x1, y0, y1 = s0[w], s0[w + 1], s1[w], s1[w + 1]
                for o in range(m):
                    a0[o] += _popcount(x0 & p[o]) + _popcount(x1 & q[o])
                    a1[o] += _popcount(y0 & p[o]) + _popcount(y1 & q[o])
                w += 2
            if w < words:
                p, x0, y0 = plus[w, c0:c0 + m], s0[w], s1[w]
                for o in range(m):
                    a0[o] += _popcount(x0 & p[o])
                    a1[o] += _popcount(y0 & p[o])
            c, d = cur[r0, c0:c0 + m], cur[r1, c0:c0 + m]
            for o in range(m):
                c[o] = np.float32(2 * a0[o] - t0)
                d[o] = np.float32(2 * a1[o] - t1)
        fired[r0] = t0
        fired[r1] = t1
