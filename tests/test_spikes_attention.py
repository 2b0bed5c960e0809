"""The spike engine's attention kernel: its float32 exp, and softmax(Q K^T / sqrt(d)) V against float64."""

import numpy as np
from numba import njit

from neurosim.spikes import kernels


@njit
def _exps(x, out):
    for i in range(x.shape[0]):
        out[i] = kernels.exp_nonpositive(x[i])


def test_the_softmax_exp_is_within_one_ulp_of_the_exact_exponential():
    x = -np.logspace(-8, np.log10(126), 2_000_000).astype(np.float32)
    out = np.empty_like(x)
    _exps(x, out)
    exact = np.exp(x.astype(np.float64))
    normal = exact > np.finfo(np.float32).tiny
    ulps = np.abs(out[normal] - exact[normal]) / np.spacing(exact[normal].astype(np.float32))
    assert ulps.max() <= 1.0
    assert np.all(out[~normal] == 0.0)


def test_the_softmax_exp_of_zero_is_one_and_of_minus_infinity_zero():
    x = np.array([0.0, -0.0, -np.inf, -1e30], np.float32)
    out = np.empty_like(x)
    _exps(x, out)
    assert out.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_attention_of_live_heads_matches_a_float64_softmax():
    rng = np.random.default_rng(7)
    steps, n, heads, hd = 3, 9, 4, 8
    q = rng.normal(size=(steps, n, heads * hd)).astype(np.float32)
    k = (rng.random((steps, n, heads * hd)) < 0.3).astype(np.uint8)
    v = (rng.random((steps, n, heads * hd)) < 0.3).astype(np.uint8) * rng.integers(1, 3, (steps, n, heads * hd),
                                                                                  dtype=np.uint8)
    live = np.array([0, 2, 3])                     # head 1 pruned: the output holds the live heads only
    for work in (0, 10**9):                        # serial and threaded
        cur = np.full((steps, n, len(live) * hd), np.nan, np.float32)
        events = np.zeros((steps, len(live)), np.int64)
        kernels.attention(work, q, k, v, live, hd, np.float32(1 / np.sqrt(hd)), cur, events)
        for t in range(steps):
            for slot, h in enumerate(live):
                cols = slice(h * hd, (h + 1) * hd)
                s = q[t][:, cols].astype(np.float64) @ k[t][:, cols].T / np.sqrt(hd)
                a = np.exp(s - s.max(axis=1, keepdims=True))
                want = (a / a.sum(axis=1, keepdims=True)) @ v[t][:, cols]
                assert np.allclose(cur[t][:, slot * hd:(slot + 1) * hd], want, rtol=1e-5, atol=1e-6)
                assert events[t, slot] == np.count_nonzero(v[t][:, cols])
