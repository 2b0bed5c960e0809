"""Chip area in mm^2: the silicon an arch config describes, priced per unit with a cited area table.

    arch_configs/area/<technology>.yaml   area per SRAM bit and per logic unit at one node, with sources
                                          (each figure says whether it was checked against its source)

The technology is the energy table's name (`horowitz-45nm`, `loihi-14nm`): a chip
priced with an energy table is built in that table's node. What is counted, per
chip (a first-order floorplan, as Accelergy and SpikeSim add up their units):

* core SRAM: cores x sram_bytes x 8 bits x (SRAM cell area / array efficiency);
* global buffer: its bytes, at the same area per bit;
* accumulators: cores x acs_per_cycle adders; MAC units: cores x macs_per_cycle;
* routers: one per core, in proportion to the link width (links are wires
  over the cores and take no area of their own). The per-link-bit figure is
  the least certain number here: a 65 nm router scaled to 45 nm, whose
  inputs were not verified (see arch_configs/area/horowitz-45nm.yaml).

Control logic, neuron-update units, I/O pads and DRAM PHYs are not counted:
the figure is a lower bound on a die. Written over arrays of design points,
as the closed form is, so a sweep prices thousands of chips in one call.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import Field

from ..arch import ArchConfig
from ..paths import ARCH_DIR
from ..report import AREA as AREA_KEYS, Report
from ..schema import Strict, load_yaml

AREA_DIR = ARCH_DIR / "area"
UM2_PER_MM2 = 1e6


class AreaTable(Strict):
    """Area per unit at one technology node, in um^2. Every number cites its source in the YAML."""

    name: str
    source: str
    sram_bitcell_um2: float = Field(gt=0, le=1e3)
    sram_array_efficiency: float = Field(gt=0, le=1)
    ac_um2: float = Field(ge=0, le=1e8)
    mac_um2: float = Field(ge=0, le=1e8)
    router_um2_per_link_bit: float = Field(ge=0, le=1e8)

    @property
    def sram_um2_per_bit(self) -> float:
        """A bit of an SRAM macro: its cell, plus its share of the macro's periphery."""
        return self.sram_bitcell_um2 / self.sram_array_efficiency


@lru_cache(maxsize=16)
def area_table(technology: str) -> AreaTable | None:
    """The shipped area table of this technology (an energy table's name), or None if there is none."""
    path = AREA_DIR / f"{technology}.yaml"
    return load_yaml(path, AreaTable) if path.is_file() else None


def provided_sram_bytes(archs: list[dict[str, Any]]) -> np.ndarray:
    """The SRAM a design provides on one chip: every core's plus the global buffer."""
    return np.array([a["cores"]["count"] * a["cores"]["sram_bytes"] + a["global_buffer"]["bytes"] for a in archs],
                    dtype=float)


def chip_area_mm2(archs: list[dict[str, Any]], table: AreaTable) -> dict[str, np.ndarray]:
    """Area of one chip of each design point, by part (AREA_KEYS) and 'total', in mm^2."""
    def col(get):
        return np.array([get(a) for a in archs], dtype=float)

    cores = col(lambda a: a["cores"]["count"])
    bit = table.sram_um2_per_bit
    um2 = {"core_sram": cores * col(lambda a: a["cores"]["sram_bytes"]) * 8 * bit,
           "global_buffer": col(lambda a: a["global_buffer"]["bytes"]) * 8 * bit,
           "accumulators": cores * col(lambda a: a["cores"]["acs_per_cycle"]) * table.ac_um2,
           "mac_units": cores * col(lambda a: a["cores"]["macs_per_cycle"]) * table.mac_um2,
           "routers": cores * col(lambda a: a["interconnect"]["link_bits_per_cycle"]) * table.router_um2_per_link_bit}
    mm2 = {k: v / UM2_PER_MM2 for k, v in um2.items()}
    mm2["total"] = sum(mm2[k] for k in AREA_KEYS)
    return mm2


def technology(arch: ArchConfig) -> str:
    return arch.energy.name if arch.energy is not None else str(arch.energy_table)


def with_area(report: Report, arch: ArchConfig) -> Report:
    """The report with the chip's area (total and by part) and the SRAM it provides; returns it.
    Without an area table for the arch's technology the area stays None and a note says why."""
    point = [arch.model_dump()]
    report.sram_provided_bytes = float(provided_sram_bytes(point)[0])
    table = area_table(technology(arch))
    if table is None:
        note = (f"no area table for technology '{technology(arch)}': add arch_configs/area/{technology(arch)}.yaml "
                "to report chip area")
        if note not in report.notes:
            report.notes.append(note)
        return report
    parts = chip_area_mm2(point, table)
    report.area_mm2 = float(parts["total"][0])
    report.area_breakdown_mm2 = {k: float(parts[k][0]) for k in AREA_KEYS}
    return report
