"""Numba kernels of the spike engine: one timestep of one layer at a time.

Layouts (n = tokens, m = a layer's full output width, L = its live outputs):

* A layer's output for one step is a dense (n, m) array: uint8 spike values
  (0 = no event, k = a k-level GIF spike) or float32 for a real-valued layer.
  Outputs the masks remove stay 0 for ever.
* Events are that array in CSR form per token (`ptr`, `idx`, `val`), built
  once per source and step and shared by all its consumers.
* Weights are kept transposed and compressed to the live outputs: `wt` is
  (in, L), C-contiguous, so one input event adds one contiguous row.
  Low-bit layers keep int8 codes in `wt` and one scale per output in `scale`
  (lowbit.py); 1-bit layers may instead keep signs packed 8 to a byte.
* Membranes `u`, the last step's spikes `spk` and spike totals are (n, L).

Random numbers are counter-based (splitmix64 of seed, stream, step, index):
stateless, identical under any thread schedule, and the same draw for every
consumer that asks for the same (stream, step, index).
"""

from __future__ import annotations

import os
import sys
import types
from contextlib import contextmanager

import numba
import numpy as np
from llvmlite import ir
from numba import float32, int32, int64, njit, prange, uint8, void
from numba import int8 as types_int8
from numba.core import cgutils
from numba.extending import intrinsic, overload

# A call runs threaded when it does at least this many element operations
# (ACs, neuron updates, softmax scores) and numba has more than one thread;
# below it, waking the thread pool costs more than it saves.
PARALLEL_WORK = 100_000


# A whole run whose dense bound (every input of every layer active at every step: steps x tokens x
# in x out, summed) is below this runs serial throughout: its calls are small enough that the pool's
# wake-ups cost what threads save, and a fresh install's first run (the default model, ~0.3 G) then
# compiles only the serial kernels (2.6 s of CPU less, benchmarks/results/spike_engine.md). SpikingBERT-4L's
# bound is ~180 G.
SERIAL_RUN_WORK = 1_000_000_000
_SERIAL_RUN: list[bool] = [False]


@contextmanager
def serial_if_small(dense_work: float):
    """Within: every call runs serial when the run's dense bound is below SERIAL_RUN_WORK.
    A PARALLEL_WORK of 0 (tests that check the threaded kernels) keeps calls threaded."""
    saved = _SERIAL_RUN[0]
    _SERIAL_RUN[0] = dense_work < SERIAL_RUN_WORK and PARALLEL_WORK > 0
    try:
        yield
    finally:
        _SERIAL_RUN[0] = saved


class Kernel:
    """One kernel compiled twice: threaded (its prange loop split over threads) and serial.

    Called as kernel(work, *args); `work` picks the version. The serial copy
    gets its own name so that numba's on-disk cache keeps both.
    """

    def __init__(self, py_func):
        self.threaded = njit(parallel=True, cache=True)(py_func)
        clone = types.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__)
        clone.__qualname__, clone.__module__ = py_func.__qualname__ + "_serial", py_func.__module__
        self.serial = njit(cache=True)(clone)
        self.__doc__ = py_func.__doc__

    def __call__(self, work, *args):
        fast = work >= PARALLEL_WORK and numba.get_num_threads() > 1 and not _SERIAL_RUN[0]
        return (self.threaded if fast else self.serial)(*args)

def cache_is_cold() -> bool:
    """No compiled `fire` in Numba's on-disk cache yet: the kernels will be compiled on this run."""
    try:
        paths = [k._cache._cache_file._index_path for k in (fire.serial, fire.threaded)]   # numba's cache index
    except AttributeError:   # another numba's layout: say nothing rather than guess
        return False
    return not any(os.path.exists(path) for path in paths)


_ANNOUNCED: list[bool] = []


def announce_compiling() -> None:
    """One line on stderr, once per process, before the first run of a fresh install compiles the kernels."""
    if not _ANNOUNCED:
        _ANNOUNCED.append(True)
        if cache_is_cold():
            print("neurosim: compiling the spike engine's kernels, once (10-80 s of CPU; cached for later runs)",
                  file=sys.stderr, flush=True)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def stream_key(seed, stream, step):
    """The key of one (seed, stream, step): every uniform of that step derives from it."""
    k = _mix(np.uint64(seed) + _GOLDEN)
    k = _mix(k + np.uint64(stream) * _GOLDEN)
    return _mix(k + np.uint64(step) * _GOLDEN)


@njit(cache=True, inline="always")
def _uniform(key, index):
    """A uniform in [0, 1) for one element index under a step key."""
    return np.float64(_mix(key + np.uint64(index) * _GOLDEN) >> np.uint64(11)) * _INV53


@njit(cache=True, inline="always")
def copy_into(dst, src):
    """dst[:] = src, element by element: a slice assignment between arrays makes Numba compile its
    shape-mismatch error message, 2-4 s of CPU on a fresh install's first run."""
    for o in range(src.shape[0]):
        dst[o] = src[o]


@Kernel
def bernoulli_rates(p, key, out):
    """out[i, j] = 1 with probability p[i, j] (rate coding of a real input in [0, 1])."""
    n, m = p.shape
    for i in prange(n):
        for j in range(m):
            out[i, j] = 1 if _uniform(key, i * m + j) < p[i, j] else 0


@Kernel
def regenerate(counts, values, steps, live_idx, key, out):
    """Stochastic handoff: spikes drawn from a source's per-neuron ASR, for one step.

    counts[i, o] events in `steps` steps give P(event) = counts/steps. The
    event's value is the neuron's mean value per event, rounded stochastically
    (1 for binary neurons), so the expected value per step is preserved.
    Index `i * m + live_idx[o]` keys the draw, so it does not depend on masks.
    """
    n, L = counts.shape
    m = out.shape[1]
    key2 = _mix(key ^ _GOLDEN)
    for i in prange(n):
        for o in range(L):
            c = counts[i, o]
            if c == 0:
                continue
            j = live_idx[o]
            if _uniform(key, i * m + j) * steps < c:
                mean = values[i, o] / c
                v = np.int64(mean)
                if _uniform(key2, i * m + j) < mean - v:
                    v += 1
                out[i, j] = v


