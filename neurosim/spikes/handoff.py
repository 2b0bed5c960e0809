"""What a layer reads at each of its steps: the network input, or another layer's output.

The network input is a given spike tensor (T, n, input_size) of non-negative
integers, or a real (n, input_size) array. A real array is read as
per-(token, feature) firing probabilities in [0, 1], rate-coded by seeded
Bernoulli draws, one fresh draw per step, when the network's input spikes
(`net.input_spiking`); otherwise it is an input current applied at every
step (an embedding, as the front end's spike mode feeds it; the first layers
then do MACs). No input means Bernoulli at `net.input_rate`.

Between layers, three handoffs (the dataflows of docs/design.md):

* ``lockstep`` (spatially unrolled): every layer runs T = the network's
  largest timestep count. At its step t a layer integrates its sources'
  spikes of their step t, and layers reading the network input integrate the
  input's step t. In hardware time layer l at depth d runs step t at clock
  t + d, i.e. it integrates what its source emitted one clock earlier
  (docs/design.md eq. 1: W s^{t-1}); the pipeline fill is not a different spike
  train. So every layer sees exactly T steps of input: all of its source's
  spikes, none dropped.
* ``history`` (sequential, carrying spike histories): as lockstep, but each
  layer runs its own t^l steps. A consumer that runs longer than its source
  reads silence after the source's last step; one that runs shorter ignores
  the source's later steps.
* ``stochastic`` (sequential, carrying rates): each layer runs its own t^l
  steps, one layer after another. A spiking source is carried as each
  (token, neuron)'s spike count; the consumer draws its input at step t as
  Bernoulli(count / t^source), seeded by (seed, source, t), so every consumer
  of one source draws the same spikes at the same step. A real-valued source
  (the Query) is carried as its time average. Layers reading the network
  input read its first t^l steps.
"""

from __future__ import annotations

import numpy as np

from ..errors import NeurosimError
from ..ir import NETWORK_INPUT, Network
from . import kernels

HANDOFFS = ("lockstep", "history", "stochastic")
INPUT = NETWORK_INPUT   # the network input's name in traces
INPUT_STREAM = 0    # random stream of the input; layer i uses stream i + 1


def _key(seed: int, stream: int, t: int) -> np.uint64:
    return np.uint64(kernels.stream_key(seed, stream, t))  # a Python int over 2**63 would not pass to numba


class NetworkInput:
    """The network input, one (n, input_size) step at a time: uint8 spikes or a float32 current."""

    def __init__(self, net: Network, inputs: np.ndarray | None, seq_len: int, seed: int):
        where, size = f"network '{net.name}'", net.input_size
        self.seed, self.n, self.size = seed, seq_len, size
        self.spikes = self.rates = self.current = self.steps = None
        if inputs is None:
            if not net.input_spiking:
                raise NeurosimError(where, "inputs", "the network's input is a real current (input_spiking is "
                                    "false) and none was given", "give the input, e.g. the embedding of a sample")
            inputs = np.full((seq_len, size), net.input_rate)
        x = np.asarray(inputs)
        if x.ndim == 3:
            if x.shape[1:] != (seq_len, size):
                raise NeurosimError(where, "inputs", f"a spike tensor of shape {x.shape}, expected "
                                    f"(T, {seq_len}, {size})", "give (timesteps, seq_len, input_size) spikes")
            if x.dtype in (np.uint8, np.bool_):   # already spike values: nothing to check (8 MB take ms)
                pass
            elif not (np.issubdtype(x.dtype, np.integer) or bool(np.isfinite(x).all() and (x == np.round(x)).all())) \
                    or x.min(initial=0) < 0 or x.max(initial=0) > 255:
                raise NeurosimError(where, "inputs", "spike values must be integers in 0..255",
                                    "give 0/1 spikes (or k-level spike values) per step")
            self.kind, self.spikes, self.steps = "spikes", np.ascontiguousarray(x, dtype=np.uint8), x.shape[0]
        elif x.ndim == 2:
            if x.shape != (seq_len, size):
                raise NeurosimError(where, "inputs", f"real input of shape {x.shape}, expected ({seq_len}, {size})",
                                    "give one value per token and input feature")
            if not np.isfinite(x).all():
                raise NeurosimError(where, "inputs", "contains NaN or infinite values", "give finite values")
            if not net.input_spiking:
                self.kind, self.current = "current", np.ascontiguousarray(x, dtype=np.float32)
            elif x.min() >= 0 and x.max() <= 1:
                self.kind, self.rates = "rates", np.ascontiguousarray(x, dtype=np.float64)
                self._buf = np.zeros((seq_len, size), np.uint8)
            else:
                raise NeurosimError(where, "inputs", "the network's input spikes, so a real input is read as "
                                    "firing probabilities, which must lie in [0, 1]",
                                    "scale the input to probabilities (e.g. a sigmoid), or set the network's "
                                    "input_spiking to false to feed it as a current")
        else:
            raise NeurosimError(where, "inputs", f"{x.ndim}-D input", "give (T, seq_len, input_size) spikes or "
                                "a (seq_len, input_size) real array")

    def require(self, steps: int, reader: str) -> None:
        if self.steps is not None and self.steps < steps:
            raise NeurosimError(f"layer '{reader}'", "timesteps", f"runs {steps} steps but the input spike "
                                f"tensor has {self.steps}", f"give at least {steps} input steps")

    def step(self, t: int) -> np.ndarray:
        if self.current is not None:
            return self.current
        if self.spikes is not None:
            return self.spikes[t]
        kernels.bernoulli_rates(self.rates.size, self.rates, _key(self.seed, INPUT_STREAM, t), self._buf)
        return self._buf


def rate_code(x: np.ndarray, steps: int, seed: int = 0) -> np.ndarray:
    """Bernoulli rate coding of x in [0, 1] (n, size) for `steps` steps: the spikes the engine draws."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.zeros((steps,) + x.shape, np.uint8)
    for t in range(steps):
        kernels.bernoulli_rates(x.size, x, _key(seed, INPUT_STREAM, t), out[t])
    return out


def regenerate(counts: np.ndarray, values: np.ndarray, steps: int, live_idx: np.ndarray, width: int,
               seed: int, stream: int, t: int) -> np.ndarray:
    """A source's step-t input spikes regenerated from its counts (stochastic handoff)."""
    out = np.zeros((counts.shape[0], width), np.uint8)
    kernels.regenerate(counts.size, counts, values, steps, live_idx, _key(seed, stream, t), out)
    return out
