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
  double-buffered output step need; spare cores go only where they improve
  the arch's stated objective (`SpatialCores`), so more cores never worsen
  it. Its network traffic: `SpatialTraffic`; the sequential pool's:
  `PoolTraffic` (one delivery model, `chips.delivery_links`).
* Sequential: all weights stay in core SRAM when they fit beside the largest
  layer's membranes; otherwise layers are pinned in order into half of the
  SRAM and the rest are streamed from DRAM. A layer whose streamed weights
  and membranes exceed the free SRAM runs in several passes over its outputs.
"""

from __future__ import annotations

import numpy as np

from ..arch import EnergyTable
from .energy import EventCounts, energy_breakdown_pj
from .chips import Chips, average_hops, centre_hops, delivery_links, mesh_bits_per_cycle
from .distinct import distinct, point_fields
from .workload import Workload
from . import reuse


# What follows from a chip's core count (`Chips._count_cores`): a pool of k cores, or the cores a spatial
# allocation uses, stand in for it wherever the count does not only bound what fits.
CORE_COUNT_FIELDS = ("cores", "total_core_sram", "buffer_hops", "mesh_bits_per_cycle")


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


def regenerated(work: Workload, carry: str, s: int) -> bool:
    """Whether readers of layer s regenerate its spikes from carried counts (carry: rates, s spiking)."""
    return carry == "rates" and bool(work.spiking[s])


def reads_per_pass(work: Workload, carry: str, i: int, s: int) -> float:
    """How often one pass of layer i reads source s's carried output: once, or, where its spikes are
    regenerated from counts, at every step: the Bernoulli draws are made at the global buffer's read port
    (one per input neuron and token each step), which reads the counts again each step rather than hold
    them, so the pool receives spikes as when spikes are carried while the buffer holds only counts."""
    return float(work.timesteps[i]) if regenerated(work, carry, s) else 1.0


def pool_input_bits(work: Workload, chips: Chips, carry: str, i: int, s: int, carried: np.ndarray) -> np.ndarray:
    """Bits one pass of layer i receives from source s, per point: the regenerated spikes of every step, or
    the `carried` bits ((n,): where they sit, in the buffer or DRAM) as they are."""
    if regenerated(work, carry, s):
        return step_bits(work, chips)[:, s] * work.timesteps[i]
    return carried


def datapath_ops(acs, ac_bit_ops, neuron_updates, macs, other_ops, table: EnergyTable) -> tuple:
    """Operations on the AC datapath and on the MAC datapath. A k-bit spike takes the time the energy
    table prices it at: k AC-lane operations when paid per bit (bit-serial), one when shift-added."""
    lane = ac_bit_ops if table.multilevel_spike == "per_bit" else acs
    return lane + neuron_updates, macs + other_ops


def compute_cycles(ac_ops, mac_ops, cores: np.ndarray, chips: Chips, accumulators=np.inf) -> np.ndarray:
    """Cycles of per-layer work (length-L op arrays) on `cores` cores ((n, L) or (n,) broadcast): AC-path ops
    at the cores' ACs per cycle plus MAC-path ops at their MACs per cycle, as fractions of a cycle. Each
    accumulator (`accumulators`: what a layer sums into in one step, `Workload.accumulators`)
    takes `cores.adds_per_accumulator` adds a cycle, so a layer with fewer accumulators than lanes leaves
    lanes idle, on either datapath."""
    cores = cores if cores.ndim == 2 else cores[:, None]
    adds = accumulator_adds(accumulators, chips)
    return (per_point(ac_ops) / np.minimum(cores * chips.acs_per_cycle[:, None], adds)
            + per_point(mac_ops) / np.minimum(cores * chips.macs_per_cycle[:, None], adds))


def accumulator_adds(accumulators, chips: Chips) -> np.ndarray:
    """(n, L) adds a cycle a layer's accumulators take, on either datapath (never 0: a layer without
    outputs has no work to divide)."""
    return np.maximum(np.asarray(accumulators, dtype=float) * chips.adds_per_accumulator[:, None], 1e-300)


def whole_cycles(cycles, steps):
    """`cycles` of work spread evenly over `steps` steps, each step that has work taking whole cycles."""
    per_step = np.asarray(cycles, dtype=float) / steps
    return steps * np.ceil(per_step * (1 - 1e-12))   # 1e-12: no extra cycle from rounding noise


def layer_cycles(work: Workload, cores: np.ndarray, chips: Chips, table: EnergyTable, steps=None) -> np.ndarray:
    """Whole cycles of each layer's run on `cores` cores, its work spread over `steps` steps (default: its
    timesteps) of whole cycles each; where the arch gives memory ports, each step as long as `busy_cycles`
    says."""
    return layer_time(work, cores, chips, table, steps)[0]


def layer_time(work: Workload, cores: np.ndarray, chips: Chips, table: EnergyTable, steps=None) -> tuple:
    """(`layer_cycles`, `pace`): each layer's whole cycles and what sets them, compute or a memory port."""
    ac_ops, mac_ops = datapath_ops(work.acs, work.ac_bit_ops, work.neuron_updates, macs(work, chips),
                                   work.other_ops, table)
    per_core = cores if cores.ndim == 2 else cores[:, None]
    ports = port_cycles(work, chips)
    ports = None if ports is None else ports / per_core
    steps = work.timesteps if steps is None else steps
    accumulators = work.accumulators * work.timesteps / steps     # a pass holds its share of the outputs
    compute = compute_cycles(ac_ops, mac_ops, cores, chips, accumulators)
    serial = chips.levels.serial[:, None]
    return busy_cycles(compute, ports, steps, serial), pace(compute, ports, chips.levels.port_names())


