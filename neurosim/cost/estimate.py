"""First-order (closed-form) energy, latency and memory of a network on an arch, per mapping.

The fast estimator and the simulator's cross-check. Assumptions, each a
first-order choice a designer can read here:

* Dataflow inside a core is output-stationary: an AC reads one weight from the
  core's SRAM and accumulates into a register; each neuron's membrane is read
  and written once per neuron update (once per token per timestep).
* A layer's latency is the slowest of its compute (ACs and neuron updates on
  the AC datapath, MACs and element ops on the MAC datapath), its DRAM
  transfers, its global-buffer transfers and its on-chip network traffic
  ("whichever bounds"); no overlap between layers in the sequential mapping.
* Pruning is structured: a masked head or neuron's weight rows, and the
  columns fed by masked inputs, are compiled away, so only live-input x
  live-output weights are stored, streamed and counted as memory.
* Spatial: every layer runs the network's largest T; each layer gets the cores
  its weights, membranes and a double-buffered spike step need, spare cores
  are shared in proportion to work; layers form a pipeline over timesteps:
  latency = (T + depth - 1) x the slowest layer's time per step. A spike is
  multicast as one packet to every core of each consuming layer.
* Sequential: layers run one after another on the whole pool, each for its own
  t^l. Weights stay resident when all fit beside the largest layer's
  membranes; otherwise layers are pinned in order into half of the SRAM and
  the rest are streamed from DRAM every inference. A layer whose streamed
  weights and membranes exceed the free SRAM runs in several passes over its
  output neurons, re-reading its input history each pass. What passes between
  layers (the whole spike history, or spike counts) sits in the global buffer
  until its last reader has run; what does not fit beside the histories still
  held spills to DRAM (written once, read by each pass of each reader).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from ..arch import ArchConfig
from ..errors import NeurosimError
from ..ir import Layer, Network
from ..report import Report
from .analytic import needed_outputs, stored_weights, structural_counts
from .energy import EventCounts, energy_breakdown_pj


def with_timesteps(net: Network, timesteps: int) -> Network:
    layers = [replace(layer, timesteps=timesteps) for layer in net.layers]
    return Network(net.name, layers, net.input_size, net.input_rate, net.input_spiking, dict(net.metadata))


def _live(net: Network, layer: Layer) -> int:
    return int(needed_outputs(net, layer).sum())


def _value_bits(layer: Layer, arch: ArchConfig) -> int:
    """Bits of one output value: a spike (1 or k bits) or a real activation."""
    return layer.neuron.spike_bits if layer.spiking else arch.precision.activation_bits


def _state_bytes(net: Network, layer: Layer, arch: ArchConfig) -> float:
    bits = arch.precision.membrane_bits if layer.spiking else arch.precision.activation_bits
    return layer.seq_len * _live(net, layer) * bits / 8


def _weight_bytes(net: Network, layer: Layer) -> float:
    return stored_weights(net, layer) * layer.weight_bits / 8


def _step_bits(net: Network, layer: Layer, arch: ArchConfig) -> float:
    """One timestep of the layer's output, as a dense bitmap (spikes) or values (real)."""
    return layer.seq_len * _live(net, layer) * _value_bits(layer, arch)


def _carry_bits(net: Network, layer: Layer, arch: ArchConfig, carry: str) -> float:
    """What the sequential mapping keeps of a layer's output for the next layer."""
    if carry == "spikes":
        return _step_bits(net, layer, arch) * layer.timesteps
    if not layer.spiking:  # a real output carried as its time average
        return _step_bits(net, layer, arch)
    count_bits = math.ceil(math.log2(layer.timesteps * layer.neuron.levels + 1))
    return layer.seq_len * _live(net, layer) * count_bits


def _compute_cycles(row: pd.Series, cores: int, arch: ArchConfig) -> float:
    ac_path = (row.acs + row.neuron_updates) / (cores * arch.cores.acs_per_cycle)
    mac_path = (row.macs + row.other_ops) / (cores * arch.cores.macs_per_cycle)
    return ac_path + mac_path


def _noc_bits_per_cycle(arch: ArchConfig) -> float:
    """Aggregate link capacity of a k x k mesh: 2k(k-1) bidirectional links."""
    k = arch.mesh_side()
    return max(1, 2 * k * (k - 1)) * 2 * arch.interconnect.link_bits_per_cycle


