"""Each operator of benchmarks/llm_gpu.py's decoder timed alone, over a grid of shapes: an operator profile.

    python benchmarks/llm_gpu_ops.py --out arch_configs/h200_ops.csv          # on any CUDA GPU (~2 min on an H200)
    python benchmarks/llm_gpu_ops.py --models toy --device cpu --tokens 1 4 --batches 1 2 --lengths 4 8 \\
        --out /tmp/toy_ops.csv                                                 # CPU check (tests)

Issue 20, the way Vidur (Agrawal et al., MLSys 2024) predicts a step: time every operator kind the model
launches on the target GPU, alone, at a grid of shapes, then compose a step from those times
(neurosim.llm.operators looks them up; an arch config names the table as `kernels.profile`). The
operators are the decoder's own code (llm_gpu.Decoder), one row per (operator, shape):

* linear: F.linear of M tokens x K in to N out, bf16, for every (K, N) of the cards' projections and
  LM head, M over 1..65,536 (blocks) or 1..128 (head: one token a sequence);
* attention: what the decoder runs between the rotary embeddings and the out projection (the two cache
  writes, Decoder.attention, the heads transposed back), decode (one query a sequence against a cache of
  L tokens) and prefill (L queries, causal, empty cache), over sequences x L;
* rmsnorm, rotary, silu_product (SiLU(gate) x up), add (a residual), input (the embedding gather): the
  decoder's element-wise code on T tokens of the width each is used at.

Each time is one call's share of a replayed CUDA graph of R calls one after another (a graph captured on
one stream runs them in order, as the decoder's kernels run), the median over repeats, so it holds the
kernels' launch gaps as a step does. Where the decoder would read weights or a KV cache from HBM (each
layer has its own), the R calls cycle over enough copies (3x the 50 MB L2) that none is read from L2;
element-wise inputs are reused (in a step, the kernel before has just written them). On a CPU (tests) the
same calls are timed with host timers, no graph.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import sys

from llm_gpu import SHAPES, Decoder, Timer, device_info, graphed   # benchmarks/ (scripts run from here)

L2_BYTES = 50 * 2**20          # H100/H200 L2 (NVIDIA H100 whitepaper); copies cycle over 3x this
TARGET_US = 2000.0             # a replay of at least this long: the graph's own launch is a small share
MAX_CALLS, MAX_COPIES = 400, 256
MAX_PREFILL_TOKENS = 65536     # a prefill's tokens in one pass: the largest linear M profiled
COLUMNS = ("op", "tokens", "in_features", "out_features", "sequences", "heads", "kv_heads", "head_dim",
           "query_tokens", "past_tokens", "us", "calls")
BLOCK_TOKENS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
                3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536]
ELEMENT_TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
BATCHES, LENGTHS = [1, 2, 4, 8, 16, 32, 64], [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


class Bench:
    """Times lists of calls on one device: the median microseconds of one call."""

    def __init__(self, torch, cuda: bool):
        self.t, self.cuda = torch, cuda
        self.timer = Timer(torch, cuda, 5, 0.02 if cuda else 0.0)

    def one_call_us(self, call) -> float:
        call()
        return self.timer.once(call) * 1e3

    def per_call_us(self, make_call, copies: int) -> tuple[float, int]:
        """make_call(i) -> the i-th call (i cycles over `copies` inputs); (us per call, calls replayed)."""
        first = make_call(0)
        calls = max(copies, min(MAX_CALLS, math.ceil(TARGET_US / max(self.one_call_us(first), 1e-3))), 2)
        if not self.cuda:   # a CPU run checks the code, not the times
            calls = 2
        chain = [make_call(i % copies) for i in range(calls)]

        def run():
            for c in chain:
                c()
        if self.cuda:
            graph = graphed(self.t, run)
            ms, _ = self.timer.median(graph.replay)
            del graph
        else:
            ms, _ = self.timer.median(run)
        return ms * 1e3 / calls, calls


def copies_for(nbytes: float) -> int:
    """Distinct inputs to cycle over so that none is still in L2 when it is read again."""
    return max(1, min(MAX_COPIES, math.ceil(3 * L2_BYTES / nbytes)))


def row(op: str, us: float, calls: int, **shape) -> dict:
    return {**{c: "" for c in COLUMNS}, **shape, "op": op, "us": f"{us:.4g}", "calls": calls}


def linear_rows(b: Bench, model: Decoder, dtype, tokens: list[int]) -> list[dict]:
    torch, s = b.t, model.s
    h, kv, ff = s["hidden"], s["kv_heads"] * model.head_dim, s["intermediate"]
    shapes = {(h, h): tokens, (h, kv): tokens, (h, ff): tokens, (ff, h): tokens,
              (h, s["vocab"]): [t for t in tokens if t <= 128]}
    out = []
    for (k, n), ms in shapes.items():
        weights = [torch.randn(n, k, device=model.cos.device, dtype=dtype) * 0.02 for _ in range(copies_for(2 * k * n))]
        for m in ms:
            x = torch.randn(m, k, device=model.cos.device, dtype=dtype)
            us, calls = b.per_call_us(lambda i: (lambda: torch.nn.functional.linear(x, weights[i])), len(weights))
            out.append(row("linear", us, calls, tokens=m, in_features=k, out_features=n))
            print(f"linear M={m} K={k} N={n}: {us:.2f} us", flush=True)

    return out


def element_rows(b: Bench, model: Decoder, dtype, tokens: list[int]) -> list[dict]:
    """The decoder's element-wise code at the widths it runs them (inputs reused: just written in a step)."""
    torch, s, d = b.t, model.s, model.head_dim
    F, dev = torch.nn.functional, model.cos.device
    h, ff = s["hidden"], s["intermediate"]
    w = torch.ones(h, device=dev, dtype=dtype)
    out = []
    for t in tokens:
        x, y = torch.randn(t, h, device=dev, dtype=dtype), torch.randn(t, h, device=dev, dtype=dtype)
        g, u = torch.randn(t, ff, device=dev, dtype=dtype), torch.randn(t, ff, device=dev, dtype=dtype)
        ids = torch.randint(0, s["vocab"], (1, t), device=dev)
        ops = {("rmsnorm", h): lambda: model.norm(x, w), ("add", h): lambda: x + y,
               ("silu_product", ff): lambda: F.silu(g) * u, ("input", h): lambda: F.embedding(ids, model.embed)}
        for heads in sorted({s["heads"], s["kv_heads"]}):   # q and k: [1, heads, T, d] viewed from [1, T, heads, d]
            r = torch.randn(1, t, heads, d, device=dev, dtype=dtype).transpose(1, 2)
            ops[("rotary", heads * d)] = (lambda r=r: model.rotate(r, 0))
        for (op, width), fn in ops.items():
            us, calls = b.per_call_us(lambda i, fn=fn: fn, 1)
            out.append(row(op, us, calls, tokens=t, in_features=width, out_features=width))
        print(f"element-wise T={t}: done", flush=True)
    return out


