"""The spike engine on one CUDA GPU (its torch backend) against the CPU engine and dense torch on the same GPU.

    python benchmarks/spike_engine_gpu.py            # on a machine with a CUDA GPU
    python benchmarks/spike_engine_gpu.py --decoder-blocks 2 --repeats 1   # a quick check

Two networks, seeded random weights (rates set by the bias, as neurosim.spikes.random_weights):

* SpikingBERT-4L, T = 85, input rate 0.1 (spike_engine.build, the CPU benchmark's network): dense torch per
  step and multi-step on the GPU, the engine on the GPU with fp32, int8 and 1-bit weights (codes x
  power-of-two row scales, spike_engine.low_bit), and the CPU engine (Numba, every core) on the same
  networks;
* one decode step of a ~1B spiking decoder: TinyLlama-1.1B's linear layers (22 blocks of q, k, v, o,
  gate, up, down; hidden 2048, intermediate 5632, 4 key/value heads of 64, models/tinyllama-1.1b.yaml)
  as a chain of spiking linear layers for one token over T steps, GIF neurons of 15 levels (SpikeLLM's),
  input rate 0.5. Attention over the KV cache is not modelled: o reads q's spikes. Dense multi-step torch
  and the engine on the GPU, the CPU engine.

Times: the best of --repeats runs after one warm-up run, CUDA synchronized around each. Spikes: every
variant's total events; the GPU engine's per-layer totals against the CPU engine's on the same network.
Writes benchmarks/results/spike_engine_gpu.md.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

from spike_engine import build, machine_info, torch_dense, torch_multistep, torch_weights

RESULTS = Path(__file__).resolve().parent / "results" / "spike_engine_gpu.md"


def timed(fn, repeats: int, torch):
    """(best seconds, result) of fn() after one warm-up call, synchronized with the GPU."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    result = fn()
    best = math.inf
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        result = fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best, result


def decoder(blocks: int, steps: int, rate: float, seed: int, torch, device: str):
    """TinyLlama-1.1B's linear layers as a chain of spiking (GIF) layers for one token; weights drawn on the
    GPU (seeded), scaled as random_weights scales them."""
    from neurosim.ir import Layer, Network, Neuron
    from neurosim.spikes.weights import NOISE

    hidden, inter, kv = 2048, 5632, 256   # models/tinyllama-1.1b.yaml (TinyLlama Table 1, 4 kv heads x 64)
    nr = Neuron("gif", vth=1.0, leak=1.0, levels=15)
    gen = torch.Generator(device=device).manual_seed(seed)
    layers = []

    def add(name, src, n_in, n_out):
        std = NOISE * nr.vth / math.sqrt(n_in * rate)
        wt = (torch.randn(n_in, n_out, generator=gen, device=device) * std).cpu().numpy()
        layers.append(Layer(name, "linear", n_in, n_out, inputs=src, seq_len=1, timesteps=steps, neuron=nr,
                            weights=wt.T, bias=np.full(n_out, rate * nr.vth, np.float32)))

    src = []
    for b in range(blocks):
        p = f"block{b}."
        add(p + "q", src, hidden, hidden)
        add(p + "k", src, hidden, kv)
        add(p + "v", src, hidden, kv)
        add(p + "o", [p + "q"], hidden, hidden)
        add(p + "gate", [p + "o"], hidden, inter)
        add(p + "up", [p + "o"], hidden, inter)
        add(p + "down", [p + "gate"], inter, hidden)
        src = [p + "down"]
    net = Network("tinyllama-1.1b-linear", layers, input_size=hidden, input_rate=rate)
    spikes = (np.random.default_rng(seed + 1).random((steps, 1, hidden)) < rate).astype(np.uint8)
    return net, spikes


def measure(name: str, net, spikes, args, torch) -> list[dict]:
    """Every variant on one network: dense torch on the GPU, the engine on the GPU and on the CPU."""
    import numba

    from neurosim.spikes import run, warm_up

    numba.set_num_threads(os.cpu_count())
    warm_up()
    rows = []
    weights = torch_weights(net, torch, args.device)
    for variant, simulate in (("torch-step", torch_dense), ("torch-multi", torch_multistep)):
        if variant in args.skip:
            continue
        wall, (count, _) = timed(lambda: simulate(net, spikes, torch, weights, args.device), args.repeats, torch)
        rows.append(dict(net=name, variant=variant, device="GPU", wall=wall, spikes=sum(count.values())))
        print(rows[-1], flush=True)
    weights = None   # the dense copies off the GPU before the engine runs
    traces = {}
    for variant, device in (("engine", args.device), ("engine", None)):
        wall, tr = timed(lambda: run(net, spikes, device=device), args.repeats, torch)
        traces[device] = tr
        rows.append(dict(net=name, variant=variant, device="GPU" if device else f"CPU, {os.cpu_count()} threads",
                         wall=wall, spikes=sum(lt.spikes for lt in tr.layers.values()), acs=tr.acs))
        print(rows[-1], flush=True)
    gpu, cpu = traces[args.device], traces[None]
    differ = [n for n, lt in cpu.layers.items() if lt.spikes != gpu[n].spikes or lt.acs != gpu[n].acs]
    worst = max((abs(cpu[n].spikes - gpu[n].spikes) / max(cpu[n].spikes, 1) for n in cpu.layers), default=0.0)
    rows[-2]["agreement"] = (f"{len(cpu.layers) - len(differ)} of {len(cpu.layers)} layers: the same spike and "
                             f"AC totals as the CPU engine; largest relative spike difference {worst:.1e}")
    return rows


