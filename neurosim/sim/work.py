"""Work per (layer, timestep): exact from a spike trace, or expected from rates.

The simulator takes a trace through a small duck-typed interface, which
`neurosim.spikes.SpikeTrace` satisfies. `trace[name]` (or
`trace.layers[name]`) gives, for every layer of the network, an object with

    timesteps        int: the steps the layer ran
    acs_per_step     array (timesteps,): ACs of each step, exact
    macs             number: MACs of the whole run      (or macs_per_step: array)
    other_ops        number: other ops of the whole run  (or other_ops_per_step)
    neuron_updates   number: of the whole run            (or neuron_updates_per_step)
    spikes_per_step  array (timesteps,) of output events, or None for a real-valued output
    input_spike_bits int, optional: bits of one input event (default: from the IR)

A whole-run number is spread over the steps deterministically: an integer
total as equal integer parts with the remainder on the first steps, a real
total as equal real parts. Without a trace, a layer's per-step work is its
structural count (`cost.analytic.layer_counts`, at the layer's rate) divided
by its timesteps.

Counts stay exact: a layer's counter is its cumulative work, and when the
layer finishes it reads the source's own total, never a sum of rounded
parts (see `LayerWork.count`). Cycles come from `cost.layout.compute_cycles`,
the closed form's formula, step by step in whole cycles (`LayerWork.cycles`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Integral
from typing import Any

import numpy as np

from ..cost.analytic import input_spike_bits, layer_counts, nonzero_fraction
from ..cost.chips import Chips
from ..arch import EnergyTable
from ..cost.layout import busy_cycles, compute_cycles, datapath_ops, pace, port_cycles
from ..cost.workload import Workload
from ..errors import NeurosimError
from ..ir import Network

KEYS = ("acs", "macs", "other_ops", "neuron_updates", "spikes_out")


def spread(total: Any, steps: int) -> np.ndarray:
    """A whole-run count over `steps` steps: integers split with the remainder first, reals evenly."""
    if isinstance(total, Integral):
        base, rem = divmod(int(total), steps)
        out = np.full(steps, base, dtype=np.int64)
        out[:rem] += 1
        return out
    return np.full(steps, float(total) / steps)


def _exact_total(per_step: np.ndarray, given: Any = None) -> Any:
    """The exact total of a per-step array: Python int for integers, else the given whole-run value or a float sum."""
    if given is not None:
        return given
    if np.issubdtype(per_step.dtype, np.integer):
        return int(per_step.sum())
    return float(np.sum(per_step))


@dataclass
class LayerWork:
    name: str
    timesteps: int
    per_step: dict[str, np.ndarray]   # key -> (timesteps,) work of each step (for timing)
    totals: dict[str, Any]            # key -> the source's exact whole-run count
    input_spike_bits: int
    ports: np.ndarray | None = None   # cycles each memory port of one core is busy over the run (`set_ports`)
    serial_ports: bool = False        # ports busy after the compute, not beside it
    accumulators: float = np.inf      # what the layer sums into in one step (`Workload.accumulators`)

    def __post_init__(self) -> None:
        self._cum = {k: np.concatenate(([0.0], np.cumsum(v, dtype=np.float64))) for k, v in self.per_step.items()}

    def steps(self, key: str, s0: int, s1: int) -> float:
        """Work of steps s0..s1-1 (timing only)."""
        return float(self._cum[key][s1] - self._cum[key][s0])

    def count(self, key: str, passes_done: int, steps_done: int, passes: int = 1) -> Any:
        """The layer's counter after `passes_done` whole passes plus `steps_done` steps of the next one.

        A finished layer reports its source's exact total; partial progress
        (a run that stopped early) the cumulative share.
        """
        if passes_done >= passes or (passes_done == passes - 1 and steps_done >= self.timesteps):
            return self.totals[key]
        return (passes_done * self._cum[key][-1] + self._cum[key][steps_done]) / passes

    def dense_steps(self, passes_done: int, steps_done: int, passes: int = 1) -> float:
        """Steps the layer ran (in whole-layer equivalents of its passes), for `layout.core_access_bits`."""
        return (passes_done * self.timesteps + steps_done) / passes if passes_done < passes else self.timesteps

    def cycles(self, chips: Chips, table: EnergyTable, cores: int, passes: int = 1,
               bounds: np.ndarray | None = None) -> list[float]:
        """Compute cycles on `cores` cores of each step of one pass (its share 1/passes of the outputs), each
        step taking whole cycles (`layout.whole_cycles`, as the closed form); or, with `bounds`, of each
        span of steps bounds[j]..bounds[j+1]-1."""
        compute, ports = self._step_parts(chips, table, cores, passes)
        steps = busy_cycles(compute, ports, 1, self.serial_ports)
        if bounds is None:
            return steps.tolist()
        cum = np.concatenate(([0.0], np.cumsum(steps)))
        return (cum[bounds[1:]] - cum[bounds[:-1]]).tolist()

    def pace(self, chips: Chips, table: EnergyTable, cores: int, passes: int = 1) -> str:
        """What sets the layer's busy time on `cores` cores over its run: compute, or a memory port
        (`layout.pace`, the closed form's rule, on the run's compute and port cycles)."""
        compute, ports = self._step_parts(chips, table, cores, passes)
        ports = None if ports is None else ports.sum(axis=1)[:, None, None]
        return str(pace(np.array([[compute.sum()]]), ports, chips.levels.port_names()[:1])[0, 0])

    def _step_parts(self, chips: Chips, table: EnergyTable, cores: int, passes: int) -> tuple:
        """(compute cycles of each step of one pass, (ports, steps) busy cycles of each port or None)."""
        ps = self.per_step
        ac_ops, mac_ops = datapath_ops(ps["acs"], ps["acs"] * self.input_spike_bits, ps["neuron_updates"],
                                       ps["macs"], ps["other_ops"], table)
        compute = compute_cycles(ac_ops / passes, mac_ops / passes, np.full((1, self.timesteps), cores), chips,
                                 self.accumulators / passes)[0]
        return compute, self._ports_per_step(ac_ops + mac_ops, cores * passes)

    def _ports_per_step(self, ops: np.ndarray, cores: float) -> np.ndarray | None:
        """(ports, steps): each port's busy cycles on `cores` cores, spread over the steps as the ops are
        (evenly where there are none)."""
        if self.ports is None:
            return None
        ops = np.asarray(ops, dtype=float)
        share = ops / ops.sum() if ops.sum() > 0 else np.full(self.timesteps, 1.0 / self.timesteps)
        return self.ports[:, None] * share[None, :] / cores

    def recompute(self, key: str) -> None:
        """The work of `key` done again at every step: t times the total (a constant input recomputed)."""
        self.totals[key] = self.totals[key] * self.timesteps
        self.per_step[key] = self.per_step[key] * self.timesteps
        self.__post_init__()


def set_accumulators(works: dict[str, LayerWork], work: Workload) -> None:
    """Give each layer its accumulators, which cap its lane-ops a cycle (`cost.layout.compute_cycles`)."""
    for i, name in enumerate(work.names):
        works[name].accumulators = float(work.accumulators[i])


def set_ports(works: dict[str, LayerWork], work: Workload, chips: Chips) -> None:
    """Give each layer its memory ports' busy cycles (`cost.layout.port_cycles`, the closed form's), where
    the arch gives ports a width."""
    ports = port_cycles(work, chips)
    if ports is None:
        return
    for i, name in enumerate(work.names):
        works[name].ports, works[name].serial_ports = ports[:, 0, i], bool(chips.levels.serial[0])


def _layer_source(trace: Any, name: str) -> Any:
    layers = getattr(trace, "layers", trace)
    try:
        return layers[name]
    except (KeyError, IndexError, TypeError):
        raise NeurosimError("trace", name, "the trace has no entry for this layer of the network",
                            "simulate with the trace the spike engine produced for this network") from None


def _per_step(src: Any, key: str, steps: int, where: str) -> tuple[np.ndarray, Any]:
    arr = getattr(src, f"{key}_per_step", None)
    if arr is not None:
        arr = np.asarray(arr)
        if arr.shape != (steps,):
            raise NeurosimError(where, f"{key}_per_step", f"has shape {arr.shape}, expected ({steps},)",
                                "give one value per timestep the layer ran")
        return arr, _exact_total(arr)
    total = getattr(src, key)
    total = total.item() if hasattr(total, "item") else total
    return spread(total, steps), total


def from_trace(net: Network, trace: Any) -> tuple[Network, dict[str, LayerWork], list[dict]]:
    """The network with the trace's timesteps, per-layer work, and count rows like `layer_counts`."""
    layers, works, rows = [], {}, []
    for layer in net.layers:
        src = _layer_source(trace, layer.name)
        where = f"trace of layer '{layer.name}'"
        steps = int(src.timesteps)
        if steps < 1:
            raise NeurosimError(where, "timesteps", f"got {steps}", "a layer runs at least one step")
        acs = np.asarray(src.acs_per_step)
        if acs.shape != (steps,):
            raise NeurosimError(where, "acs_per_step", f"has shape {acs.shape}, expected ({steps},)",
                                "give the ACs of each step the layer ran")
        per_step, totals = {"acs": acs}, {"acs": _exact_total(acs)}
        for key in ("macs", "other_ops", "neuron_updates"):
            per_step[key], totals[key] = _per_step(src, key, steps, where)
        spikes = getattr(src, "spikes_per_step", None)
        spikes = np.zeros(steps, np.int64) if spikes is None else np.asarray(spikes)
        per_step["spikes_out"], totals["spikes_out"] = spikes, _exact_total(spikes)
        bits = getattr(src, "input_spike_bits", None) or input_spike_bits(net, layer)
        works[layer.name] = LayerWork(layer.name, steps, per_step, totals, int(bits))
        layers.append(replace(layer, timesteps=steps))
        rows.append(dict(layer=layer.name, kind=layer.kind, timesteps=steps, **totals, input_spike_bits=int(bits)))
    run_net = Network(net.name, layers, net.input_size, net.input_rate, net.input_spiking, dict(net.metadata))
    return run_net, works, rows