def attention_rows(b: Bench, model: Decoder, dtype, batches: list[int], lengths: list[int]) -> list[dict]:
    out = []
    for phase in ("decode", "prefill"):
        for seqs in batches:
            for length in lengths:
                if phase == "prefill" and seqs * length > MAX_PREFILL_TOKENS:
                    continue
                us, calls = attention_us(b, model, dtype, phase, seqs, length)
                query, past = (1, length) if phase == "decode" else (length, 0)
                out.append(row("attention", us, calls, tokens=seqs * query, in_features=model.s["hidden"],
                               out_features=model.s["hidden"], sequences=seqs, heads=model.s["heads"],
                               kv_heads=model.s["kv_heads"], head_dim=model.head_dim, query_tokens=query,
                               past_tokens=past))
                print(f"attention {phase} B={seqs} L={length}: {us:.2f} us", flush=True)
    return out


def attention_us(b: Bench, model: Decoder, dtype, phase: str, seqs: int, length: int) -> tuple[float, int]:
    """The decoder's attention code (cache writes, attention, heads back) over its own caches, one per copy."""
    torch, s, d = b.t, model.s, model.head_dim
    dev = model.cos.device
    query, start = (1, length) if phase == "decode" else (length, 0)
    end = start + query
    cache_bytes = 2 * seqs * s["kv_heads"] * end * d * 2
    copies = copies_for(cache_bytes)
    model.k_cache = [torch.randn(seqs, s["kv_heads"], end, d, device=dev, dtype=dtype) for _ in range(copies)]
    model.v_cache = [torch.randn(seqs, s["kv_heads"], end, d, device=dev, dtype=dtype) for _ in range(copies)]
    # as the projections leave them: [B, heads, T, d] views of [B, T, heads, d], q and k rotated
    q = model.rotate(torch.randn(seqs, query, s["heads"], d, device=dev, dtype=dtype).transpose(1, 2), start)
    k = model.rotate(torch.randn(seqs, query, s["kv_heads"], d, device=dev, dtype=dtype).transpose(1, 2), start)
    v = torch.randn(seqs, query, s["kv_heads"], d, device=dev, dtype=dtype).transpose(1, 2)

    def call(i):
        def attend():
            model.k_cache[i][:, :, start:end] = k
            model.v_cache[i][:, :, start:end] = v
            return model.attention(q, i, start).transpose(1, 2).reshape(seqs, query, s["heads"] * d)
        return attend
    with torch.inference_mode():
        result = b.per_call_us(call, copies)
    model.k_cache, model.v_cache = [], []
    return result


