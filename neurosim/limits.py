"""Bounds on the size of what neurosim is asked to build, checked before anything is allocated.

Each bound is far above any real model or config and far below what would
exhaust a machine; a model beyond one is refused with its estimated size and
a fix, instead of running out of memory or time part-way.
"""

from __future__ import annotations

from .errors import NeurosimError

# Spiking models run tens to thousands of steps (SpikingBERT: T = 85); every engine steps through each one,
# so a billion steps is a mistake (a time in ns?), not a model.
MAX_TIMESTEPS = 1_000_000
# The deepest transformer encoders have about a hundred blocks; each block is seven IR layers, each a
# simulator stage of its own.
MAX_ENCODER_LAYERS = 10_000
# Weights plus one inference's spikes (a byte per neuron, token and step, as the spike engine holds them):
# a 250 G-parameter fp32 model fits; a hidden size in the millions does not.
MAX_MODEL_BYTES = 1 << 40
# A YAML config, card or spec is a few KB; the largest legitimate one is a pruned model card with a mask
# per intermediate neuron (24 layers x 4096: 100 k values). Values are counted with aliases expanded, so an
# anchor bomb is refused before anything (a schema check, an error message's repr) walks it.
MAX_YAML_BYTES = 16 << 20
MAX_YAML_VALUES = 1_000_000
# Planning a sweep validates and hashes each point: about 0.2 ms and 2 KB (benchmarks/results/sweep.md), so a
# million points is minutes and 2 GB before the first is evaluated. Larger grids run in slices (--limit).
MAX_POINTS = 1_000_000


def format_bytes(n: float) -> str:
    """A byte count of any size in binary units, 3 significant digits ('16 TiB', '4.2e+03 PiB')."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def encoder_bytes(layers: int, hidden: int, intermediate: int, seq_len: int, timesteps: int,
                  weight_bits: int) -> int:
    """Memory of a SpikingBERT-style encoder: weights of its seven sublayers per block, and the spikes
    of one inference (six hidden-wide spiking outputs and the intermediate one, per token and step)."""
    weights = layers * (4 * hidden * hidden + 2 * hidden * intermediate) * weight_bits // 8
    spikes = layers * (6 * hidden + intermediate) * seq_len * timesteps
    return weights + spikes


def check_network_size(where: str, layers: list) -> None:
    """Refuse a network (IR layers, validated) beyond the bounds above: its timesteps, or its weights and one
    inference's spikes, before anything sized by it (a per-neuron array, a step loop) is allocated."""
    for layer in layers:
        if layer.timesteps > MAX_TIMESTEPS:
            raise NeurosimError(f"{where} (layer '{layer.name}')", "timesteps", f"{layer.timesteps:,} timesteps; "
                                f"more than {MAX_TIMESTEPS:,} is not a spiking model",
                                "give the timesteps per inference (SpikingBERT: 85)")
    size = sum(layer.n_weights() * layer.weight_bits // 8 + layer.out_features * layer.seq_len * layer.timesteps
               for layer in layers)
    if size > MAX_MODEL_BYTES:
        big = max(layers, key=lambda layer: layer.n_weights() + layer.out_features * layer.seq_len)
        raise NeurosimError(f"{where} (layer '{big.name}')", "out_features", f"the network needs about "
                            f"{format_bytes(size)} (weights and one inference's spikes), more than "
                            f"{format_bytes(MAX_MODEL_BYTES)}", "give the sizes of a network that exists")


def check_encoder_size(where: str, layers: int, hidden: int, intermediate: int, seq_len: int,
                       timesteps: list[int], weight_bits: int) -> None:
    """Refuse an encoder beyond the bounds above, naming the field and the estimated memory."""
    t = max(timesteps)
    size = encoder_bytes(layers, hidden, intermediate, seq_len, t, weight_bits)
    if t > MAX_TIMESTEPS:
        raise NeurosimError(where, "timesteps", f"{t:,} timesteps (about {format_bytes(size)} of weights and "
                            f"spikes per inference); more than {MAX_TIMESTEPS:,} is not a spiking model",
                            "give the timesteps per inference (SpikingBERT: 85)")
    if layers > MAX_ENCODER_LAYERS:
        raise NeurosimError(where, "layers", f"{layers:,} encoder layers, more than {MAX_ENCODER_LAYERS:,}",
                            "give the number of encoder blocks")
    if size > MAX_MODEL_BYTES:
        big = max(("hidden", hidden), ("intermediate", intermediate), ("seq_len", seq_len), key=lambda kv: kv[1])
        raise NeurosimError(where, big[0], f"the model needs about {format_bytes(size)} (weights and one "
                            f"inference's spikes), more than {format_bytes(MAX_MODEL_BYTES)}",
                            "give sizes of a model that exists (hidden, intermediate, seq_len, layers)")
