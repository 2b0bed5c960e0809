"""Spike engine (fp32, int8, 1-bit weights) vs dense PyTorch simulations of the same network, per step
and multi-step, and the machine's copy bandwidth as the bound.

    python benchmarks/spike_engine.py                  # SpikingBERT-4L shape, T = 85, rates 0.05 0.1 0.2
    python benchmarks/spike_engine.py --blocks 1 --timesteps 20 --repeats 1 --rounds 1   # a quick check

The network is the SpikingBERT-4L card (hidden 768, intermediate 3072, 12
heads, sequence 128) with seeded random weights scaled toward the input rate
(neurosim.spikes.random_weights), run in lockstep for T steps on the same
seeded input spikes. Every variant follows the same semantics (docs/design.md
eq. 1-3, handoff.py's lockstep alignment, LayerNorm counted but not applied):

* engine-fp32 / -int8 / -1bit / -1bit-packed: neurosim.spikes.run (Numba), on
  the weights as fp32, rounded to int8 codes, or to signs, each x a power-of-two
  scale per row, so the low-bit engines give the fp32 engine's spikes on the
  same (dequantized) weights: fp32 and int8 event-driven; 1-bit by popcounts of
  bit-packed signs and binary spikes (kernels_bits), -1bit-packed by events on
  signs packed 8 to a byte (lowbit.PACK_SIGNS);
* torch-step: float32, every step every layer multiplies its whole input
  (spike matrix or real Q) by its weight matrix (snnTorch style);
* torch-multi: float32, every layer's input current for all T steps in one
  GEMM, then the neuron recurrence over T (SpikingJelly's multi-step mode): the
  fastest dense path for a user who only wants spike counts.

Each variant runs in its own subprocess (so peak memory is its own) with the
same thread count for numba and torch, and OMP_WAIT_POLICY=PASSIVE for all
(see the results file). Time is the best of --repeats runs, after a warm-up
(numba compile / cache load, low-bit codes prepared, torch first call).
Memory: peak RSS of the process. The bound: a STREAM-like copy with the same
threads, out of DRAM and out of the last-level cache, against the weight bytes
the engine reads per second. Writes benchmarks/results/spike_engine.md.
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


def build(rate: float, timesteps: int, blocks: int, seed: int, bits: int = 32):
    from neurosim.cards import load_model
    from neurosim.cost.workload import with_timesteps
    from neurosim.ir import Network
    from neurosim.spikes import random_weights

    card = with_timesteps(load_model("spikingbert-4l"), timesteps)
    net = Network(card.name, card.layers[:7 * blocks], card.input_size, card.input_rate, card.input_spiking,
                  card.metadata)
    net = low_bit(random_weights(net, seed=seed, rate=rate), bits)
    rng = np.random.default_rng(seed + 1)
    spikes = (rng.random((timesteps, net.layers[0].seq_len, net.input_size), dtype=np.float32) < rate)
    return net, spikes.astype(np.uint8)


def low_bit(net, bits: int):
    """Every linear layer's weights rounded to `bits`-bit codes x a power-of-two scale per output row
    (1 bit: sign x 2^round(log2 mean|w|)), with weight_bits set: the engine's low-bit kernels then give
    the fp32 engine's spikes on these (dequantized) weights exactly. Stored transposed, as random_weights."""
    from dataclasses import replace

    from neurosim.ir import Network

    if bits >= 32:
        return net
    layers = []
    for l in net.layers:
        if l.kind != "linear":
            layers.append(l)
            continue
        wt = np.asarray(l.weights).T                                      # (in, out), a view
        a = np.abs(wt)
        if bits == 1:
            q, scale = np.where(wt >= 0, 1.0, -1.0), 2.0 ** np.round(np.log2(a.mean(axis=0)))
        else:
            top = 2 ** (bits - 1) - 1
            scale = 2.0 ** np.ceil(np.log2(a.max(axis=0) / top))          # the largest code fits in top
            q = np.clip(np.rint(wt / scale), -top, top)
        layers.append(replace(l, weights=(q * scale).astype(np.float32).T, weight_bits=bits))
    return Network(net.name, layers, net.input_size, net.input_rate, net.input_spiking, net.metadata)


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


