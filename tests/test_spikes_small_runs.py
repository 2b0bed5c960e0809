"""A small run calls only the serial kernels (a fresh install's first run compiles half as many)."""

import numba
import numpy as np
import pytest

from neurosim.ir import Layer, Network
from neurosim.spikes import engine, kernels


def two_layer_net() -> Network:
    rng = np.random.default_rng(0)
    layers = [Layer("a", "linear", 16, 16, seq_len=4, timesteps=8, weights=rng.normal(0, 0.5, (16, 16))),
              Layer("b", "linear", 16, 16, inputs=["a"], seq_len=4, timesteps=8, weights=rng.normal(0, 0.5, (16, 16)))]
    return Network("small", layers, input_size=16, input_rate=0.3)


def calls_by_version(monkeypatch) -> dict[str, int]:
    """Count the calls of the accumulation and neuron kernels' threaded and serial copies."""
    counts = {"threaded": 0, "serial": 0}
    for kernel in (kernels.fire_steps_plain, kernels.fire_steps_any, kernels.accumulate, kernels.accumulate_fire):
        for version in counts:
            compiled = getattr(kernel, version)

            def counted(*args, _f=compiled, _v=version):
                counts[_v] += 1
                return _f(*args)
            monkeypatch.setattr(kernel, version, counted)
    return counts


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread here: every call is serial")
def test_a_run_below_the_dense_bound_calls_only_serial_kernels_and_counts_the_same(monkeypatch):
    monkeypatch.setattr(kernels, "PARALLEL_WORK", 1)   # every call would be threaded by its own work
    counts = calls_by_version(monkeypatch)
    small = engine.run(two_layer_net(), seed=3)
    assert counts["serial"] > 0 and counts["threaded"] == 0
    monkeypatch.setattr(kernels, "SERIAL_RUN_WORK", 0)  # the same run counted as large
    counts["serial"] = 0
    large = engine.run(two_layer_net(), seed=3)
    assert counts["threaded"] > 0
    for name in ("a", "b"):
        assert np.array_equal(small.layers[name].spikes_per_step, large.layers[name].spikes_per_step)
