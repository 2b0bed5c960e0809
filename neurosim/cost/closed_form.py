"""The closed form: first-order energy, latency and memory of one network on n design points.

Written once, over numpy arrays of points: `cost.estimate` calls it with one
point, a sweep (`dse.evaluate`) with thousands. The mapping decisions come
from `cost.layout` (shared with the simulator), the pricing from
`cost.energy.energy_breakdown_pj`. First-order choices a designer can read here:

* Cores are output-stationary (see `layout.core_access_bits`).
* A layer's latency is the slowest of its compute, its DRAM transfers, its
  global-buffer transfers and its on-chip network traffic ("whichever
  bounds"); in the sequential mapping layers do not overlap.
* Pruning is structured: only live-input x live-output weights are stored.
* Spatial: every layer runs the network's largest T; layers form a pipeline
  over timesteps: latency = (T + depth - 1) x the slowest layer's time per
  step. A layer's output reaches every core of its consumers that needs it
  (multicast or unicast, as the arch says) and is queued there.
* Sequential: layers run one after another on the whole pool, each for its
  own t^l, its inputs delivered to every core of the pool. What passes
  between layers sits in the global buffer until its last reader has run;
  what does not fit beside the histories still held spills to DRAM (written
  once, read by each pass of each reader). Carrying rates, the buffer holds
  spike counts, and each step of each pass reads them again at the buffer's
  port, where the Bernoulli spikes are drawn and sent to the pool
  (`layout.reads_per_pass`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..arch import EnergyTable
from ..errors import NeurosimError, brief
from . import layout
from .chips import Chips
from .distinct import distinct, point_fields
from .energy import EventCounts, energy_breakdown_pj, idle_leakage_pj
from .workload import Workload


@dataclass
class Costs:
    """Closed-form results of one network and mapping on n points (arrays of length n, or (n, L))."""

    work: Workload
    chips: Chips
    mapping: str
    carry: str
    events: EventCounts
    cycles: np.ndarray
    energy_pj: dict[str, np.ndarray]
    memory_bytes: dict[str, np.ndarray]
    dram_bytes: np.ndarray
    per_layer: dict[str, np.ndarray]
    notes: list[list[str]]
    infeasible: list[str | None] = field(default_factory=list)           # why a design does not fit
    refused: list[tuple[str, str, str] | None] = field(default_factory=list)  # (field, problem, fix): bad input
    layer_events: EventCounts | None = None   # the events of each layer ((n, L)); `events` is their sum
    idle_leakage_pj: np.ndarray | None = None  # the leakage of the cores no layer holds (`energy.idle_leakage_pj`)

    @property
    def latency_s(self) -> np.ndarray:
        return self.cycles / self.chips.clock_hz

    @property
    def total_energy_pj(self) -> np.ndarray:
        e = self.energy_pj
        return e["compute"] + e["sram"] + e["dram"] + e["interconnect"] + e["leakage"]

    def refuse_nonfinite(self) -> "Costs":
        """Every reported figure is finite: a point whose figures overflowed is refused, not reported."""
        figures = [self.total_energy_pj, self.cycles, self.latency_s, self.dram_bytes, *self.energy_pj.values(),
                   *self.memory_bytes.values()]
        finite = np.logical_and.reduce([np.isfinite(f) for f in figures])
        for j in np.flatnonzero(~finite):
            if self.refused[j] is None and self.infeasible[j] is None:
                self.refused[j] = ("(results)", f"the figures overflow (energy {self.total_energy_pj[j]:.3g} pJ, "
                                   f"latency {self.cycles[j]:.3g} cycles): the model's sizes and the arch's numbers "
                                   "together are beyond what can be priced in double precision",
                                   "check the model's sizes, timesteps and rates and the arch's numbers for a unit slip")
        return self


def _price_by_layer(ev: EventCounts, table: EnergyTable, chips: Chips, held: np.ndarray) -> dict[str, np.ndarray]:
    """Each layer's energy by kind ((n, L) arrays, as `energy_<kind>_pj` per-layer columns): its events priced
    like the totals; its leakage, the chip's static power split evenly over the chip's cores, charged for the
    core-cycles the layer holds (`held`, (n, L)), as the simulator charges it (`sim.engine.layer_energy`)."""
    col = lambda x: np.asarray(x)[:, None]  # noqa: E731
    energy = energy_breakdown_pj(ev, table, core_array_bytes=col(chips.core_array),
                                 buffer_array_bytes=col(chips.buffer_array), static_power_w=col(chips.static_power_w),
                                 latency_s=held / col(chips.cores) / col(chips.clock_hz))
    return {f"energy_{k}_pj": np.broadcast_to(v, held.shape).astype(float) for k, v in energy.items()}


def _idle_leakage_pj(chips: Chips, cycles: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Per point, the leakage of the cores neither the pipeline's stages nor the pool hold (`held`: (n, L)
    core-cycles per layer), beside `_price_by_layer`'s rows."""
    return idle_leakage_pj(chips.static_power_w, chips.cores, chips.clock_hz, cycles, held.sum(axis=1))