# -- the dense torch baselines --------------------------------------------------------------------
def torch_weights(net, torch, device="cpu"):
    """(in, out) float32 weights and biases of every linear layer, on the device (outside the timed runs)."""
    wt = {l.name: torch.from_numpy(np.ascontiguousarray(l.weights.T, dtype=np.float32)).to(device)
          for l in net.layers if l.kind == "linear"}
    bias = {l.name: torch.from_numpy(np.asarray(l.bias, np.float32)).to(device)
            for l in net.layers if l.bias is not None}
    return wt, bias


def _attention(l, q, k, v, torch):
    """softmax(Q K^T / sqrt(hd)) V per head over the trailing (tokens, features) axes of any leading shape."""
    heads, hd = l.spec.heads, l.spec.head_dim
    lead = q.shape[:-2]
    q, k, v = (x.reshape(*lead, x.shape[-2], heads, hd).transpose(-3, -2) for x in (q, k, v))
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    return (a @ v).transpose(-3, -2).reshape(*lead, q.shape[-2], l.out_features)


def neuron_step(nr, u, s, cur, torch):
    """One IF/LIF/GIF step as the engine's default neuron: u = leak u + I - s vth, spike (GIF: how many vth,
    at most `levels`) when u >= vth."""
    u = nr.leak * u + cur - s * nr.vth
    if nr.levels > 1:
        return u, torch.where(u >= nr.vth, torch.clamp(torch.floor(u / nr.vth), max=nr.levels), 0.0)
    return u, (u >= nr.vth).to(torch.float32)


def torch_dense(net, spikes, torch, weights, device="cpu"):
    """Per-step (snnTorch style): every step, every layer multiplies its whole input by its weight matrix."""
    n, T = net.layers[0].seq_len, spikes.shape[0]
    wt, bias = weights
    u = {l.name: torch.zeros(n, l.out_features, device=device) for l in net.layers if l.spiking}
    s = {l.name: torch.zeros(n, l.out_features, device=device) for l in net.layers if l.spiking}
    count = {l.name: 0 for l in net.layers if l.spiking}
    macs = 0
    x_all = torch.from_numpy(spikes).to(device)
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
                cur = _attention(l, *(outs[i] for i in l.inputs), torch)
                macs += 2 * l.spec.heads * n * n * l.spec.head_dim
            if not l.spiking:
                outs[l.name] = cur
                continue
            u[l.name], s[l.name] = neuron_step(l.neuron, u[l.name], s[l.name], cur, torch)
            outs[l.name] = s[l.name]
        for name in count:
            count[name] += (s[name] != 0).sum()
    return {k: int(v) for k, v in count.items()}, macs


def torch_multistep(net, spikes, torch, weights, device="cpu"):
    """Multi-step (SpikingJelly style): each layer's input current for all T steps in one GEMM (attention
    for all steps in one batched product), then the neuron recurrence over T. Same float32 neuron as
    torch_dense; a layer's output is dropped once no later layer reads it."""
    n, T = net.layers[0].seq_len, spikes.shape[0]
    wt, bias = weights
    last = {src: i for i, l in enumerate(net.layers) for src in l.inputs}
    outs, count, macs = {}, {}, 0
    x_all = torch.from_numpy(spikes).to(device).to(torch.float32)
    for i, l in enumerate(net.layers):
        if l.kind == "linear":
            src = outs[l.inputs[0]] if l.inputs else x_all
            cur = (src.reshape(T * n, -1) @ wt[l.name]).reshape(T, n, -1)
            macs += T * n * l.in_features * l.out_features
            if l.name in bias:
                cur += bias[l.name]
        else:
            cur = _attention(l, *(outs[j] for j in l.inputs), torch)
            macs += T * 2 * l.spec.heads * n * n * l.spec.head_dim
        if l.spiking:
            nr, u = l.neuron, torch.zeros(n, l.out_features, device=device)
            s = torch.zeros_like(u)
            out = torch.empty_like(cur)
            for t in range(T):
                u, s = neuron_step(nr, u, s, cur[t], torch)
                out[t] = s
            cur = out
            count[l.name] = (out != 0).sum()
        outs[l.name] = cur
        for src in [k for k, j in last.items() if j == i]:
            del outs[src]
    return {k: int(v) for k, v in count.items()}, macs


