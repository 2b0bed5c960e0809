"""The event-driven accumulation read in input chunks, and the effective-AC sums, against direct products."""

import numpy as np
import pytest

from neurosim.spikes import kernels


def events(rate: float, rows: int, n_in: int, seed: int):
    rng = np.random.default_rng(seed)
    spk = (rng.random((rows, n_in)) < rate).astype(np.uint8)
    spk[0, ::5] = 3                                    # a row with multi-level events
    return spk, kernels.events_csr(spk)


@pytest.mark.parametrize("threaded", [False, True])
def test_accumulating_in_input_chunks_gives_the_exact_product_on_integer_weights(threaded):
    spk, (ptr, idx, val) = events(0.2, 70, 50, seed=1)
    w = np.random.default_rng(2).integers(-9, 10, (50, 20)).astype(np.float32)
    expected = spk.astype(np.int64) @ w.astype(np.int64)
    tiles = kernels.tiles_of(w, 8)                     # 3 tiles of 8 outputs, the last padded
    work = 10 ** 9 if threaded else 0
    for chunk in (50, 7, 1, 64):                       # whole, uneven chunks, one input each, wider than in
        cur = np.full((70, 20), np.nan, np.float32)
        kernels.accumulate(work, ptr, idx, val, tiles, chunk, cur)
        np.testing.assert_array_equal(cur, expected, err_msg=f"chunk {chunk}")


@pytest.mark.parametrize("top", [1, 127])
@pytest.mark.parametrize("rate, n_in, width", [(0.3, 300, 8), (0.9, 700, 200)])
def test_int8_codes_accumulated_in_input_chunks_give_the_exact_product(top, rate, n_in, width):
    """Tiles of 8 outputs (summed by loops), and of 200: three blocks of 64 outputs by 512-bit vectors and a
    tail of 8, with runs of value-1 events longer than one int16 run (CODE_RUN) in rows at rate 0.9."""
    spk, (ptr, idx, val) = events(rate, 70, n_in, seed=5)
    assert (np.diff(ptr).max() > kernels.CODE_RUN) == (rate > 0.5)   # the long runs are there
    codes = np.random.default_rng(6).integers(-top, top + 1, (n_in, 20 * width // 8)).astype(np.int8)
    expected = spk.astype(np.int64) @ codes.astype(np.int64)
    for chunk in (n_in, 64, 1):
        cur = np.full(expected.shape, np.nan, np.float32)
        kernels.accumulate(10 ** 9, ptr, idx, val, kernels.tiles_of(codes, width), chunk, cur)
        np.testing.assert_array_equal(cur, expected, err_msg=f"chunk {chunk}")


def test_accumulating_in_input_chunks_stays_within_float32_rounding_on_real_weights():
    spk, (ptr, idx, val) = events(0.1, 40, 300, seed=3)
    w = np.random.default_rng(4).normal(0, 0.1, (300, 33)).astype(np.float32)
    expected = spk.astype(np.float64) @ w.astype(np.float64)
    cur = np.zeros((40, 33), np.float32)
    kernels.accumulate(0, ptr, idx, val, kernels.tiles_of(w, 16), 64, cur)
    np.testing.assert_allclose(cur, expected, rtol=0, atol=1e-5)


def test_a_tile_larger_than_the_l2_budget_is_read_in_chunks_unless_its_sums_would_not_fit():
    small = np.zeros((1, 768, 256), np.float32)        # 768 KiB
    large = np.zeros((1, 3072, 256), np.float32)       # 3 MiB
    assert kernels.input_chunk(small) == 768
    assert kernels.input_chunk(large) == kernels.IN_CHUNK < 3072
    assert kernels.input_chunk(np.zeros((1, 3072, 768), np.int8)) == kernels.IN_CHUNK   # 2.3 MiB, sums 768 KiB
    assert kernels.input_chunk(np.zeros((1, 768, 3072), np.int8)) == 768                # sums 3 MiB a block


def test_events_per_input_count_the_tokens_with_an_event_at_each_input_and_step():
    spikes = np.zeros((2, 3, 4), np.uint8)
    spikes[0, :, 1] = 1                                # step 0: input 1 in every token
    spikes[0, 2, 3] = 5                                # a multi-level event counts once
    spikes[1, 0, 0] = spikes[1, 1, 0] = 1
    out = np.full((2, 4), -1, np.int32)
    kernels.events_per_input(0, spikes, out)
    np.testing.assert_array_equal(out, [[0, 3, 0, 1], [2, 0, 0, 0]])


@pytest.mark.parametrize("chunk", [300, 64])
@pytest.mark.parametrize("codes", [True, False])
def test_sums_fused_with_the_neuron_give_the_two_kernels_spikes_and_state(chunk, codes):
    """accumulate_fire = accumulate (on int8 codes, or real float32 weights), then
    fire_steps_plain on the currents: bit for bit, with tiles of 48 outputs (for codes a vector block
    and a tail), inputs whole or in chunks, 6 tokens (a ragged block of 4 + 2)."""
    rng = np.random.default_rng(12)
    K, n, n_in, L = 5, 6, 300, 100
    spk = (rng.random((K * n, n_in)) < 0.3).astype(np.uint8)
    spk[3, ::4] = 2                                          # some events of value 2
    ptr, idx, val = kernels.events_csr(spk)
    weights = rng.integers(-127, 128, (n_in, L)).astype(np.int8) if codes else \
        rng.normal(0, 0.05, (n_in, L)).astype(np.float32)
    tiles = kernels.tiles_of(weights, 48)
    scale = np.full(L, 2.0 ** -9 if codes else 1.0, np.float32)
    bias = rng.normal(0, 0.2, L).astype(np.float32)
    leak, vth = rng.uniform(0.5, 1, L).astype(np.float32), rng.uniform(0.5, 1.5, L).astype(np.float32)
    start = (rng.random((n, L)).astype(np.float32), (rng.random((n, L)) < 0.3).astype(np.uint8),
             rng.integers(0, 4, (n, L)).astype(np.int32))
    for work in (0, 10**9):
        two, one = [x.copy() for x in start], [x.copy() for x in start]
        out2, out1 = np.zeros((K, n, L), np.uint8), np.zeros((K, n, L), np.uint8)
        c2, c1 = np.zeros((K, n), np.int64), np.zeros((K, n), np.int64)
        cur = np.empty((K * n, L), np.float32)
        kernels.accumulate(work, ptr, idx, val, tiles, chunk, cur)
        kernels.fire_steps_plain(work, cur.reshape(K, n, L), scale, bias, two[0], two[1], leak, vth, two[2], out2, c2)
        kernels.accumulate_fire(work, ptr, idx, val, tiles, chunk, scale, bias, leak, vth, one[0], one[1], one[2],
                                out1, c1)
        assert out2.any() and not out2.all()
        for a, b in zip((out2, c2) + tuple(two), (out1, c1) + tuple(one)):
            assert np.array_equal(a, b)