def _price(ev: EventCounts, table: EnergyTable, chips: Chips, cycles: np.ndarray) -> dict[str, np.ndarray]:
    energy = energy_breakdown_pj(ev, table, core_array_bytes=chips.core_array,
                                 buffer_array_bytes=chips.buffer_array, static_power_w=chips.static_power_w,
                                 latency_s=cycles / chips.clock_hz)
    return {k: np.broadcast_to(v, (chips.n,)).astype(float) for k, v in energy.items()}


def spatial(work: Workload, chips: Chips, table: EnergyTable) -> Costs:
    """Every layer on its own cores, pipelined over the network's largest T."""
    n, T = chips.n, work.T
    alloc = layout.SpatialCores(work, chips, table)
    cores = alloc.cores
    compute_cycles, noc_cycles, layer_cycles, layer_pace = layout.spatial_latency(work, chips, table, cores,
                                                                                  alloc.traffic)
    cycles = np.maximum(compute_cycles, noc_cycles)

    layer_ev = layout.op_events_by_layer(work, chips, table)
    queue_bits = alloc.traffic.queue_bits_by_layer(cores)   # event queue at each destination core, by sender
    layer_ev.core_read_bits = layer_ev.core_read_bits + queue_bits
    layer_ev.core_write_bits = layer_ev.core_write_bits + queue_bits
    layer_ev.bit_mm = alloc.traffic.network_bits_by_layer(cores) * chips.hop_mm[:, None]
    ev = layer_ev.total()
    steps = layout.step_bits(work, chips)

    weights = np.full(n, work.weight_bytes.sum())
    membrane = layout.state_bytes(work, chips).sum(axis=1)
    buffers = (2 * steps / 8).sum(axis=1)
    memory = dict(weights=weights, membrane=membrane, spike_buffers=buffers,
                  peak_on_chip=weights + membrane + buffers)
    notes = []
    for j in range(n):
        note = [f"all layers run T = {T}; pipeline depth {work.depth}; {int(cores[j].sum())} of "
                f"{int(chips.cores[j])} cores used"]
        if noc_cycles[j] > compute_cycles[j]:
            note.append("latency bound by the on-chip network")
        notes.append(note)
    infeasible = [None if alloc.fits[j] else alloc.shortfall(work, chips, j) for j in range(n)]
    held = cores * cycles[:, None]     # a layer holds its cores for the whole run
    layer_memory = work.weight_bytes[None, :] + layout.state_bytes(work, chips) + 2 * steps / 8
    per_layer = dict(macs=layout.macs(work, chips), cores=cores, cycles=layer_cycles, memory_bytes=layer_memory,
                     pace=layer_pace,   # compute, or the port that sets it
                     **_price_by_layer(layer_ev, table, chips, held))
    return Costs(work, chips, "spatial", "spikes", ev, cycles, _price(ev, table, chips, cycles), memory,
                 np.zeros(n), per_layer, notes, infeasible, [None] * n, layer_ev,
                 _idle_leakage_pj(chips, cycles, held)).refuse_nonfinite()


