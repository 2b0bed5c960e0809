"""The spike engine: event-driven propagation with exact AC counting (Numba).

    from neurosim.spikes import run, random_weights
    trace = run(net, inputs, handoff="lockstep", seed=0)   # or "history", "stochastic"
    trace.acs, trace["block0.k"].asr, trace.measured_network(net)

Modules: kernels (Numba), handoff (inputs and the three dataflow handoffs),
engine (`run`), trace (`SpikeTrace`, measured rates), weights (seeded random
weights for weightless cards), lowbit (int8 codes and scales of layers with
weight_bits <= 8), torch_engine and triton_fire (`run(..., device="cuda")`:
the same network multi-step on torch, counted as the CPU engine counts), decoder (decoder phases:
elementwise and causal attention layers fed by SpikeLLM's GIF inputs, run layer by layer).
"""

import os

# numba's OpenMP workers spin-wait between parallel regions by default; on a
# busy or small machine that makes each of the engine's thousands of short
# kernel calls cost milliseconds (measured: 5 ms vs 9 us per call on a shared
# 2-vCPU VM). Passive waiting, unless the user chose otherwise. Only numba's
# own libgomp reads this, when its first parallel kernel starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .compile_cache import ensure_writable  # noqa: E402

ensure_writable()   # before the kernels are imported: a folder Numba can write its cache to (compile_cache)

from .engine import run, warm_up  # noqa: E402
from .handoff import HANDOFFS, INPUT, rate_code  # noqa: E402
from .trace import LayerTrace, SpikeTrace, measured_network  # noqa: E402
from .weights import random_weights  # noqa: E402

__all__ = ["HANDOFFS", "INPUT", "LayerTrace", "SpikeTrace", "measured_network", "random_weights", "rate_code", "run", "warm_up"]
