"""Energy = sum over event kinds of count x energy per event (DESIGN.md).

Counts come from whoever measured them (closed form, spike engine, simulator);
this module only prices them with an `EnergyTable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..arch import EnergyTable

BREAKDOWN_KEYS = ("compute", "sram", "dram", "interconnect", "leakage")


@dataclass
class EventCounts:
    """Everything the hardware did, in countable events."""

    acs: float = 0.0
    ac_bit_ops: float = 0.0        # ACs weighted by the input spike's bits (multi-level spikes)
    macs: float = 0.0
    other_ops: float = 0.0
    neuron_updates: float = 0.0
    rng_ops: float = 0.0           # Bernoulli draws to regenerate spikes from rates
    sram_read_bits: dict[int, float] = field(default_factory=dict)   # by SRAM array size in bytes
    sram_write_bits: dict[int, float] = field(default_factory=dict)
    dram_read_bits: float = 0.0
    dram_write_bits: float = 0.0
    bit_mm: float = 0.0            # interconnect: bits x hops x hop length

    def add_sram(self, array_bytes: int, read_bits: float = 0.0, write_bits: float = 0.0) -> None:
        self.sram_read_bits[array_bytes] = self.sram_read_bits.get(array_bytes, 0.0) + read_bits
        self.sram_write_bits[array_bytes] = self.sram_write_bits.get(array_bytes, 0.0) + write_bits


def ac_energy_pj(acs: float, ac_bit_ops: float, table: EnergyTable) -> float:
    """A k-bit spike costs k ACs ('per_bit') or one AC plus a shift-add ('shift_add')."""
    if table.multilevel_spike == "per_bit":
        return ac_bit_ops * table.ac_pj
    multi = ac_bit_ops - acs  # > 0 only where spikes carry more than one bit
    return acs * table.ac_pj + (table.shift_add_pj * acs if multi > 0 else 0.0)


def energy_breakdown_pj(ev: EventCounts, table: EnergyTable, static_power_w: float,
                        latency_s: float) -> dict[str, float]:
    compute = (ac_energy_pj(ev.acs, ev.ac_bit_ops, table) + ev.macs * table.mac_pj
               + ev.other_ops * table.other_op_pj + ev.neuron_updates * table.neuron_update_pj
               + ev.rng_ops * table.shift_add_pj)
    sram = sum(bits * table.sram_pj_per_bit(size, "read") for size, bits in ev.sram_read_bits.items())
    sram += sum(bits * table.sram_pj_per_bit(size, "write") for size, bits in ev.sram_write_bits.items())
    return {
        "compute": compute,
        "sram": sram,
        "dram": ev.dram_read_bits * table.dram_read_pj_per_bit + ev.dram_write_bits * table.dram_write_pj_per_bit,
        "interconnect": ev.bit_mm * table.interconnect_pj_per_bit_mm,
        "leakage": static_power_w * latency_s * 1e12,
    }