def _core_events(ev: EventCounts, net: Network, counts: pd.DataFrame, arch: ArchConfig) -> None:
    """Compute and per-core SRAM events common to both mappings."""
    table, sram = arch.energy, arch.core_array_bytes
    for layer, row in zip(net.layers, counts.itertuples()):
        ev.acs += row.acs
        ev.ac_bit_ops += row.acs * row.input_spike_bits
        ev.macs += row.macs
        ev.other_ops += row.other_ops
        ev.neuron_updates += row.neuron_updates
        weight_reads = row.acs if not table.ac_includes_memory else 0.0
        weight_bits = layer.weight_bits if layer.kind != "attention" else arch.precision.activation_bits
        ev.add_sram(sram, read_bits=(weight_reads + row.macs) * weight_bits)
        if layer.spiking:
            bits = row.neuron_updates * arch.precision.membrane_bits
        else:
            bits = layer.seq_len * layer.timesteps * _live(net, layer) * arch.precision.activation_bits
        ev.add_sram(sram, read_bits=bits, write_bits=bits)


def _depth(net: Network) -> int:
    depth: dict[str, int] = {}
    for layer in net.layers:
        depth[layer.name] = 1 + max((depth[s] for s in layer.inputs), default=0)
    return max(depth.values())


def _finish(net, arch, ev, cycles, memory, dram_bytes, per_layer, notes) -> Report:
    latency_s = cycles / arch.clock_hz
    breakdown = energy_breakdown_pj(ev, arch.energy, arch.static_power_w, latency_s)
    return Report(model=net.name, arch=arch.name, mapping=arch.mapping.kind, carry=arch.mapping.carry,
                  engine="analytic", feasible=True, notes=notes, acs=ev.acs, macs=ev.macs,
                  other_ops=ev.other_ops, neuron_updates=ev.neuron_updates,
                  energy_pj=sum(breakdown.values()), energy_breakdown_pj=breakdown,
                  latency_cycles=cycles, latency_s=latency_s, memory_bytes=memory,
                  dram_traffic_bytes=dram_bytes, per_layer=per_layer)


def infeasible(net: Network, arch: ArchConfig, reason: str, engine: str = "analytic") -> Report:
    return Report(model=net.name, arch=arch.name, mapping=arch.mapping.kind, carry=arch.mapping.carry,
                  engine=engine, feasible=False, notes=[reason])


# -- Decisions shared with the simulator (neurosim.sim), so the two models cannot drift apart --
def spatial_cores(net: Network, counts: pd.DataFrame, arch: ArchConfig) -> tuple[np.ndarray | None, str]:
    """Cores per layer in the spatial mapping, or (None, why not).

    Each layer first gets the cores its weights, membranes and a double-buffered
    output step need; spare cores are shared in proportion to compute work.
    """
    sram = arch.cores.sram_bytes
    need_bytes = np.array([_weight_bytes(net, l) + _state_bytes(net, l, arch) + 2 * _step_bits(net, l, arch) / 8
                           for l in net.layers])
    min_cores = np.maximum(1, np.ceil(need_bytes / sram)).astype(int)
    if min_cores.sum() > arch.cores.count:
        return None, (f"spatial mapping needs {min_cores.sum()} cores of {sram} B SRAM to hold "
                      f"every layer's weights, membranes and spike buffers ({need_bytes.sum() / 2**20:.1f} MiB);"
                      f" the chip has {arch.cores.count} (short by {min_cores.sum() - arch.cores.count})")
    work = np.array([_compute_cycles(row, 1, arch) for _, row in counts.iterrows()])
    spare = arch.cores.count - min_cores.sum()
    return min_cores + np.floor(spare * work / max(work.sum(), 1e-30)).astype(int), ""


def check_global_buffer(net: Network, arch: ArchConfig) -> None:
    """Refuse a global buffer that cannot hold one timestep of the widest layer's output."""
    gb = arch.global_buffer
    biggest_step = max(net.layers, key=lambda l: _step_bits(net, l, arch))
    if _step_bits(net, biggest_step, arch) > gb.bytes * 8:
        raise arch.refuse("global_buffer.bytes", f"{gb.bytes} B cannot hold one timestep of layer "
                          f"'{biggest_step.name}' ({_step_bits(net, biggest_step, arch) / 8:.0f} B)",
                          f"give the global buffer at least {math.ceil(_step_bits(net, biggest_step, arch) / 8)} B")