class _BufferLedger:
    """The global buffer over the sequential run: each layer's carried output, [on chip, spilled], per point,
    held until its last reader has run."""

    def __init__(self, work: Workload, chips: Chips):
        self.capacity = chips.buffer_bytes * 8.0
        self.free = self.capacity.copy()
        self.held = np.zeros((work.L, chips.n))
        self.spilled = np.zeros((work.L, chips.n))
        self.readers = [len(c) for c in work.consumers]

    def write(self, i: int, bits: np.ndarray) -> np.ndarray:
        """Layer i's output takes the room left beside what is still held; returns what spills."""
        on_chip = np.minimum(bits, self.free)
        self.free = self.free - on_chip
        self.held[i], self.spilled[i] = on_chip, bits - on_chip
        return self.spilled[i]

    def read_done(self, sources: list[int]) -> None:
        for s in sources:
            self.readers[s] -= 1
            if self.readers[s] == 0:
                self.free = self.free + self.held[s]

    @property
    def level_bytes(self) -> np.ndarray:
        return (self.capacity - self.free) / 8


def sequential(work: Workload, chips: Chips, table: EnergyTable, carry: str) -> Costs:
    """One core pool runs layer after layer, each for its own timesteps, on as many of the chip's cores as
    the arch's objective picks (`pool_cores`)."""
    return sequential_on_pool(work, chips, table, carry, pool_cores(work, chips, table, carry))


def sequential_on_pool(work: Workload, chips: Chips, table: EnergyTable, carry: str, cores) -> Costs:
    """The sequential mapping on a pool of a given size: `cores` of each point's cores (one count for every
    point, or one per point), not searched. The cores left out stay idle and leak (static power is the
    chip's), and the notes and an infeasible point's reason speak of the whole chip, as `sequential` does.
    For callers that choose the pool themselves (the mapping search sizes each sequential segment's pool);
    `sequential` is this on the size `pool_cores` picks."""
    pool = np.asarray(cores)
    if pool.shape not in ((), (chips.n,)) or not np.issubdtype(pool.dtype, np.integer) \
            or ((pool < 1) | (pool > chips.cores)).any():
        raise NeurosimError(f"network '{work.net.name}'", "cores", f"a sequential pool of {brief(cores)} cores "
                            f"on chips of {brief(chips.cores.tolist())} cores",
                            "give each point a whole number of cores, from 1 to its chip's core count")
    return _sequential(work, chips, chips.with_cores(np.broadcast_to(pool, (chips.n,)).copy()), table, carry)


# Pool sizes tried: round(2^(k / POOL_STEPS_PER_OCTAVE)) cores, k = 0, 1, ..., up to the chip's count; a grid
# fixed for every chip, so that a chip with more cores has every size of a smaller one.
POOL_STEPS_PER_OCTAVE = 4


def pool_sizes(most: int) -> np.ndarray:
    """The pool sizes of the grid up to `most` cores (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 16, ...)."""
    k = np.arange(int(np.floor(np.log2(max(most, 1)) * POOL_STEPS_PER_OCTAVE)) + 1)
    return np.unique(np.round(2 ** (k / POOL_STEPS_PER_OCTAVE)).astype(np.int64))


# The most rows x layers one evaluation of the pool search holds: a sweep's many points are searched in chunks.
POOL_SEARCH_CELLS = 1 << 20


def pool_cores(work: Workload, chips: Chips, table: EnergyTable, carry: str) -> np.ndarray:
    """Per point, the pool size of the grid (`pool_sizes`, up to the chip's core count) that ranks best on
    the arch's objective (`layout.ranking`): a chip with more cores has every size of a smaller one, so it
    never ranks worse; the price is that a chip whose count is not on the grid leaves up to 16 % of its
    cores out of the pool. A pool broadcasts each input to its every core, so a smaller one can be both
    cheaper and faster; the cores left out stay idle (and leak: static power is the chip's).

    Every size of every point is priced in one evaluation (`pool_scores`); the sizes are then ranked in
    increasing order, a larger one replacing the best so far only where `layout.lower` ranks it lower (so
    a tie within its tolerance keeps the smaller pool)."""
    sizes = pool_sizes(int(chips.cores.max()))
    score = pool_scores(work, chips, table, carry, sizes)
    best_size, best = np.full(chips.n, sizes[0]), tuple(score[:, :, 0])
    for k in range(1, len(sizes)):
        better = layout.lower(tuple(score[:, :, k]), best)
        best_size = np.where(better, sizes[k], best_size)
        best = tuple(np.where(better, new, old) for new, old in zip(score[:, :, k], best))
    return best_size


