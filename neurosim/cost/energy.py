"""Energy = sum over event kinds of count x energy per event (docs/design.md).

Counts come from whoever measured them (closed form, spike engine,
simulator); `energy_breakdown_pj` is the one function that prices them with
an `EnergyTable`. Counts may be numbers or numpy arrays over design points.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..arch import EnergyTable

BREAKDOWN_KEYS = ("compute", "sram", "dram", "interconnect", "leakage")


@dataclass
class EventCounts:
    """Everything the hardware did, in countable events."""

    acs: float = 0.0
    ac_bit_ops: float = 0.0        # ACs weighted by the input spike's bits (multi-level spikes)
    multilevel_acs: float = 0.0    # ACs fed by multi-level (k > 1 bit) spikes
    macs: float = 0.0
    other_ops: float = 0.0
    neuron_updates: float = 0.0
    rng_ops: float = 0.0           # Bernoulli draws to regenerate spikes from rates
    level_pj: float = 0.0          # accesses of the memory levels inside the cores (cost.reuse), priced by the arch
    core_read_bits: float = 0.0    # core SRAM (priced at the core's array size)
    core_write_bits: float = 0.0
    buffer_read_bits: float = 0.0  # global buffer (priced at its array size)
    buffer_write_bits: float = 0.0
    dram_read_bits: float = 0.0
    dram_write_bits: float = 0.0
    bit_mm: float = 0.0            # interconnect: bits x hops x hop length

    def total(self) -> "EventCounts":
        """Per-layer counts ((n, L) arrays, one column per layer) summed over the layers: per-point totals."""
        return EventCounts(**{f.name: np.sum(getattr(self, f.name), axis=-1) if np.ndim(getattr(self, f.name)) == 2
                              else getattr(self, f.name) for f in fields(self)})


def ac_energy_pj(ev: EventCounts, table: EnergyTable):
    """A k-bit spike costs k ACs ('per_bit') or one AC plus a shift-add ('shift_add'); binary spikes one AC."""
    if table.multilevel_spike == "per_bit":
        return ev.ac_bit_ops * table.ac_pj
    return ev.acs * table.ac_pj + ev.multilevel_acs * table.shift_add_pj


def energy_breakdown_pj(ev: EventCounts, table: EnergyTable, *, core_array_bytes, buffer_array_bytes,
                        static_power_w, latency_s) -> dict:
    """Energy of each kind, in pJ (numbers, or arrays over design points)."""
    compute = (ac_energy_pj(ev, table) + ev.macs * table.mac_pj
               + ev.other_ops * table.other_op_pj + ev.neuron_updates * table.neuron_update_pj
               + ev.rng_ops * table.shift_add_pj)
    sram = (ev.core_read_bits * table.sram_pj_per_bit(core_array_bytes, "read")
            + ev.core_write_bits * table.sram_pj_per_bit(core_array_bytes, "write")
            + ev.buffer_read_bits * table.sram_pj_per_bit(buffer_array_bytes, "read")
            + ev.buffer_write_bits * table.sram_pj_per_bit(buffer_array_bytes, "write")
            + ev.level_pj)
    return {
        "compute": compute,
        "sram": sram,
        "dram": ev.dram_read_bits * table.dram_read_pj_per_bit + ev.dram_write_bits * table.dram_write_pj_per_bit,
        "interconnect": ev.bit_mm * table.interconnect_pj_per_bit_mm,
        "leakage": static_power_w * latency_s * 1e12,
    }


def idle_leakage_pj(static_power_w, cores, clock_hz, cycles, held_core_cycles):
    """The leakage of a run's core-cycles that no layer holds: a run of `cycles` on `cores` cores, of which
    the layers hold `held_core_cycles`, the chip's static power split evenly over its cores. The energy of
    no layer, beside each layer's own (the closed form's and the simulator's per-layer rows)."""
    with np.errstate(invalid="ignore"):   # a run that takes forever (no DRAM to stream from) is infeasible
        idle = np.maximum(0.0, cores * cycles - held_core_cycles)
    return static_power_w * idle / cores / clock_hz * 1e12
