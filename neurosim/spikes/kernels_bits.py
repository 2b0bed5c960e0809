"""Binary spikes x +-1 weights as bits: a 1-bit layer's synaptic input by AND and popcount.

A (step, token) row of binary spikes packed 64 inputs to a word, and a +-1 weight column packed the same
way (bit set: +1), give the row's sum of the weights of the inputs that fired without visiting events:
sum = (#fired with +1) - (#fired with -1) = 2 * popcount(s & plus) - popcount(s), word by word. Exact
integers, the sums `kernels.accumulate` forms from the same signs as int8 codes, so the same spikes; one AND
and one popcount per 64 (input, output) pairs, whatever the rate, where the event kernel adds one code per
event and output. The engine still counts one AC per (input event, live output), as the cost model does.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
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


# The sums as explicit 512-bit vectors: LLVM's loop vectorizer keeps to 256-bit registers on this CPU, but
# vectors written in the IR are lowered whole, so one vpopcntq counts 8 words at once where AVX-512 VPOPCNTDQ
# exists (elsewhere LLVM expands it into a few narrower instructions, the same sums). A block of ROWS rows x
# LANES outputs keeps its sums in registers over all input words, each sign vector loaded once for the ROWS
# rows: 2x the previous loop over one SpikingBERT layer (benchmarks/results/spike_engine.md).
ROWS, LANES = 4, 8
_I64, _I32 = ir.IntType(64), ir.IntType(32)
_VEC, _FVEC = ir.VectorType(_I64, LANES), ir.VectorType(ir.FloatType(), LANES)


def _splat(builder, x):
    """x (i64) in every lane of a vector."""
    v = builder.insert_element(ir.Constant(_VEC, ir.Undefined), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(_VEC, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _block_sums(builder, rows_a, plus_a, fired_a, first, out0, vectors=1):
    """The IR of one block's sums: for k < ROWS, float32(2 * sum_w popcount(rows[first + k, w] & plus[w, out0:
    out0 + vectors x LANES]) - fired[first + k]) as one vector of vectors x LANES floats, the sums kept in
    registers over the words (each row's word broadcast once for all its vectors)."""
    words = cgutils.unpack_tuple(builder, rows_a.shape, 2)[1]
    width = cgutils.unpack_tuple(builder, plus_a.shape, 2)[1]
    ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC]), "llvm.ctpop.v8i64")
    row = [builder.add(first, ir.Constant(_I64, k)) for k in range(ROWS)]
    row_ptrs = [builder.gep(rows_a.data, [builder.mul(r, words)]) for r in row]
    sums = [[cgutils.alloca_once_value(builder, ir.Constant(_VEC, [0] * LANES)) for _ in range(vectors)]
            for _ in range(ROWS)]
    with cgutils.for_range(builder, words) as loop:
        w = loop.index
        at = builder.gep(plus_a.data, [builder.add(builder.mul(w, width), out0)])
        signs = [builder.load(_vector_at_pointer(builder, at, v * LANES, _VEC), align=8) for v in range(vectors)]
        for k in range(ROWS):
            x = _splat(builder, builder.load(builder.gep(row_ptrs[k], [w])))
            for v in range(vectors):
                total = builder.add(builder.load(sums[k][v]), builder.call(ctpop, [builder.and_(x, signs[v])]))
                builder.store(total, sums[k][v])
    values = []
    for k in range(ROWS):
        n = _splat(builder, builder.load(builder.gep(fired_a.data, [row[k]])))
        parts = []
        for v in range(vectors):
            total = builder.load(sums[k][v])
            parts.append(builder.sitofp(builder.sub(builder.add(total, total), n), _FVEC))
        while len(parts) > 1:   # concatenated pairwise: 8 + 8 -> 16 lanes, ...
            lanes = 2 * parts[0].type.count
            parts = [builder.shuffle_vector(parts[i], parts[i + 1], ir.Constant(ir.VectorType(_I32, lanes),
                                                                               list(range(lanes))))
                     for i in range(0, len(parts), 2)]
        values.append(parts[0])
    return values


def _vector_at_pointer(builder, pointer, offset, kind):
    """A pointer to the vector of `kind` that starts `offset` elements after `pointer`."""
    return builder.bitcast(builder.gep(pointer, [ir.Constant(_I64, offset)]), kind.as_pointer())


def _vector_at(builder, array, index, kind):
    """A pointer to the vector of `kind` that starts at element `index` of the C-contiguous array."""
    return builder.bitcast(builder.gep(array.data, [index]), kind.as_pointer())


def _all_c(*arrays):
    return all(getattr(a, "layout", "C") == "C" for a in arrays)


