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

import numba
import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import trailing_zeros

# A call runs threaded when it does at least this many element operations
# (ACs, neuron updates, softmax scores) and numba has more than one thread;
# below it, waking the thread pool costs more than it saves.
PARALLEL_WORK = 100_000


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
        fast = work >= PARALLEL_WORK and numba.get_num_threads() > 1
        return (self.threaded if fast else self.serial)(*args)

def cache_is_cold() -> bool:
    """No compiled `fire` in Numba's on-disk cache yet: the kernels will be compiled on this run (~30-60 s)."""
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
            print("neurosim: compiling the spike engine's kernels, once (about a minute on 2 cores; cached for "
                  "later runs)", file=sys.stderr, flush=True)


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


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH = np.uint64(0x8080808080808080)


@Kernel
def events_fill_words(words, ptr, idx, val):
    """events_fill on a row read as 64-bit words (8 inputs each, little-endian): only the nonzero bytes
    of a word are visited (their high-bit mask, lowest first), words without an event are skipped."""
    for i in prange(words.shape[0]):
        e, end = ptr[i], ptr[i + 1]
        row = words[i]
        w = 0
        while e < end:
            x = row[w]
            if x != 0:
                nz = ((x & _LOW7) + _LOW7 | x) & _HIGH  # bit 8b+7 set where byte b is nonzero
                j0 = w * 8
                while nz != 0:
                    b = trailing_zeros(nz) >> 3
                    idx[e] = j0 + b
                    val[e] = np.float32((x >> np.uint64(8 * b)) & np.uint64(0xFF))
                    e += 1
                    nz &= nz - np.uint64(1)
            w += 1


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
    if spk.shape[1] % 8 == 0 and spk.flags.c_contiguous and sys.byteorder == "little":
        events_fill_words(spk.size, spk.view(np.uint64), ptr, idx, val)
    else:
        events_fill(spk.size, spk, ptr, idx, val)
    return ptr, idx, val


@njit(cache=True, inline="always")
def _add_rows(c, w0, w1, w2, w3, v0, v1, v2, v3):
    for o in range(c.shape[0]):
        c[o] += (v0 * np.float32(w0[o]) + v1 * np.float32(w1[o])) + (v2 * np.float32(w2[o]) + v3 * np.float32(w3[o]))


@njit(cache=True, inline="always")
def _add_sign_rows(c, r0, r1, r2, r3, v0, v1, v2, v3, table):
    """_add_rows on +-1 rows packed 8 outputs to a byte, each byte decoded through `table`."""
    L = c.shape[0]
    for base in range(0, L, 8):
        j = base >> 3
        t0, t1, t2, t3 = table[r0[j]], table[r1[j]], table[r2[j]], table[r3[j]]
        for k in range(min(8, L - base)):
            c[base + k] += (v0 * t0[k] + v1 * t1[k]) + (v2 * t2[k] + v3 * t3[k])


@njit(cache=True, inline="always")
def _add_row(c, w, v):
    for o in range(c.shape[0]):
        c[o] += v * np.float32(w[o])


@njit(cache=True, inline="always")
def _add_sign_row(c, r, v, table):
    L = c.shape[0]
    for base in range(0, L, 8):
        t = table[r[base >> 3]]
        for k in range(min(8, L - base)):
            c[base + k] += v * t[k]


@Kernel
def accumulate(ptr, idx, val, wt, packed, table, cur):
    """Event-driven synaptic input: cur[i] = sum over token i's events e of val[e] * wt[idx[e]].

    Only rows of inputs that spiked are read; each event costs one add per
    live output (an AC each). Events are added four at a time, which saves
    loads and stores of `cur` (the adds of one output are then grouped,
    (a + b) + (c + d): exact for integer weights, a rounding change otherwise).
    wt is (in, L) fp32 or int8 codes. With a non-empty `packed` (in, ceil(L / 8)) uint8 the weights
    are +-1 signs instead, bit k of byte j = output 8j + k (1: +1), decoded through table (256, 8)
    (lowbit.SIGN_TABLE): 1/32 of fp32's bytes, the same sums as +-1 codes in wt, bit for bit.
    """
    n = ptr.shape[0] - 1
    signs = packed.shape[0] > 0
    for i in prange(n):
        c = cur[i]
        c[:] = 0.0
        e, end = ptr[i], ptr[i + 1]
        while e + 4 <= end:
            i0, i1, i2, i3 = idx[e], idx[e + 1], idx[e + 2], idx[e + 3]
            v0, v1, v2, v3 = val[e], val[e + 1], val[e + 2], val[e + 3]
            if signs:
                _add_sign_rows(c, packed[i0], packed[i1], packed[i2], packed[i3], v0, v1, v2, v3, table)
            else:
                _add_rows(c, wt[i0], wt[i1], wt[i2], wt[i3], v0, v1, v2, v3)
            e += 4
        while e < end:
            if signs:
                _add_sign_row(c, packed[idx[e]], val[e], table)
            else:
                _add_row(c, wt[idx[e]], val[e])
            e += 1