def pool_scores(work: Workload, chips: Chips, table: EnergyTable, carry: str, sizes: np.ndarray) -> np.ndarray:
    """(3, n, sizes): the `layout.ranking` of each point's sequential mapping on each pool size; inf where
    the size exceeds the chip's cores or the point is infeasible or refused on it.

    A pool of k cores is priced as the chip with k cores (the whole chip's count enters only its notes and
    idle leakage, not the ranking), so points that differ only in their core count share each size's
    score: each size is priced once per distinct point (`distinct`), up to the most cores among its
    copies. The (point, size) pairs are rows of one point axis (`Chips.take`), priced together, in chunks
    of `POOL_SEARCH_CELLS`."""
    first, inverse = distinct(point_fields(chips, skip=layout.CORE_COUNT_FIELDS), chips.n)
    most = np.zeros(len(first), np.int64)
    np.maximum.at(most, inverse, chips.cores)
    unique = chips.take(first).with_cores(most)
    shared = np.full((3, len(first), len(sizes)), np.inf)
    point, k = np.nonzero(sizes[None, :] <= most[:, None])
    rows = max(1, POOL_SEARCH_CELLS // max(work.L, 1))
    for lo in range(0, len(point), rows):
        p, s = point[lo:lo + rows], k[lo:lo + rows]
        tried = unique.take(p)
        costs = _sequential(work, tried, tried.with_cores(sizes[s]), table, carry)
        ok = np.array([a is None and b is None for a, b in zip(costs.infeasible, costs.refused)])
        ranked = layout.ranking(np.array(tried.objective), costs.cycles, costs.total_energy_pj)
        shared[:, p, s] = [np.where(ok, x, np.inf) for x in ranked]
    return np.where(sizes[None, None, :] <= chips.cores[None, :, None], shared[:, inverse], np.inf)


def _sequential(work: Workload, whole: Chips, chips: Chips, table: EnergyTable, carry: str) -> Costs:
    """The sequential mapping on `chips`, the pools of the points whose chips are `whole`."""
    n, L = chips.n, work.L
    plan = layout.SequentialWeights(work, chips)
    carried = layout.carry_bits(work, chips, carry)
    ledger = _BufferLedger(work, chips)
    ev = layout.op_events_by_layer(work, chips, table)   # (n, L): each layer's events
    for kind in ("buffer_read_bits", "buffer_write_bits", "dram_read_bits", "dram_write_bits", "rng_ops", "bit_mm"):
        setattr(ev, kind, np.zeros((n, L)))
    layer_memory = work.weight_bytes[None, :] + plan.states
    # each pass of a layer runs all its steps over its share of the outputs
    pool_cycles, pool_pace = layout.layer_time(work, chips.cores, chips, table, steps=work.timesteps[None, :] * plan.passes)
    bounds = np.zeros((4, n, L))     # per layer: the pool's time, DRAM's, the global buffer's, the network's
    pool, inputs = layout.PoolTraffic(chips), layout.input_bits(work, chips)
    total, dram_bits = np.zeros(n), np.zeros(n)
    peak_buffer, peak_state, peak_held = np.zeros(n), np.zeros(n), np.zeros(n)
    pinned_bytes = (work.weight_bytes[None, :] * plan.pinned).sum(axis=1)
    spill_layer, spill_kept = np.full(n, -1), np.zeros(n)
    layer_cycles, spills = np.zeros((n, L)), np.zeros((n, L))
    for i in range(L):
        passes, streamed = plan.passes[:, i], plan.streamed[:, i]
        sources = work.sources[i]
        reads = {s: layout.reads_per_pass(work, carry, i, s) for s in sources}
        in_gb = sum((ledger.held[s] * reads[s] for s in sources), np.zeros(n))
        in_dram = sum((ledger.spilled[s] * reads[s] for s in sources), np.zeros(n))
        received = sum((layout.pool_input_bits(work, chips, carry, i, s, ledger.held[s] + ledger.spilled[s])
                        for s in sources), np.zeros(n))
        kept_before = ledger.capacity - ledger.free
        spill = ledger.write(i, carried[:, i])
        first = (spill > 0) & (spill_layer < 0) & ~chips.has_dram
        spill_layer = np.where(first, i, spill_layer)
        spill_kept = np.where(first, kept_before + carried[:, i], spill_kept)
        buffer_read = in_gb * passes
        ev.buffer_read_bits[:, i] = buffer_read
        ev.buffer_write_bits[:, i] = ledger.held[i]
        dram_read = streamed * 8 + in_dram * passes
        layer_dram = dram_read + spill
        ev.dram_read_bits[:, i] = dram_read
        ev.dram_write_bits[:, i] = spill
        ev.core_write_bits[:, i] += streamed * 8       # streamed weights land in core SRAM
        layer_memory[:, i] += ledger.held[i] / 8      # and its output, carried in the global buffer
        if carry == "rates":
            ev.rng_ops[:, i] = work.regeneration_draws[i] * work.timesteps[i] * passes
        buffer_bits = ledger.held[i] + buffer_read
        # everything to and from the cores crosses the network: inputs to the whole pool, the rest to one core
        to_pool = (received + inputs[:, i]) * passes
        hops = pool.bit_hops(to_pool, ledger.held[i] + spill + streamed * 8)
        ev.bit_mm[:, i] = hops * chips.hop_mm
        with np.errstate(divide="ignore", invalid="ignore"):
            dram_cycles = np.where(layer_dram != 0, layer_dram / chips.dram_bits_per_cycle, 0.0)
        bounds[:, :, i] = [pool_cycles[:, i], dram_cycles, buffer_bits / 8 / chips.buffer_bytes_per_cycle,
                           hops / pool.capacity]
        layer_cycles[:, i] = bounds[:, :, i].max(axis=0)
        total = total + layer_cycles[:, i]
        dram_bits = dram_bits + layer_dram
        spills[:, i] = spill / 8
        peak_buffer = np.maximum(peak_buffer, ledger.level_bytes)
        peak_state = np.maximum(peak_state, plan.states[:, i] / passes)
        # what is held together while layer i runs: pinned weights, a pass's streamed weights and
        # membranes, and the carried outputs in the global buffer
        peak_held = np.maximum(peak_held, pinned_bytes + (streamed + plan.states[:, i]) / passes + ledger.level_bytes)
        ledger.read_done(sources)

    memory = dict(weights=np.full(n, work.weight_bytes.sum()), membrane=peak_state, spike_buffers=peak_buffer,
                  peak_on_chip=peak_held)
    notes = []
    for j in range(n):
        note = [f"layers run their own timesteps ({work.timesteps_note}) on a pool of {int(chips.cores[j])} of "
                f"{int(whole.cores[j])} cores; carry: {carry}"]
        if plan.streams[j]:
            note.append(f"{int((~plan.pinned[j]).sum())} of {L} layers' weights streamed from DRAM every inference")
        notes.append(note)
    widest, widest_bits = layout.widest_step(work, chips)
    refused = [layout.buffer_refusal(work, chips, widest, widest_bits, j) if widest_bits[j] > ledger.capacity[j]
               else None for j in range(n)]
    infeasible = []
    for j in range(n):
        if not plan.neuron.fits[j]:
            infeasible.append(plan.neuron.shortfall(work, j, "a core's share of the SRAM left beside the pinned weights"))
        elif plan.streams[j] and not chips.has_dram[j]:
            infeasible.append(plan.no_room(work, whole, j))   # the whole chip's SRAM, not the pool's
        elif spill_layer[j] >= 0:
            infeasible.append(layout.no_spill_room(work.names[spill_layer[j]], spill_kept[j], chips.buffer_bytes[j]))
        else:
            infeasible.append(None)
    layer_ev, ev = ev, ev.total()
    held = chips.cores[:, None] * layer_cycles     # the pool, while each layer runs
    with np.errstate(invalid="ignore"):   # a point with no DRAM to stream from takes forever: infeasible
        per_layer = dict(macs=layout.macs(work, chips), passes=plan.passes, streamed_weight_bytes=plan.streamed,
                         spill_bytes=spills, cycles=layer_cycles, memory_bytes=layer_memory,
                         pace=layout.sequential_pace(pool_pace, bounds),
                         **_price_by_layer(layer_ev, table, whole, held))
    return Costs(work, whole, "sequential", carry, ev, total, _price(ev, table, chips, total), memory,
                 dram_bits / 8, per_layer, notes, infeasible, refused, layer_ev,
                 _idle_leakage_pj(whole, total, held)).refuse_nonfinite()