@intrinsic
def _sign_block(typingctx, rows, r0, plus, o0, fired, scale, bias, cur):
    """cur[r0 + k, o0:o0 + LANES] = the block's sums (`_block_sums`) x scale + bias (float32, multiply then
    add) for k < ROWS. C-contiguous arrays; the caller keeps every index in bounds."""
    def codegen(context, builder, signature, args):
        rows_a, plus_a, fired_a, scale_a, bias_a, cur_a = (
            context.make_array(signature.args[i])(context, builder, args[i]) for i in (0, 2, 4, 5, 6, 7))
        first, out0 = args[1], args[3]
        outputs = cgutils.unpack_tuple(builder, cur_a.shape, 2)[1]
        sc, bi = (builder.load(_vector_at(builder, a, out0, _FVEC), align=4) for a in (scale_a, bias_a))
        for k, value in enumerate(_block_sums(builder, rows_a, plus_a, fired_a, first, out0)):
            row = builder.add(first, ir.Constant(_I64, k))
            builder.store(builder.fadd(builder.fmul(value, sc), bi),
                          _vector_at(builder, cur_a, builder.add(builder.mul(row, outputs), out0), _FVEC), align=4)
        return context.get_dummy_value()
    if not _all_c(rows, plus, fired, scale, bias, cur):
        return None   # the vectors read and write whole rows of C-contiguous arrays only
    return types.void(rows, r0, plus, o0, fired, scale, bias, cur), codegen


# The fused pass runs its neurons FIRE_LANES outputs at a time: FIRE_VECTORS popcount vectors a row, each row's
# word broadcast once for all, their sums concatenated into 512-bit float vectors for the neuron. On
# SpikingBERT's layers (4096 rows, interleaved best of 7): 2 vectors 1.12-1.24x the speed of 1, 4 another
# 1.05-1.14x (8 would take every vector register for the sums of 4 rows).
FIRE_VECTORS = 4
FIRE_LANES = FIRE_VECTORS * LANES
_FIRE_F, _FIRE_B, _FIRE_I = (ir.VectorType(x, FIRE_LANES) for x in (ir.FloatType(), ir.IntType(8), _I32))


@intrinsic
def _sign_fire(typingctx, rows, r0, plus, o0, fired, scale, bias, leak, vth, u, spk, totals, out_t, counts_t, i0):
    """One step of the default neuron (`kernels.fire_steps_plain`'s float32 operations, in the same order) on
    the block's sums (`_block_sums`), for tokens i0 + k (k < ROWS) and outputs o0 .. o0 + FIRE_LANES - 1:
    x = sum * scale + bias; v = leak * u + x, minus vth where the last step spiked; u = v; spike where
    v >= vth, into spk[k], out_t[i0 + k, o0:] and totals[k]; counts_t[i0 + k] += the spikes. u, spk, totals:
    (ROWS, FIRE_LANES) copies of the block's state."""
    def codegen(context, builder, signature, args):
        arr = {i: context.make_array(signature.args[i])(context, builder, args[i]) for i in
               (0, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)}
        first, out0, token0 = args[1], args[3], args[14]
        outputs = cgutils.unpack_tuple(builder, arr[12].shape, 2)[1]
        sc, bi, le, th = (builder.load(_vector_at(builder, arr[i], out0, _FIRE_F), align=4) for i in (5, 6, 7, 8))
        mask_t = ir.IntType(FIRE_LANES)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(mask_t, [mask_t]),
                                               f"llvm.ctpop.i{FIRE_LANES}")
        sums = _block_sums(builder, arr[0], arr[2], arr[4], first, out0, FIRE_VECTORS)
        for k, total in enumerate(sums):
            lane0 = ir.Constant(_I64, k * FIRE_LANES)
            u_at, s_at, t_at = (_vector_at(builder, arr[i], lane0, kind)
                                for i, kind in ((9, _FIRE_F), (10, _FIRE_B), (11, _FIRE_I)))
            x = builder.fadd(builder.fmul(total, sc), bi)
            v = builder.fadd(builder.fmul(le, builder.load(u_at, align=4)), x)
            last = builder.load(s_at, align=1)
            reset = builder.fsub(v, builder.fmul(builder.uitofp(last, _FIRE_F), th))
            v = builder.select(builder.icmp_unsigned("!=", last, ir.Constant(_FIRE_B, [0] * FIRE_LANES)), reset, v)
            builder.store(v, u_at, align=4)
            fire = builder.fcmp_ordered(">=", v, th)
            spikes = builder.zext(fire, _FIRE_B)
            builder.store(spikes, s_at, align=1)
            token = builder.add(token0, ir.Constant(_I64, k))
            builder.store(spikes, _vector_at(builder, arr[12], builder.add(builder.mul(token, outputs), out0), _FIRE_B),
                          align=1)
            builder.store(builder.add(builder.load(t_at, align=4), builder.zext(fire, _FIRE_I)), t_at, align=4)
            count_at = builder.gep(arr[13].data, [token])
            fired_here = builder.call(ctpop, [builder.bitcast(fire, mask_t)])
            builder.store(builder.add(builder.load(count_at), builder.zext(fired_here, _I64)), count_at)
        return context.get_dummy_value()
    arrays = (rows, plus, fired, scale, bias, leak, vth, u, spk, totals, out_t, counts_t)
    if not _all_c(*arrays):
        return None
    return types.void(rows, r0, plus, o0, fired, scale, bias, leak, vth, u, spk, totals, out_t, counts_t, i0), codegen


