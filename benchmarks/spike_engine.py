"""Spike engine vs a dense clock-driven PyTorch simulation of the same network.

    python benchmarks/spike_engine.py                  # SpikingBERT-4L shape, T = 85, rates 0.05 0.1 0.2
    python benchmarks/spike_engine.py --blocks 1 --timesteps 20 --repeats 1   # a quick check

The network is the SpikingBERT-4L card (hidden 768, intermediate 3072, 12
heads, sequence 128) with seeded random weights scaled toward the input rate
(neurosim.spikes.random_weights), run in lockstep for T steps on the same
seeded input spikes. Both simulators follow the same semantics (docs/design.md eq.
1-3, handoff.py's lockstep alignment, LayerNorm counted but not applied):

* engine: neurosim.spikes.run, event-driven (Numba);
* torch: float32, every step every layer multiplies its whole input (spike
  matrix or real Q) by its weight matrix, the way snnTorch-style simulators do.

Each variant runs in its own subprocess (so peak memory is its own) with the
same thread count for numba and torch, and OMP_WAIT_POLICY=PASSIVE for both
(see the results file). Time is the best of --repeats runs, after a warm-up
(numba compile / cache load, torch first call). Memory: RSS after imports,
weights and input, and the peak RSS during the runs (VmHWM, reset before
them through /proc/self/clear_refs). Writes benchmarks/results/spike_engine.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from machine import machine_info as describe_machine  # benchmarks/machine.py

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "spike_engine.md"


def build(rate: float, timesteps: int, blocks: int, seed: int):
    from neurosim.cards import load_model
    from neurosim.cost.workload import with_timesteps
    from neurosim.ir import Network
    from neurosim.spikes import random_weights

    card = with_timesteps(load_model("spikingbert-4l"), timesteps)
    net = Network(card.name, card.layers[:7 * blocks], card.input_size, card.input_rate, card.input_spiking,
                  card.metadata)
    net = random_weights(net, seed=seed, rate=rate)
    rng = np.random.default_rng(seed + 1)
    spikes = (rng.random((timesteps, net.layers[0].seq_len, net.input_size), dtype=np.float32) < rate)
    return net, spikes.astype(np.uint8)


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# -- the dense torch baseline ---------------------------------------------------------
def torch_dense(net, spikes, torch):
    """Clock-driven float32 simulation: every layer, every step, input x weight matrix."""
    n, T = net.layers[0].seq_len, spikes.shape[0]
    wt = {l.name: torch.from_numpy(np.ascontiguousarray(l.weights.T, dtype=np.float32))
          for l in net.layers if l.kind == "linear"}
    bias = {l.name: torch.from_numpy(np.asarray(l.bias, np.float32)) for l in net.layers if l.bias is not None}
    u = {l.name: torch.zeros(n, l.out_features) for l in net.layers if l.spiking}
    s = {l.name: torch.zeros(n, l.out_features) for l in net.layers if l.spiking}
    count = {l.name: 0 for l in net.layers if l.spiking}
    macs = 0
    x_all = torch.from_numpy(spikes)
    for t in range(T):
        outs = {}
        x = x_all[t].to(torch.float32)
        for l in net.layers:
            if l.kind == "linear":
                src = outs[l.inputs[0]] if l.inputs else x
                cur = src @ wt[l.name]
                macs += n * l.in_features * l.out_features
                if l.name in bias:
                    cur += bias[l.name]
            else:  # attention
                heads, hd = l.spec.heads, l.spec.head_dim
                q, k, v = (outs[i].view(n, heads, hd).transpose(0, 1) for i in l.inputs)
                a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd), dim=-1)
                cur = (a @ v).transpose(0, 1).reshape(n, l.out_features)
                macs += 2 * heads * n * n * hd
            if not l.spiking:
                outs[l.name] = cur
                continue
            nr = l.neuron
            mem = nr.leak * u[l.name] + cur - s[l.name] * nr.vth
            u[l.name] = mem
            s[l.name] = (mem >= nr.vth).to(torch.float32)
            outs[l.name] = s[l.name]
        for name in count:
            count[name] += int(s[name].sum())
    return count, macs


# -- one variant, in its own process ------------------------------------------------------
def worker(args) -> dict:
    threads = args.threads
    net, spikes = build(args.rate, args.timesteps, args.blocks, args.seed)
    if args.variant == "engine":
        import numba

        from neurosim.spikes import run, warm_up

        numba.set_num_threads(threads)
        warm_up()  # compile / load numba's cache of every kernel

        def once():
            tr = run(net, spikes)
            return {name: lt.spikes for name, lt in tr.layers.items() if lt.spiking}, tr.acs, tr.macs
        versions = dict(numba=numba.__version__, threading_layer=None)
    else:
        import torch

        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
        short = spikes[:1]
        torch_dense(net, short, torch)  # warm-up

        def once():
            count, macs = torch_dense(net, spikes, torch)
            return count, 0, macs
        versions = dict(torch=torch.__version__)
    setup_rss = _status("VmRSS")
    reset = _reset_peak()
    best, result = math.inf, None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = once()
        best = min(best, time.perf_counter() - t0)
    if args.variant == "engine":
        import numba
        versions["threading_layer"] = numba.threading_layer()
    spikes_per_layer, acs, macs = result
    slots = {l.name: l.seq_len * args.timesteps * l.out_features for l in net.layers if l.spiking}
    return dict(variant=args.variant, rate=args.rate, wall_s=best, acs=acs, macs=macs,
                spikes=int(sum(spikes_per_layer.values())),
                layer_rates={k: v / slots[k] for k, v in spikes_per_layer.items()},
                setup_rss=setup_rss, peak_rss=_status("VmHWM") if reset else None,
                max_rss=_status("VmHWM"), threads=threads, versions=versions)


# -- the driver -----------------------------------------------------------------------
def machine_info() -> dict:
    return describe_machine(("numpy", "numba", "torch"))


def _mib(b) -> str:
    return "-" if b is None else f"{b / 2**20:.0f}"


def write_results(rows: list[dict], info: dict, args, loads: tuple) -> str:
    by = {(r["variant"], r["rate"]): r for r in rows}
    lines = [
        "# Spike engine vs dense PyTorch simulation",
        "",
        f"Command: `python benchmarks/spike_engine.py --timesteps {args.timesteps} --blocks {args.blocks} "
        f"--repeats {args.repeats} --rounds {args.rounds} --threads {args.threads}`",
        "",
        f"Network: SpikingBERT-4L card shape, {args.blocks} encoder block(s) of {7} layers (hidden 768, "
        f"intermediate 3072, 12 heads, sequence 128), T = {args.timesteps}, lockstep, seeded random weights "
        "scaled toward the input rate (`neurosim.spikes.random_weights`), the same seeded input spikes for both.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores visible; {info['system']}; Python {info['python']}, "
        f"numpy {info['numpy']}, numba {info['numba']}, torch {info['torch']}. Threads: {args.threads} for numba "
        f"and for torch; OMP_WAIT_POLICY=PASSIVE for both. Load average (1 min) before / after: "
        f"{loads[0]:.2f} / {loads[1]:.2f}.",
        "",
        f"Wall time: the best of {args.rounds} processes x {args.repeats} runs per variant, the processes of "
        "the two variants alternating (all times in brackets). Peak RSS: the whole process; growth: the peak "
        "during the runs minus the RSS after imports, weights and input.",
        "",
        "| input rate | engine wall (s) | torch wall (s) | speed-up | engine ACs | engine ACs/s | torch dense MACs/s "
        "| mean layer rate | spikes engine / torch | peak RSS engine / torch (MiB) | RSS growth in runs engine / "
        "torch (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rate in args.rates:
        e, t = by[("engine", rate)], by[("torch", rate)]
        mean_rate = np.mean(list(e["layer_rates"].values()))
        growth = lambda r: None if r["peak_rss"] is None else r["peak_rss"] - r["setup_rss"]
        lines.append(
            f"| {rate} | {e['wall_s']:.2f} ({', '.join(f'{w:.2f}' for w in e['walls'])}) | "
            f"{t['wall_s']:.2f} ({', '.join(f'{w:.2f}' for w in t['walls'])}) | {t['wall_s'] / e['wall_s']:.2f}x | "
            f"{e['acs'] / 1e9:.2f} G | {e['acs'] / e['wall_s'] / 1e9:.2f} G | {t['macs'] / t['wall_s'] / 1e9:.1f} G | "
            f"{mean_rate:.3f} | {e['spikes']:,} / {t['spikes']:,} | {_mib(e['max_rss'])} / {_mib(t['max_rss'])} | "
            f"{_mib(growth(e))} / {_mib(growth(t))} |")
    lines += ["", "Per-layer measured rates (engine), by input rate:", ""]
    for rate in args.rates:
        e = by[("engine", rate)]
        lines.append(f"* {rate}: " + ", ".join(f"{k.split('.', 1)[1] if k.startswith('block0') else k} "
                                                f"{v:.3f}" for k, v in e["layer_rates"].items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    p.add_argument("--timesteps", type=int, default=85)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per process (the best counts)")
    p.add_argument("--rounds", type=int, default=2, help="processes per variant and rate, alternating")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--notes", default="", help="text appended to the results file")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--variant", choices=["engine", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:
        print(json.dumps(worker(args)))
        return
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    rows, loads = [], [os.getloadavg()[0]]
    for rate in args.rates:
        runs: dict[str, list[dict]] = {"torch": [], "engine": []}
        for _ in range(args.rounds):  # alternate the variants, so that a busy spell hits both
            for variant in runs:
                cmd = [sys.executable, __file__, "--variant", variant, "--rate", str(rate), "--timesteps",
                       str(args.timesteps), "--blocks", str(args.blocks), "--repeats", str(args.repeats),
                       "--threads", str(args.threads), "--seed", str(args.seed)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{variant} at rate {rate} failed:\n{out.stderr}")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                runs[variant].append(row)
                print(f"rate {rate} {variant:6s} {row['wall_s']:.2f} s  peak {_mib(row['max_rss'])} MiB", flush=True)
        for variant, got in runs.items():
            row = min(got, key=lambda r: r["wall_s"])
            row["walls"] = sorted(r["wall_s"] for r in got)
            rows.append(row)
    loads.append(os.getloadavg()[0])
    text = write_results(rows, machine_info(), args, tuple(loads))
    if args.notes:
        text += "\n" + args.notes.strip() + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
