"""The hardware description: an arch config (YAML) and the energy table it names.

    arch_configs/<name>.yaml          the chip: clock, cores, buffers, DRAM (or HBM stacks), NoC, mapping,
                                      and optionally how many chips and their links
    arch_configs/energy/<name>.yaml   the technology: energy per event, with sources

Unknown keys, missing keys and impossible values are refused with the file,
the key and the fix (see `neurosim.schema`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from pydantic import Field, PrivateAttr, field_validator, model_validator

from .errors import NeurosimError
from .paths import ARCH_DIR, ENERGY_DIR, resolve
from .schema import FIX_MARK, Strict, load_yaml, validate


# Bounds of physical sense. A value outside them is a typo or a unit slip, and would make results
# overflow or vanish: refused with the bound, not priced. Each bound is far beyond any built chip.
PJ_PER_EVENT = 1e6        # 1 uJ per operation or access: a million times a 45 nm fp32 multiply
PJ_PER_BIT = 1e5          # 100 nJ per bit moved: ten thousand times DRAM's
MAX_BYTES = 2**50         # 1 PiB of any one memory
MAX_COUNT = 10**8         # cores, lanes, bits per cycle: a wafer-scale engine has under a million cores


class SramPoint(Strict):
    bytes: int = Field(gt=0, le=MAX_BYTES)
    read_pj_per_bit: float = Field(ge=0, le=PJ_PER_BIT)
    write_pj_per_bit: float = Field(ge=0, le=PJ_PER_BIT)


class EnergyTable(Strict):
    """Energy per event, in picojoules. Every number cites its source in the YAML."""

    name: str
    source: str
    ac_pj: float = Field(ge=0, le=PJ_PER_EVENT)
    mac_pj: float = Field(ge=0, le=PJ_PER_EVENT)
    neuron_update_pj: float = Field(ge=0, le=PJ_PER_EVENT)
    other_op_pj: float = Field(ge=0, le=PJ_PER_EVENT)
    shift_add_pj: float = Field(ge=0, le=PJ_PER_EVENT)
    sram: list[SramPoint] = Field(min_length=1)
    dram_read_pj_per_bit: float = Field(ge=0, le=PJ_PER_BIT)
    dram_write_pj_per_bit: float = Field(ge=0, le=PJ_PER_BIT)
    interconnect_pj_per_bit_mm: float = Field(ge=0, le=PJ_PER_BIT)
    # True where the published per-synaptic-op energy already includes the
    # weight read and the accumulator update (e.g. Loihi's "synaptic spike op").
    ac_includes_memory: bool = False
    # True where the published neuron-update energy already includes reading and writing the neuron's
    # state (e.g. Loihi's measured compartment update): the state's SRAM accesses are not charged again.
    neuron_update_includes_memory: bool = False
    # How a k-bit multi-level (GIF) spike is paid: k ACs, or one AC plus a shift-add.
    multilevel_spike: Literal["per_bit", "shift_add"] = "per_bit"

    @model_validator(mode="after")
    def _sorted(self):
        sizes = [p.bytes for p in self.sram]
        if sizes != sorted(set(sizes)):
            raise ValueError("sram points must be listed by strictly increasing 'bytes'")
        return self

    def sram_pj_per_bit(self, array_bytes, op: Literal["read", "write"]):
        """Per-bit access energy of an SRAM array of this size (a number or an array of sizes),
        interpolated in log(size). Outside the table's range the nearest point is used (no extrapolation).
        """
        sizes = np.log([p.bytes for p in self.sram])
        energies = [getattr(p, f"{op}_pj_per_bit") for p in self.sram]
        return np.interp(np.log(array_bytes), sizes, energies)


def _bank_within(bank: int | None, array: int | None, array_key: str) -> int | None:
    if bank is not None and array is not None and bank > array:
        raise ValueError(f"a bank is part of its array, and {bank} B is larger than {array_key} ({array} B)"
                         f"{FIX_MARK}give bank_bytes <= {array_key}, or leave bank_bytes out (one array)")
    return bank


# -- Memory levels inside a core (issue 22: data reuse) --------------------------------------------------
# Timeloop/ZigZag style: below a core's SRAM sit small memories (a register file, an accumulator buffer),
# each holding some of a layer's tensors, so a datum fetched once from SRAM serves many operations.
# `cost.reuse` counts each level's reads and writes from the layer's loop nest (real-valued layers) or
# its spike events (spiking layers). A core without levels is today's "no reuse" model: one SRAM weight
# read per AC or MAC, one membrane read and write per neuron update.
TENSORS = ("weights", "inputs", "outputs")


class MemoryLevel(Strict):
    """One memory inside a core, below its SRAM. `outputs` are partial sums (real-valued layers) or
    membranes (spiking layers)."""

    name: str
    bytes: int = Field(gt=0, le=MAX_BYTES)                 # capacity per core
    holds: list[Literal["weights", "inputs", "outputs"]] = Field(min_length=1)
    width_bits: int = Field(gt=0, le=MAX_COUNT)           # bits one access moves
    read_pj: float = Field(ge=0, le=PJ_PER_EVENT)         # energy of one read of width_bits
    write_pj: float = Field(ge=0, le=PJ_PER_EVENT)        # energy of one write of width_bits
    # Its port: bits it reads or writes per cycle per core (reads and writes share it), which bounds a
    # layer's step time (`cost.layout.busy_cycles`). Omitted: the level never holds the datapath up.
    bits_per_cycle: int | None = Field(None, gt=0, le=MAX_COUNT)

    @model_validator(mode="after")
    def _sane(self):
        if len(set(self.holds)) != len(self.holds):
            raise ValueError(f"level '{self.name}' names a tensor twice in 'holds'{FIX_MARK}list each of "
                             "weights, inputs, outputs at most once")
        if self.width_bits > 8 * self.bytes:
            raise ValueError(f"level '{self.name}' moves {self.width_bits} bits an access but holds only "
                             f"{8 * self.bytes}{FIX_MARK}give width_bits <= 8 x bytes")
        return self

    def pj_per_bit(self, op: Literal["read", "write"]) -> float:
        return (self.read_pj if op == "read" else self.write_pj) / self.width_bits


class Dataflow(Strict):
    """How a core's loop nest uses its levels (see `cost.reuse`).

    stationary: the tensor a real-valued layer keeps in its level while the others stream past (its
      irrelevant loop innermost). events: a spiking layer's weight row is fetched from SRAM once per
      spike (`per_event`, as Loihi reads a synapse list per spike) or once per (input neuron, step, tile)
      and applied to every token of the tile that spiked on that neuron (`per_input`; needs a level that
      holds weights). membranes: held in the level that holds outputs while a tile of inputs is
      processed (`held`), or read-modify-written in SRAM on every event (`per_event`).
    """

    stationary: Literal["weight", "output", "input"] = "output"
    events: Literal["per_event", "per_input"] = "per_event"
    membranes: Literal["held", "per_event"] = "held"
    # Tile caps (sweepable): at most this many tokens (m), inputs (k) or outputs (n) per tile, each layer's
    # tile being the largest divisor of its size under both the cap and what its level holds. Omitted: as
    # large as the levels allow.
    tile_tokens: int | None = Field(None, gt=0, le=MAX_COUNT)
    tile_inputs: int | None = Field(None, gt=0, le=MAX_COUNT)
    tile_outputs: int | None = Field(None, gt=0, le=MAX_COUNT)
    # Where levels (or the core SRAM) have ports: `overlapped`, a step takes the longest of its compute and
    # each port's busy time (double-buffered levels); `serial`, their sum.
    ports: Literal["overlapped", "serial"] = "overlapped"


def _levels_within(levels: list[MemoryLevel] | None, sram_bytes: int | None,
                   dataflow: Dataflow | None) -> None:
    if not levels:
        if dataflow is not None and dataflow.events == "per_input":
            raise ValueError(f"dataflow.events 'per_input' keeps a weight row in a level, and the core has no "
                             f"levels{FIX_MARK}add a level that holds weights, or use events: per_event")
        return
    names = [lv.name for lv in levels]
    if len(set(names)) != len(names):
        raise ValueError(f"two levels are named '{next(n for n in names if names.count(n) > 1)}'"
                         f"{FIX_MARK}give each level its own name")
    for tensor in TENSORS:
        holders = [lv.name for lv in levels if tensor in lv.holds]
        if len(holders) > 1:
            raise ValueError(f"{tensor} are held in two levels ({', '.join(holders)}); one level per tensor "
                             f"is modelled below the core SRAM{FIX_MARK}keep {tensor} in one of them")
    big = next((lv for lv in levels if sram_bytes is not None and lv.bytes > sram_bytes), None)
    if big is not None:
        raise ValueError(f"level '{big.name}' ({big.bytes} B) is larger than the core SRAM it sits below "
                         f"({sram_bytes} B){FIX_MARK}give a level fewer bytes than sram_bytes")
    if dataflow is not None and dataflow.events == "per_input" and not any("weights" in lv.holds for lv in levels):
        raise ValueError(f"dataflow.events 'per_input' keeps a weight row in a level, and no level holds "
                         f"weights{FIX_MARK}add weights to a level's 'holds', or use events: per_event")


class Cores(Strict):
    count: int = Field(gt=0, le=MAX_COUNT)
    acs_per_cycle: int = Field(gt=0, le=MAX_COUNT)
    macs_per_cycle: int = Field(gt=0, le=MAX_COUNT)
    sram_bytes: int = Field(gt=0, le=MAX_BYTES)
    # Adds one accumulator (a (token, output) pair's membrane or partial sum) takes a cycle: 1 where every AC
    # or MAC lane owns its accumulator (output-stationary lanes), k where a k-input adder tree feeds it (a
    # dot-product unit). A layer does at most accumulators x this AC or MAC lane-ops a cycle
    # (`cost.layout.compute_cycles`); lanes beyond them idle.
    adds_per_accumulator: int = Field(1, gt=0, le=MAX_COUNT)
    # Size of one SRAM bank: an access is priced at the bank's size, not the whole array's. Omitted: one
    # array of sram_bytes. (Bank-select wiring is not priced.)
    bank_bytes: int | None = Field(None, gt=0)
    # A layer fed the network's constant real-valued input (an embedding held over the timesteps): false =
    # its product with the weights is computed once and the current held in core SRAM; true = recomputed
    # every timestep (no room to hold it).
    recompute_constant_input: bool = False
    # true: the cores skip zero weights, as SpiNNaker's and Loihi's synapse lists hold only the synapses that
    # exist: an event costs an AC per nonzero weight only, and a linear layer's weights are held as
    # compressed sparse columns (value + row index per nonzero), each read with its index. false: dense.
    zero_skipping: bool = False
    # Memory levels below the core SRAM, innermost first, and how the loop nest uses them. Omitted: no
    # reuse (one SRAM access per operation, as before levels existed).
    levels: list[MemoryLevel] | None = None
    dataflow: Dataflow | None = None
    # The core SRAM's port: bits read or written per cycle per core (as MemoryLevel.bits_per_cycle).
    sram_bits_per_cycle: int | None = Field(None, gt=0, le=MAX_COUNT)

    @field_validator("bank_bytes")
    @classmethod
    def _bank_fits(cls, bank, info):
        return _bank_within(bank, info.data.get("sram_bytes"), "sram_bytes")

    @model_validator(mode="after")
    def _levels_fit(self):
        _levels_within(self.levels, self.sram_bytes, self.dataflow)
        return self


class GlobalBuffer(Strict):
    bytes: int = Field(gt=0, le=MAX_BYTES)
    bytes_per_cycle: int = Field(gt=0, le=MAX_COUNT)
    bank_bytes: int | None = Field(None, gt=0)   # as Cores.bank_bytes

    @field_validator("bank_bytes")
    @classmethod
    def _bank_fits(cls, bank, info):
        return _bank_within(bank, info.data.get("bytes"), "bytes")


class Dram(Strict):
    bytes_per_s: float = Field(ge=1e3, le=1e16)   # 1 kB/s to 10 PB/s (an HBM3e stack: about 1.2 TB/s)


class Interconnect(Strict):
    topology: Literal["mesh"] = "mesh"
    hop_mm: float = Field(gt=0, le=1e3)          # a hop longer than a metre is not on a chip
    link_bits_per_cycle: int = Field(gt=0, le=MAX_COUNT)
    spike_packet_bits: int = Field(gt=0, le=MAX_COUNT)
    # How a packet reaches several cores: one copy along a tree (multicast routers, as SpiNNaker's), or one
    # copy per destination core (unicast). `cost.chips.delivery_links` prices both from the mesh.
    delivery: Literal["multicast", "unicast"] = "multicast"


class MemoryStacks(Strict):
    """HBM (or other DRAM) stacks beside the chip, from a part's datasheet or paper: they are the chip's
    DRAM (bandwidth = stacks x per-stack bandwidth), hold what does not fit on chip (capacity), and price
    its traffic per bit in place of the energy table's DRAM figures."""

    part: str                                                    # the part the numbers are from, e.g. "HBM3"
    stacks: int = Field(gt=0, le=1024)
    bytes_per_s_per_stack: float = Field(gt=0, le=1e14)
    bytes_per_stack: int = Field(gt=0, le=MAX_BYTES)
    read_pj_per_bit: float = Field(ge=0, le=PJ_PER_BIT)
    write_pj_per_bit: float = Field(ge=0, le=PJ_PER_BIT)

    @property
    def bytes_per_s(self) -> float:
        return self.stacks * self.bytes_per_s_per_stack

    @property
    def capacity_bytes(self) -> int:
        return self.stacks * self.bytes_per_stack


