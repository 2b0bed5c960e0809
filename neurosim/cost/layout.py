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
  double-buffered output step need; spare cores go only where they lower
  the pipeline's latency (`SpatialCores`), so more cores never slow it.
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
    bits = np.where(work.spiking[None, :], chips.membrane_bits[:, None] * work.state_words[None, :],
                    chips.activation_bits[:, None])
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
    state = np.where(work.spiking[None, :],
                     per_point(neuron_updates) * chips.membrane_bits[:, None] * work.state_words[None, :],
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


class SpatialTraffic:
    """What the spatial mapping sends over the network per run, as a function of the cores per layer: a
    spike is one packet to every core of every consuming layer (and one event-queue write and read
    there); a real-valued output goes as dense values to each consumer."""

    def __init__(self, work: Workload, chips: Chips):
        steps = step_bits(work, chips)
        self.dense = np.zeros(chips.n)                 # real-valued outputs: independent of the cores
        self.per_core = np.zeros((chips.n, work.L))    # spike bits each core of a layer receives
        for i in range(work.L):
            if work.spiking[i]:
                for c in work.consumers[i]:
                    self.per_core[:, c] += work.spikes_out[i] * chips.packet_bits
            else:
                self.dense = self.dense + steps[:, i] * work.T * max(1, len(work.consumers[i]))

    def queue_bits(self, cores: np.ndarray) -> np.ndarray:
        """Event-queue bits written (and read) at destination cores, for `cores` ((..., n, L)) per layer."""
        return (cores * self.per_core).sum(axis=-1)

    def network_bits(self, cores: np.ndarray, points=slice(None)) -> np.ndarray:
        """Network bits for `cores` of the given points (all, or an index array of them)."""
        return self.dense[points] + (cores * self.per_core[points]).sum(axis=-1)


def spatial_latency(work: Workload, chips: Chips, table: EnergyTable, cores: np.ndarray,
                    traffic: SpatialTraffic) -> tuple:
    """(pipeline compute cycles, network cycles, per-layer cycles) of a spatial allocation: latency =
    (T + depth - 1) x the slowest stage's whole cycles per step, or the network time if longer."""
    per_layer = layer_cycles(work, cores, chips, table)
    return pipeline_cycles(work, per_layer / work.T), traffic.network_bits(cores) / chips.noc_rate, per_layer


def pipeline_cycles(work: Workload, step_cycles: np.ndarray) -> np.ndarray:
    """The spatial pipeline's compute time: (T + depth - 1) x the slowest stage's cycles per step."""
    return step_cycles.max(axis=-1) * (work.T + work.depth - 1)


# Candidate stage times for the spatial allocation: the minimum allocation's slowest stage time, then
# STAGE_SHRINK times less at each step, down to 1e-4 of it (finer than 4096-fold parallelism needs).
STAGE_SHRINK, STAGE_CANDIDATES = 0.8, 42


class SpatialCores:
    """Cores per layer in the spatial mapping, and whether the chip has enough.

    Each layer first gets the cores its weights, membranes and a double-buffered output step need. Spare
    cores are then given by a stated objective, the pipeline's latency: for each candidate stage time
    tau (a grid that does not depend on the chip's core count), every layer gets the cores that bring its
    compute per step under tau; the candidate with the lowest latency (compute or network, whichever
    bounds) among those the chip has cores for wins, ties to the fewest cores. Cores that would not
    lower the latency stay idle. A chip with more cores has every candidate of a smaller one, so more
    cores never give a slower pipeline.
    """

    def __init__(self, work: Workload, chips: Chips, table: EnergyTable):
        self.need_bytes = work.weight_bytes[None, :] + state_bytes(work, chips) + 2 * step_bits(work, chips) / 8
        self.neuron = NeuronFit(work, chips, np.ones((chips.n, work.L), bool), chips.core_sram.astype(float), True)
        min_cores = np.maximum(1, np.ceil(self.need_bytes / chips.core_sram[:, None])).astype(np.int64)
        self.min_total = min_cores.sum(axis=1)
        self.fits = (self.min_total <= chips.cores) & self.neuron.fits
        self.traffic = SpatialTraffic(work, chips)
        self.cores = self._by_latency(work, chips, table, min_cores)

    def _by_latency(self, work: Workload, chips: Chips, table: EnergyTable, min_cores: np.ndarray) -> np.ndarray:
        """The candidate with the lowest latency, found by bisection: along the grid (shrinking tau) every
        layer's cores only grow, so compute time only falls, network traffic only rises, and the chip runs
        out of cores at some candidate; the best is where compute meets the network, or the last that fits.
        Only points whose chip holds the minimum allocation are searched (the others are infeasible)."""
        one_core = compute_cycles(*datapath_ops(work.acs, work.ac_bit_ops, work.neuron_updates, macs(work, chips),
                                                work.other_ops, table), np.ones(chips.n, np.int64), chips)
        ok = np.flatnonzero(self.fits)
        one_core, least = one_core[ok], min_cores[ok]
        start = (one_core / least).max(axis=1)          # slowest stage of the minimum allocation

        def at(k: np.ndarray):
            """Cores, compute and network cycles of candidate k[j] for each point j."""
            tau = start * STAGE_SHRINK ** k
            cores = np.maximum(least, np.ceil(one_core / tau[:, None] * (1 - 1e-12)))
            compute = pipeline_cycles(work, whole_cycles(one_core / cores, work.timesteps) / work.timesteps)
            return cores, compute, self.traffic.network_bits(cores, ok) / chips.noc_rate[ok]

        def first(test) -> np.ndarray:
            """Per point, the first candidate in 0..K for which test(candidate) holds (K: none)."""
            lo, hi = np.zeros(len(ok), np.int64), np.full(len(ok), STAGE_CANDIDATES)
            while (lo < hi).any():
                mid = (lo + hi) // 2
                holds = test(np.minimum(mid, STAGE_CANDIDATES - 1)) & (lo < hi)
                hi, lo = np.where(holds, mid, hi), np.where(holds | (lo >= hi), lo, mid + 1)
            return lo

        last = first(lambda k: at(k)[0].sum(axis=1) > chips.cores[ok]) - 1        # the last candidate that fits
        meet = np.minimum(first(lambda k: np.greater_equal(*at(k)[:0:-1])), last)   # network >= compute
        below = np.maximum(meet - 1, 0)
        cores_meet, compute_meet, network_meet = at(meet)
        cores_below, compute_below, network_below = at(below)
        take_below = np.maximum(compute_below, network_below) <= np.maximum(compute_meet, network_meet)
        chosen = min_cores.copy()
        chosen[ok] = np.where(take_below[:, None], cores_below, cores_meet)
        return chosen.astype(np.int64)

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
