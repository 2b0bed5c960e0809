"""The numbers of many design points (arch configs), one numpy array per field.

The closed form is written once, over arrays of points: a sweep hands it
thousands of arch configs of one network at a time, `estimate` hands it one.
The mesh formulas live here (and nowhere else), for the closed form and the
simulator alike. Network traffic is counted in bit-hops (a bit crossing one
link), so a transfer's energy is bit-hops x hop length x pJ/bit/mm and its
time is bit-hops over the mesh's aggregate link capacity.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..arch import ArchConfig
from .reuse import CoreLevels


def mesh_side(cores: np.ndarray) -> np.ndarray:
    """Side k of the smallest square mesh that holds the cores."""
    return np.ceil(np.sqrt(cores)).astype(np.int64)


def average_hops(cores: np.ndarray) -> np.ndarray:
    """Mean Manhattan distance between two random cores of a k x k mesh, 2(k^2-1)/(3k);
    at least one hop, since even a lone core reaches the global buffer over a link."""
    k = mesh_side(cores)
    return np.maximum(1.0, 2 * (k * k - 1) / (3 * k))


def centre_hops(cores: np.ndarray) -> np.ndarray:
    """Mean Manhattan distance from the mesh's centre, where the global buffer and the DRAM and I/O ports
    attach, to a core of a k x k mesh: (k^2-1)/(2k) for odd k, k/2 for even k; at least one hop."""
    k = mesh_side(cores)
    return np.maximum(1.0, np.where(k % 2 == 1, (k * k - 1) / (2 * k), k / 2))


def mesh_bits_per_cycle(cores: np.ndarray, link_bits_per_cycle: np.ndarray) -> np.ndarray:
    """Aggregate link capacity of a k x k mesh, in bit-hops per cycle: 2k(k-1) links, each carrying bits
    both ways (a lone core still has its link to the global buffer)."""
    k = mesh_side(cores)
    return np.maximum(1, 2 * k * (k - 1)) * 2 * link_bits_per_cycle


def delivery_links(dest, reach, multicast) -> np.ndarray:
    """Links one packet crosses to reach `dest` cores whose region lies `reach` hops away on average.
    Multicast: a tree crosses `reach` links to the region, then one link per further core (a layer's cores,
    or the pool, sit side by side). Unicast: one copy per destination core, each crossing `reach` links."""
    dest, reach = np.asarray(dest, dtype=float), np.asarray(reach, dtype=float)
    return np.where(dest > 0, np.where(multicast, reach + dest - 1, reach * dest), 0.0)


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
        self.adds_per_accumulator = col(lambda a: a["cores"]["adds_per_accumulator"])
        self.core_sram = col(lambda a: a["cores"]["sram_bytes"], np.int64)
        self.buffer_bytes = col(lambda a: a["global_buffer"]["bytes"], np.int64)
        self.buffer_bytes_per_cycle = col(lambda a: a["global_buffer"]["bytes_per_cycle"], np.int64)
        # The array one access touches (a bank, or the whole SRAM): what prices the access.
        self.core_array = col(lambda a: a["cores"].get("bank_bytes") or a["cores"]["sram_bytes"], np.int64)
        self.buffer_array = col(lambda a: a["global_buffer"].get("bank_bytes") or a["global_buffer"]["bytes"],
                                np.int64)
        self.recompute_constant_input = col(lambda a: a["cores"].get("recompute_constant_input", False), bool)
        self.zero_skipping = col(lambda a: a["cores"].get("zero_skipping", False), bool)
        self.has_dram = col(lambda a: a.get("dram") is not None, bool)
        self.dram_bytes_per_s = col(lambda a: a["dram"]["bytes_per_s"] if a.get("dram") else 0.0)
        self.hop_mm = col(lambda a: a["interconnect"]["hop_mm"])
        self.multicast = col(lambda a: a["interconnect"]["delivery"] == "multicast", bool)
        self.link_bits_per_cycle = col(lambda a: a["interconnect"]["link_bits_per_cycle"], np.int64)
        self.packet_bits = col(lambda a: a["interconnect"]["spike_packet_bits"], np.int64)
        self.objective = [a["mapping"]["objective"] for a in archs]
        self.membrane_bits = col(lambda a: a["precision"]["membrane_bits"], np.int64)
        self.activation_bits = col(lambda a: a["precision"]["activation_bits"], np.int64)
        self._count_cores()
        self.dram_bits_per_cycle = self.dram_bytes_per_s / self.clock_hz * 8
        # Memory levels inside the cores and their dataflow (cost.reuse); a point without levels: no reuse.
        self.levels = CoreLevels(archs)
        # The spatial mapping's cores per layer where a point gives them ({layer: cores}; None: the rule of
        # `layout.SpatialCores` picks them): a mapping plan's spatial segment (`with_layer_cores`).
        self.layer_cores: list[dict[str, int] | None] = [None] * self.n

    def _count_cores(self) -> None:
        """What follows from the core count: the SRAM of all cores and the mesh they fill (the sequential
        pool's; the spatial mapping uses the region its layers fill)."""
        self.total_core_sram = self.cores * self.core_sram
        self.buffer_hops = centre_hops(self.cores)
        self.mesh_bits_per_cycle = mesh_bits_per_cycle(self.cores, self.link_bits_per_cycle)

    def with_cores(self, cores) -> "Chips":
        """The same points using `cores` of their cores (a pool around the mesh's centre; the rest idle)."""
        pool = copy.copy(self)
        pool.cores = np.asarray(cores, dtype=np.int64)
        pool._count_cores()
        return pool

    def take(self, rows) -> "Chips":
        """Points `rows` of these, in that order (repeats allowed): a search prices several choices for one
        point side by side, as rows of the point axis."""
        return take_points(self, np.asarray(rows, dtype=np.int64))

    def with_layer_cores(self, layer_cores: list[dict[str, int] | None]) -> "Chips":
        """The same points with the spatial mapping's cores per layer given, per point ({layer: cores}, or
        None for the allocation rule)."""
        given = copy.copy(self)
        given.layer_cores = list(layer_cores)
        return given

    def given_layer_cores(self, names: list[str]) -> np.ndarray:
        """(n, L) the given cores per layer of `names` (0 where a point gives none)."""
        out = np.zeros((self.n, len(names)), np.int64)
        for j, given in enumerate(self.layer_cores):
            if given is not None:
                if set(given) != set(names):
                    raise ValueError(f"cores per layer name {sorted(set(given) ^ set(names))[:3]}: give every "
                                     "layer of the network, and no other")
                out[j] = [given[name] for name in names]
        return out

    @classmethod
    def of(cls, arch: ArchConfig) -> "Chips":
        """One design point."""
        return cls([arch.model_dump()])


def take_points(points: Any, rows: np.ndarray) -> Any:
    """A copy of `points` (a `Chips`, or its `reuse.CoreLevels`) with every per-point field indexed by
    `rows`: each array or list field has one entry per point, dict fields hold such arrays or lists, and an
    object field with its own `n` is taken alike; a scalar is shared by every point and kept."""
    def pick(value):
        if isinstance(value, dict):
            return {k: pick(v) for k, v in value.items()}
        if hasattr(value, "n"):
            return take_points(value, rows)
        if np.ndim(value) == 0 or isinstance(value, str):
            return value
        if len(value) != points.n:
            raise ValueError(f"take_points: a field of {type(points).__name__} is not one entry per point")
        return value[rows] if isinstance(value, np.ndarray) else [value[i] for i in rows]

    out = copy.copy(points)
    for name, value in vars(points).items():
        setattr(out, name, len(rows) if name == "n" else pick(value))
    return out