# -- the memory bound ------------------------------------------------------------------------------
def copy_bandwidth(threads: int, size: int, seconds: float = 1.0) -> float:
    """STREAM-like copy b[:] = a[:] with `threads` threads over two float32 arrays of `size` bytes each;
    bytes read + written per second, best pass. 1 GiB arrays measure DRAM, a few MiB the last-level cache."""
    import numba
    from numba import njit, prange

    @njit(parallel=True)
    def copy(a, b):
        for i in prange(a.shape[0]):
            b[i] = a[i]

    numba.set_num_threads(threads)
    a = np.ones(size // 4, np.float32)
    b = np.zeros_like(a)
    copy(a, b)
    best, t_end = math.inf, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        copy(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size / best


# -- one variant, in its own process ------------------------------------------------------
ENGINES = {"engine-fp32": 32, "engine-int8": 8, "engine-1bit": 1, "engine-1bit-packed": 1}
VARIANTS = ("torch-step", "torch-multi", *ENGINES)
WEIGHT_BYTES = {"engine-fp32": 4, "engine-int8": 1, "engine-1bit": 1, "engine-1bit-packed": 1 / 8}
# engine-1bit on binary spikes reads packed signs for every (row, input, output) by popcount: 1/8 byte a pair,
# whether the input fired or not (kernels_bits), not a byte per AC


def weight_bytes(r: dict) -> float:
    """Weight bytes one run of this variant reads in its linear layers."""
    if r["variant"] == "engine-1bit":
        return r["dense_pairs"] / 8
    return r["linear_acs"] * WEIGHT_BYTES.get(r["variant"], 0)


def _runner(variant: str, net, spikes, threads: int):
    """once() -> (spikes per layer, ACs, MACs, weight-row ACs) for one variant, after its warm-up."""
    if variant in ENGINES:
        import numba

        from neurosim.spikes import lowbit, run, warm_up

        numba.set_num_threads(threads)
        lowbit.PACK_SIGNS = variant == "engine-1bit-packed"
        warm_up()  # compile / load numba's cache of every kernel
        run(net, spikes)   # and the packed branch, and the low-bit codes (prepared once per network)

        def once():
            tr = run(net, spikes)
            linear = sum(lt.acs for lt in tr.layers.values() if lt.kind == "linear")
            return {name: lt.spikes for name, lt in tr.layers.items() if lt.spiking}, tr.acs, tr.macs, linear
        return once
    import torch

    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    simulate = torch_dense if variant == "torch-step" else torch_multistep
    weights = torch_weights(net, torch)
    simulate(net, spikes[:1], torch, weights)  # warm-up

    def once():
        count, macs = simulate(net, spikes, torch, weights)
        return count, 0, macs, 0
    return once


def worker(args) -> dict:
    if args.variant == "bandwidth":
        return dict(variant="bandwidth", dram=copy_bandwidth(args.threads, 1 << 30),
                    llc=copy_bandwidth(args.threads, 8 << 20))
    net, spikes = build(args.rate, args.timesteps, args.blocks, args.seed, ENGINES.get(args.variant, 32))
    once = _runner(args.variant, net, spikes, args.threads)
    setup_rss = _status("VmRSS")
    reset = _reset_peak()
    best, best_cpu, result = math.inf, math.inf, None
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = once()
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    spikes_per_layer, acs, macs, linear_acs = result
    slots = {l.name: l.seq_len * args.timesteps * l.out_features for l in net.layers if l.spiking}
    dense_pairs = sum(args.timesteps * l.seq_len * l.in_features * l.out_features for l in net.layers
                      if l.kind == "linear")
    return dict(variant=args.variant, rate=args.rate, wall_s=best, cpu_s=best_cpu, acs=acs, macs=macs, linear_acs=linear_acs,
                dense_pairs=dense_pairs,
                spikes=int(sum(spikes_per_layer.values())),
                layer_rates={k: v / slots[k] for k, v in spikes_per_layer.items()},
                setup_rss=setup_rss, peak_rss=_status("VmHWM") if reset else None,
                max_rss=_status("VmHWM"), threads=args.threads)


# -- the driver -----------------------------------------------------------------------
def machine_info() -> dict:
    return describe_machine(("numpy", "numba", "torch"))


def _mib(b) -> str:
    return "-" if b is None else f"{b / 2**20:.0f}"


def _row(r: dict, step: dict, multi: dict, bw: dict) -> str:
    walls = ", ".join(f"{w:.2f}" for w in r["walls"])
    bytes_s = weight_bytes(r) / r["wall_s"]
    engine = r["variant"] in ENGINES
    rate = np.mean(list(r["layer_rates"].values()))
    return (f"| {r['rate']} | {r['variant']} | {r['wall_s']:.2f} ({walls}) | {step['wall_s'] / r['wall_s']:.2f}x | "
            f"{multi['wall_s'] / r['wall_s']:.2f}x | {r['cpu_s']:.2f} | {multi['cpu_s'] / r['cpu_s']:.2f}x | "
            f"{r['spikes']:,} | {rate:.3f} | "
            + (f"{r['acs'] / r['wall_s'] / 1e9:.2f} G | {bytes_s / 1e9:.1f} GB/s | {bytes_s / bw['llc']:.0%} | "
               f"{bytes_s / bw['dram']:.0%}" if engine else f"{r['macs'] / r['wall_s'] / 1e9:.1f} G MAC/s | - | - | -")
            + f" | {_mib(r['max_rss'])} |")


def write_results(rows: list[dict], bw: dict, info: dict, args, loads: tuple) -> str:
    by = {(r["variant"], r["rate"]): r for r in rows}
    lines = [
        "# Spike engine vs dense PyTorch simulation",
        "",
        f"Command: `python benchmarks/spike_engine.py --timesteps {args.timesteps} --blocks {args.blocks} "
        f"--repeats {args.repeats} --rounds {args.rounds} --threads {args.threads} --rates "
        f"{' '.join(map(str, args.rates))}"
        + ("" if set(args.variants) == set(VARIANTS) else f" --variants {' '.join(args.variants)}") + "`",
        "",
        f"Network: SpikingBERT-4L card shape, {args.blocks} encoder block(s) of 7 layers (hidden 768, "
        f"intermediate 3072, 12 heads, sequence 128), T = {args.timesteps}, lockstep, seeded random weights "
        "scaled toward the input rate (`neurosim.spikes.random_weights`), the same seeded input spikes for every "
        "variant. The int8 and 1-bit variants run the same weights rounded to 8-bit codes (1 bit: signs) x a "
        "power-of-two scale per output row (`low_bit` in the script), with the layers' weight_bits set.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores visible ({len(os.sched_getaffinity(0))} in this run's CPU "
        f"affinity), {info['memory']}; {info['system']}; Python "
        f"{info['python']}, numpy {info['numpy']}, numba {info['numba']}, torch {info['torch']}; neurosim at "
        f"{info['commit']}. Threads: {args.threads} for numba and for torch; OMP_WAIT_POLICY=PASSIVE for all. "
        f"Load average (1 min) before / after: {loads[0]:.2f} / {loads[1]:.2f}.",
        "",
        f"Memory bound (STREAM-like copy, {args.threads} threads, bytes read + written per second): DRAM "
        f"{bw['dram'] / 1e9:.1f} GB/s (1 GiB arrays), last-level cache {bw['llc'] / 1e9:.1f} GB/s (8 MiB arrays).",
        "",
        f"Wall time: the best of {args.rounds} processes x {args.repeats} runs per variant, the processes of "
        "the variants alternating (all times in brackets). Speed-ups are the torch variant's best time over this "
        "variant's. CPU: user + system seconds of the timed run (all its threads), the same run as the wall "
        "time; on a machine others share it counts what the run did, not how long it waited. Weight bytes/s: the engine's ACs of linear layers (one weight read each) x bytes per weight "
        "(fp32 4, int8 codes 1, packed signs 1/8) / wall time, for engine-1bit (popcounts of packed signs on "
        "binary spikes) 1/8 byte per (step, token, input, output) of its linear layers, fired or not; and that "
        "as a share of the copy bandwidths above. Peak RSS: the whole process.",
        "",
        "| input rate | variant | wall (s) | vs per-step torch | vs multi-step torch | CPU (s) | CPU vs multi-step "
        "torch | spikes | mean layer rate | ACs/s (engine) or MACs/s | weight bytes/s | of LLC copy | of DRAM copy "
        "| peak RSS (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rate in args.rates:
        step, multi = by[("torch-step", rate)], by[("torch-multi", rate)]
        lines += [_row(by[(v, rate)], step, multi, bw) for v in args.variants if (v, rate) in by]
    lines += ["", "Per-layer measured rates (engine fp32), by input rate:", ""]
    for rate in args.rates:
        e = by.get(("engine-fp32", rate))
        if e:
            lines.append(f"* {rate}: " + ", ".join(f"{k.split('.', 1)[1] if k.startswith('block0') else k} "
                                                    f"{v:.3f}" for k, v in e["layer_rates"].items()))
    return "\n".join(lines) + "\n"


def _subprocess(args, variant: str, rate: float, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--variant", variant, "--rate", str(rate), "--timesteps", str(args.timesteps),
           "--blocks", str(args.blocks), "--repeats", str(args.repeats), "--threads", str(args.threads),
           "--seed", str(args.seed)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{variant} at rate {rate} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--timesteps", type=int, default=85)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per process (the best counts)")
    p.add_argument("--rounds", type=int, default=2, help="processes per variant and rate, alternating")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--notes", default="", help="text appended to the results file")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--variant", choices=VARIANTS + ("bandwidth",), help=argparse.SUPPRESS)
    p.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:
        print(json.dumps(worker(args)))
        return
    for needed in ("torch-step", "torch-multi"):
        if needed not in args.variants:
            args.variants.insert(0, needed)   # every speed-up is against both baselines
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    rows, loads, text = [], [os.getloadavg()[0]], ""
    bw = _subprocess(args, "bandwidth", 0.0, env)
    print(f"copy bandwidth: DRAM {bw['dram'] / 1e9:.1f} GB/s, LLC {bw['llc'] / 1e9:.1f} GB/s", flush=True)
    for rate in args.rates:
        runs: dict[str, list[dict]] = {v: [] for v in args.variants}
        for _ in range(args.rounds):  # alternate the variants, so that a busy spell hits all of them
            for variant in runs:
                row = _subprocess(args, variant, rate, env)
                runs[variant].append(row)
                print(f"rate {rate} {variant:18s} {row['wall_s']:.2f} s  CPU {row['cpu_s']:.2f} s  spikes {row['spikes']:,}  "
                      f"peak {_mib(row['max_rss'])} MiB", flush=True)
        for variant, got in runs.items():
            row = min(got, key=lambda r: r["wall_s"])
            row["walls"] = sorted(r["wall_s"] for r in got)
            rows.append(row)
        done = argparse.Namespace(**{**vars(args), "rates": args.rates[:args.rates.index(rate) + 1]})
        text = write_results(rows, bw, machine_info(), done, (loads[0], os.getloadavg()[0]))
        if args.notes:
            text += "\n" + args.notes.strip() + "\n"
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)   # after every rate: a run cut short keeps what it measured
    print(text)


if __name__ == "__main__":
    main()
