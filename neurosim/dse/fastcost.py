"""The closed form (`cost.estimate`) vectorised over many arch configs of one network.

A sweep's closed-form points mostly share a model and differ in numbers (core
count, SRAM and buffer sizes, bandwidths, clock, precision). `estimate` spends
its time on pandas and per-layer Python work that does not depend on the arch;
here that work is done once per (network, mapping) and the arch-dependent
arithmetic runs over all points at once: a loop over layers, numpy arrays over
points, in the same order of operations as `cost.estimate`, so results agree
with it to rounding (tests/test_dse.py checks every field against `estimate`).

Only the mapping decisions and formulas of `cost.estimate` are restated here:
when that module changes, the equality test fails until this one follows.
Cases it does not handle return None for the point, and the caller falls back
to `estimate` (e.g. a layer with zero free SRAM for its passes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..arch import EnergyTable
from ..cost.analytic import structural_counts
from ..cost.estimate import _depth, _live, _weight_bytes, no_weight_room, with_timesteps
from ..ir import Network
from ..report import BREAKDOWN, MEMORY, UTILIZATION
from .spec import Point

_PLANS: dict[tuple[int, str], "NetPlan"] = {}


class NetPlan:
    """Everything about a network the closed form needs that does not depend on the arch."""

    def __init__(self, net: Network, spatial: bool):
        source = net
        if spatial:
            net = with_timesteps(net, net.max_timesteps)
        self.source = source   # keeps the cache key (id of the source network) alive
        self.net, self.T = net, net.max_timesteps
        layers = net.layers
        counts = structural_counts(net)
        f = lambda col: counts[col].to_numpy(dtype=float)  # noqa: E731
        self.acs, self.macs, self.other, self.nu = f("acs"), f("macs"), f("other_ops"), f("neuron_updates")
        self.spikes_out, self.isb = f("spikes_out"), f("input_spike_bits")
        self.names = [l.name for l in layers]
        self.live = np.array([_live(net, l) for l in layers], dtype=float)
        self.seq = np.array([l.seq_len for l in layers], dtype=float)
        self.t = np.array([l.timesteps for l in layers], dtype=float)
        self.spiking = [l.spiking for l in layers]
        self.attention = [l.kind == "attention" for l in layers]
        self.spike_bits = np.array([l.neuron.spike_bits if l.spiking else 0 for l in layers], dtype=float)
        self.count_bits = np.array([math.ceil(math.log2(l.timesteps * l.neuron.levels + 1)) if l.spiking else 0
                                    for l in layers], dtype=float)
        self.weight_bits = [l.weight_bits for l in layers]
        self.weights = np.array([_weight_bytes(net, l) for l in layers], dtype=float)
        self.depth = _depth(net)
        index = {l.name: i for i, l in enumerate(layers)}
        self.consumers = [[index[c.name] for c in net.consumers(l.name)] for l in layers]
        self.inputs = [[index[s] for s in l.inputs] for l in layers]
        self.rng_live = [float(l.seq_len * l.timesteps * sum(_live(net, net[s]) for s in l.inputs))
                         if l.inputs and all(net[s].spiking for s in l.inputs) else 0.0 for l in layers]
        self.dense_seq_t_live = self.seq * self.t * self.live
        # Totals in the order cost.estimate accumulates them.
        self.acs_sum = self.ac_bits_sum = self.macs_sum = self.other_sum = self.nu_sum = 0.0
        for i in range(len(layers)):
            self.acs_sum += self.acs[i]
            self.ac_bits_sum += self.acs[i] * self.isb[i]
            self.macs_sum += self.macs[i]
            self.other_sum += self.other[i]
            self.nu_sum += self.nu[i]
        self.weights_total = 0.0
        for w in self.weights:
            self.weights_total += w
        self.timesteps_note = ", ".join(str(t) for t in sorted({l.timesteps for l in layers}))


def net_plan(net: Network, spatial: bool) -> NetPlan:
    key = (id(net), "spatial" if spatial else "sequential")
    if key not in _PLANS:
        _PLANS[key] = NetPlan(net, spatial)
    return _PLANS[key]


class Params:
    """The arch numbers of many points, one array each."""

    def __init__(self, archs: list[dict]):
        def col(get, dtype=float):
            return np.array([get(a) for a in archs], dtype=dtype)

        self.name = [a["name"] for a in archs]
        self.clock = col(lambda a: a["clock_hz"])
        self.static = col(lambda a: a["static_power_w"])
        self.count = col(lambda a: a["cores"]["count"], np.int64)
        self.acs_pc = col(lambda a: a["cores"]["acs_per_cycle"], np.int64)
        self.macs_pc = col(lambda a: a["cores"]["macs_per_cycle"], np.int64)
        self.sram = col(lambda a: a["cores"]["sram_bytes"], np.int64)
        self.gb = col(lambda a: a["global_buffer"]["bytes"], np.int64)
        # the array an access touches (ArchConfig.core_array_bytes / buffer_array_bytes): prices SRAM energy
        self.core_array = col(lambda a: a["cores"].get("bank_bytes") or a["cores"]["sram_bytes"], np.int64)
        self.gb_array = col(lambda a: a["global_buffer"].get("bank_bytes") or a["global_buffer"]["bytes"], np.int64)
        self.gb_bpc = col(lambda a: a["global_buffer"]["bytes_per_cycle"], np.int64)
        self.dram_bps = col(lambda a: a["dram"]["bytes_per_s"] if a.get("dram") else 0.0)
        self.hop_mm = col(lambda a: a["interconnect"]["hop_mm"])
        self.link = col(lambda a: a["interconnect"]["link_bits_per_cycle"], np.int64)
        self.packet = col(lambda a: a["interconnect"]["spike_packet_bits"], np.int64)
        self.membrane_bits = col(lambda a: a["precision"]["membrane_bits"], np.int64)
        self.act_bits = col(lambda a: a["precision"]["activation_bits"], np.int64)
        k = np.ceil(np.sqrt(self.count)).astype(np.int64)   # mesh side
        self.avg_hops = np.maximum(1.0, 2 * (k * k - 1) / (3 * k))
        self.noc_bpc = np.maximum(1, 2 * k * (k - 1)) * 2 * self.link


def sram_pj_per_bit(table: EnergyTable, size: np.ndarray, op: str) -> np.ndarray:
    """`EnergyTable.sram_pj_per_bit` over an array of sizes."""
    pts, key = table.sram, f"{op}_pj_per_bit"
    out = np.full(size.shape, getattr(pts[0], key), dtype=float)
    if len(pts) == 1:
        return out
    done = size <= pts[0].bytes
    logs = np.log(size.astype(float))
    for lo, hi in zip(pts, pts[1:]):
        sel = ~done & (size <= hi.bytes)
        frac = (logs - math.log(lo.bytes)) / (math.log(hi.bytes) - math.log(lo.bytes))
        out = np.where(sel, getattr(lo, key) + frac * (getattr(hi, key) - getattr(lo, key)), out)
        done |= sel
    return np.where(done, out, getattr(pts[-1], key))


class Events:
    """EventCounts over points (the arch-dependent ones; op totals live on the plan)."""

    def __init__(self, n: int):
        z = lambda: np.zeros(n)  # noqa: E731
        self.core_read, self.core_write, self.gb_read, self.gb_write = z(), z(), z(), z()
        self.dram_read, self.dram_write, self.bit_mm, self.rng = z(), z(), z(), z()


def _core_events(ev: Events, plan: NetPlan, p: Params, table: EnergyTable) -> None:
    for i in range(len(plan.names)):
        weight_reads = plan.acs[i] if not table.ac_includes_memory else 0.0
        weight_bits = p.act_bits if plan.attention[i] else plan.weight_bits[i]
        ev.core_read += (weight_reads + plan.macs[i]) * weight_bits
        bits = plan.nu[i] * p.membrane_bits if plan.spiking[i] else plan.dense_seq_t_live[i] * p.act_bits
        ev.core_read += bits
        ev.core_write += bits


def _state_bytes(plan: NetPlan, p: Params) -> np.ndarray:
    bits = np.where(np.array(plan.spiking)[None, :], p.membrane_bits[:, None], p.act_bits[:, None])
    return (plan.seq * plan.live)[None, :] * bits / 8


def _step_bits(plan: NetPlan, p: Params) -> np.ndarray:
    bits = np.where(np.array(plan.spiking)[None, :], plan.spike_bits[None, :], p.act_bits[:, None])
    return (plan.seq * plan.live)[None, :] * bits


def _compute_cycles(plan: NetPlan, i: int, cores: np.ndarray, p: Params) -> np.ndarray:
    return ((plan.acs[i] + plan.nu[i]) / (cores * p.acs_pc)
            + (plan.macs[i] + plan.other[i]) / (cores * p.macs_pc))


def _energy(plan: NetPlan, ev: Events, p: Params, table: EnergyTable, latency_s: np.ndarray,
            same_size: np.ndarray | None = None) -> dict[str, np.ndarray]:
    if table.multilevel_spike == "per_bit":
        ac = plan.ac_bits_sum * table.ac_pj
    else:
        ac = plan.acs_sum * table.ac_pj + (table.shift_add_pj * plan.acs_sum
                                           if plan.ac_bits_sum - plan.acs_sum > 0 else 0.0)
    compute = (ac + plan.macs_sum * table.mac_pj + plan.other_sum * table.other_op_pj
               + plan.nu_sum * table.neuron_update_pj + ev.rng * table.shift_add_pj)
    rc, wc = sram_pj_per_bit(table, p.core_array, "read"), sram_pj_per_bit(table, p.core_array, "write")
    if same_size is None:   # spatial: the cores' SRAM only
        sram = 0 + ev.core_read * rc
        sram = sram + (0 + ev.core_write * wc)
    else:
        rg, wg = sram_pj_per_bit(table, p.gb_array, "read"), sram_pj_per_bit(table, p.gb_array, "write")
        reads = np.where(same_size, (ev.core_read + ev.gb_read) * rc, ev.core_read * rc + ev.gb_read * rg)
        writes = np.where(same_size, (ev.core_write + ev.gb_write) * wc, ev.core_write * wc + ev.gb_write * wg)
        sram = reads + writes
    return {"compute": compute + np.zeros(len(p.clock)), "sram": sram,
            "dram": ev.dram_read * table.dram_read_pj_per_bit + ev.dram_write * table.dram_write_pj_per_bit,
            "interconnect": ev.bit_mm * table.interconnect_pj_per_bit_mm,
            "leakage": p.static * latency_s * 1e12}


def _rows(plan: NetPlan, points: list[Point], p: Params, cycles, breakdown, memory, dram_bytes,
          notes: list[list[str]]) -> list[dict[str, Any]]:
    latency_s = cycles / p.clock
    energy = 0 + breakdown["compute"] + breakdown["sram"] + breakdown["dram"] + breakdown["interconnect"] \
        + breakdown["leakage"]
    rows = []
    for j, pt in enumerate(points):
        m = pt.arch["mapping"]
        row = {"status": "ok", "arch": p.name[j], "mapping": m["kind"], "carry": m["carry"], "feasible": True,
               "acs": float(plan.acs_sum), "macs": float(plan.macs_sum), "other_ops": float(plan.other_sum),
               "neuron_updates": float(plan.nu_sum), "energy_pj": float(energy[j])}
        row.update({f"energy_{k}_pj": float(breakdown[k][j]) for k in BREAKDOWN})
        row.update(latency_cycles=float(cycles[j]), latency_s=float(latency_s[j]))
        row.update({f"memory_{k}_bytes": float(memory[k][j]) for k in MEMORY})
        row.update(dram_traffic_bytes=float(dram_bytes[j]), stall_cycles=None)
        row.update({f"util_{k}": None for k in UTILIZATION})
        row.update(notes=" | ".join(notes[j]), error=None)
        rows.append(row)
    return rows


def _infeasible(pt: Point, arch_name: str, reason: str) -> dict[str, Any]:
    from .evaluate import RESULT_COLUMNS

    m = pt.arch["mapping"]
    row = dict.fromkeys(RESULT_COLUMNS)
    row.update(status="infeasible", arch=arch_name, mapping=m["kind"], carry=m["carry"], feasible=False,
               notes=reason, error=None)
    return row


def _error(pt: Point, arch_name: str, field: str, problem: str, fix: str) -> dict[str, Any]:
    row = _infeasible(pt, arch_name, "")
    row.update(status="error", error=f"{pt.where}: field '{field}': {problem}. Fix: {fix}")
    return row


def estimate_spatial(plan: NetPlan, points: list[Point], table: EnergyTable) -> list[dict | None]:
    p = Params([pt.arch for pt in points])
    n, L, T = len(points), len(plan.names), plan.T
    states, steps = _state_bytes(plan, p), _step_bits(plan, p)
    need = plan.weights[None, :] + states + 2 * steps / 8
    min_cores = np.maximum(1, np.ceil(need / p.sram[:, None])).astype(np.int64)
    min_sum = min_cores.sum(axis=1)
    work = np.stack([_compute_cycles(plan, i, np.ones(n, np.int64), p) for i in range(L)], axis=1)
    spare = p.count - min_sum
    cores = min_cores + np.floor(spare[:, None] * work / np.maximum(work.sum(axis=1), 1e-30)[:, None]).astype(np.int64)
    layer_cycles = np.stack([_compute_cycles(plan, i, cores[:, i], p) for i in range(L)], axis=1)
    stage = (layer_cycles / T).max(axis=1)
    compute_cycles = stage * (T + plan.depth - 1)

    ev = Events(n)
    _core_events(ev, plan, p, table)
    hops_mm = p.avg_hops * p.hop_mm
    noc_bits = np.zeros(n)
    for i in range(L):
        dest = sum((cores[:, c] for c in plan.consumers[i]), np.zeros(n, np.int64))
        if plan.spiking[i]:
            bits = plan.spikes_out[i] * p.packet * dest
            ev.core_read += bits
            ev.core_write += bits
        else:
            bits = steps[:, i] * T * max(1, len(plan.consumers[i]))
        noc_bits = noc_bits + bits
    ev.bit_mm = noc_bits * hops_mm
    noc_cycles = noc_bits * p.avg_hops / p.noc_bpc
    cycles = np.maximum(compute_cycles, noc_cycles)
    latency_s = cycles / p.clock
    breakdown = _energy(plan, ev, p, table, latency_s)
    membrane = np.zeros(n)
    spikes = np.zeros(n)
    for i in range(L):
        membrane = membrane + states[:, i]
        spikes = spikes + 2 * steps[:, i] / 8
    weights = np.full(n, plan.weights_total)
    memory = dict(weights=weights, membrane=membrane, spike_buffers=spikes, peak_on_chip=weights + membrane + spikes)
    notes = []
    for j in range(n):
        note = [f"all layers run T = {T}; pipeline depth {plan.depth}; {int(cores[j].sum())} of "
                f"{int(p.count[j])} cores used"]
        if noc_cycles[j] > compute_cycles[j]:
            note.append("latency bound by the on-chip network")
        notes.append(note)
    rows: list[dict | None] = _rows(plan, points, p, cycles, breakdown, memory, np.zeros(n), notes)
    for j in np.flatnonzero(min_sum > p.count):
        rows[j] = _infeasible(points[j], p.name[j], (
            f"spatial mapping needs {min_sum[j]} cores of {p.sram[j]} B SRAM to hold every layer's weights, "
            f"membranes and spike buffers ({need[j].sum() / 2**20:.1f} MiB); the chip has {p.count[j]} "
            f"(short by {min_sum[j] - p.count[j]})"))
    return rows


def estimate_sequential(plan: NetPlan, points: list[Point], table: EnergyTable) -> list[dict | None]:
    p = Params([pt.arch for pt in points])
    n, L = len(points), len(plan.names)
    carry = points[0].arch["mapping"]["carry"]
    has_dram = points[0].arch.get("dram") is not None
    capacity = p.count * p.sram
    states, steps = _state_bytes(plan, p), _step_bits(plan, p)
    widest = steps.argmax(axis=1)
    widest_bits = steps[np.arange(n), widest]
    gb_refused = widest_bits > p.gb * 8
    smax = states.max(axis=1)
    all_fit = plan.weights.sum() + smax <= capacity
    pinned = np.where(all_fit[:, None], True, np.cumsum(plan.weights)[None, :] <= ((capacity - smax) / 2)[:, None])
    free = capacity - (plan.weights[None, :] * pinned).sum(axis=1)
    streams = ~pinned.all(axis=1)
    fallback = free <= 0
    free = np.where(fallback, 1.0, free)
    dram_per_cycle = p.dram_bps / p.clock if has_dram else np.zeros(n)
    hops_mm = p.avg_hops * p.hop_mm
    noc_rate = p.noc_bpc / p.avg_hops

    ev = Events(n)
    _core_events(ev, plan, p, table)
    if carry == "spikes":
        carried = steps * plan.t[None, :]
    else:
        carried = np.where(np.array(plan.spiking)[None, :], (plan.seq * plan.live * plan.count_bits)[None, :], steps)
    total = np.zeros(n)
    dram_bits = np.zeros(n)
    peak_buffer, peak_state, stream_slot = np.zeros(n), np.zeros(n), np.zeros(n)
    spill_layer = np.full(n, -1)
    spill_kept = np.zeros(n)
    held_gb, held_dram = np.zeros((L, n)), np.zeros((L, n))   # each layer's carried output, as cost.estimate
    readers = [len(c) for c in plan.consumers]
    gb_free = p.gb * 8.0
    for i in range(L):
        streamed = np.where(pinned[:, i], 0.0, plan.weights[i])
        passes = np.maximum(1, np.ceil((streamed + states[:, i]) / free)).astype(np.int64)
        sources = list(dict.fromkeys(plan.inputs[i]))
        in_gb = sum((held_gb[s] for s in sources), np.zeros(n))
        in_dram = sum((held_dram[s] for s in sources), np.zeros(n))
        out_bits = carried[:, i]
        to_gb = np.minimum(out_bits, gb_free)
        spill = out_bits - to_gb
        if not has_dram:
            first = (spill > 0) & (spill_layer < 0)
            spill_layer = np.where(first, i, spill_layer)
            spill_kept = np.where(first, p.gb * 8 - gb_free + out_bits, spill_kept)
        gb_free = gb_free - to_gb
        held_gb[i], held_dram[i] = to_gb, spill
        gb_bits = to_gb + in_gb * passes
        ev.gb_read += in_gb * passes
        ev.gb_write += to_gb
        dram_read = streamed * 8 + in_dram * passes
        layer_dram = dram_read + spill
        ev.dram_read += dram_read
        ev.dram_write += spill
        ev.core_write += streamed * 8
        if carry == "rates" and plan.rng_live[i]:
            ev.rng += plan.rng_live[i] * passes
        moved = gb_bits + layer_dram
        ev.bit_mm += moved * hops_mm
        with np.errstate(divide="ignore", invalid="ignore"):
            dram_cycles = np.where(layer_dram != 0, layer_dram / 8 / dram_per_cycle, 0.0)
        cycles = np.maximum(np.maximum(np.maximum(_compute_cycles(plan, i, p.count, p), dram_cycles),
                                       gb_bits / 8 / p.gb_bpc), moved / noc_rate)
        total = total + cycles
        dram_bits = dram_bits + layer_dram
        peak_buffer = np.maximum(peak_buffer, (p.gb * 8 - gb_free) / 8)
        peak_state = np.maximum(peak_state, states[:, i] / passes)
        stream_slot = np.maximum(stream_slot, streamed / passes)
        for s in sources:
            readers[s] -= 1
            if readers[s] == 0:
                gb_free = gb_free + held_gb[s]
    latency_s = total / p.clock
    same_size = p.core_array == p.gb_array
    breakdown = _energy(plan, ev, p, table, latency_s, same_size)
    on_chip_weights = (plan.weights[None, :] * pinned).sum(axis=1) + stream_slot
    memory = dict(weights=np.full(n, float(plan.weights.sum())), membrane=peak_state, spike_buffers=peak_buffer,
                  peak_on_chip=on_chip_weights + peak_state + peak_buffer)
    notes = []
    for j in range(n):
        note = [f"layers run their own timesteps ({plan.timesteps_note}); carry: {carry}"]
        if streams[j]:
            note.append(f"{int((~pinned[j]).sum())} of {L} layers' weights streamed from DRAM every inference")
        notes.append(note)
    rows: list[dict | None] = _rows(plan, points, p, total, breakdown, memory, dram_bits / 8, notes)
    for j in range(n):
        if gb_refused[j]:
            need = widest_bits[j] / 8
            rows[j] = _error(points[j], p.name[j], "global_buffer.bytes",
                             f"{p.gb[j]} B cannot hold one timestep of layer '{plan.names[widest[j]]}' ({need:.0f} B)",
                             f"give the global buffer at least {math.ceil(need)} B")
        elif fallback[j]:
            rows[j] = None
        elif streams[j] and not has_dram:
            rows[j] = _infeasible(points[j], p.name[j], no_weight_room(plan.weights, int(capacity[j])))
        elif spill_layer[j] >= 0:
            rows[j] = _infeasible(points[j], p.name[j], (
                f"layer '{plan.names[spill_layer[j]]}' keeps {spill_kept[j] / 8:.0f} B of inter-layer data; the "
                f"global buffer holds {p.gb[j]} B and there is no DRAM to spill to"))
    return rows


def estimate_many(net: Network, points: list[Point], table: EnergyTable) -> list[dict | None]:
    """Closed-form result rows for points that share the network, mapping, carry, energy table and
    DRAM presence (None for a point left to `cost.estimate`)."""
    if not points:
        return []
    spatial = points[0].arch["mapping"]["kind"] == "spatial"
    plan = net_plan(net, spatial)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if spatial:
            return estimate_spatial(plan, points, table)
        return estimate_sequential(plan, points, table)