@njit(cache=True)
def event_counts(spk, counts):
    """counts[i] = number of events (nonzero values) of token i."""
    for i in range(spk.shape[0]):
        row = spk[i]
        c = 0
        for j in range(row.shape[0]):
            c += row[j] != 0
        counts[i] = c


@Kernel
def events_fill(spk, ptr, idx, val):
    """CSR of the events per token, given ptr from the counts: input index and value of each event.

    Branch-free: every input index is written at the next free slot, which
    only advances on an event; the scan stops at the token's last event.
    """
    for i in prange(spk.shape[0]):
        e, end = ptr[i], ptr[i + 1]
        row = spk[i]
        j = 0
        while e < end:
            v = row[j]
            idx[e] = j
            val[e] = v
            e += v != 0
            j += 1


EVENT_LANES = 16   # inputs a vector of `_compress_events` looks at


@intrinsic
def _compress_events(typingctx, row, j0, idx, val, e):
    """The events among row[j0:j0 + EVENT_LANES] (uint8, C-contiguous) written at idx[e:], val[e:] in input
    order, as llvm.masked.compressstore (AVX-512's vpcompressd: no branch per input, where a branch on an
    event at a 10 % rate mispredicts often); returns e + their number."""
    def codegen(context, builder, signature, args):
        row_a, idx_a, val_a = (context.make_array(signature.args[i])(context, builder, args[i]) for i in (0, 2, 3))
        j, at = args[1], args[4]
        n = EVENT_LANES
        i8, i32, f32 = ir.IntType(8), ir.IntType(32), ir.FloatType()
        bytes_t, ints_t, floats_t, mask_t = (ir.VectorType(x, n) for x in (i8, i32, f32, ir.IntType(1)))
        x = builder.load(builder.bitcast(builder.gep(row_a.data, [j]), bytes_t.as_pointer()), align=1)
        fired = builder.icmp_unsigned("!=", x, ir.Constant(bytes_t, [0] * n))
        first = builder.insert_element(ir.Constant(ints_t, ir.Undefined), builder.trunc(j, i32), ir.Constant(i32, 0))
        first = builder.shuffle_vector(first, ir.Constant(ints_t, ir.Undefined), ir.Constant(ints_t, [0] * n))
        inputs = builder.add(first, ir.Constant(ints_t, list(range(n))))
        values = builder.uitofp(builder.zext(x, ints_t), floats_t)
        for data, vector, kind in ((idx_a.data, inputs, ints_t), (val_a.data, values, floats_t)):
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [kind, kind.element.as_pointer(), mask_t]),
                f"llvm.masked.compressstore.v{n}{'i32' if kind is ints_t else 'f32'}")
            builder.call(fn, [vector, builder.gep(data, [at]), fired])
        bits = builder.bitcast(fired, ir.IntType(n))
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(n), [ir.IntType(n)]),
                                               f"llvm.ctpop.i{n}")
        return builder.add(at, builder.zext(builder.call(ctpop, [bits]), ir.IntType(64)))
    if any(getattr(a, "layout", "") != "C" for a in (row, idx, val)) or \
            (row.dtype, idx.dtype, val.dtype) != (uint8, int32, float32):
        return None   # the vectors' element types: uint8 spikes, int32 inputs, float32 values
    return int64(row, j0, idx, val, e), codegen


@Kernel
def events_fill_vectors(spk, ptr, idx, val):
    """events_fill, EVENT_LANES inputs at a time by `_compress_events`, the last few one by one; a row's scan
    stops at its last event. spk (n, m) uint8, C-contiguous."""
    m = spk.shape[1]
    whole = m - m % EVENT_LANES
    for i in prange(spk.shape[0]):
        e, end = ptr[i], ptr[i + 1]
        row = spk[i]
        j = 0
        while e < end and j < whole:
            e = _compress_events(row, j, idx, val, e)
            j += EVENT_LANES
        while e < end:
            v = row[j]
            idx[e] = j
            val[e] = v
            e += v != 0
            j += 1


def events_csr(spk, counts=None):
    """Per token, the inputs that carry an event and their values: (ptr, idx, val).

    `counts` (events per token) may come from `fire`, which saves a pass.
    """
    n = spk.shape[0]
    if counts is None:
        counts = np.empty(n, np.int64)
        event_counts(spk, counts)
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    idx, val = np.empty(ptr[n], np.int32), np.empty(ptr[n], np.float32)
    if spk.dtype == np.uint8 and spk.flags.c_contiguous:
        events_fill_vectors(spk.size, spk, ptr, idx, val)
    else:
        events_fill(spk.size, spk, ptr, idx, val)
    return ptr, idx, val


@Kernel
def events_per_input(spikes, out):
    """out[s, j] = the tokens whose input j carries an event at step s, spikes (steps, tokens, inputs): with a
    layer's nonzero fan-out per input, its effective ACs per step (out @ fan_out), from the dense spikes in
    one vectorized pass instead of a gather per event."""
    for s in prange(spikes.shape[0]):
        row = out[s]
        row[:] = 0
        for i in range(spikes.shape[1]):
            x = spikes[s, i]
            for j in range(x.shape[0]):
                row[j] += x[j] != 0


# -- event-driven accumulation --------------------------------------------------------------------
# A linear layer's weights are kept tile-major (weights.tiles): (tiles, in, TILE) with TILE live outputs per
# tile, zero-padded. A work item is one tile for a block of rows (tokens; a layer run layer-major has a row
# per (step, token)): the tile (TILE x in weights, contiguous) stays in the core's L2 cache while every row
# of the block adds the weight rows of its events into its own TILE outputs; items of one tile run one
# after another, so a tile is fetched from L3 about once per row block. Items run over threads (prange),
# each writing its own part of `cur`.
ROW_BLOCK = 256


