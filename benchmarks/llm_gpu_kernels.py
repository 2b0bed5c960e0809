"""The kernels behind benchmarks/llm_gpu.py's times: how many its decoder launches, and what one costs.

    python benchmarks/llm_gpu_kernels.py --out benchmarks/results/llm_gpu_kernels.json   # on a CUDA GPU

Issue 20's decode error came from a near-constant time per kernel that neurosim did not price. This
measures the two sides of it on the GPU that ran the timings, without timing the decoder again:

* kernels: torch.profiler's CUDA activity (kernels, memsets, copies) of one eager forward of
  benchmarks/llm_gpu.py's Decoder, with 1 and with 2 blocks of each model's shape, at every (phase,
  batch, prompt) of the validation grid: the difference is one block's kernels, the rest the
  embedding's and the head's; the kernel names of one block at one point, to read them against the code;
* floor: a CUDA graph of 1,000 dependent element-wise kernels (x += 1 on 4,096 bf16 values, and on
  one value), replayed: the median time per kernel is what a kernel with almost no work takes between
  its predecessor's end and its own (launch, ramp-up, drain). A microbenchmark of the GPU, not of the
  decoder: analysis/validation_gpu.py reports the prediction with it beside the published figure;
* --trace MODEL BATCH PROMPT: every kernel of one replayed decode step, its start and duration, to see
  where the time the model does not predict goes (read, never fed into the model).
"""

from __future__ import annotations

import argparse
import json

from llm_gpu import SHAPES, Decoder, Timer, device_info, graphed   # benchmarks/ (scripts run from here)

CHAIN = 1000


def kernel_names(torch, fn) -> list[str]:
    """Names of the CUDA activities (kernels, memsets, copies) fn puts on the GPU, in order."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()             # nothing queued before fn is counted
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    events = [e for e in prof.events() if e.device_type.name == "CUDA"]
    return [e.name for e in sorted(events, key=lambda e: e.time_range.start)]


def forward_kernels(torch, name: str, layers: int, phase: str, batch: int, prompt: int) -> list[str]:
    """Kernels of one eager forward of `name`'s shape with `layers` blocks (decode: after a prefill of
    `prompt` tokens, one token against that cache)."""
    model = Decoder(torch, dict(SHAPES[name], layers=layers), batch, prompt + 1, "cuda", torch.bfloat16)
    prompt_ids = torch.zeros(batch, prompt, dtype=torch.long, device="cuda")
    with torch.inference_mode():
        if phase == "prefill":
            model.forward(prompt_ids, 0)                        # warm-up: library handles, kernel choice
            return kernel_names(torch, lambda: model.forward(prompt_ids, 0))
        model.forward(prompt_ids, 0)
        step = torch.zeros(batch, 1, dtype=torch.long, device="cuda")
        model.forward(step, prompt)
        return kernel_names(torch, lambda: model.forward(step, prompt))


def step_trace(torch, name: str, batch: int, prompt: int) -> list[dict]:
    """Every CUDA activity of one replayed CUDA graph of a whole decode step (as the timings ran it): name,
    start and duration (us from the first's start). Read to see where a step's time goes, not fed into
    the model."""
    from torch.profiler import ProfilerActivity, profile

    model = Decoder(torch, SHAPES[name], batch, prompt + 1, "cuda", torch.bfloat16)
    with torch.inference_mode():
        model.forward(torch.zeros(batch, prompt, dtype=torch.long, device="cuda"), 0)
        step = torch.zeros(batch, 1, dtype=torch.long, device="cuda")
        graph = graphed(torch, lambda: model.forward(step, prompt))
        graph.replay()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            graph.replay()
            torch.cuda.synchronize()
    events = sorted((e for e in prof.events() if e.device_type.name == "CUDA"), key=lambda e: e.time_range.start)
    t0 = events[0].time_range.start if events else 0
    return [dict(name=e.name[:80], start_us=e.time_range.start - t0, us=e.time_range.elapsed_us()) for e in events]


def floor_us(torch, values: int) -> float:
    """Median microseconds per kernel of a replayed CUDA graph of CHAIN dependent `x += 1` kernels."""
    x = torch.zeros(values, device="cuda", dtype=torch.bfloat16)

    def chain():
        for _ in range(CHAIN):
            x.add_(1)
    graph = graphed(torch, chain)
    ms, _ = Timer(torch, True, 20, 0.5).median(graph.replay)
    return ms * 1e3 / CHAIN


def main(argv=None) -> dict:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tinyllama-1.1b", "llama2-7b"], choices=sorted(SHAPES))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--prompts", nargs="+", type=int, default=[128, 512, 2048])
    ap.add_argument("--out", required=True)
    ap.add_argument("--trace", nargs=3, action="append", metavar=("MODEL", "BATCH", "PROMPT"),
                    help="only trace one replayed decode step of MODEL at BATCH, PROMPT (repeatable)")
    a = ap.parse_args(argv)
    if a.trace:
        result = dict(device=device_info(torch, True), traces=[
            dict(model=m, batch=int(b), prompt=int(n), kernels=step_trace(torch, m, int(b), int(n))) for m, b, n in a.trace])
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
        return result
    result = dict(device=device_info(torch, True), chain=CHAIN,
                  floor_us={str(v): floor_us(torch, v) for v in (4096, 1)}, points=[])
    print("floor (us per kernel):", result["floor_us"], flush=True)
    for name in a.models:
        for phase in ("prefill", "decode"):
            for batch in a.batches:
                for prompt in a.prompts:
                    one, two = (forward_kernels(torch, name, n, phase, batch, prompt) for n in (1, 2))
                    point = dict(model=name, phase=phase, batch=batch, prompt=prompt, per_block=len(two) - len(one),
                                 outside_blocks=2 * len(one) - len(two))
                    if batch == 1 and prompt == a.prompts[0]:   # to read against the code
                        point["one_block_kernels"], point["two_block_kernels"] = one, two
                    result["points"].append(point)
                    print(name, phase, batch, prompt, point["per_block"], point["outside_blocks"], flush=True)
                    with open(a.out, "w") as f:
                        json.dump(result, f, indent=1)
                    torch.cuda.empty_cache()
    return result


if __name__ == "__main__":
    main()