def header(info: dict, argv: list[str]) -> list[str]:
    gpu = info.get("gpu") or f"no GPU ({info.get('cpu')})"
    return [
        "# Operator profile of benchmarks/llm_gpu.py's decoder: each operator alone, a replayed CUDA graph of",
        "# repeated calls, the median time of one call (benchmarks/llm_gpu_ops.py says how). Read by",
        "# neurosim.llm.operators where an arch config gives kernels.profile.",
        f"# GPU: {gpu}; torch {info['torch']}; CUDA {info.get('cuda_version')}; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"# Command: python benchmarks/llm_gpu_ops.py {' '.join(argv)}",
        "# Columns: op (linear, attention, rmsnorm, rotary, silu_product, add, input = the embedding gather);",
        "#   tokens (rows of the operator: M of a linear, sequences x query_tokens of attention, T of an",
        "#   element-wise op); in_features / out_features (K / N of a linear; the width of an element-wise op;",
        "#   the model's hidden width for attention); sequences, heads, kv_heads, head_dim, query_tokens,",
        "#   past_tokens (attention only: a decode step has one query a sequence after past_tokens cached; a",
        "#   prefill has query_tokens queries, causal, none cached); us (median microseconds of one call, the",
        "#   kernels' launch gaps included); calls (calls in the replayed graph).",
    ]


def run(models, tokens, element_tokens, batches, lengths, out: str, device: str | None, argv: list[str]) -> list[dict]:
    import torch
    cuda = torch.cuda.is_available() if device is None else device == "cuda"
    dev, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    info = device_info(torch, cuda)
    bench, rows = Bench(torch, cuda), []
    for name in models:
        longest = max(max(lengths), max(element_tokens)) + 1
        model = Decoder(torch, dict(SHAPES[name], layers=0), 1, longest, dev, dtype)
        with torch.inference_mode():
            rows += linear_rows(bench, model, dtype, tokens)
            write(out, info, argv, rows)      # after each part: a run stopped early keeps what it timed
            rows += element_rows(bench, model, dtype, element_tokens)
            write(out, info, argv, rows)
        rows += attention_rows(bench, model, dtype, batches, lengths)
        write(out, info, argv, rows)
        del model
        if cuda:
            torch.cuda.empty_cache()
    return rows


def write(out: str, info: dict, argv: list[str], rows: list[dict]) -> None:
    with open(out, "w", newline="") as f:
        f.write("\n".join(header(info, argv)) + "\n")
        writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=sort_key))


def sort_key(r: dict) -> tuple:
    number = lambda v: int(v) if v != "" else -1   # noqa: E731
    return (r["op"], *(number(r[c]) for c in ("heads", "kv_heads", "head_dim", "query_tokens", "in_features",
                                                 "out_features", "sequences", "past_tokens", "tokens")))


def main(argv=None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tinyllama-1.1b", "llama2-7b"], choices=sorted(SHAPES))
    ap.add_argument("--tokens", nargs="+", type=int, default=BLOCK_TOKENS, help="M of the linear layers")
    ap.add_argument("--element-tokens", nargs="+", type=int, default=ELEMENT_TOKENS)
    ap.add_argument("--batches", nargs="+", type=int, default=BATCHES, help="sequences of attention")
    ap.add_argument("--lengths", nargs="+", type=int, default=LENGTHS, help="cache (decode) / prompt (prefill)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default=None)
    ap.add_argument("--out", required=True, help="CSV file for the profile")
    a = ap.parse_args(argv)
    if min(a.tokens + a.element_tokens + a.batches + a.lengths) < 1:
        ap.error("--tokens, --element-tokens, --batches and --lengths must be at least 1")
    return run(a.models, a.tokens, a.element_tokens, a.batches, a.lengths, a.out, a.device, argv)


if __name__ == "__main__":
    main()
