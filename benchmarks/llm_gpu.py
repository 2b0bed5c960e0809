"""Prefill and decode-step latency of LLaMA-shaped decoders in bf16 with a KV cache, in plain torch.

    python benchmarks/llm_gpu.py --out benchmarks/results/llm_gpu.json     # on any CUDA GPU
    python benchmarks/llm_gpu.py --models toy --batches 1 2 --prompts 8 16 --out /tmp/toy.json   # CPU check

The measured side of issue 20's validation (analysis/validation_gpu.py prices the same points with
neurosim and compares). Random bf16 weights (no checkpoint, no serving framework), the cards' shapes
(models/tinyllama-1.1b.yaml, models/llama2-7b.yaml; tests/test_llm_validation.py checks they agree):
per block RMSNorm, separate q/k/v/o projections, rotary embeddings, causal attention against a
preallocated KV cache [batch, kv_heads, positions, head_dim], RMSNorm, SwiGLU (gate, up, down);
a final norm and the LM head on the last token of each sequence.

* prefill: a prompt of N tokens per sequence, batch B, into an empty cache; logits of the last token;
* decode step: one token per sequence against a cache of N tokens (the prompt's), logits.

Each point is timed two ways: eagerly (one launch per torch op, as a plain script runs) and as a
replayed CUDA graph (the same kernels without the host's launch gaps, as serving stacks run decode).
Times: CUDA events around each run after two warm-ups, the median of repeats (at least --min-repeats,
more while under --target-s of timing). On the same GPU and run: the bandwidth of a device-to-device
copy and the rate of an 8192^3 bf16 matrix product, ceilings to read the results against (never fed
into the model). On a CPU (no CUDA) the same code runs in float32 with host timers: for tests only.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass

# The cards' shapes (models/*.yaml cite their sources); "toy" is for tests on a CPU.
SHAPES = {
    "tinyllama-1.1b": dict(layers=22, hidden=2048, heads=32, kv_heads=4, intermediate=5632, vocab=32000),
    "llama2-7b": dict(layers=32, hidden=4096, heads=32, kv_heads=32, intermediate=11008, vocab=32000),
    "toy": dict(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=160, vocab=256),
}
ROPE_BASE = 10000.0   # LLaMA's rotary base (arXiv:2302.13971 section 2.2, RoFormer's default)
NORM_EPS = 1e-5       # LLaMA-2's rms_norm_eps (meta-llama/Llama-2-7b-hf config.json)


@dataclass
class Point:
    model: str
    phase: str          # "prefill" or "decode"
    batch: int
    prompt: int         # prompt tokens (prefill) or cache length before the step (decode)
    eager_ms: float
    graph_ms: float     # NaN where no CUDA graph (CPU)
    repeats: int


class Decoder:
    """A LLaMA-style decoder with random weights and a KV cache; forward(tokens, start) runs tokens at
    positions start.. against the cache and returns the logits of each sequence's last token."""

    def __init__(self, torch, shape: dict, batch: int, max_len: int, device: str, dtype, seed: int = 0):
        self.t, self.s = torch, shape
        self.head_dim = shape["hidden"] // shape["heads"]
        gen = torch.Generator(device=device).manual_seed(seed)

        def weight(*size):   # std 0.02, the usual LLaMA initialisation; random, never zeros
            return (torch.randn(*size, generator=gen, device=device, dtype=torch.float32) * 0.02).to(dtype)

        h, kv, ff = shape["hidden"], shape["kv_heads"] * self.head_dim, shape["intermediate"]
        self.embed = weight(shape["vocab"], h)
        self.blocks = [dict(attn_norm=torch.ones(h, device=device, dtype=dtype), q=weight(h, h),
                            k=weight(kv, h), v=weight(kv, h), o=weight(h, h),
                            mlp_norm=torch.ones(h, device=device, dtype=dtype), gate=weight(ff, h),
                            up=weight(ff, h), down=weight(h, ff)) for _ in range(shape["layers"])]
        self.final_norm = torch.ones(h, device=device, dtype=dtype)
        self.lm_head = weight(shape["vocab"], h)
        cache = (batch, shape["kv_heads"], max_len, self.head_dim)
        self.k_cache = [weight(*cache) for _ in range(shape["layers"])]
        self.v_cache = [weight(*cache) for _ in range(shape["layers"])]
        inv = 1.0 / ROPE_BASE ** (torch.arange(0, self.head_dim, 2, device=device, dtype=torch.float32)
                                  / self.head_dim)
        angles = torch.outer(torch.arange(max_len, device=device, dtype=torch.float32), inv)
        angles = torch.cat([angles, angles], dim=-1)
        self.cos, self.sin = angles.cos().to(dtype), angles.sin().to(dtype)

    def norm(self, x, w):
        xf = x.float()
        return (xf * self.t.rsqrt(xf.pow(2).mean(-1, keepdim=True) + NORM_EPS)).to(x.dtype) * w

    def rotate(self, x, start: int):
        """Rotary embedding of x [B, heads, T, d] at positions start..start+T-1 (LLaMA's half split)."""
        n = x.shape[2]
        cos, sin = self.cos[start:start + n], self.sin[start:start + n]
        half = self.head_dim // 2
        rotated = self.t.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def attention(self, q, i: int, start: int):
        """q [B, heads, T, d] against the cache's first start+T positions of block i."""
        F = self.t.nn.functional
        end = start + q.shape[2]
        k, v = self.k_cache[i][:, :, :end], self.v_cache[i][:, :, :end]
        group = self.s["heads"] // self.s["kv_heads"]
        if q.shape[2] == 1:
            # one query per sequence: the group's queries share a key/value head and see every key, so
            # they attend as a block of `group` rows without reading the cache once per query head
            b = q.shape[0]
            out = F.scaled_dot_product_attention(q.reshape(b, self.s["kv_heads"], group, self.head_dim), k, v)
            return out.reshape(b, self.s["heads"], 1, self.head_dim)
        if group > 1:
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        # a prompt chunk after a cache would need an offset mask; prefill here starts at 0
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def forward(self, tokens, start: int):
        F = self.t.nn.functional
        b, n = tokens.shape
        heads, kvh, d = self.s["heads"], self.s["kv_heads"], self.head_dim
        x = F.embedding(tokens, self.embed)
        for i, w in enumerate(self.blocks):
            y = self.norm(x, w["attn_norm"])
            q = self.rotate(F.linear(y, w["q"]).view(b, n, heads, d).transpose(1, 2), start)
            k = self.rotate(F.linear(y, w["k"]).view(b, n, kvh, d).transpose(1, 2), start)
            v = F.linear(y, w["v"]).view(b, n, kvh, d).transpose(1, 2)
            self.k_cache[i][:, :, start:start + n] = k
            self.v_cache[i][:, :, start:start + n] = v
            a = self.attention(q, i, start).transpose(1, 2).reshape(b, n, heads * d)
            x = x + F.linear(a, w["o"])
            y = self.norm(x, w["mlp_norm"])
            x = x + F.linear(F.silu(F.linear(y, w["gate"])) * F.linear(y, w["up"]), w["down"])
        last = self.norm(x[:, -1], self.final_norm)
        return F.linear(last, self.lm_head)