@Kernel
def accumulate_signs(rows, plus, scale, bias, cur, fired):
    """cur[r, o] = float32(2 * sum_w popcount(rows[r, w] & plus[w, o]) - popcount(rows[r])) * scale[o] + bias[o]
    (a real-valued layer's output; 1 and 0 leave the sums), fired[r] = popcount(rows[r]) (the row's events). rows (R, words) and plus (words, L) uint64 (`packed_rows`,
    `packed_signs`), R >= ROWS (`sign_sums` pads fewer). Blocks of ROWS rows (the last one overlaps the
    one before: rows summed twice, the same), LANES outputs at a time by `_sign_block`, the last L % LANES
    outputs one by one."""
    R, words = rows.shape
    L = plus.shape[1]
    for r in prange(R):
        t = 0
        for w in range(words):
            t += _popcount(rows[r, w])
        fired[r] = t
    whole = L - L % LANES
    for b in prange((R + ROWS - 1) // ROWS):
        r0 = min(ROWS * b, R - ROWS)
        for o0 in range(0, whole, LANES):
            _sign_block(rows, r0, plus, o0, fired, scale, bias, cur)
        for r in range(r0, r0 + ROWS):
            for o in range(whole, L):
                a = 0
                for w in range(words):
                    a += _popcount(rows[r, w] & plus[w, o])
                cur[r, o] = np.float32(2 * a - fired[r]) * scale[o] + bias[o]


def sign_sums(rows: np.ndarray, plus: np.ndarray, cur: np.ndarray, fired: np.ndarray, scale: np.ndarray | None = None,
              bias: np.ndarray | None = None) -> None:
    """`accumulate_signs` for any number of rows (fewer than ROWS are summed in a zero-padded copy); without a
    scale and a bias, the sums themselves."""
    L = cur.shape[1]
    scale = np.ones(L, np.float32) if scale is None else scale
    bias = np.zeros(L, np.float32) if bias is None else bias
    R = len(rows)
    if R >= ROWS:
        accumulate_signs(cur.size * rows.shape[1], rows, plus, scale, bias, cur, fired)
        return
    padded = np.zeros((ROWS, rows.shape[1]), np.uint64)
    padded[:R] = rows
    c, f = np.empty((ROWS, cur.shape[1]), np.float32), np.empty(ROWS, np.int64)
    accumulate_signs(0, padded, plus, scale, bias, c, f)
    cur[:] = c[:R]
    fired[:] = f[:R]


@Kernel
def sign_sums_fire(rows, plus, fired, scale, bias, leak, vth, u, spk, totals, out, counts):
    """`accumulate_signs` and then `kernels.fire_steps_plain` in one pass, without the currents ever in memory:
    the same sums, the same float32 neuron, the same spikes. rows (K * n, words): step t's token i at row
    t * n + i; out (K, n, L) the spikes, counts (K, n) the events per token; u, spk, totals (n, L) the state.
    n a multiple of ROWS, L of FIRE_LANES (the engine's other path takes the rest). A block of ROWS tokens runs
    through the K steps for FIRE_LANES outputs at a time, its state copied into scratch of its own
    (`_sign_fire`)."""
    K, n, L = out.shape
    words = rows.shape[1]
    for r in prange(rows.shape[0]):
        t = 0
        for w in range(words):
            t += _popcount(rows[r, w])
        fired[r] = t
    for b in prange(n // ROWS):
        i0 = b * ROWS
        for t in range(K):
            for k in range(ROWS):
                counts[t, i0 + k] = 0
        us, ss = np.empty((ROWS, FIRE_LANES), np.float32), np.empty((ROWS, FIRE_LANES), np.uint8)
        ts = np.empty((ROWS, FIRE_LANES), np.int32)
        for o0 in range(0, L, FIRE_LANES):
            for k in range(ROWS):
                for j in range(FIRE_LANES):
                    us[k, j], ss[k, j], ts[k, j] = u[i0 + k, o0 + j], spk[i0 + k, o0 + j], totals[i0 + k, o0 + j]
            for t in range(K):
                _sign_fire(rows, t * n + i0, plus, o0, fired, scale, bias, leak, vth, us, ss, ts, out[t], counts[t],
                           i0)
            for k in range(ROWS):
                for j in range(FIRE_LANES):
                    u[i0 + k, o0 + j], spk[i0 + k, o0 + j], totals[i0 + k, o0 + j] = us[k, j], ss[k, j], ts[k, j]
