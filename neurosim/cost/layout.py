"""Mapping decisions, over arrays of design points: what goes where, and how big it is.

Shared by the closed form (`cost.closed_form`) and the simulator (`sim`), so
the two cannot map a network differently. Every function takes a `Workload`
(length-L arrays, one network) and `Chips` (length-n arrays, n design points)
and returns arrays of shape (n, L) or (n,).

* A layer's state is its membranes (spiking) or its output values (real),
  one per token and live output neuron.
* A step of a layer's output is a dense bitmap of spikes (k bits per event
  for a k-bit neuron) or its real values.
* Sequential mapping carries each layer's output to its readers either as
  the whole spike history (`spikes`) or as spike counts (`rates`); a real
  output is carried as its time average.
* Spatial: each layer first gets the cores its weights, membranes and a
  double-buffered output step need; spare cores are shared by compute work.
* Sequential: all weights stay in core SRAM when they fit beside the largest
  layer's membranes; otherwise layers are pinned in order into half of the
  SRAM and the rest are streamed from DRAM. A layer whose streamed weights
  and membranes exceed the free SRAM runs in several passes over its outputs.
"""

from __future__ import annotations

import numpy as np

from ..arch import EnergyTable
from .chips import Chips
from .workload import Workload


def per_point(x) -> np.ndarray:
    """A per-layer array (L,) as one row shared by every point, or an (n, L) array as it is."""
    x = np.asarray(x, dtype=float)
    return x if x.ndim == 2 else x[None, :]


def state_bytes(work: Workload, chips: Chips) -> np.ndarray:
    """Membranes (spiking) or output values (real), plus a held constant input current where one is held."""
    bits = np.where(work.spiking[None, :], chips.membrane_bits[:, None], chips.activation_bits[:, None])
    held = (work.spiking & work.constant_input)[None, :] & ~chips.recompute_constant_input[:, None]
    bits = bits + np.where(held, chips.activation_bits[:, None], 0)
    return work.values_per_step[None, :] * bits / 8


def macs(work: Workload, chips: Chips) -> np.ndarray:
    """MACs per point and layer: a constant input current recomputed every step costs its product t times."""
    again = work.constant_input[None, :] & chips.recompute_constant_input[:, None]
    return np.where(again, (work.macs * work.timesteps)[None, :], work.macs[None, :])


def step_bits(work: Workload, chips: Chips) -> np.ndarray:
    """One timestep of each layer's output."""
    bits = np.where(work.spiking[None, :], work.spike_bits[None, :], chips.activation_bits[:, None])
    return work.values_per_step[None, :] * bits


def carry_bits(work: Workload, chips: Chips, carry: str) -> np.ndarray:
    """What the sequential mapping keeps of each layer's output for its readers."""
    steps = step_bits(work, chips)
    if carry == "spikes":
        return steps * work.timesteps[None, :]
    return np.where(work.spiking[None, :], (work.values_per_step * work.count_bits)[None, :], steps)


def datapath_ops(acs, ac_bit_ops, neuron_updates, macs, other_ops, table: EnergyTable) -> tuple:
    """Operations on the AC datapath and on the MAC datapath. A k-bit spike takes the time the energy
    table prices it at: k AC-lane operations when paid per bit (bit-serial), one when shift-added."""
    lane = ac_bit_ops if table.multilevel_spike == "per_bit" else acs
    return lane + neuron_updates, macs + other_ops


def compute_cycles(ac_ops, mac_ops, cores: np.ndarray, chips: Chips) -> np.ndarray:
    """Cycles of per-layer work (length-L op arrays) on `cores` cores ((n, L) or (n,) broadcast): AC-path ops
    at the cores' ACs per cycle plus MAC-path ops at their MACs per cycle, as fractions of a cycle."""
    cores = cores if cores.ndim == 2 else cores[:, None]
    return (per_point(ac_ops) / (cores * chips.acs_per_cycle[:, None])
            + per_point(mac_ops) / (cores * chips.macs_per_cycle[:, None]))


