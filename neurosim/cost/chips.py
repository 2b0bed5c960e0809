"""The numbers of many design points (arch configs), one numpy array per field.

The closed form is written once, over arrays of points: a sweep hands it
thousands of arch configs of one network at a time, `estimate` hands it one.
The mesh formulas live here (and nowhere else), for the closed form and the
simulator alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..arch import ArchConfig


def mesh_side(cores: np.ndarray) -> np.ndarray:
    """Side k of the smallest square mesh that holds the cores."""
    return np.ceil(np.sqrt(cores)).astype(np.int64)


def average_hops(cores: np.ndarray) -> np.ndarray:
    """Mean Manhattan distance between two random cores of a k x k mesh, 2(k^2-1)/(3k);
    at least one hop, since even a lone core reaches the global buffer over a link."""
    k = mesh_side(cores)
    return np.maximum(1.0, 2 * (k * k - 1) / (3 * k))


def mesh_bits_per_cycle(cores: np.ndarray, link_bits_per_cycle: np.ndarray) -> np.ndarray:
    """Aggregate link capacity of a k x k mesh: 2k(k-1) links, each carrying bits both ways."""
    k = mesh_side(cores)
    return np.maximum(1, 2 * k * (k - 1)) * 2 * link_bits_per_cycle


class Chips:
    """Arch numbers of n design points (the fields of `arch.ArchConfig`, as arrays of length n)."""

    def __init__(self, archs: list[dict[str, Any]]):
        def col(get, dtype=float):
            return np.array([get(a) for a in archs], dtype=dtype)

        self.n = len(archs)
        self.names = [a["name"] for a in archs]
        self.clock_hz = col(lambda a: a["clock_hz"])
        self.static_power_w = col(lambda a: a["static_power_w"])
        self.cores = col(lambda a: a["cores"]["count"], np.int64)
        self.acs_per_cycle = col(lambda a: a["cores"]["acs_per_cycle"], np.int64)
        self.macs_per_cycle = col(lambda a: a["cores"]["macs_per_cycle"], np.int64)
        self.core_sram = col(lambda a: a["cores"]["sram_bytes"], np.int64)
        self.buffer_bytes = col(lambda a: a["global_buffer"]["bytes"], np.int64)
        self.buffer_bytes_per_cycle = col(lambda a: a["global_buffer"]["bytes_per_cycle"], np.int64)
        # The array one access touches (a bank, or the whole SRAM): what prices the access.
        self.core_array = col(lambda a: a["cores"].get("bank_bytes") or a["cores"]["sram_bytes"], np.int64)
        self.buffer_array = col(lambda a: a["global_buffer"].get("bank_bytes") or a["global_buffer"]["bytes"],
                                np.int64)
        self.recompute_constant_input = col(lambda a: a["cores"].get("recompute_constant_input", False), bool)
        self.has_dram = col(lambda a: a.get("dram") is not None, bool)
        self.dram_bytes_per_s = col(lambda a: a["dram"]["bytes_per_s"] if a.get("dram") else 0.0)
        self.hop_mm = col(lambda a: a["interconnect"]["hop_mm"])
        self.packet_bits = col(lambda a: a["interconnect"]["spike_packet_bits"], np.int64)
        self.membrane_bits = col(lambda a: a["precision"]["membrane_bits"], np.int64)
        self.activation_bits = col(lambda a: a["precision"]["activation_bits"], np.int64)
        self.total_core_sram = self.cores * self.core_sram
        self.avg_hops = average_hops(self.cores)
        self.mesh_bits_per_cycle = mesh_bits_per_cycle(
            self.cores, col(lambda a: a["interconnect"]["link_bits_per_cycle"], np.int64))
        # A transfer crosses avg_hops links, so the mesh moves this many bits of payload per cycle.
        self.noc_rate = self.mesh_bits_per_cycle / self.avg_hops
        self.dram_bits_per_cycle = self.dram_bytes_per_s / self.clock_hz * 8

    @classmethod
    def of(cls, arch: ArchConfig) -> "Chips":
        """One design point."""
        return cls([arch.model_dump()])