def tiles_of(wt: np.ndarray, width: int) -> np.ndarray:
    """(in, L) weights -> (ceil(L / width), in, width) tile-major, zero-padded: what `accumulate` reads."""
    n_in, L = wt.shape
    width = max(1, min(width, L))
    count = -(-L // width)
    if count == 1:
        return np.ascontiguousarray(wt)[None]   # one tile: the matrix itself
    out = np.zeros((count, n_in, width), wt.dtype)
    for t in range(count):
        part = wt[:, t * width:(t + 1) * width]
        out[t, :, :part.shape[1]] = part
    return out


# Outputs per tile. On this project's 2-core Ice Lake VM (1.25 MiB L2 a core), one 768 x 3072 or 3072 x 768
# fp32 layer at rate 0.1 on 4096 rows: 256-wide tiles in row blocks of 256, 9-11 / 5-6.6 G ACs/s a core,
# against 5-6 / 3.7 for 1024-wide tiles in blocks of 32 tokens (the previous layout); 512 and 1024 were
# slower for 3072 inputs. int8 codes ran fastest in whole rows.
TILE_FP32, TILE_CODES = 256, 1024


@njit(cache=True, inline="always")
def _rows_per_item(n):
    """Rows of a work item: ROW_BLOCK, fewer for a short call (one step's tokens) so the threads get 8 items."""
    return max(32, min(ROW_BLOCK, n // 8))


@njit(cache=True, inline="always")
def _item(k, n, L, tile):
    """Work item k -> (first row, last row, tile, first output, outputs in the tile); tile-major order."""
    rows = _rows_per_item(n)
    blocks = (n + rows - 1) // rows
    t, b = k // blocks, k % blocks
    i0 = b * rows
    o0 = t * tile
    return i0, min(i0 + rows, n), t, o0, min(tile, L - o0)


@njit(cache=True)
def work_items(n, L, tile):
    rows = _rows_per_item(n)
    return ((n + rows - 1) // rows) * ((L + tile - 1) // tile)


# A tile larger than this is read in chunks of IN_CHUNK inputs (a row's events are sorted by input, so each
# row keeps a cursor into its events): the chunk stays in L2 while every row of the block adds its events
# from it, and the block's sums (ROW_BLOCK rows x the tile's width, 4 bytes each) are revisited once per chunk,
# so they must fit too. On the 2-core VM at rate 0.1 (benchmarks/results/spike_engine.md), 2 threads: a
# 3072 x 256 fp32 tile (3 MiB) ran 10-13 G ACs/s read whole, 15-21 in chunks of 512; int8 codes of a 3072 x 768
# layer 38-48 whole, 55-56 in chunks; a 768 x 3072 code matrix (sums 3 MiB a block) ran fastest whole.
L2_TILE_BYTES, IN_CHUNK = 1 << 20, 512


def input_chunk(tiles: np.ndarray) -> int:
    """Inputs per pass of `accumulate` / `accumulate_fire` over one tile: all of them when the tile fits
    L2_TILE_BYTES or a row block's sums would not."""
    n_in, width = tiles.shape[1], tiles.shape[2]
    if n_in * width * tiles.itemsize <= L2_TILE_BYTES or ROW_BLOCK * width * 4 > L2_TILE_BYTES:
        return max(1, n_in)
    return IN_CHUNK


@njit(cache=True, inline="always")
def _chunk_end(idx, e, end, k1, n_in):
    """The first of a row's events e .. end - 1 (sorted by input) whose input is k1 or above: where the
    row's events of the chunk that ends at k1 stop (`end` for the last chunk, without a scan)."""
    if k1 >= n_in:
        return end
    while e < end and idx[e] < k1:
        e += 1
    return e


@njit(cache=True, inline="always")
def _add_events(w, idx, val, e, stop, c, m):
    """c[:m] += val[e] * w[idx[e], :m] for the events e to `stop`. When every value is 1 (binary spikes),
    eight at a time by adds only: each output gets (((a + b) + (c + d)) + ((e + f) + (g + h))); then, and for
    other values, four at a time, ((v0 * a + v1 * b) + (v2 * c + v3 * d)), then one."""
    binary = True
    for j in range(e, stop):
        binary &= val[j] == 1
    if binary:
        while e + 8 <= stop:
            w0, w1, w2, w3 = w[idx[e], :m], w[idx[e + 1], :m], w[idx[e + 2], :m], w[idx[e + 3], :m]
            w4, w5, w6, w7 = w[idx[e + 4], :m], w[idx[e + 5], :m], w[idx[e + 6], :m], w[idx[e + 7], :m]
            for o in range(m):
                c[o] += ((w0[o] + w1[o]) + (w2[o] + w3[o])) + ((w4[o] + w5[o]) + (w6[o] + w7[o]))
            e += 8
    while e + 4 <= stop:
        w0, w1, w2, w3 = w[idx[e], :m], w[idx[e + 1], :m], w[idx[e + 2], :m], w[idx[e + 3], :m]
        v0, v1, v2, v3 = val[e], val[e + 1], val[e + 2], val[e + 3]
        for o in range(m):
            c[o] += (v0 * w0[o] + v1 * w1[o]) + (v2 * w2[o] + v3 * w3[o])
        e += 4
    while e < stop:
        w0, v0 = w[idx[e], :m], val[e]
        for o in range(m):
            c[o] += v0 * w0[o]
        e += 1


def _add_sums(w, idx, val, e, stop, sums, run16, m):
    """sums[:m] += the weight rows of events e .. stop - 1: `_add_events` on fp32 tiles, `_add_codes` on int8."""


@overload(_add_sums, inline="always")
def _add_sums_typed(w, idx, val, e, stop, sums, run16, m):
    if w.dtype == types_int8:
        return lambda w, idx, val, e, stop, sums, run16, m: _add_codes(w, idx, val, e, stop, sums, run16, m)
    return lambda w, idx, val, e, stop, sums, run16, m: _add_events(w, idx, val, e, stop, sums, m)


def _empty_sums(tiles, rows, width):
    """Scratch for the sums of `rows` rows of a tile: int32 for int8 codes (exact), float32 for fp32 weights."""


@overload(_empty_sums, inline="always")
def _empty_sums_typed(tiles, rows, width):
    if tiles.dtype == types_int8:
        return lambda tiles, rows, width: np.empty((rows, width), np.int32)
    return lambda tiles, rows, width: np.empty((rows, width), np.float32)


def _as_float32(sums, x):
    """sums as float32: themselves (fp32), or converted into x (exact int32 sums)."""


@overload(_as_float32, inline="always")
def _as_float32_typed(sums, x):
    if sums.dtype == float32:
        return lambda sums, x: sums

    def convert(sums, x):
        for o in range(sums.shape[0]):
            x[o] = np.float32(sums[o])
        return x[:sums.shape[0]]
    return convert


def _store_float32(dst, sums):
    """dst[:] = sums as float32: a copy (fp32 sums), or each exact int32 sum converted (codes)."""


@overload(_store_float32, inline="always")
def _store_float32_typed(dst, sums):
    if sums.dtype == float32:
        return lambda dst, sums: copy_into(dst, sums)

    def convert(dst, sums):
        for o in range(dst.shape[0]):
            dst[o] = np.float32(sums[o])
    return convert


@Kernel
def accumulate(ptr, idx, val, tiles, chunk, cur):
    """Event-driven synaptic input: cur[i] = sum over token i's events e of val[e] * W[idx[e]].

    Only rows of inputs that spiked are read; each event costs one add per live output (an AC each).
    tiles: (tiles, in, TILE) (weights.tiles), read `chunk` inputs at a time (`input_chunk`), of
    * fp32 weights: events are added eight at a time within a chunk (`_add_events`; binary spikes), which
      saves loads and stores of the sums (15-25 % more ACs/s than four at a time on one layer,
      benchmarks/results/spike_engine.md). Exact for integer weights; otherwise a rounding change against
      adding one event at a time;
    * int8 codes (lowbit.py): the sums are integers, exact (the scale is applied by `fire`): runs of events
      of value 1 add their codes without a multiply, in int16 partial sums widened into int32 (`_add_codes`);
      other events add value x code in int32. The float32 of an exact sum is what the fp32 kernel computes on
      the same codes whenever its own sum is exact (below 2^24): the same spikes.
    """
    n, L = cur.shape
    tile, n_in = tiles.shape[2], tiles.shape[1]
    for k in prange(work_items(n, L, tile)):
        i0, i1, t, o0, m = _item(k, n, L, tile)
        w = tiles[t]
        cursor = ptr[i0:i1].copy()                  # each row's next event
        run16 = np.empty(m, np.int16)
        # the rows' sums in scratch of their own (one row in one pass, all the item's rows over several
        # chunks), stored into cur after the last chunk: fresh memory the compiler knows nothing else
        # points to runs the adds on vectors without overlap checks (20 % faster than summing in cur)
        sums = _empty_sums(tiles, 1 if chunk >= n_in else i1 - i0, m)
        for k1 in range(chunk, n_in + chunk, chunk):
            for i in range(i0, i1):
                acc = sums[0 if chunk >= n_in else i - i0]
                if k1 == chunk:
                    acc[:] = 0
                e = cursor[i - i0]
                stop = _chunk_end(idx, e, ptr[i + 1], k1, n_in)
                _add_sums(w, idx, val, e, stop, acc, run16, m)
                cursor[i - i0] = stop
                if k1 >= n_in:
                    _store_float32(cur[i, o0:o0 + m], acc)


# Codes of binary events (value 1) are summed in int16 first, then widened into the int32 sum: codes up to
# +-127 for at most 258 events (32767 // 127), 32 adds per 512-bit instruction instead of 16.
CODE_RUN = 258


@njit(cache=True, inline="always")
def _add_binary_run(w, idx, val, e, stop, run, m):
    """run[:m] = sum of the code rows of the events from e on while their value is 1, up to `stop`;
    returns the next event. The int16 sums are exact while the run is at most CODE_RUN events."""
    run[:m] = 0
    while e + 8 <= stop and ((val[e] == 1) & (val[e + 1] == 1) & (val[e + 2] == 1) & (val[e + 3] == 1)) & \
            ((val[e + 4] == 1) & (val[e + 5] == 1) & (val[e + 6] == 1) & (val[e + 7] == 1)):
        w0, w1, w2, w3 = w[idx[e], :m], w[idx[e + 1], :m], w[idx[e + 2], :m], w[idx[e + 3], :m]
        w4, w5, w6, w7 = w[idx[e + 4], :m], w[idx[e + 5], :m], w[idx[e + 6], :m], w[idx[e + 7], :m]
        for o in range(m):
            run[o] = run[o] + ((w0[o] + w1[o]) + (w2[o] + w3[o])) + ((w4[o] + w5[o]) + (w6[o] + w7[o]))
        e += 8
    while e < stop and val[e] == 1:
        w0 = w[idx[e], :m]
        for o in range(m):
            run[o] = run[o] + w0[o]
        e += 1
    return e


CODE_LANES, CODE_VECTORS = 32, 2   # a `_code_run` vector: 32 int8 codes, summed in int16; vectors per block


@intrinsic
def _code_run(typingctx, w, idx, e0, e1, acc, width):
    """acc[o] += sum over events e0 .. e1 - 1 of w[idx[e], o] for o < width (a multiple of CODE_LANES): the
    code rows of value-1 events, e1 - e0 <= CODE_RUN. Explicit 512-bit vectors (LLVM's loop vectorizer keeps
    to 256-bit registers on this CPU): for each CODE_LANES outputs the run's codes widen to int16 and add up in
    a register over all its events, then into acc's int32 once."""
    def codegen(context, builder, signature, args):
        w_a, idx_a, acc_a = (context.make_array(signature.args[i])(context, builder, args[i]) for i in (0, 1, 4))
        first, last, outputs = args[2], args[3], args[5]
        i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
        codes_t, run_t, sums_t = (ir.VectorType(x, CODE_LANES) for x in (i8, i16, i32))
        row_len = cgutils.unpack_tuple(builder, w_a.shape, 2)[1]
        block = ir.Constant(i64, CODE_LANES * CODE_VECTORS)
        with cgutils.for_range(builder, builder.udiv(outputs, block)) as blocks:
            o0 = builder.mul(blocks.index, block)
            runs = [cgutils.alloca_once_value(builder, ir.Constant(run_t, [0] * CODE_LANES))
                    for _ in range(CODE_VECTORS)]
            with cgutils.for_range(builder, builder.sub(last, first)) as event:
                j = builder.sext(builder.load(builder.gep(idx_a.data, [builder.add(first, event.index)])), i64)
                row = builder.gep(w_a.data, [builder.add(builder.mul(j, row_len), o0)])
                for k, run in enumerate(runs):
                    at = builder.bitcast(builder.gep(row, [ir.Constant(i64, k * CODE_LANES)]), codes_t.as_pointer())
                    builder.store(builder.add(builder.load(run), builder.sext(builder.load(at, align=1), run_t)), run)
            for k, run in enumerate(runs):
                at = builder.bitcast(builder.gep(acc_a.data, [builder.add(o0, ir.Constant(i64, k * CODE_LANES))]),
                                     sums_t.as_pointer())
                builder.store(builder.add(builder.load(at, align=4), builder.sext(builder.load(run), sums_t)), at,
                              align=4)
        return context.get_dummy_value()
    if any(getattr(a, "layout", "") != "C" for a in (w, idx, acc)) or w.dtype != types_int8 or acc.dtype != int32:
        return None
    return void(w, idx, e0, e1, acc, width), codegen


@njit(cache=True, inline="always")
def _add_codes(w, idx, val, e, stop, acc, run16, m):
    """acc[:m] += val[e] * code[idx[e], :m] for the events e to `stop`, exactly: runs of value-1 events
    summed narrow first (`_code_run` on whole vectors of outputs, `_add_binary_run` on the rest), other
    events as value x code in int32."""
    whole = m - m % (CODE_LANES * CODE_VECTORS)
    while e < stop:
        if val[e] == 1:
            end = e
            while end < min(stop, e + CODE_RUN) and val[end] == 1:
                end += 1
            if whole > 0:
                _code_run(w, idx, e, end, acc, whole)
            if whole < m:
                tail = w[:, whole:m]
                while e < end:
                    e2 = _add_binary_run(tail, idx, val, e, end, run16, m - whole)
                    for o in range(m - whole):
                        acc[whole + o] += run16[o]
                    e = e2
            e = end
        else:
            w0, v0 = w[idx[e], :m], np.int32(val[e])
            for o in range(m):
                acc[o] += v0 * np.int32(w0[o])
            e += 1


@Kernel
def accumulate_packed(ptr, idx, val, packed, table, cur):
    """accumulate() on +-1 weights packed 8 outputs to a byte (lowbit.PACK_SIGNS): packed (in, ceil(L / 8))
    uint8, bit k of byte j = output 8j + k (1: +1), each byte decoded through table (256, 8)
    (lowbit.SIGN_TABLE): 1/32 of fp32's bytes, the same sums as +-1 codes, bit for bit; slower than the
    codes (each byte decoded through the table), so off by default."""
    n, L = cur.shape
    for i in prange(n):
        c = cur[i]
        c[:] = 0.0
        for e in range(ptr[i], ptr[i + 1]):
            r, v = packed[idx[e]], val[e]
            for base in range(0, L, 8):
                bits = table[r[base >> 3]]
                for k in range(min(8, L - base)):
                    c[base + k] += v * bits[k]


# Neuron conventions (ir.Neuron), as bits of `fire`'s `flags`:
HARD_RESET = 1      # u <- v_reset on a spike (else subtract s * vth)
RESET_FIRST = 2     # the spike's reset lands before the next step's leak (else after it, with the input)
STRICT = 4          # fire on u > vth (else u >= vth)
SYNAPTIC = 8        # a synaptic current i <- decay * i + I feeds the membrane (CubaLIF)


@njit(cache=True, inline="always")
def _fire_row(x, u, spk, totals, leak, vth, v_reset, hard, first, strict):
    """One token's live outputs: u = leak*u + I then the reset of s_prev, or (first) the reset before the leak,
    u = leak*(u - s*vth, or v_reset) + I. Both orders are written as selects on loop-invariant flags, so
    the loop runs on vectors. Returns the spikes."""
    fired = 0
    for o in range(u.shape[0]):
        s = spk[o]
        fs, th = np.float32(s), vth[o]
        v = u[o]
        if first and s != 0:
            v = v_reset if hard else v - fs * th
        v = leak[o] * v + x[o]
        if not first and s != 0:
            v = v_reset if hard else v - fs * th
        u[o] = v
        b = np.int32(1) if ((v > th) if strict else (v >= th)) else np.int32(0)
        spk[o] = b
        totals[o] += b
        fired += b
    return fired


@njit(cache=True, inline="always")
def _fire_token(c, x, scale, bias, u, spk, sy, leak, vth, decay, v_reset, flags, levels, totals, values):
    """`fire` for one token's live outputs: c its input (cur row), x a scratch row; returns its events."""
    hard, first = (flags & HARD_RESET) != 0, (flags & RESET_FIRST) != 0
    strict, synaptic = (flags & STRICT) != 0, (flags & SYNAPTIC) != 0
    L = u.shape[0]
    for o in range(L):            # I, computed first: the neuron's loop then reads 6 arrays, few enough
        x[o] = c[o] * scale[o] + bias[o]   # for the compiler's aliasing checks, so it runs on vectors
    if synaptic:
        for o in range(L):
            sy[o] = decay[o] * sy[o] + x[o]
            x[o] = sy[o]
    fired = _fire_row(x, u, spk, totals, leak, vth, v_reset, hard, first, strict)
    if levels > 1 and fired:
        for o in range(L):
            if spk[o]:
                q = u[o] / vth[o]
                k = np.int64(np.ceil(q)) - 1 if strict else np.int64(np.floor(q))
                k = min(k, levels)
                spk[o] = k
                values[o] += k
    return fired


@Kernel
def fire(cur, scale, bias, u, spk, syn, leak, vth, decay, v_reset, flags, levels, totals, values, counts):
    """ir.Neuron's step for every (token, live output): reset, leak, integrate, fire.

    I = cur * scale + bias (with SYNAPTIC: i = decay * i + I, then I = i); leak_first:
    u = (leak*u + I) - s_prev*vth, or v_reset; RESET_FIRST: u = leak*(u - s_prev*vth, or v_reset) + I.
    The float32 operations are in the order snnTorch and SpikingJelly use, so integer-valued
    and dyadic inputs give their membranes bit for bit. `leak`, `vth`, `decay` hold one value per
    live output. spk holds s_prev on entry and the new spikes on return. A GIF neuron (levels > 1)
    emits how many multiples of vth u reaches (>=) or exceeds (>), at most `levels`; its spike
    values are summed in `values`. Events per token go to `counts`; returns their total.
    """
    n, L = u.shape
    synaptic = (flags & SYNAPTIC) != 0
    events = 0
    for i in prange(n):
        x = np.empty(L, np.float32)
        sy = syn[i] if synaptic else x
        fired = _fire_token(cur[i], x, scale, bias, u[i], spk[i], sy, leak, vth, decay, v_reset, flags, levels,
                            totals[i], values[i])
        counts[i] = fired
        events += fired
    return events


# fire_steps runs a token's outputs in chunks of this many, each chunk through all K steps: its membranes,
# spikes and totals stay in L1 (1.25-1.5 ns per update a core instead of 2.2-2.9 for whole 3072-wide rows,
# on the 2-core VM of benchmarks/results/spike_engine.md; 256-1024 alike).
FIRE_CHUNK = 512


@njit(cache=True, inline="always")
def _fire_plain(c, scale, bias, u, spk, totals, leak, vth):
    """_fire_token for the default neuron (flags 0, binary: subtract s_prev * vth after the leak, fire on
    u >= vth, no synaptic current): the same float32 operations in one loop, about half the time. The
    spikes are counted in a loop of their own: a count inside the neuron's loop keeps it from running on
    vectors (15-20 % of the kernel's time on the 2-core VM)."""
    for o in range(u.shape[0]):
        x = c[o] * scale[o] + bias[o]
        s, th = spk[o], vth[o]
        v = leak[o] * u[o] + x
        v = v - np.float32(s) * th if s != 0 else v
        u[o] = v
        b = np.uint8(1) if v >= th else np.uint8(0)
        spk[o] = b
        totals[o] += b
    fired = np.int32(0)
    for o in range(spk.shape[0]):
        fired += np.int32(spk[o])
    return fired


@Kernel
def affine(cur, scale, bias, out):
    """out[r, o] = cur[r, o] * scale[o] + bias[o], float32 (a real-valued layer's output, as numpy's multiply
    then add, in one pass on every thread)."""
    for r in prange(cur.shape[0]):
        c, y = cur[r], out[r]
        for o in range(c.shape[0]):
            y[o] = c[o] * scale[o] + bias[o]


def fire_steps(work, cur, scale, bias, u, spk, syn, leak, vth, decay, v_reset, flags, levels, totals, values, out,
               counts):
    """`fire` for K steps in a row (a layer run layer-major): cur (K, n, L) the steps' inputs; each step's
    spikes go to out[t] (K, n, L) and its events per token to counts[t]. Each token runs on one thread, in
    chunks of FIRE_CHUNK outputs, each chunk through the K steps; the same float32 operations, output by
    output, as K calls of `fire`. The default neuron (flags 0, binary) runs a kernel of its own."""
    if flags == 0 and levels == 1:
        cur = np.ascontiguousarray(cur)       # (no copy: the engine's currents are) for the prefetches
        return fire_steps_plain(work, cur, scale, bias, u, spk, leak, vth, totals, out, counts)
    return fire_steps_any(work, cur, scale, bias, u, spk, syn, leak, vth, decay, v_reset, flags, levels, totals,
                          values, out, counts)


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the cache for the line holding array.ravel()[index] (C-contiguous), to be read soon."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), byte), ir.Constant(i32, 0),   # a read,
                          ir.Constant(i32, 3), ir.Constant(i32, 1)])                                   # kept, data
        return context.get_dummy_value()
    if getattr(array, "layout", "") != "C":
        return None
    return void(array, int64), codegen


LINE_FLOATS = 16   # float32 values in a 64-byte cache line


@Kernel
def fire_steps_plain(cur, scale, bias, u, spk, leak, vth, totals, out, counts):
    """fire_steps for the default neuron, by `_fire_plain`, on a copy of each chunk's state in scratch (fresh
    memory: the neuron's loop then runs on vectors without overlap checks). Each step prefetches the
    chunk's inputs of the next step, which lie n x L values further (20-35 % faster on the 2-core VM, where
    the hardware's prefetchers do not follow a stride that long)."""
    K, n, L = cur.shape
    for i in prange(n):
        for t in range(K):
            counts[t, i] = 0
        ui, si, ti = np.empty(FIRE_CHUNK, np.float32), np.empty(FIRE_CHUNK, np.uint8), np.empty(FIRE_CHUNK, np.int32)
        for c0 in range(0, L, FIRE_CHUNK):
            c1 = min(L, c0 + FIRE_CHUNK)
            m = c1 - c0
            copy_into(ui, u[i, c0:c1])
            copy_into(si, spk[i, c0:c1])
            copy_into(ti, totals[i, c0:c1])
            sc, bi, le, vt = scale[c0:c1], bias[c0:c1], leak[c0:c1], vth[c0:c1]
            for t in range(K):
                if t + 1 < K:
                    for x in range(((t + 1) * n + i) * L + c0, ((t + 1) * n + i) * L + c1, LINE_FLOATS):
                        _prefetch(cur, x)
                counts[t, i] += _fire_plain(cur[t, i, c0:c1], sc, bi, ui[:m], si[:m], ti[:m], le, vt)
                copy_into(out[t, i, c0:c1], si[:m])
            copy_into(u[i, c0:c1], ui[:m])
            copy_into(spk[i, c0:c1], si[:m])
            copy_into(totals[i, c0:c1], ti[:m])


# Tokens of a work item of `accumulate_fire`: their sums over a block's steps
# (steps x tokens x a tile's outputs) stay in L2 beside the tile's chunk of weights.
FIRE_TOKENS = 4


@njit(cache=True, inline="always")
def _token_rows(ptr, n, i0, i1, K, cursor):
    """cursor[t * (i1 - i0) + i - i0] = the first event of step t's token i (row t * n + i), for every step."""
    for t in range(K):
        for i in range(i0, i1):
            cursor[t * (i1 - i0) + i - i0] = ptr[t * n + i]


@njit(cache=True, inline="always")
def _fire_sums(t, i, o0, m, x, scale, bias, leak, vth, u, spk, totals, out, counts):
    """The default neuron (`_fire_plain`) of step t's token i on outputs o0 .. o0 + m - 1, x their sums."""
    si = spk[i, o0:o0 + m]
    counts[t, i] += _fire_plain(x, scale[o0:o0 + m], bias[o0:o0 + m], u[i, o0:o0 + m], si, totals[i, o0:o0 + m],
                                leak[o0:o0 + m], vth[o0:o0 + m])
    copy_into(out[t, i, o0:o0 + m], si)


@Kernel
def accumulate_fire(ptr, idx, val, tiles, chunk, scale, bias, leak, vth, u, spk, totals, out, counts):
    """`accumulate` (fp32 tiles or int8 codes) and then `fire_steps_plain` in one pass: each
    (step, token)'s sums (`_add_events` / `_add_codes`, the same order; exact int32 sums as float32) go
    straight into the default neuron, so the currents never go to memory. Rows of the CSR: step t's token i
    at t * n + i; out (K, n, L), counts (K, n); u, spk, totals (n, L). A work item is FIRE_TOKENS tokens
    through every tile, every chunk of inputs and the K steps in order (each token's counts are its item's)."""
    K, n, L = out.shape
    tile, n_in = tiles.shape[2], tiles.shape[1]
    whole = chunk >= n_in
    for b in prange((n + FIRE_TOKENS - 1) // FIRE_TOKENS):
        i0, i1 = b * FIRE_TOKENS, min(n, (b + 1) * FIRE_TOKENS)
        counts[:, i0:i1] = 0
        cursor = np.empty(K * (i1 - i0), np.int64)
        run16, x = np.empty(tile, np.int16), np.empty(tile, np.float32)
        sums = _empty_sums(tiles, 1 if whole else K * (i1 - i0), tile)
        for tt in range(tiles.shape[0]):
            w, o0 = tiles[tt], tt * tile
            m = min(tile, L - o0)
            _token_rows(ptr, n, i0, i1, K, cursor)
            for k1 in range(chunk, n_in + chunk, chunk):
                for t in range(K):
                    for i in range(i0, i1):
                        slot = t * (i1 - i0) + i - i0
                        acc = sums[0 if whole else slot]
                        if k1 == chunk:
                            acc[:m] = 0
                        e = cursor[slot]
                        stop = _chunk_end(idx, e, ptr[t * n + i + 1], k1, n_in)
                        _add_sums(w, idx, val, e, stop, acc, run16, m)
                        cursor[slot] = stop
                        if k1 >= n_in:
                            _fire_sums(t, i, o0, m, _as_float32(acc[:m], x), scale, bias, leak, vth, u, spk, totals,
                                       out, counts)


@Kernel
def fire_steps_any(cur, scale, bias, u, spk, syn, leak, vth, decay, v_reset, flags, levels, totals, values, out,
                   counts):
    """fire_steps for any neuron convention, by `_fire_token`."""
    K, n, L = cur.shape
    synaptic = (flags & SYNAPTIC) != 0
    for i in prange(n):
        x = np.empty(min(L, FIRE_CHUNK), np.float32)
        for t in range(K):
            counts[t, i] = 0
        for c0 in range(0, L, FIRE_CHUNK):
            c1 = min(L, c0 + FIRE_CHUNK)
            ui, si, ti, vi = u[i, c0:c1], spk[i, c0:c1], totals[i, c0:c1], values[i, c0:c1]
            sy = syn[i, c0:c1] if synaptic else x[:c1 - c0]
            sc, bi, le, vt = scale[c0:c1], bias[c0:c1], leak[c0:c1], vth[c0:c1]
            dc = decay[c0:c1] if synaptic else decay
            for t in range(K):
                counts[t, i] += _fire_token(cur[t, i, c0:c1], x[:c1 - c0], sc, bi, ui, si, sy, le, vt, dc, v_reset,
                                            flags, levels, ti, vi)
                copy_into(out[t, i, c0:c1], si)


@njit(cache=True, inline="always")
def _row_events(row, feats):
    """The positions of row's nonzero values, in order, into feats; returns how many. Branch-free (the next
    slot advances only on an event): at a 10 % rate a branch per value mispredicts often."""
    count = 0
    for f in range(row.shape[0]):
        feats[count] = f
        count += row[f] != 0
    return count


@intrinsic
def _float_of_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are this int32 (a reinterpretation, no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return float32(int32), codegen


# exp on float32 as Cephes' expf: x = n ln2 + r (ln2 in two parts, so r is exact), e^r by a degree-6
# polynomial on |r| <= ln2 / 2, times 2^n built from its exponent bits: within 1 ulp of the exact value (2M
# points in [-126, 0], tests/test_spikes_attention.py); plain arithmetic, so the softmax loop runs on vectors
# (a call of libm's expf per score would not).
_LOG2E, _LN2_HI, _LN2_LO = np.float32(1.44269504088896341), np.float32(0.693359375), np.float32(-2.12194440e-4)
_P0, _P1, _P2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
_P3, _P4, _P5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)
_EXP_MIN = np.float32(-87.33654)   # below it e^x is under float32's smallest normal: 0


@njit(cache=True, inline="always")
def exp_nonpositive(x):
    """e^x for float32 x <= 0 (a shifted softmax score), 0 below _EXP_MIN; exp(0) is exactly 1."""
    y = max(x, _EXP_MIN)
    n = np.floor(y * _LOG2E + np.float32(0.5))
    r = y - n * _LN2_HI - n * _LN2_LO
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    e = (p * (r * r) + r + np.float32(1.0)) * _float_of_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    return e if x >= _EXP_MIN else np.float32(0.0)


@njit(cache=True, inline="always")
def _softmax_weights(sh, tot):
    """sh[j, i] = exp(sh[j, i] - max_j sh[j, i]) in place, tot[i] = the sum over j."""
    n = sh.shape[1]
    mx = np.full(n, -np.inf, np.float32)
    for j in range(sh.shape[0]):
        for i in range(n):
            x = sh[j, i]
            mx[i] = x if x > mx[i] else mx[i]   # max() as a select, so the loop runs on vectors
    tot[:] = 0.0
    for j in range(sh.shape[0]):
        row = sh[j]
        for i in range(n):
            e = exp_nonpositive(row[i] - mx[i])
            row[i] = e
            tot[i] += e


@Kernel
def attention(q, kspk, vspk, heads, head_dim, inv_sqrt, cur, events):
    """Spiking attention of K steps, one (step, live head) per work item: softmax(Q K^T / sqrt(head_dim)) V.

    q (K, n, features) is the real Query, float32; kspk, vspk (K, n, features) the spikes of K and V; h counts
    the live heads (`heads`: their indices). Each item keeps its head's scores (n x n, 64 KiB at n = 128) in
    memory of its own from the dot products to the weighted sum, so they never leave the core's cache:
    * scores by K's events: s[j, i] = sum over key j's features f that fired of k_jf Q_if / sqrt(head_dim)
      (exact and cheaper than the dense product with binary K; the cost model still counts dense MACs),
      Q copied transposed (head_dim x n) so a feature's query values are contiguous;
    * softmax weights A[i, j] = exp(s_ij - max_j s_ij) / sum_j (`exp_nonpositive`), the division once per
      output;
    * by V's events: each (token j, feature f, value v) adds v * A[:, j] into feature f of every query, n ACs.
    Writes cur[t, :, h*head_dim + f] and the number of V events of each step's live heads to events[t, h].
    """
    H = heads.shape[0]
    n = q.shape[1]
    for item in prange(q.shape[0] * H):
        t, h = item // H, item % H
        col0 = heads[h] * head_dim
        k_t, v_t, c_t = kspk[t], vspk[t], cur[t]
        q_t = np.empty((head_dim, n), np.float32)
        for i in range(n):
            for f in range(head_dim):
                q_t[f, i] = q[t, i, col0 + f]
        feats = np.empty(head_dim, np.int64)
        sh = np.empty((n, n), np.float32)       # sh[j, i]: key j, query i
        for j in range(n):
            row = sh[j]
            for i in range(n):
                row[i] = 0.0
            for e in range(_row_events(k_t[j, col0:col0 + head_dim], feats)):
                f = feats[e]
                qf, kf = q_t[f], np.float32(k_t[j, col0 + f]) * inv_sqrt
                for i in range(n):
                    row[i] += kf * qf[i]
        tot = np.empty(n, np.float32)
        _softmax_weights(sh, tot)
        inv = np.float32(1.0) / tot
        out = np.zeros((head_dim, n), np.float32)
        count = 0
        for j in range(n):
            a = sh[j]
            found = _row_events(v_t[j, col0:col0 + head_dim], feats)
            count += found
            for e in range(found):
                f = feats[e]
                acc, vf = out[f], np.float32(v_t[j, col0 + f])
                for i in range(n):
                    acc[i] += vf * a[i]
        for i in range(n):                # row by row: contiguous writes into cur
            c = c_t[i, h * head_dim:(h + 1) * head_dim]
            for f in range(head_dim):
                c[f] = out[f, i] * inv[i]
        events[t, h] = count


@njit(cache=True, inline="always")
def _window_targets(j, hw, width, k, stride, pad, out_h, out_w, pos, tap):
    """The window walk of one input event: input index j (c * hw + y * width + x, channel-major) lands
    on output position pos[t] under tap tap[t] (ky * k + kx) for t < the count returned, only where
    the tap falls inside the input (padding adds nothing). Output row oy takes input row
    oy * stride - pad + ky. Returns (channel, count)."""
    c = j // hw
    r = j - c * hw
    y = r // width
    x = r - y * width
    count = 0
    for ky in range(k):
        ty = y + pad - ky
        if ty < 0 or ty % stride != 0 or ty // stride >= out_h:
            continue
        row0 = (ty // stride) * out_w
        for kx in range(k):
            tx = x + pad - kx
            if tx < 0 or tx % stride != 0 or tx // stride >= out_w:
                continue
            pos[count] = row0 + tx // stride
            tap[count] = ky * k + kx
            count += 1
    return c, count


@Kernel
def conv_accumulate(ptr, idx, val, wk, height, width, out_w, k, stride, pad, cp):
    """Event-driven 2-D convolution: each input event (channel c, row y, column x, value v) adds
    v * wk[c, tap] to the live output channels at every output position whose window holds it.

    wk is (in_channels, k * k, live out channels); cp (n, out_h * out_w, live out channels) is zeroed
    here and filled position-major, so one tap adds one contiguous row.
    """
    n = ptr.shape[0] - 1
    lc = wk.shape[2]
    out_h = cp.shape[1] // out_w
    for i in prange(n):
        c_ = cp[i]
        c_[:] = 0.0
        pos, tap = np.empty(k * k, np.int64), np.empty(k * k, np.int64)
        for e in range(ptr[i], ptr[i + 1]):
            v = val[e]
            c, count = _window_targets(idx[e], height * width, width, k, stride, pad, out_h, out_w, pos, tap)
            for t in range(count):
                w, dst = wk[c, tap[t]], c_[pos[t]]
                for o in range(lc):
                    dst[o] += v * w[o]


@Kernel
def pool_accumulate(ptr, idx, val, channel_slot, height, width, out_w, kernel, stride, pad, scale, cp):
    """Event-driven sum (scale 1) or average (scale 1/k^2) pooling: each input event adds v * scale to
    its own channel at every output position whose window holds it; channels whose slot is -1 are not
    computed. cp (n, out_h * out_w, live channels) is zeroed here. Returns the adds made (ACs)."""
    n = ptr.shape[0] - 1
    out_h = cp.shape[1] // out_w
    adds = 0
    for i in prange(n):
        c_ = cp[i]
        c_[:] = 0.0
        pos, tap = np.empty(kernel * kernel, np.int64), np.empty(kernel * kernel, np.int64)
        for e in range(ptr[i], ptr[i + 1]):
            v = val[e] * scale
            c, count = _window_targets(idx[e], height * width, width, kernel, stride, pad, out_h, out_w, pos, tap)
            slot = channel_slot[c]
            if slot < 0:
                continue
            for t in range(count):
                c_[pos[t], slot] += v
            adds += count
    return adds