def whole_cycles(cycles, steps):
    """`cycles` of work spread evenly over `steps` steps, each step that has work taking whole cycles."""
    per_step = np.asarray(cycles, dtype=float) / steps
    return steps * np.ceil(per_step * (1 - 1e-12))   # 1e-12: no extra cycle from rounding noise


def layer_cycles(work: Workload, cores: np.ndarray, chips: Chips, table: EnergyTable, steps=None) -> np.ndarray:
    """Whole cycles of each layer's run on `cores` cores, its work spread over `steps` steps (default: its
    timesteps) of whole cycles each."""
    ac_ops, mac_ops = datapath_ops(work.acs, work.ac_bit_ops, work.neuron_updates, macs(work, chips),
                                   work.other_ops, table)
    return whole_cycles(compute_cycles(ac_ops, mac_ops, cores, chips), work.timesteps if steps is None else steps)


def core_access_bits(work: Workload, chips: Chips, ac_includes_memory: bool, acs, macs_done, neuron_updates,
                     dense_steps) -> tuple[np.ndarray, np.ndarray]:
    """Core-SRAM bits read and written for the given per-layer work ((L,) or (n, L) arrays), per point.

    Output-stationary cores: an AC or MAC reads one weight (an attention
    layer's operand at activation precision); a neuron update reads and
    writes one membrane; a real-valued output reads and writes its value once
    per token and step (`dense_steps`: the steps each layer ran).
    """
    weight_reads = per_point(macs_done) if ac_includes_memory else per_point(acs) + per_point(macs_done)
    weight_bits = np.where(work.attention[None, :], chips.activation_bits[:, None], work.weight_bits[None, :])
    state = np.where(work.spiking[None, :], per_point(neuron_updates) * chips.membrane_bits[:, None],
                     per_point(work.values_per_step * dense_steps) * chips.activation_bits[:, None])
    reads = (weight_reads * weight_bits + state).sum(axis=1)
    return reads, state.sum(axis=1)


class NeuronFit:
    """Does one output neuron of every layer fit the SRAM room of one core? A layer is split over cores by
    output neurons, so a core must hold at least one: its state for every token, its weight row where
    the row is held in that core, and (`with_steps`) two steps of its output."""

    def __init__(self, work: Workload, chips: Chips, row_held: np.ndarray, room: np.ndarray, with_steps: bool):
        live = np.maximum(work.live, 1.0)
        self.need = (state_bytes(work, chips) + np.where(row_held, work.weight_bytes[None, :], 0.0)
                     + (2 * step_bits(work, chips) / 8 if with_steps else 0.0)) / live[None, :]
        self.need = np.where(work.live[None, :] > 0, self.need, 0.0)
        self.room = room
        short = self.need > room[:, None] * (1 + 1e-12)
        self.fits = ~short.any(axis=1)
        self.first = short.argmax(axis=1)      # the first layer that does not fit, where one does not

    def shortfall(self, work: Workload, j: int, what: str) -> str:
        i = self.first[j]
        return (f"{what} ({self.room[j]:.6g} B) cannot hold one output neuron of layer '{work.names[i]}' "
                f"({self.need[j, i]:.6g} B: its state for {work.seq_len[i]:.0f} tokens and its weights), and a "
                "layer is split over cores by output neurons")


