"""The discrete-event (simpy) hardware simulator: cores, buffers with back-pressure, DRAM, interconnect.

    from neurosim.sim import simulate
    report = simulate(net, arch)                                  # the arch's mapping, work from rates
    report = simulate(net, arch, "sequential", "rates", trace=t)  # exact per-step work from a spike trace
    report = simulate(net, arch, timeline=True)                   # report.timeline: a DataFrame of intervals

It runs the same dataflows as the closed form (`cost.closed_form`; see
`sim.spatial` and `sim.sequential` for what each mapping does at event
level), with the same mapping decisions (`cost.layout`, on the chip's
`cost.chips.Chips` and the simulated work's `cost.workload.Workload`), and
prices what happened with the same energy model
(`cost.energy.energy_breakdown_pj`). Modules: work (per-step work from a
trace or rates), components (channels, buffers, tiles), spatial (a `Stage`
per layer), sequential (`WeightLoader`, `CorePool`, `CarryBuffers`), engine
(options, running safely, core events, the report).
"""

from __future__ import annotations

import time
from typing import Any

from ..arch import ArchConfig
from ..cost.chips import Chips
from ..cost.estimate import check_energy_table, zero_skipping_note
from ..cost.workload import Workload, with_timesteps
from ..errors import NeurosimError
from ..ir import Network
from ..report import Report
from .components import Recorder
from .engine import Context, SimOptions, SimStats, SimulationDeadlock
from .work import from_rates, from_trace, set_accumulators, set_ports, skip_zero_weights

__all__ = ["SimOptions", "SimStats", "SimulationDeadlock", "run_simulation", "simulate"]


def run_simulation(net: Network, arch: ArchConfig, mapping: str | None = None, carry: str | None = None,
                   trace: Any = None, seed: int = 0, timeline: bool = False,
                   options: SimOptions | None = None, layer_cores: dict[str, int] | None = None,
                   pool: int | None = None) -> tuple[Report, SimStats]:
    """`simulate`, also returning how the run went (simpy events, tasks, wall time)."""
    from .sequential import simulate_sequential
    from .spatial import simulate_spatial

    wall = time.perf_counter()
    if mapping is not None or carry is not None:
        arch = arch.with_mapping(mapping or arch.mapping.kind, carry)
    check_energy_table(arch)
    opts = options or SimOptions()
    spatial = arch.mapping.kind == "spatial"
    if trace is None:
        run_net = with_timesteps(net, net.max_timesteps) if spatial else net
        works, rows = from_rates(run_net)
        source = "rates (expected counts per step)"
    else:
        run_net, works, rows = from_trace(net, trace)
        steps = {w.timesteps for w in works.values()}
        if spatial and len(steps) > 1:
            raise NeurosimError("trace", "timesteps", f"layers ran different numbers of steps ({sorted(steps)}), "
                                "but in the spatial mapping every layer runs the same T",
                                "simulate the spatial mapping with a lockstep trace (spikes.run(..., "
                                "handoff='lockstep'))")
        source = f"trace ({getattr(trace, 'handoff', 'given')} handoff, exact counts per step)"
    chips = Chips.of(arch)
    if layer_cores is not None:                 # a plan's spatial segment gives its cores per layer
        chips = chips.with_layer_cores([layer_cores])
    if chips.zero_skipping[0]:                  # the cores skip zero weights: effective ACs only
        rows = skip_zero_weights(run_net, works, rows, trace)
    work = Workload(run_net, count_rows=rows, zero_skipping=bool(chips.zero_skipping[0]))
    if chips.recompute_constant_input[0]:       # the chip recomputes a constant input's product every step
        for i in map(int, work.constant_input.nonzero()[0]):
            works[work.names[i]].recompute("macs")
    set_ports(works, work, chips)               # memory ports' busy time, where the arch gives them widths
    set_accumulators(works, work)               # lanes busy at most as many as the accumulators take adds
    ctx = Context(run_net, arch, works, work, chips, opts, Recorder(timeline), seed, pool=pool)
    report = simulate_spatial(ctx) if spatial else simulate_sequential(ctx)
    ctx.stats.wall_s = time.perf_counter() - wall
    if report.feasible:
        report.notes += zero_skipping_note(work) + [f"work from {source}; seed {seed}"]
    return report, ctx.stats


def simulate(net: Network, arch: ArchConfig, mapping: str | None = None, carry: str | None = None,
             trace: Any = None, seed: int = 0, timeline: bool = False,
             options: SimOptions | None = None, layer_cores: dict[str, int] | None = None,
             pool: int | None = None) -> Report:
    """Simulate one network on one arch (the arch's mapping unless overridden) and report.

    `trace`: a spike trace (see `sim.work` for the interface), or None to take
    each layer's per-step work from its rate. `timeline`: keep every busy
    interval in `report.timeline`. `options`: `SimOptions` (buffer depth,
    task granularity). `layer_cores`: the spatial mapping's cores per layer
    ({layer: cores}, every layer), instead of the allocation rule's; `pool`: the
    sequential pool's size (at most the chip's cores), instead of the best size
    for the arch's objective (the mapping search's plans give both). Raises `SimulationDeadlock` (a NeurosimError) naming the
    blocked components if the run cannot finish; returns an infeasible report
    (with the shortfall) where the mapping does not fit the chip.

    The seed is recorded: work from rates is expected counts and the
    simulation itself draws nothing, so the same inputs give the same report.
    """
    return run_simulation(net, arch, mapping, carry, trace, seed, timeline, options, layer_cores, pool)[0]
