"""Speed of the discrete-event simulator: SpikingBERT-4L on every shipped chip, both mappings.

    python benchmarks/simulator.py                 # T = 85 and 140, 5 repeats per point
    python benchmarks/simulator.py --repeats 1     # a quick check

For each design point (model at T, arch config, mapping/carry) it runs
`neurosim.sim.run_simulation` with work from the card's assumed rates and
records the wall time (best and median of the repeats, plus the first,
cold call), the simpy events processed, events per second, and the tasks
simulated; next to it the closed form (`cost.estimate`) on the same point,
and how far the two are apart. Writes benchmarks/results/simulator.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from machine import machine_line  # benchmarks/machine.py (scripts run from this folder)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "simulator.md"
MAPPINGS = (("spatial", None), ("sequential", "spikes"), ("sequential", "rates"))
ARCHS = ("spatial-45nm-large", "edge-45nm", "loihi")


def machine() -> str:
    return machine_line(("simpy", "numpy", "pandas"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, nargs="+", default=[85, 140])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from neurosim.arch import load_arch
    from neurosim.cards import load_model
    from neurosim.cost.estimate import estimate
    from neurosim.cost.workload import with_timesteps
    from neurosim.sim import run_simulation

    base = load_model("spikingbert-4l")
    rows, args.load = [], [os.getloadavg()[0]]
    for T in args.timesteps:
        net = with_timesteps(base, T)
        for arch_name in ARCHS:
            arch = load_arch(arch_name)
            for mapping, carry in MAPPINGS:
                times, cpu, stats, report = [], [], None, None
                for _ in range(args.repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    report, stats = run_simulation(net, arch, mapping, carry)
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                t0, c0 = time.perf_counter(), time.process_time()
                closed = estimate(net, arch, mapping, carry)
                t_closed, c_closed = time.perf_counter() - t0, time.process_time() - c0
                label = mapping + (f" ({carry})" if carry else "")
                row = dict(T=T, arch=arch_name, mapping=label, feasible=report.feasible, first=times[0],
                           best=min(times), median=statistics.median(times), events=stats.events,
                           tasks=stats.tasks, closed_s=t_closed, cpu=min(cpu), closed_cpu=c_closed)
                if report.feasible:
                    row.update(latency_ms=report.latency_s * 1e3, energy_mj=report.energy_pj * 1e-9,
                               d_latency=report.latency_cycles / closed.latency_cycles - 1,
                               d_energy=report.energy_pj / closed.energy_pj - 1, stall=report.stall_cycles,
                               util=report.utilization["cores"])
                else:
                    row["why"] = report.notes[0]
                rows.append(row)
                ev = f"{row['events'] / row['best']:,.0f} ev/s" if row["events"] else "-"
                print(f"T={T:4d} {arch_name:20s} {label:21s} best {row['best'] * 1e3:8.1f} ms  "
                      f"{row['events']:7d} events  {ev}", flush=True)
    args.load.append(os.getloadavg()[0])
    write(rows, args)
    return 0


def write(rows: list[dict], args) -> None:
    feasible = [r for r in rows if r["feasible"]]
    lines = [
        "# Simulator speed: SpikingBERT-4L design points",
        "",
        "Written by `python benchmarks/simulator.py"
        + (f" --repeats {args.repeats}" if args.repeats != 5 else "") + "`. Machine: " + machine() + ". "
        f"Load average (1 min) {args.load[0]:.1f} before, {args.load[1]:.1f} after.",
        "",
        "Each design point is one `neurosim.sim.run_simulation` call (building the per-step work from the",
        "model card's assumed rates, the core allocation, the simpy run, energy and the report; no timeline).",
        f"Wall time: best and median of {args.repeats} calls, and the first call of each point (imports and",
        "model loading are done before any timing); CPU: the best call's process time (what the point costs",
        "on a shared, loaded machine, where wall time also counts waiting for a core).",
        "Events: simpy events processed in the run (timeouts, deliveries, buffer puts that had to wait);",
        "transfers on the DRAM channel, the global-buffer port and the network are booked on FIFO calendars",
        "and cost no event of their own. Events/s: those events over the whole call's best wall time (so it",
        "includes the Python work around the event loop). Tasks: (layer tile, timestep) units simulated;",
        "every point here runs at one timestep per task (no coarsening was needed for the 2 s target).",
        "",
        "| T | arch | mapping | wall best (ms) | median (ms) | first (ms) | CPU best (ms) | simpy events | events/s |"
        " tasks | closed form (ms) | closed form CPU (ms) | latency | energy | sim vs closed form: latency, energy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["feasible"]:
            lines.append(f"| {r['T']} | {r['arch']} | {r['mapping']} | {r['best'] * 1e3:.1f} | "
                         f"{r['median'] * 1e3:.1f} | {r['first'] * 1e3:.1f} | {r['cpu'] * 1e3:.1f} | - | - | - | "
                         f"{r['closed_s'] * 1e3:.1f} | {r['closed_cpu'] * 1e3:.1f} |"
                         f" infeasible | | {r['why']} |")
            continue
        lines.append(
            f"| {r['T']} | {r['arch']} | {r['mapping']} | {r['best'] * 1e3:.1f} | {r['median'] * 1e3:.1f} | "
            f"{r['first'] * 1e3:.1f} | {r['cpu'] * 1e3:.1f} | {r['events']:,} | {r['events'] / r['best']:,.0f} | "
            f"{r['tasks']:,} | {r['closed_s'] * 1e3:.1f} | {r['closed_cpu'] * 1e3:.1f} | {r['latency_ms']:.3g} ms | "
            f"{r['energy_mj']:.4g} mJ | {100 * r['d_latency']:+.2f}%, {100 * r['d_energy']:+.2f}% |")
    worst = max(feasible, key=lambda r: r["median"])
    lines += [
        "",
        f"Slowest feasible point: {worst['median'] * 1e3:.0f} ms median, {worst['cpu'] * 1e3:.0f} ms CPU "
        f"({worst['arch']}, {worst['mapping']}, T = {worst['T']}); target: under 2 s per design point.",
        "",
        "Sequential points: both engines size the pool with the closed form's search, which prices every pool",
        "size in one vectorised call (`closed_form.pool_scores`, since 69db01e). Before, one call a size made",
        "that search most of a sequential point: the closed form alone took 785 / 838 ms CPU against 95 / 124",
        "ms now (spikes / rates, T = 85, spatial-45nm-large; `estimate` at 9637c92 and 69db01e, back to back).",
        "",
        "Why the simulator and the closed form differ on these points (see `neurosim/sim/spatial.py`,",
        "`sequential.py` and tests/test_sim.py, which checks each cause): compute, SRAM, DRAM and network",
        "energy come from the same event counts, spills included, so energy differs only by leakage",
        "(static power x each model's own latency).",
        "",
        "* spatial on spatial-45nm-large: the pipeline is paced by its slowest stage (block attention, real",
        "  Q.K^T on the small MAC datapath). The closed form charges the fill as (depth - 1) x that stage;",
        "  the simulator follows each stage's own time along the critical path, so it is lower. The large",
        "  back-pressure stall count is the fast stages (K, V) waiting on full buffers for the slow one.",
        "* sequential (spikes) on spatial-45nm-large: the fp32 Query history (33 MB at T = 85) overflows the",
        "  4 MB global buffer. Both models keep every history until its last reader ran and send only the",
        "  overflow to DRAM, once, so their spill, DRAM traffic and energy agree; latency differs only where",
        "  the simulator's step-by-step port and DRAM bookings leave the cores waiting.",
        "* sequential (rates) on spatial-45nm-large: counts are read when a pass starts and written when it",
        "  ends; where that takes longer than the first / last step's compute the cores wait (+0.2 to +0.3%).",
        "* sequential on edge-45nm: every layer streams its weights from DRAM and a pass fills more than half",
        "  of the free core SRAM, so the next pass cannot be prefetched: compute waits for each load, which",
        "  the closed form hides behind compute (+0.3% latency). Carrying spikes also spills (see above).",
        "* loihi: SpikingBERT-4L does not fit (no DRAM to stream 108 MiB of weights, too few cores to unroll):",
        "  both models report the same shortfall without simulating.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