def from_rates(net: Network) -> tuple[dict[str, LayerWork], list[dict]]:
    """Expected work per step: each layer's structural count at its rate, over its timesteps."""
    works, rows = {}, []
    for layer in net.layers:
        row = layer_counts(net, layer, activity=True)
        t = layer.timesteps
        totals = {k: row[k] for k in KEYS}
        per_step = {k: np.full(t, float(v) / t) for k, v in totals.items()}
        works[layer.name] = LayerWork(layer.name, t, per_step, totals, int(row["input_spike_bits"]))
        rows.append(row)
    return works, rows


def skip_zero_weights(net: Network, works: dict[str, LayerWork], rows: list[dict], trace: Any = None) -> list[dict]:
    """For cores that skip zero weights: each layer's ACs become its effective ones (the trace's exact
    `effective_acs_per_step` where it has them, else the dense ACs x `analytic.nonzero_fraction`), in
    `works` and in the returned count rows, which keep the dense count as `dense_acs`."""
    out = []
    for layer, row in zip(net.layers, rows):
        w = works[layer.name]
        src = _layer_source(trace, layer.name) if trace is not None else None
        effective = getattr(src, "effective_acs_per_step", None)
        if effective is not None:
            acs = np.asarray(effective)
            total = _exact_total(acs)
        else:
            fraction = nonzero_fraction(net, layer)
            acs, total = w.per_step["acs"] * fraction, w.totals["acs"] * fraction
        works[layer.name] = LayerWork(w.name, w.timesteps, {**w.per_step, "acs": acs}, {**w.totals, "acs": total},
                                      w.input_spike_bits)
        out.append({**row, "acs": total, "dense_acs": row["acs"]})
    return out