class ChipLinks(Strict):
    """Several copies of this chip, joined by links: a decoder's layers are split over them as a pipeline
    (neurosim.llm), and what crosses a link is priced per bit and bounded by its bandwidth."""

    count: int = Field(ge=1, le=1_000_000)
    link_bytes_per_s: float = Field(gt=0, le=1e14)               # one direction of one chip-to-chip link
    link_pj_per_bit: float = Field(ge=0, le=PJ_PER_BIT)
    topology: Literal["ring", "line", "all_to_all"] = "ring"      # the hops back from the last chip to the first

    def hops_back(self) -> int:
        """Links from the last chip of the pipeline to the first (the sampled token goes back)."""
        return 0 if self.count == 1 else (self.count - 1 if self.topology == "line" else 1)


class Kernels(Strict):
    """A machine that runs a network as kernels launched one after another (a GPU): besides its work, each
    kernel takes a fixed time (launch, ramp-up, drain) in which no work is done. `neurosim.llm` adds it per
    kernel of a phase; how many kernels each layer launches is the workload's (the software's) count.
    Or `profile`: a CSV of each operator's time measured alone on the machine (benchmarks/llm_gpu_ops.py),
    read from the config's folder; `neurosim.llm.operators` then sets each layer's time (launches included)."""

    fixed_s: float | None = Field(None, ge=0, le=1.0)
    profile: str | None = Field(None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _one_way(self):
        if (self.fixed_s is None) == (self.profile is None):
            raise ValueError(f"give fixed_s (a time per kernel) or profile (measured operator times), not "
                             f"{'both' if self.profile else 'neither'}{FIX_MARK}keep one: a profile's times "
                             "already hold each kernel's fixed time")
        return self


class Precision(Strict):
    membrane_bits: int = Field(gt=0, le=64)
    activation_bits: int = Field(gt=0, le=64)


class Mapping(Strict):
    kind: Literal["spatial", "sequential"]
    carry: Literal["spikes", "rates"] = "spikes"
    # What a mapping's free choices are made for: the spatial mapping's spare cores (`cost.layout.SpatialCores`)
    # and the sequential pool's size (`cost.closed_form.pool_cores`); the lowest latency, energy, or energy x
    # delay. A core that does not improve it stays idle.
    objective: Literal["latency", "energy", "edp"] = "edp"


class ArchConfig(Strict):
    name: str
    clock_hz: float = Field(ge=1e3, le=1e11)      # 1 kHz to 100 GHz: any clocked or time-stepped chip
    energy_table: str
    static_power_w: float = Field(ge=0, le=1e5)   # 100 kW: beyond a wafer-scale system's whole power
    cores: Cores
    global_buffer: GlobalBuffer
    dram: Dram | None  # null: the chip has no DRAM; what does not fit is infeasible
    interconnect: Interconnect
    precision: Precision
    mapping: Mapping
    hbm: MemoryStacks | None = None      # DRAM stacks with capacity and their own energy; sets `dram`
    chips: ChipLinks | None = None       # many chips (neurosim.llm); None: one chip
    kernels: Kernels | None = None       # a fixed time per kernel (neurosim.llm); None: no such cost
    # Set by the loader, not by the YAML: where this config came from, and its energy table.
    _path: str = PrivateAttr("(in memory)")
    _energy: EnergyTable | None = PrivateAttr(None)
    _operators: object = PrivateAttr(None)   # kernels.profile's table, read by load_arch

    @model_validator(mode="before")
    @classmethod
    def _dram_from_stacks(cls, data):
        """With `hbm`, the DRAM is those stacks: `dram` is derived from them (or, if given, must agree)."""
        stacks = data.get("hbm") if isinstance(data, dict) else None
        if not isinstance(stacks, dict) or not all(isinstance(stacks.get(k), (int, float)) and
                                                   not isinstance(stacks.get(k), bool)
                                                   for k in ("stacks", "bytes_per_s_per_stack")):
            return data   # no stacks, or stacks the schema will refuse with a clearer message
        total = stacks["stacks"] * stacks["bytes_per_s_per_stack"]
        dram = data.get("dram")
        if dram is None:
            return {**data, "dram": {"bytes_per_s": float(total)}}
        given = dram.get("bytes_per_s") if isinstance(dram, dict) else None
        if isinstance(given, (int, float)) and abs(given - total) > 1e-9 * total:
            raise ValueError(f"dram.bytes_per_s ({given:g}) differs from hbm's stacks x bytes_per_s_per_stack "
                             f"({total:g}){FIX_MARK}leave dram out (or null): the hbm stacks are the DRAM")
        return data

    @property
    def path(self) -> str:
        return self._path

    @property
    def energy(self) -> EnergyTable | None:
        return self._energy

    @property
    def operators(self):
        """The measured operator times of `kernels.profile` (neurosim.llm.operators.OperatorTable), or None."""
        if self.kernels is None or self.kernels.profile is None:
            return None
        if self._operators is None:
            raise self.refuse("kernels.profile", "the profile was not read (a config made in memory)",
                              "load the config from its file with neurosim.arch.load_arch")
        return self._operators

    def loaded_from(self, path: str, energy: EnergyTable) -> "ArchConfig":
        """Record where this config came from (named in its errors) and its energy table; returns it."""
        if self.hbm is not None:     # the stacks' own per-bit energy prices DRAM traffic
            energy = energy.model_copy(update={"dram_read_pj_per_bit": self.hbm.read_pj_per_bit,
                                               "dram_write_pj_per_bit": self.hbm.write_pj_per_bit})
        self._path, self._energy = path, energy
        return self

    def with_mapping(self, kind: str, carry: str | None = None) -> "ArchConfig":
        mapping = validate({"kind": kind, "carry": carry or self.mapping.carry, "objective": self.mapping.objective},
                           Mapping, f"{self.path} (mapping)")
        return self.model_copy(update={"mapping": mapping})

    def refuse(self, key: str, problem: str, fix: str) -> NeurosimError:
        return NeurosimError(self.path, key, problem, fix)


def load_energy_table(name_or_path: str | Path) -> EnergyTable:
    return load_yaml(resolve(name_or_path, ENERGY_DIR, (".yaml", ".yml"), "energy table"), EnergyTable)


def load_arch(name_or_path: str | Path) -> ArchConfig:
    """A shipped config by name (e.g. 'edge-45nm') or a path to a YAML file."""
    path = resolve(name_or_path, ARCH_DIR, (".yaml", ".yml"), "arch config")
    arch = load_yaml(path, ArchConfig)
    table = arch.energy_table
    if (path.parent / table).is_file():  # a relative path is read from the config's own folder
        table = path.parent / table
    try:
        energy = load_energy_table(table)
    except NeurosimError as exc:
        if exc.field == "energy table":
            raise NeurosimError(str(path), "energy_table", exc.problem, exc.fix) from None
        raise
    arch.loaded_from(str(path), energy)
    if arch.kernels is not None and arch.kernels.profile is not None:   # refused at load, not mid-run
        from .llm.operators import load_operator_table

        arch._operators = load_operator_table(path.parent / arch.kernels.profile, str(path))
    return arch