def write(rows: list[dict], args, info: dict, gpu: str, tests: str) -> str:
    lines = [
        "# Spike engine on a GPU vs the CPU engine and dense torch on the same GPU",
        "",
        f"Command: `python benchmarks/spike_engine_gpu.py --repeats {args.repeats} --decoder-blocks "
        f"{args.decoder_blocks} --decoder-timesteps {args.decoder_timesteps}`",
        "",
        f"GPU: {gpu}; torch {info['torch']}. Host: {info['cpu']}, {info['cores']} cores; numba {info['numba']}; "
        f"neurosim at {info['commit']}.",
        "",
        "Networks (seeded random weights, rates set by the bias): SpikingBERT-4L (4 encoder blocks, hidden "
        "768, intermediate 3072, 12 heads, sequence 128), T = 85, input rate 0.1, lockstep, fp32 weights and "
        "the same rounded to int8 and 1-bit codes x power-of-two row scales; one decode step of TinyLlama-1.1B's "
        f"linear layers ({args.decoder_blocks} blocks, {args.decoder_params / 1e9:.2f} G weights) as spiking "
        f"GIF layers (15 levels), one token, T = {args.decoder_timesteps}, input rate 0.5 (attention over the KV "
        "cache not modelled). Wall: best of "
        f"{args.repeats} runs after a warm-up, CUDA synchronized. The engine on the GPU is `neurosim.spikes.run"
        "(net, spikes, device='cuda')` (torch_engine.py: one GEMM per layer over all steps, low-bit codes in "
        "bfloat16, the neuron over T in one Triton kernel per layer, counts as the CPU engine).",
        "",
        "| network | variant | device | wall (ms) | vs multi-step torch (GPU) | vs CPU engine | spikes | agreement |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:   # dense torch's time is the fp32 network's for every weight format of the same shape
        family = r["net"].split()[0]
        multi = next((x["wall"] for x in rows if x["net"].split()[0] == family and x["variant"] == "torch-multi"),
                     None)
        cpu = next(x["wall"] for x in rows if x["net"] == r["net"] and x["device"].startswith("CPU"))
        lines.append(f"| {r['net']} | {r['variant']} | {r['device']} | {r['wall'] * 1e3:.1f} | "
                     + (f"{multi / r['wall']:.2f}x" if multi else "-") + f" | {cpu / r['wall']:.2f}x | "
                     f"{r['spikes']:,} | {r.get('agreement', '')} |")
    lines += ["", "CUDA equality tests (`python -m pytest -q tests/test_spikes_torch.py`, run in the same session "
              "on this GPU):", "", "```", tests.strip(), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--decoder-blocks", type=int, default=22)
    p.add_argument("--decoder-timesteps", type=int, default=8)
    p.add_argument("--skip", nargs="*", default=[], help="variants to leave out (torch-step, torch-multi)")
    p.add_argument("--tests", help="a file holding the CUDA tests' output, copied into the results")
    p.add_argument("--device", default="cuda", help="cpu: a smoke test of this script without a GPU")
    p.add_argument("--bert-blocks", type=int, default=4)
    p.add_argument("--bert-timesteps", type=int, default=85)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one (the CPU benchmark is benchmarks/spike_engine.py)")
    torch.set_grad_enabled(False)
    rows = []
    for bits, name in ((32, "SpikingBERT-4L fp32"), (8, "SpikingBERT-4L int8"), (1, "SpikingBERT-4L 1-bit")):
        net, spikes = build(0.1, args.bert_timesteps, args.bert_blocks, 0, bits)
        # dense torch runs once, on the fp32 weights: its time does not depend on their values
        dense = args.skip if bits == 32 else ["torch-step", "torch-multi"]
        rows += measure(name, net, spikes, argparse.Namespace(**{**vars(args), "skip": dense}), torch)
    net, spikes = decoder(args.decoder_blocks, args.decoder_timesteps, 0.5, 0, torch, args.device)
    args.decoder_params = sum(l.n_weights() for l in net.layers)
    rows += measure("decoder ~1B fp32", net, spikes, argparse.Namespace(**{**vars(args), "skip": ["torch-step"]}),
                    torch)
    tests = Path(args.tests).read_text() if args.tests and Path(args.tests).exists() else "(not run)"
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else f"none (--device {args.device})"
    text = write(rows, args, machine_info(), gpu, tests)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