# -- Memory ports (issue 22): a level moving b bits at w bits per cycle is busy b / w cycles ----------------
def port_cycles(work: Workload, chips: Chips) -> np.ndarray | None:
    """(ports, n, L): cycles each layer's accesses over its run keep each memory port of one core busy
    (`cost.reuse.port_cycles`), or None where no point gives a port a width. Every access the dataflow
    makes counts, including those an energy table folds into its per-op energy (Loihi's synaptic op)."""
    if not chips.levels.ports.any():
        return None
    args = (work, chips, False, work.acs, macs(work, chips), work.neuron_updates)
    reads, writes = core_access_bits_by_layer(*args, work.timesteps)
    return reuse.port_cycles(work, chips.levels, chips.membrane_bits, chips.activation_bits, *args[2:], reads, writes)


def busy_cycles(compute, ports, steps, serial):
    """Whole cycles of work spread over `steps` steps: `compute` cycles, and `ports` ((ports, ...) cycles
    each memory port is busy, or None) either overlapped with it (a step takes the longest of its compute
    and each port's whole cycles) or, where `serial`, after it (their sum)."""
    if ports is None:
        return whole_cycles(compute, steps)
    overlapped = whole_cycles(np.maximum(compute, ports.max(axis=0)), steps)
    return np.where(serial, whole_cycles(compute, steps) + whole_cycles(ports, steps).sum(axis=0), overlapped)


COMPUTE = "compute"


def pace(compute, ports, names: list[list[str]]) -> np.ndarray:
    """(n, L) object array: what sets each layer's busy time, `COMPUTE`, or "<port> port" where that port is
    busy longer than the datapath computes (`ports`: (ports, n, L) busy cycles or None; `names`: per point,
    each port slot's name, `reuse.CoreLevels.port_names`). Overlapped ports: the one that stretches the step;
    serial ports: the largest part of the sum, as that is the part a designer would widen first."""
    compute = np.asarray(compute, dtype=float)
    if ports is None:
        return np.full(compute.shape, COMPUTE, dtype=object)
    ports = np.broadcast_to(ports, (len(ports),) + compute.shape)
    labels = np.array([[f"{name} port" for name in point] for point in names], dtype=object)
    named = labels[np.arange(compute.shape[0])[:, None], ports.argmax(axis=0)]
    return np.where(ports.max(axis=0) > compute * (1 + 1e-9), named, COMPUTE).astype(object)


SEQUENTIAL_BOUNDS = np.array([None, "DRAM", "global buffer", "interconnect"], dtype=object)   # after the pool's