class Timer:
    """CUDA events on a GPU, perf_counter on a CPU; median milliseconds of fn over repeats."""

    def __init__(self, torch, cuda: bool, min_repeats: int, target_s: float):
        self.t, self.cuda, self.min_repeats, self.target_s = torch, cuda, min_repeats, target_s

    def once(self, fn) -> float:
        if not self.cuda:
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3
        start, end = self.t.cuda.Event(enable_timing=True), self.t.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    def median(self, fn) -> tuple[float, int]:
        fn(), fn()   # warm-ups: kernel selection, allocator
        times = [self.once(fn)]
        while len(times) < self.min_repeats or (sum(times) < self.target_s * 1e3 and len(times) < 200):
            times.append(self.once(fn))
        return statistics.median(times), len(times)


def graphed(torch, fn):
    """fn captured as a CUDA graph (after warm-ups on a side stream, as torch's docs do); returns replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn(), fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def measure_point(torch, model: Decoder, timer: Timer, name: str, phase: str, batch: int, prompt: int,
                  device: str) -> Point:
    gen = torch.Generator(device=device).manual_seed(batch * 100003 + prompt)
    n = prompt if phase == "prefill" else 1
    tokens = torch.randint(0, model.s["vocab"], (batch, n), generator=gen, device=device)
    start = 0 if phase == "prefill" else prompt
    with torch.inference_mode():
        run = lambda: model.forward(tokens, start)   # noqa: E731
        eager, reps = timer.median(run)
        graph_ms = math.nan
        if timer.cuda:
            try:
                graph = graphed(torch, run)
                graph_ms, _ = timer.median(graph.replay)
                del graph
            except RuntimeError as err:   # keep the eager time; say why the graph did not run
                print(f"graph capture failed ({name} {phase} B={batch} N={prompt}): {err}", flush=True)
    return Point(name, phase, batch, prompt, eager, graph_ms, reps)


def ceilings(torch) -> dict:
    """Copy bandwidth (bytes read + written) and bf16 matrix-product rate on this GPU, measured now."""
    timer = Timer(torch, True, 10, 0.2)
    src = torch.randn(2**30, device="cuda", dtype=torch.bfloat16)   # 2 GiB, far past the L2
    dst = torch.empty_like(src)
    copy_ms, _ = timer.median(lambda: dst.copy_(src))
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    mm_ms, _ = timer.median(lambda: a @ b)
    return dict(copy_bytes_per_s=2 * 2**31 / (copy_ms * 1e-3), bf16_flop_per_s=2 * 8192**3 / (mm_ms * 1e-3))


def device_info(torch, cuda: bool) -> dict:
    info = dict(torch=torch.__version__, python=platform.python_version(), cuda=cuda)
    if cuda:
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, sms=p.multi_processor_count, memory_bytes=p.total_memory,
                    cuda_version=torch.version.cuda)
        info.update(ceilings(torch))
    else:
        info.update(gpu=None, cpu=platform.processor() or platform.machine())
    return info


def run(models, batches, prompts, phases, min_repeats: int, target_s: float, out: str | None,
        device: str | None = None) -> dict:
    """Measure every (model, batch, prompt, phase); write the JSON after each point (a killed run keeps
    what it measured)."""
    import torch
    cuda = torch.cuda.is_available() if device is None else device == "cuda"
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    result = dict(device=device_info(torch, cuda), dtype=str(dtype).replace("torch.", ""), points=[])
    timer = Timer(torch, cuda, min_repeats, target_s)
    for name in models:
        for batch in batches:
            model = Decoder(torch, SHAPES[name], batch, max(prompts) + 1, device, dtype)
            for prompt in prompts:
                for phase in phases:   # prefill first: it fills the cache the decode step then reads
                    point = measure_point(torch, model, timer, name, phase, batch, prompt, device)
                    result["points"].append(asdict(point))
                    print(f"{name} {phase} B={batch} N={prompt}: eager {point.eager_ms:.3f} ms, "
                          f"graph {point.graph_ms:.3f} ms ({point.repeats} runs)", flush=True)
                    if out:
                        with open(out, "w") as f:
                            json.dump(result, f, indent=1)
            del model
            if cuda:
                torch.cuda.empty_cache()
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tinyllama-1.1b", "llama2-7b"], choices=sorted(SHAPES))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--prompts", nargs="+", type=int, default=[128, 512, 2048])
    ap.add_argument("--phases", nargs="+", default=["prefill", "decode"], choices=["prefill", "decode"])
    ap.add_argument("--min-repeats", type=int, default=5)
    ap.add_argument("--target-s", type=float, default=0.3, help="keep repeating while under this much timing")
    ap.add_argument("--device", choices=["cuda", "cpu"], default=None)
    ap.add_argument("--out", default=None, help="JSON file for the results")
    a = ap.parse_args(argv)
    if min(a.batches) < 1 or min(a.prompts) < 1:
        ap.error("--batches and --prompts must be at least 1")
    return run(a.models, a.batches, a.prompts, a.phases, a.min_repeats, a.target_s, a.out, a.device)


if __name__ == "__main__":
    main()