class SpatialCores:
    """Cores per layer in the spatial mapping, and whether the chip has enough."""

    def __init__(self, work: Workload, chips: Chips, table: EnergyTable):
        self.need_bytes = work.weight_bytes[None, :] + state_bytes(work, chips) + 2 * step_bits(work, chips) / 8
        self.neuron = NeuronFit(work, chips, np.ones((chips.n, work.L), bool), chips.core_sram.astype(float), True)
        min_cores = np.maximum(1, np.ceil(self.need_bytes / chips.core_sram[:, None])).astype(np.int64)
        self.min_total = min_cores.sum(axis=1)
        self.fits = (self.min_total <= chips.cores) & self.neuron.fits
        load = compute_cycles(*datapath_ops(work.acs, work.ac_bit_ops, work.neuron_updates, macs(work, chips),
                                            work.other_ops, table), np.ones(chips.n, np.int64), chips)
        spare = np.maximum(chips.cores - self.min_total, 0)
        share = spare[:, None] * load / np.maximum(load.sum(axis=1), 1e-30)[:, None]
        self.cores = min_cores + np.floor(share).astype(np.int64)

    def shortfall(self, work: Workload, chips: Chips, j: int) -> str:
        """Why point j's chip cannot hold the spatial mapping (the first shortfall)."""
        if not self.neuron.fits[j]:
            return self.neuron.shortfall(work, j, "a core's SRAM")
        return (f"spatial mapping needs {self.min_total[j]} cores of {chips.core_sram[j]} B SRAM to hold every "
                f"layer's weights, membranes and spike buffers ({self.need_bytes[j].sum() / 2**20:.1f} MiB); the "
                f"chip has {chips.cores[j]} (short by {self.min_total[j] - chips.cores[j]})")


class SequentialWeights:
    """Which layers' weights stay pinned in core SRAM, what is streamed, and the SRAM left for the rest."""

    def __init__(self, work: Workload, chips: Chips):
        capacity = chips.total_core_sram
        self.states = state_bytes(work, chips)
        largest_state = self.states.max(axis=1)
        all_fit = work.weight_bytes.sum() + largest_state <= capacity
        in_half = np.cumsum(work.weight_bytes)[None, :] <= ((capacity - largest_state) / 2)[:, None]
        self.pinned = np.where(all_fit[:, None], True, in_half)
        self.streamed = np.where(self.pinned, 0.0, work.weight_bytes[None, :])
        self.streams = ~self.pinned.all(axis=1)
        self.free = capacity - (work.weight_bytes[None, :] * self.pinned).sum(axis=1)
        need = self.streamed + self.states
        with np.errstate(divide="ignore", invalid="ignore"):
            passes = np.ceil(need / self.free[:, None])
        self.passes = np.where(need <= 0, 1, np.maximum(1, np.where(self.free[:, None] > 0, passes, 1)))
        self.passes = self.passes.astype(np.int64)
        # a pass splits a layer over the pool by output neurons: one core's share of the free SRAM must
        # hold one neuron (a streamed layer brings its row; a pinned layer's rows are already held)
        self.neuron = NeuronFit(work, chips, ~self.pinned, self.free / chips.cores, False)

    def no_room(self, work: Workload, chips: Chips, j: int) -> str:
        return (f"weights ({work.weight_bytes.sum() / 2**20:.1f} MiB) do not fit in the "
                f"{chips.total_core_sram[j] / 2**20:.1f} MiB of core SRAM and the chip has no DRAM to stream them from")


def widest_step(work: Workload, chips: Chips) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the layer with the largest output step and that step's bits."""
    steps = step_bits(work, chips)
    widest = steps.argmax(axis=1)
    return widest, steps[np.arange(chips.n), widest]


def buffer_refusal(work: Workload, chips: Chips, widest: np.ndarray, bits: np.ndarray, j: int
                   ) -> tuple[str, str, str]:
    """(field, problem, fix) for a global buffer that cannot hold one timestep of point j's widest layer."""
    need = bits[j] / 8
    return ("global_buffer.bytes", f"{chips.buffer_bytes[j]} B cannot hold one timestep of layer "
            f"'{work.names[widest[j]]}' ({need:.0f} B)", f"give the global buffer at least {int(np.ceil(need))} B")


def no_spill_room(layer_name: str, kept_bits: float, buffer_bytes: float) -> str:
    return (f"layer '{layer_name}' keeps {kept_bits / 8:.0f} B of inter-layer data; the global buffer "
            f"holds {buffer_bytes:.0f} B and there is no DRAM to spill to")