def sequential_pace(pool_pace: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """(n, L): what sets each sequential layer's time: the pool's `pace` (compute or a core's memory port)
    where its time is the longest of `bounds` ((4, n, L): the pool's, DRAM's, the global buffer port's and
    the network's cycles, `SEQUENTIAL_BOUNDS`), else the transfer that takes longer."""
    longest = np.nan_to_num(bounds, nan=np.inf).argmax(axis=0)
    longer = np.take_along_axis(bounds, longest[None], axis=0)[0] > bounds[0] * (1 + 1e-9)
    return np.where(longer & (longest > 0), SEQUENTIAL_BOUNDS[longest], pool_pace).astype(object)


def busy_load(compute, ports, serial):
    """`busy_cycles` before rounding to whole cycles per step (what a core-allocation grid is cut from)."""
    if ports is None:
        return compute
    return np.where(serial, compute + ports.sum(axis=0), np.maximum(compute, ports.max(axis=0)))


def core_access_bits(work: Workload, chips: Chips, ac_includes_memory: bool, acs, macs_done, neuron_updates,
                     dense_steps) -> tuple[np.ndarray, np.ndarray]:
    """Core-SRAM bits read and written for the given per-layer work ((L,) or (n, L) arrays), per point."""
    reads, writes, _ = core_accesses_by_layer(work, chips, ac_includes_memory, acs, macs_done, neuron_updates,
                                              dense_steps)
    return reads.sum(axis=1), writes.sum(axis=1)


def core_accesses_by_layer(work: Workload, chips: Chips, ac_includes_memory: bool, acs, macs_done, neuron_updates,
                           dense_steps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(core-SRAM bits read, written, pJ spent at the memory levels inside the cores), each (n, L): no reuse
    (`core_access_bits_by_layer`) where a point's cores have no levels; where they have, what the point's
    dataflow reads and writes at the SRAM and at each level (`cost.reuse.with_levels`)."""
    reads, writes = core_access_bits_by_layer(work, chips, ac_includes_memory, acs, macs_done, neuron_updates,
                                              dense_steps)
    return reuse.with_levels(work, chips.levels, chips.membrane_bits, chips.activation_bits, ac_includes_memory,
                             acs, macs_done, neuron_updates, reads, writes)


SCORE_PASSES = 2   # an attention score is stored twice: Q.K^T's output (softmax's input), the softmax's output


def core_access_bits_by_layer(work: Workload, chips: Chips, ac_includes_memory: bool, acs, macs_done,
                              neuron_updates, dense_steps) -> tuple[np.ndarray, np.ndarray]:
    """Core-SRAM bits read and written by each layer ((n, L) each) for its per-layer work.

    Output-stationary cores: an AC or MAC reads one weight (an attention
    layer's operand at activation precision); a neuron update reads and
    writes one membrane; a real-valued output reads and writes its value once
    per token and step (`dense_steps`: the steps each layer ran). An attention
    score is written and read twice: from Q.K^T into the softmax, and from the
    softmax into the weighted sum of V.
    """
    weight_reads = per_point(macs_done) if ac_includes_memory else per_point(acs) + per_point(macs_done)
    weight_bits = np.where(work.attention[None, :], chips.activation_bits[:, None], work.weight_bits[None, :])
    state = np.where(work.spiking[None, :],
                     per_point(neuron_updates) * chips.membrane_bits[:, None] * work.state_words[None, :],
                     per_point(work.values_per_step * dense_steps) * chips.activation_bits[:, None])
    scores = per_point(SCORE_PASSES * work.scores * dense_steps / work.timesteps) * chips.activation_bits[:, None]
    return weight_reads * weight_bits + state + scores, state + scores


def state_accesses(neuron_updates, table: EnergyTable):
    """The neuron updates whose state the core SRAM reads and writes: all of them, or none where the
    energy table's neuron update already includes that access."""
    return np.zeros_like(neuron_updates, dtype=float) if table.neuron_update_includes_memory else neuron_updates


def op_events(work: Workload, chips: Chips, table: EnergyTable) -> EventCounts:
    """Compute ops and core-SRAM accesses, common to both mappings (op totals per point)."""
    return op_events_by_layer(work, chips, table).total()


def op_events_by_layer(work: Workload, chips: Chips, table: EnergyTable) -> EventCounts:
    """Compute ops and core-SRAM accesses of each layer ((n, L) arrays)."""
    done = macs(work, chips)
    reads, writes, level_pj = core_accesses_by_layer(work, chips, table.ac_includes_memory, work.acs, done,
                                                     state_accesses(work.neuron_updates, table), work.timesteps)
    per_layer = {k: getattr(work, k) for k in ("acs", "ac_bit_ops", "other_ops", "neuron_updates")}
    per_layer["multilevel_acs"] = np.where(work.input_spike_bits > 1, work.acs, 0.0)   # shift-add tables' extra
    same = {k: np.broadcast_to(v, (chips.n, work.L)).astype(float) for k, v in per_layer.items()}
    return EventCounts(**same, macs=done.astype(float), core_read_bits=reads, core_write_bits=writes,
                       level_pj=level_pj)


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
        return (f"{what} ({self.room[j]:.0f} B) cannot hold one output neuron of layer '{work.names[i]}' "
                f"({self.need[j, i]:.0f} B: its state for {work.seq_len[i]:.0f} tokens and its weights), and a "
                "layer is split over cores by output neurons")


def input_bits(work: Workload, chips: Chips) -> np.ndarray:
    """Bits of the network input each layer receives per run: spike packets at the input rate every step,
    or a real-valued input once (it is constant over the steps)."""
    if work.input_spiking:
        return (work.input_values * work.input_rate * work.timesteps)[None, :] * chips.packet_bits[:, None]
    return work.input_values[None, :] * chips.activation_bits[:, None]


class SpatialTraffic:
    """What the spatial mapping sends over the network per run, as a function of the cores per layer.

    A layer's output (a packet per spike, or its real values every step) is delivered to every core of
    each consumer that needs it (`workload.input_spread`) and queued there (one SRAM write and read per
    destination core), since producer and consumer run at once. Network outputs leave, and the network
    input arrives (read as it streams in, like the sequential pool's inputs), through the I/O port at the
    mesh's centre. The layers sit side by side around the centre, so distances follow the cores the
    mapping uses, not the chip's count: idle cores cost nothing. Delivery is multicast or unicast as the
    arch says (`chips.delivery_links`).
    """

    def __init__(self, work: Workload, chips: Chips):
        steps = step_bits(work, chips)
        packets = work.spikes_out[None, :] * chips.packet_bits[:, None]
        self.payload = np.where(work.spiking[None, :], packets, steps * work.T)   # (n, L) bits per run
        edges = work.edges                                   # none in a network of one layer
        self.source = np.array([e[0] for e in edges], dtype=np.int64)
        self.consumer = np.array([e[1] for e in edges], dtype=np.int64)
        self.all = np.array([e[2] == "all" for e in edges], dtype=bool)
        self.head = np.array([e[2] == "head" for e in edges], dtype=bool)
        self.groups = np.array([e[3] for e in edges], dtype=float)
        self.to_source = np.zeros((len(edges), work.L))     # sums edges into their source layer
        self.to_source[np.arange(len(edges)), self.source] = 1.0
        self.has_consumers = self.to_source.sum(axis=0) > 0
        self.inputs = input_bits(work, chips)
        self.multicast, self.link = chips.multicast, chips.link_bits_per_cycle

    def edge_copies(self, cores: np.ndarray) -> np.ndarray:
        """(n, E): the cores of each edge's consumer that need each value of its input."""
        dest = cores[:, self.consumer].astype(float)
        return np.where(self.all, dest, np.where(self.head, np.ceil(dest / self.groups), 1.0))

    def copies(self, cores: np.ndarray) -> np.ndarray:
        """(n, L): destination cores of each bit of each layer's output, over all its consumers."""
        return self.edge_copies(cores) @ self.to_source

    def queue_bits(self, cores: np.ndarray, points=slice(None)) -> np.ndarray:
        """Bits written (and read) at destination cores: each layer's output at each core that needs it."""
        return self.queue_bits_by_layer(cores, points).sum(axis=-1)

    def queue_bits_by_layer(self, cores: np.ndarray, points=slice(None)) -> np.ndarray:
        """(n, L): `queue_bits` of each layer's output."""
        return self.payload[points] * self.copies(cores)

    def links(self, cores: np.ndarray, points=slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Bit-hops per bit of each layer's output, and per bit of the network input it reads ((n, L) each)."""
        used = cores.sum(axis=-1)
        reach, port = average_hops(used)[:, None], centre_hops(used)[:, None]
        mc = self.multicast[points][:, None]
        # each edge's destination cores form one tree (multicast) or get one copy each (unicast)
        out_links = delivery_links(self.edge_copies(cores), reach, mc) @ self.to_source
        return np.where(self.has_consumers, out_links, port), delivery_links(cores, port, mc)

    def network_bits(self, cores: np.ndarray, points=slice(None)) -> np.ndarray:
        """Bit-hops of a run with `cores` ((n, L), of the given points: all, or an index array of them)."""
        return self.network_bits_by_layer(cores, points).sum(axis=-1)

    def network_bits_by_layer(self, cores: np.ndarray, points=slice(None)) -> np.ndarray:
        """(n, L): bit-hops of each layer's output and of the network input it reads."""
        out_links, in_links = self.links(cores, points)
        return self.payload[points] * out_links + self.inputs[points] * in_links

    def network_cycles(self, cores: np.ndarray, points=slice(None)) -> np.ndarray:
        """Network time: bit-hops over the link capacity of the region the used cores fill."""
        return self.network_bits(cores, points) / mesh_bits_per_cycle(cores.sum(axis=-1), self.link[points])


def spatial_latency(work: Workload, chips: Chips, table: EnergyTable, cores: np.ndarray,
                    traffic: SpatialTraffic) -> tuple:
    """(pipeline compute cycles, network cycles, per-layer cycles, per-layer pace) of a spatial allocation:
    latency = (T + depth - 1) x the slowest stage's whole cycles per step, or the network time if longer."""
    per_layer, paced_by = layer_time(work, cores, chips, table)
    return pipeline_cycles(work, per_layer / work.T), traffic.network_cycles(cores), per_layer, paced_by


def pipeline_cycles(work: Workload, step_cycles: np.ndarray) -> np.ndarray:
    """The spatial pipeline's compute time: (T + depth - 1) x the slowest stage's cycles per step."""
    return step_cycles.max(axis=-1) * (work.T + work.depth - 1)


# Candidate stage times for the spatial allocation: the slowest layer's time per step on one core, then
# STAGE_SHRINK times less at each step, down to 0.9^175 = 1e-8 of it (finer than any chip's parallelism needs).
STAGE_SHRINK, STAGE_CANDIDATES = 0.9, 176


class SpatialCores:
    """Cores per layer in the spatial mapping, and whether the chip has enough.

    Each layer first gets the cores its weights, membranes and a double-buffered output step need. Spare
    cores are then given by the arch's stated objective (`mapping.objective`: the lowest latency, energy,
    or energy x delay; ties to the lower latency, then energy): for each candidate stage time tau, on a
    grid fixed by the network alone (not by the chip's cores or SRAM), every layer gets the cores that
    bring its compute per step under tau; every candidate the chip has cores for is priced, and the best
    wins, the minimum allocation among them. Cores that would not improve the objective stay idle, and
    idle cores cost nothing (`SpatialTraffic`), so a chip with more cores, having every candidate of a
    smaller one, never scores worse.
    """

    def __init__(self, work: Workload, chips: Chips, table: EnergyTable):
        self.need_bytes, min_cores = least_cores(work, chips)
        self.neuron = NeuronFit(work, chips, np.ones((chips.n, work.L), bool), chips.core_sram.astype(float), True)
        self.min_total = min_cores.sum(axis=1)
        self.fits = (self.min_total <= chips.cores) & self.neuron.fits
        self.traffic = SpatialTraffic(work, chips)
        self.cores = min_cores.copy()
        # cores per layer given by the point (a plan's spatial segment, `Chips.with_layer_cores`): not searched
        self.given = chips.given_layer_cores(work.names)
        given = self.given.any(axis=1)
        self.cores = np.where(given[:, None], self.given, self.cores)
        self.fits &= ~given | ((self.given >= min_cores).all(axis=1) & (self.given.sum(axis=1) <= chips.cores))
        ok = np.flatnonzero(self.fits & ~given)
        if len(ok):
            # a candidate's score does not depend on the chip's core count (idle cores cost nothing), only
            # whether it fits does: points that differ only in their count are priced once (`distinct`)
            first, inverse = distinct(point_fields(chips.take(ok), skip=CORE_COUNT_FIELDS), len(ok))
            search = _CoreSearch(work, chips, table, self.traffic, ok[first])
            self.cores[ok] = search.best(min_cores[ok[first]], inverse, chips.cores[ok])

    def shortfall(self, work: Workload, chips: Chips, j: int) -> str:
        """Why point j's chip cannot hold the spatial mapping (the first shortfall)."""
        if not self.neuron.fits[j]:
            return self.neuron.shortfall(work, j, "a core's SRAM")
        if self.given[j].any():
            need = np.ceil(self.need_bytes[j] / chips.core_sram[j])
            if (short := np.flatnonzero(self.given[j] < need)).size:
                i = short[0]
                return (f"layer '{work.names[i]}' is given {self.given[j, i]} cores; its weights, membranes and "
                        f"spike buffers ({self.need_bytes[j, i] / 2**10:.1f} KiB) need {need[i]:.0f} of "
                        f"{chips.core_sram[j]} B SRAM (short by {need[i] - self.given[j, i]:.0f})")
            return (f"its layers are given {self.given[j].sum()} cores; the chip has {chips.cores[j]} (short by "
                    f"{self.given[j].sum() - chips.cores[j]})")
        return (f"spatial mapping needs {self.min_total[j]} cores of {chips.core_sram[j]} B SRAM to hold every "
                f"layer's weights, membranes and spike buffers ({self.need_bytes[j].sum() / 2**20:.1f} MiB); the "
                f"chip has {chips.cores[j]} (short by {self.min_total[j] - chips.cores[j]})")


class _CoreSearch:
    """Prices spatial allocations of the points `ok` for `SpatialCores`: latency, energy, and the objective."""

    def __init__(self, work: Workload, chips: Chips, table: EnergyTable, traffic: SpatialTraffic, ok: np.ndarray):
        self.work, self.traffic, self.ok = work, traffic, ok
        ac_ops, mac_ops = datapath_ops(work.acs, work.ac_bit_ops, work.neuron_updates, macs(work, chips),
                                       work.other_ops, table)
        one = np.ones(chips.n, np.int64)
        self.ac_one_core = compute_cycles(ac_ops, np.zeros(work.L), one, chips)[ok]
        self.mac_one_core = compute_cycles(np.zeros(work.L), mac_ops, one, chips)[ok]
        self.one_core = self.ac_one_core + self.mac_one_core
        adds = accumulator_adds(work.accumulators, chips)
        self.ac_floor, self.mac_floor = (per_point(ac_ops) / adds)[ok], (per_point(mac_ops) / adds)[ok]  # all busy
        ports = port_cycles(work, chips)          # memory ports on one core, where the arch gives them
        self.ports, self.serial = None if ports is None else ports[:, ok], chips.levels.serial[ok][:, None]
        self.load = busy_load(self.one_core, self.ports, self.serial)   # what the candidate grid divides

        def price(ev: EventCounts, static_w=0.0, seconds=0.0) -> np.ndarray:
            parts = energy_breakdown_pj(ev, table, core_array_bytes=chips.core_array, buffer_array_bytes=
                                        chips.buffer_array, static_power_w=static_w, latency_s=seconds)
            return sum(np.broadcast_to(v, (chips.n,)) for v in parts.values())[ok]
        # energy = what every allocation spends + queue bits, bit-hops and leakage, which depend on it
        self.fixed_pj = price(op_events(work, chips, table))
        self.queue_pj = price(EventCounts(core_read_bits=1.0, core_write_bits=1.0))
        self.hop_pj = price(EventCounts(bit_mm=chips.hop_mm))
        self.cycle_pj = price(EventCounts(), chips.static_power_w, 1 / chips.clock_hz)
        self.objective = np.array(chips.objective)[ok]

    def score(self, cores: np.ndarray) -> tuple:
        """(objective, latency, energy) of an allocation; lower is better, in that order."""
        work = self.work
        ports = None if self.ports is None else self.ports / cores
        one_step = (np.maximum(self.ac_one_core / cores, self.ac_floor)
                    + np.maximum(self.mac_one_core / cores, self.mac_floor))
        compute = pipeline_cycles(work, busy_cycles(one_step, ports, work.timesteps, self.serial) / work.timesteps)
        latency = np.maximum(compute, self.traffic.network_cycles(cores, self.ok))
        energy = (self.fixed_pj + self.queue_pj * self.traffic.queue_bits(cores, self.ok)
                  + self.hop_pj * self.traffic.network_bits(cores, self.ok) + self.cycle_pj * latency)
        return ranking(self.objective, latency, energy)

    def best(self, least: np.ndarray, copies: np.ndarray, budget: np.ndarray) -> np.ndarray:
        """The best-scoring candidate that fits, per point (the minimum allocation is the first): candidates
        are priced on the searched points and ranked on each of their `copies` (the searched point of each
        point: the same but for its core count, `budget`)."""
        chosen = least.astype(float)[copies]
        best = tuple(x[copies] for x in self.score(least.astype(float)))
        for cores in stage_candidates(least, self.load):
            fits = cores.sum(axis=1)[copies] <= budget
            if not fits.any():
                break
            score = tuple(x[copies] for x in self.score(cores))
            better = fits & lower(score, best)
            chosen = np.where(better[:, None], cores[copies], chosen)
            best = tuple(np.where(better, new, old) for new, old in zip(score, best))
        return chosen.astype(np.int64)


def least_cores(work: Workload, chips: Chips) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, cores) each layer needs in the spatial mapping: its weights, membranes and a double-buffered
    output step, and the cores of SRAM that holds them (at least one)."""
    need_bytes = work.weight_bytes[None, :] + state_bytes(work, chips) + 2 * step_bits(work, chips) / 8
    return need_bytes, np.maximum(1, np.ceil(need_bytes / chips.core_sram[:, None])).astype(np.int64)


def stage_candidates(least: np.ndarray, load: np.ndarray):
    """The spatial allocation rule's candidates after the least allocation, fewest cores first: for each
    stage time on the grid (the slowest layer's one-core `load` per step, shrinking by STAGE_SHRINK), every
    layer gets the cores that bring its load under it ((n, L) cores, float)."""
    slowest = load.max(axis=1, initial=0)
    for shrink in STAGE_SHRINK ** np.arange(STAGE_CANDIDATES):
        yield np.maximum(least, np.ceil(load / (slowest * shrink)[:, None] * (1 - 1e-12)))


def allocation_candidates(work: Workload, chips: Chips, table: EnergyTable) -> np.ndarray:
    """Every candidate of the spatial allocation rule (`SpatialCores`) for each point, whether its chip has
    the cores or not: ((1 + STAGE_CANDIDATES), n, L) cores, the least allocation first. The mapping search
    prices them one by one (`Chips.with_layer_cores`) instead of letting the rule pick one."""
    _, least = least_cores(work, chips)
    load = _CoreSearch(work, chips, table, SpatialTraffic(work, chips), np.arange(chips.n)).load
    with np.errstate(invalid="ignore"):     # layers without work: every stage time gives the least allocation
        candidates = np.stack([least] + list(stage_candidates(least, load)))
    return np.where(np.isfinite(candidates), candidates, least[None]).astype(np.int64)


def ranking(objective: np.ndarray, latency: np.ndarray, energy: np.ndarray) -> tuple:
    """What a mapping's free choices are ranked by, per point: (the arch's objective, latency, energy)."""
    value = np.where(objective == "energy", energy, np.where(objective == "edp", energy * latency, latency))
    return value, latency, energy


def lower(a: tuple, b: tuple, rel: float = 1e-9) -> np.ndarray:
    """Lexicographic a < b over tuples of arrays, equal within `rel`."""
    lower, tied = np.zeros(len(a[0]), bool), np.ones(len(a[0]), bool)
    for x, y in zip(a, b):
        lower |= tied & (x < y * (1 - rel))
        tied &= x <= y * (1 + rel)
    return lower


class PoolTraffic:
    """What the sequential mapping sends over the network, in bit-hops. Every input a layer reads (from the
    global buffer, DRAM or the I/O port, all at the mesh's centre) goes to every core of the pool, which
    reads it as it streams in (a multicast tree, or a copy per core); what the pool sends back (outputs,
    spills) and the weights streamed in go between one core and the centre, one copy each."""

    def __init__(self, chips: Chips):
        self.to_pool = delivery_links(chips.cores, chips.buffer_hops, chips.multicast)
        self.one_core = chips.buffer_hops
        self.capacity = chips.mesh_bits_per_cycle

    def bit_hops(self, broadcast_bits, single_bits):
        return broadcast_bits * self.to_pool + single_bits * self.one_core


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