def sequential_weights(net: Network, arch: ArchConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Weight bytes, membrane-state bytes, which layers' weights stay pinned in core SRAM, and the SRAM left.

    All weights stay when they fit beside the largest layer's membranes;
    otherwise layers are pinned in order into half of the SRAM.
    """
    capacity = arch.total_core_sram
    weights = np.array([_weight_bytes(net, l) for l in net.layers])
    states = np.array([_state_bytes(net, l, arch) for l in net.layers])
    if weights.sum() + states.max() <= capacity:
        pinned = np.ones(len(weights), bool)
    else:
        pinned = np.cumsum(weights) <= (capacity - states.max()) / 2
    return weights, states, pinned, capacity - weights[pinned].sum()


def sequential_passes(streamed: float, state: float, free: float) -> int:
    """Passes over a layer's output neurons so that its streamed weights and membranes fit the free SRAM."""
    return max(1, math.ceil((streamed + state) / free))


def no_weight_room(weights: np.ndarray, capacity: float) -> str:
    return (f"weights ({weights.sum() / 2**20:.1f} MiB) do not fit in the "
            f"{capacity / 2**20:.1f} MiB of core SRAM and the chip has no DRAM to stream them from")


def input_bits(layer: Layer, carried: dict[str, float]) -> float:
    """Bits of inter-layer data a layer reads (the sum of what its sources carry)."""
    return sum(carried[s] for s in layer.inputs) if layer.inputs else 0.0


def no_spill_room(layer: Layer, kept_bits: float, arch: ArchConfig) -> str:
    return (f"layer '{layer.name}' keeps {kept_bits / 8:.0f} B of inter-layer data; the global buffer "
            f"holds {arch.global_buffer.bytes} B and there is no DRAM to spill to")


def estimate_spatial(net: Network, arch: ArchConfig) -> Report:
    T = net.max_timesteps
    net = with_timesteps(net, T)
    counts = structural_counts(net)
    sram = arch.core_array_bytes
    cores, why_not = spatial_cores(net, counts, arch)
    if cores is None:
        return infeasible(net, arch, why_not)
    layer_cycles = np.array([_compute_cycles(row, c, arch) for (_, row), c in zip(counts.iterrows(), cores)])
    stage = (layer_cycles / T).max()
    compute_cycles = stage * (T + _depth(net) - 1)

    ev = EventCounts()
    _core_events(ev, net, counts, arch)
    packet = arch.interconnect.spike_packet_bits
    hops_mm = arch.average_hops() * arch.interconnect.hop_mm
    index = {l.name: i for i, l in enumerate(net.layers)}
    noc_bits = 0.0
    for layer, row in zip(net.layers, counts.itertuples()):
        dest_cores = sum(cores[index[c.name]] for c in net.consumers(layer.name))
        if layer.spiking:
            bits = row.spikes_out * packet * dest_cores
            ev.add_sram(sram, read_bits=bits, write_bits=bits)  # event queue at each destination core
        else:
            bits = _step_bits(net, layer, arch) * T * max(1, len(net.consumers(layer.name)))
        noc_bits += bits
    ev.bit_mm = noc_bits * hops_mm
    noc_cycles = noc_bits * arch.average_hops() / _noc_bits_per_cycle(arch)
    cycles = max(compute_cycles, noc_cycles)
    notes = [f"all layers run T = {T}; pipeline depth {_depth(net)}; {int(cores.sum())} of "
             f"{arch.cores.count} cores used"]
    if noc_cycles > compute_cycles:
        notes.append("latency bound by the on-chip network")
    weights = sum(_weight_bytes(net, l) for l in net.layers)
    membrane = sum(_state_bytes(net, l, arch) for l in net.layers)
    spikes = sum(2 * _step_bits(net, l, arch) / 8 for l in net.layers)
    memory = dict(weights=weights, membrane=membrane, spike_buffers=spikes, peak_on_chip=weights + membrane + spikes)
    per_layer = counts.assign(cores=cores, cycles=layer_cycles)
    return _finish(net, arch, ev, cycles, memory, 0.0, per_layer, notes)


def estimate_sequential(net: Network, arch: ArchConfig) -> Report:
    carry = arch.mapping.carry
    counts = structural_counts(net)
    capacity = arch.total_core_sram
    gb = arch.global_buffer
    check_global_buffer(net, arch)
    weights, states, pinned, free = sequential_weights(net, arch)
    if not pinned.all() and arch.dram is None:
        return infeasible(net, arch, no_weight_room(weights, capacity))
    dram_per_cycle = arch.dram.bytes_per_s / arch.clock_hz if arch.dram else 0.0
    hops_mm = arch.average_hops() * arch.interconnect.hop_mm
    noc_rate = _noc_bits_per_cycle(arch) / arch.average_hops()

    ev = EventCounts()
    _core_events(ev, net, counts, arch)
    carried = {l.name: _carry_bits(net, l, arch, carry) for l in net.layers}
    held = {}                                    # carried bits of each layer's output: [in the global buffer, in DRAM]
    readers = {l.name: len(net.consumers(l.name)) for l in net.layers}
    gb_free = gb.bytes * 8.0
    rows, total_cycles, dram_bits, peak_buffer, peak_state, stream_slot = [], 0.0, 0.0, 0.0, 0.0, 0.0
    for i, (layer, row) in enumerate(zip(net.layers, counts.itertuples())):
        streamed = 0.0 if pinned[i] else weights[i]
        passes = sequential_passes(streamed, states[i], free)
        sources = list(dict.fromkeys(layer.inputs))
        in_gb, in_dram = sum(held[s][0] for s in sources), sum(held[s][1] for s in sources)
        out_bits = carried[layer.name]
        # The output takes what room the global buffer has left beside the histories still to be read;
        # the rest spills to DRAM (written once, read by every pass of every reader).
        to_gb = min(out_bits, gb_free)
        spill = out_bits - to_gb
        if spill and arch.dram is None:
            return infeasible(net, arch, no_spill_room(layer, gb.bytes * 8 - gb_free + out_bits, arch))
        gb_free -= to_gb
        held[layer.name] = (to_gb, spill)
        gb_bits = to_gb + in_gb * passes
        ev.add_sram(arch.buffer_array_bytes, read_bits=in_gb * passes, write_bits=to_gb)
        dram_read = streamed * 8 + in_dram * passes
        layer_dram = dram_read + spill
        ev.dram_read_bits += dram_read
        ev.dram_write_bits += spill
        ev.add_sram(arch.core_array_bytes, write_bits=streamed * 8)  # streamed weights land in core SRAM
        if carry == "rates" and layer.inputs and all(net[s].spiking for s in layer.inputs):
            ev.rng_ops += layer.seq_len * layer.timesteps * sum(_live(net, net[s]) for s in layer.inputs) * passes
        moved = gb_bits + layer_dram                    # everything to and from the cores crosses the network
        ev.bit_mm += moved * hops_mm
        cycles = max(_compute_cycles(row, arch.cores.count, arch),
                     layer_dram / 8 / dram_per_cycle if layer_dram else 0.0,
                     gb_bits / 8 / gb.bytes_per_cycle, moved / noc_rate)
        total_cycles += cycles
        dram_bits += layer_dram
        peak_buffer = max(peak_buffer, (gb.bytes * 8 - gb_free) / 8)
        peak_state = max(peak_state, states[i] / passes)
        stream_slot = max(stream_slot, streamed / passes)
        rows.append(dict(passes=passes, streamed_weight_bytes=streamed, spill_bytes=spill / 8, cycles=cycles))
        for s in sources:                               # a history leaves the buffer after its last reader
            readers[s] -= 1
            if readers[s] == 0:
                gb_free += held[s][0]
    notes = [f"layers run their own timesteps ({', '.join(str(t) for t in sorted({l.timesteps for l in net.layers}))});"
             f" carry: {carry}"]
    if not pinned.all():
        notes.append(f"{int((~pinned).sum())} of {len(pinned)} layers' weights streamed from DRAM every inference")
    on_chip_weights = float(weights[pinned].sum()) + stream_slot
    memory = dict(weights=float(weights.sum()), membrane=peak_state, spike_buffers=peak_buffer,
                  peak_on_chip=on_chip_weights + peak_state + peak_buffer)
    per_layer = pd.concat([counts, pd.DataFrame(rows)], axis=1)
    return _finish(net, arch, ev, total_cycles, memory, dram_bits / 8, per_layer, notes)


def estimate(net: Network, arch: ArchConfig, mapping: str | None = None, carry: str | None = None) -> Report:
    """Closed-form report for one network on one arch, with the arch's mapping unless overridden."""
    if mapping is not None or carry is not None:
        arch = arch.with_mapping(mapping or arch.mapping.kind, carry)
    if arch.energy is None:
        raise NeurosimError(arch.path, "energy_table", "the config was not loaded with its energy table",
                            "load configs with neurosim.arch.load_arch")
    return estimate_spatial(net, arch) if arch.mapping.kind == "spatial" else estimate_sequential(net, arch)
