"""The KV cache: its size, where it lives, and what a phase reads and writes of it.

Every causal-attention layer caches, per sequence and past token, its K and
V inputs: kv_heads x head_dim values each, at `kv_bits` when real, or as the
spike train (timesteps x spike bits per value) when they arrive as spikes.
The cache lives in the on-chip SRAM a chip has left while a phase runs (its
cores' and global buffer's bytes minus the phase's peak on-chip use) while
it fits, and in DRAM/HBM beyond: the oldest entries stay on chip, later
ones go off chip. A phase reads every cached entry of its sequences (keys
for the scores, values for the weighted sum) and writes its new tokens'
entries; the new ones it uses straight from the K/V layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Network


def kv_bits_per_token(net: Network) -> float:
    """Bits one token adds to the cache of every causal-attention layer of `net` (per sequence)."""
    total = 0.0
    for layer in net.layers:
        if layer.kind != "causal_attention":
            continue
        for src in (net[name] for name in layer.inputs[1:]):   # K and V
            per_value = src.timesteps * src.neuron.spike_bits if src.spiking else layer.weight_bits
            total += src.out_features * per_value
    return total


@dataclass
class KVAccess:
    """Bits of the cache one phase reads and writes, on chip and off chip."""

    read_on: float
    read_off: float
    write_on: float
    write_off: float

    @property
    def off_chip_bits(self) -> float:
        return self.read_off + self.write_off

    def scaled(self, k: float) -> "KVAccess":
        return KVAccess(self.read_on * k, self.read_off * k, self.write_on * k, self.write_off * k)


def kv_access(bits_per_token: float, sequences: int, past: float, new: int, room_bytes: float) -> KVAccess:
    """One phase: every sequence reads `past` cached tokens and writes `new`; each sequence's first
    room/(sequences x bits per token) tokens are on chip (the room is shared equally by the sequences)."""
    if bits_per_token <= 0:
        return KVAccess(0.0, 0.0, 0.0, 0.0)
    on_tokens = max(room_bytes, 0.0) * 8 / (sequences * bits_per_token)   # tokens per sequence held on chip
    read_on = min(past, on_tokens)
    write_on = max(0.0, min(past + new, on_tokens) - past)
    per = sequences * bits_per_token
    return KVAccess(read_on * per, (past - read_on) * per, write_on * per, (new - write_on) * per)