NO_PACKED = np.zeros((0, 1), np.uint8)   # `accumulate` without packed signs


# Neuron conventions (ir.Neuron), as bits of `fire`'s `flags`:
HARD_RESET = 1      # u <- v_reset on a spike (else subtract s * vth)
RESET_FIRST = 2     # the spike's reset lands before the next step's leak (else after it, with the input)
STRICT = 4          # fire on u > vth (else u >= vth)
SYNAPTIC = 8        # a synaptic current i <- decay * i + I feeds the membrane (CubaLIF)


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
    hard, first = (flags & HARD_RESET) != 0, (flags & RESET_FIRST) != 0
    strict, synaptic = (flags & STRICT) != 0, (flags & SYNAPTIC) != 0
    events = 0
    for i in prange(n):
        fired = 0
        for o in range(L):
            x = cur[i, o] * scale[o] + bias[o]
            if synaptic:
                x = decay[o] * syn[i, o] + x
                syn[i, o] = x
            s = spk[i, o]
            v = u[i, o]
            if first:
                if s != 0:
                    v = v_reset if hard else v - np.float32(s) * vth[o]
                v = leak[o] * v + x
            else:
                v = leak[o] * v + x
                if s != 0:
                    v = v_reset if hard else v - np.float32(s) * vth[o]
            u[i, o] = v
            up = v > vth[o] if strict else v >= vth[o]
            s = np.uint8(1) if up else np.uint8(0)
            spk[i, o] = s
            totals[i, o] += s
            fired += s
        if levels > 1 and fired:
            for o in range(L):
                if spk[i, o]:
                    q = u[i, o] / vth[o]
                    k = np.int64(np.ceil(q)) - 1 if strict else np.int64(np.floor(q))
                    k = min(k, levels)
                    spk[i, o] = k
                    values[i, o] += k
        counts[i] = fired
        events += fired
    return events


@Kernel
def attention_scores(qt, kspk, heads, head_dim, inv_sqrt, st):
    """Scores of one step, shifted for the softmax: st[h, j, i] = s_ij - max_j s_ij, s_ij = Q_i.K_j / sqrt(head_dim).

    qt (features, n) is the real Query, transposed; h counts the live heads.
    The dot products run over K's events (with binary K that is exact and
    cheaper than the dense product; the cost model still counts the scores as
    dense MACs). The caller exponentiates st (numpy's vectorized exp).
    """
    n = qt.shape[1]
    for h in prange(heads.shape[0]):
        col0 = heads[h] * head_dim
        sh = st[h]
        for j in range(n):
            row = sh[j]
            for i in range(n):
                row[i] = 0.0
            for f in range(head_dim):
                k = kspk[j, col0 + f]
                if k != 0:
                    q, kf = qt[col0 + f], np.float32(k) * inv_sqrt
                    for i in range(n):
                        row[i] += kf * q[i]
        mx = np.full(n, -np.inf, np.float32)
        for j in range(n):
            for i in range(n):
                mx[i] = max(mx[i], sh[j, i])
        for j in range(n):
            for i in range(n):
                sh[j, i] -= mx[i]


@Kernel
def attention_sum(st, vspk, heads, head_dim, cur):
    """Softmax normalization and the weighted sum A.V by V's events, one step.

    st[h, j, i] = exp(shifted score) of query i and key j; A[i, j] = st[h, j, i]
    / sum_j st[h, j, i], the division done once per output. Each V event (token j, feature f, value v) adds
    v * A[:, j] into feature f of every query token: n ACs. Writes
    cur[:, h*head_dim + f] and returns the number of V events in live heads.
    """
    n = st.shape[1]
    events = 0
    for h in prange(heads.shape[0]):
        col0 = heads[h] * head_dim
        sh = st[h]
        tot = np.zeros(n, np.float32)
        for j in range(n):
            for i in range(n):
                tot[i] += sh[j, i]
        inv = np.float32(1.0) / tot  # A[i, j] = sh[j, i] * inv[i], applied once per output below
        out = np.zeros((head_dim, n), np.float32)
        for j in range(n):
            a = sh[j]
            for f in range(head_dim):
                v = vspk[j, col0 + f]
                if v != 0:
                    events += 1
                    acc, vf = out[f], np.float32(v)
                    for i in range(n):
                        acc[i] += vf * a[i]
        for f in range(head_dim):
            for i in range(n):
                cur[i, h * head_dim + f] = out[f, i] * inv[i]
    return events


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
