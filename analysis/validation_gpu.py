"""neurosim's prediction against measured H200 latency (issue 20): prefill and decode step of the
TinyLlama-1.1B and LLaMA-2-7B shapes, bf16, batch 1/8/32, prompt 128/512/2048.

    python analysis/validation_gpu.py            # prices every point (minutes)
    python analysis/validation_gpu.py --cached   # the .md and .png again from validation_gpu.json

Reads what the GPU measured (benchmarks/llm_gpu.py -> benchmarks/results/llm_gpu.json: the times;
benchmarks/llm_gpu_kernels.py -> llm_gpu_kernels.json: the kernels each forward launches, and
llm_gpu_trace.json: one replayed decode step kernel by kernel). Each measured point is priced by
`neurosim.llm.run_workload` on arch_configs/h200.yaml (NVIDIA's published figures and a published
per-kernel time, nothing fitted), MAC-based (real bf16 activations: the GPU's arithmetic), weights at
16 bits, one request of the point's prompt and one generated token, with the kernels the measured code
launches (`kernels_per_layer`): the time to first token against the measured prefill, the decode step
against the measured step. The prefill chunk is neurosim's own (the whole prompt where a layer's
activations fit the 50 MB L2). Writes validation_gpu.{md,png,json} next to this script.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = ROOT / "benchmarks" / "results"
MEASURED, KERNELS, TRACE = (RESULTS / f"llm_gpu{s}.json" for s in ("", "_kernels", "_trace"))
ARCH = "h200"
PUBLISHED_BYTES_PER_S = 4.8e12       # the datasheet bandwidth arch_configs/h200.yaml streams at

# Kernels each layer of benchmarks/llm_gpu.py's Decoder launches where the code alone decides it (read off
# the code; tests/test_llm_validation.py checks the sum against the profiled block): an RMSNorm is 8
# element-wise kernels (to fp32, square, mean, add eps, rsqrt, scale, to bf16, times the weight), rotary 5
# (negate, concatenate the halves, two products, sum), a residual 1, SiLU x up 2, the embedding gather 1;
# the last-token slice is a view.
ELEMENTWISE_KERNELS = {"input": 1, "attn_norm": 8, "mlp_norm": 8, "final_norm": 8, "rope_q": 5, "rope_k": 5,
                       "attn_residual": 1, "mlp_residual": 1, "silu": 2, "last_token": 0}
# The rest of a block's profiled kernels are the libraries' (cuBLAS GEMMs and split-K reductions, the
# attention kernel, cache writes, a memset): shared by the layers that call them. Only the sum per block
# sets the time, so the share is for reading only.
LIBRARY_LAYERS = ("q", "k", "v", "o", "gate", "up", "down", "attention")


def bf16_card(model: str, context: int):
    """The shipped card of `model` as the GPU runs it: 16-bit weights, context at least `context`."""
    from neurosim.cards import load_decoder_card

    card = load_decoder_card(ROOT / "models" / f"{model}.yaml")
    # the benchmark's random weights need no trained context; the last step reads prompt + 1 positions
    return card.model_copy(update={"weight_bits": 16, "context": max(card.context, context)})


def kernels_per_layer(per_block: float, outside_blocks: float) -> dict[str, float]:
    """The layer roles' kernels for a forward whose profile shows `per_block` kernels a block and
    `outside_blocks` beside them (embedding, final norm, LM head)."""
    block = sum(v for k, v in ELEMENTWISE_KERNELS.items() if k not in ("input", "final_norm", "last_token"))
    out = dict(ELEMENTWISE_KERNELS, **{k: (per_block - block) / len(LIBRARY_LAYERS) for k in LIBRARY_LAYERS})
    out["lm_head"] = outside_blocks - ELEMENTWISE_KERNELS["input"] - ELEMENTWISE_KERNELS["final_norm"]
    return out


def profiled(kernels: dict) -> dict[tuple, dict]:
    """(model, phase, batch, prompt) -> the profiled kernel counts."""
    return {(p["model"], p["phase"], p["batch"], p["prompt"]): p for p in kernels["points"]}


def predict(points: list[dict], counts: dict[tuple, dict]) -> list[dict]:
    """Each measured point with neurosim's predicted ms (with the profiled kernels, and with none: the arch
    without `kernels`) and the errors (predicted / measured with a CUDA graph - 1)."""
    from neurosim.arch import load_arch
    from neurosim.llm import run_workload

    arch = load_arch(ARCH)
    bare = arch.model_copy(update={"kernels": None}).loaded_from(arch.path, arch.energy)
    out = []
    for p in points:
        card = bf16_card(p["model"], p["prompt"] + 1)
        k = counts[(p["model"], p["phase"], p["batch"], p["prompt"])]
        phase = {p["phase"]: kernels_per_layer(k["per_block"], k["outside_blocks"])}
        row = dict(p, kernels=forward_kernels(card.layers, k))
        for key, on in (("predicted_ms", arch), ("no_kernels_ms", bare)):
            r = run_workload(card, on, prompt=p["prompt"], generate=1, batch=p["batch"], mac_based=True,
                             kernels_per_layer=phase)
            if not r.feasible:
                raise SystemExit(f"{p['model']} B={p['batch']} N={p['prompt']} does not map on {ARCH}: {r.notes}")
            row[key] = (r.ttft_s if p["phase"] == "prefill" else r.tpot_last_s) * 1e3
            row["chunk"] = r.prefill_chunk
        row["error"] = row["predicted_ms"] / p["graph_ms"] - 1
        row["error_no_kernels"] = row["no_kernels_ms"] / p["graph_ms"] - 1
        out.append(row)
        print(p["model"], p["phase"], p["batch"], p["prompt"], f"{row['error']:+.0%}", file=sys.stderr)
    return out


def forward_kernels(layers: int, k: dict) -> int:
    return layers * k["per_block"] + k["outside_blocks"]


def mean_abs(rows: list[dict], phase: str | None = None, key: str = "error") -> float:
    return statistics.fmean(abs(r[key]) for r in rows if phase in (None, r["phase"]))


def trace_summary(trace: dict) -> list[dict]:
    """Where one replayed decode step's time goes, kernel by kernel: the idle gaps between kernels, the
    GEMM kernels (their achieved bandwidth over the step's weights) and every other kernel."""
    from neurosim.cards import load_decoder_card

    out = []
    for t in trace["traces"]:
        ks = t["kernels"]
        card = load_decoder_card(ROOT / "models" / f"{t['model']}.yaml")
        gemm = [k["us"] for k in ks if "nvjet" in k["name"] or "gemm" in k["name"].lower()]
        small = [k["us"] for k in ks if not ("nvjet" in k["name"] or "gemm" in k["name"].lower()
                                              or "sdpa" in k["name"] or "splitK" in k["name"])]
        gaps = [b["start_us"] - a["start_us"] - a["us"] for a, b in zip(ks, ks[1:])]
        weight_bytes = card_parameters(card) * 2
        out.append(dict(model=t["model"], batch=t["batch"], prompt=t["prompt"], kernels=len(ks),
                        span_us=ks[-1]["start_us"] + ks[-1]["us"], gap_us=sum(gaps), gap_median_us=statistics.median(gaps),
                        gemm_us=sum(gemm), gemm_bytes_per_s=weight_bytes / (sum(gemm) * 1e-6),
                        small=len(small), small_us=sum(small), small_median_us=statistics.median(small)))
    return out


def card_parameters(card) -> float:
    """Weights a decode step streams: every block's projections and the LM head (the embedding gathers one row)."""
    hd = card.hidden // card.heads
    block = card.hidden * (2 * card.hidden + 2 * card.kv_heads * hd + 3 * card.intermediate)
    return card.layers * block + card.vocab * card.hidden


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 6))
    colors = {"tinyllama-1.1b": "tab:blue", "llama2-7b": "tab:red"}
    for (model, phase), marker in {(m, ph): mk for m in colors for ph, mk in (("decode", "o"), ("prefill", "s"))}.items():
        sel = [r for r in rows if r["model"] == model and r["phase"] == phase]
        ax.scatter([r["graph_ms"] for r in sel], [r["predicted_ms"] for r in sel], marker=marker,
                   color=colors[model], label=f"{model} {phase}")
        ax.scatter([r["graph_ms"] for r in sel], [r["no_kernels_ms"] for r in sel], marker=marker,
                   facecolors="none", edgecolors=colors[model], alpha=0.5)
    lo = min(min(r["no_kernels_ms"], r["graph_ms"]) for r in rows) / 1.5
    hi = max(max(r["predicted_ms"], r["graph_ms"]) for r in rows) * 1.5
    ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="y = x")
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.85", label="within 10 %")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured on one H200, CUDA graph (ms)",
           ylabel="neurosim on arch_configs/h200.yaml (ms)",
           title="Predicted vs measured latency\n(filled: with 1.3 us per kernel; hollow: no kernel time)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def markdown(rows: list[dict], device: dict, kernels: dict, traces: list[dict]) -> str:
    from neurosim.arch import load_arch

    fixed_us = load_arch(ARCH).kernels.fixed_s * 1e6
    lines = [
        "# LLM latency on one NVIDIA H200: measured against neurosim (issue 20)",
        "",
        f"GPU: {device['gpu']} ({device['sms']} SMs, {device['memory_bytes'] / 1e9:.0f} GB), torch {device['torch']}, "
        f"CUDA {device['cuda_version']}; ceilings measured in the same run: device-to-device copy "
        f"{device['copy_bytes_per_s'] / 1e12:.2f} TB/s (read + written; datasheet 4.8), 8192^3 bf16 product "
        f"{device['bf16_flop_per_s'] / 1e12:.0f} TFLOP/s (datasheet 989 dense). Measured "
        "(`python benchmarks/llm_gpu.py --out benchmarks/results/llm_gpu.json`): median of CUDA-event runs after "
        "two warm-ups, random bf16 weights, KV cache preallocated, the forward replayed as one CUDA graph (the "
        "'eager' column launches the same kernels one by one from Python). Kernels per forward "
        "(`python benchmarks/llm_gpu_kernels.py --out benchmarks/results/llm_gpu_kernels.json`, same GPU kind, "
        "same torch): torch.profiler's CUDA activity of one forward with 1 and with 2 blocks. Predicted "
        "(`python analysis/validation_gpu.py`): `run_workload(card with 16-bit weights, h200, prompt=N, "
        "generate=1, batch=B, mac_based=True, kernels_per_layer=the profiled counts)`, time to first token for "
        f"prefill, the decode step for decode; arch_configs/h200.yaml streams at the datasheet's 4.8 TB/s, "
        f"computes at its 989 TFLOP/s and adds {fixed_us:.1f} us per kernel (published for an H100 with CUDA "
        "graphs; the H200 measured here gave "
        + "-".join(f"{v:.2f}" for v in sorted(kernels["floor_us"].values()))
        + " us for a graph of tiny dependent kernels). Error = predicted / measured (graph) - 1.",
        "",
        f"**Mean absolute error: decode {mean_abs(rows, 'decode'):.0%}, prefill {mean_abs(rows, 'prefill'):.0%}** "
        f"(without a time per kernel, as before: decode {mean_abs(rows, 'decode', 'error_no_kernels'):.0%}, "
        f"prefill {mean_abs(rows, 'prefill', 'error_no_kernels'):.0%}). The issue's target, decode within 10 %, "
        + ("is met." if mean_abs(rows, "decode") <= 0.10 else "is not met: see what is left, below."),
        "",
        "| model | phase | batch | prompt | kernels | measured graph (ms) | measured eager (ms) | predicted (ms) "
        "| error | no kernel time (ms) | error | prefill chunk |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        chunk = r["chunk"] if r["phase"] == "prefill" else ""
        lines.append(f"| {r['model']} | {r['phase']} | {r['batch']} | {r['prompt']} | {r['kernels']} | "
                     f"{r['graph_ms']:.3f} | {r['eager_ms']:.3f} | {r['predicted_ms']:.3f} | {r['error']:+.0%} | "
                     f"{r['no_kernels_ms']:.3f} | {r['error_no_kernels']:+.0%} | {chunk} |")
    lines += ["", "![predicted vs measured](validation_gpu.png)", ""] + left(rows, device, traces, fixed_us)
    return "\n".join(lines)


def left(rows: list[dict], device: dict, traces: list[dict], fixed_us: float) -> list[str]:
    """What the errors are made of, from this run's numbers and one traced step (nothing here changes the model)."""
    gemm = device["bf16_flop_per_s"] / 989.4e12
    big = [r for r in rows if r["phase"] == "prefill" and r["batch"] * r["prompt"] >= 4096]
    trace_rows = ["| model | batch | prompt | kernels | step (us) | idle gaps (us) | GEMM kernels (us) | GEMM "
                  "bandwidth over the weights (TB/s) | other kernels: count, us, median us |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    trace_rows += [f"| {t['model']} | {t['batch']} | {t['prompt']} | {t['kernels']} | {t['span_us']:.0f} | "
                   f"{t['gap_us']:.0f} (median {t['gap_median_us']:.2f}) | {t['gemm_us']:.0f} | "
                   f"{t['gemm_bytes_per_s'] / 1e12:.2f} | {t['small']}, {t['small_us']:.0f}, "
                   f"{t['small_median_us']:.2f} |" for t in traces]
    one = next(t for t in traces if t["model"] == "llama2-7b" and t["batch"] == 1)
    return [
        "## What the error is made of",
        "",
        "One replayed decode step per row, kernel by kernel (`python benchmarks/llm_gpu_kernels.py --trace MODEL "
        "BATCH PROMPT ...`, benchmarks/results/llm_gpu_trace.json; read, never fed into the model). GEMM kernels: "
        "cuBLAS's (their split-K reductions are among the others); bandwidth: the step's weights over their time.",
        "",
        *trace_rows,
        "",
        f"* **Decode: each kernel costs more than the published {fixed_us:.1f} us.** The step's kernels leave an idle "
        f"gap of {one['gap_median_us']:.2f} us (median) between them, and the {one['small']} kernels that are not "
        f"GEMMs take {one['small_median_us']:.2f} us each (median) though their work is nanoseconds: about "
        f"{one['gap_median_us'] + one['small_median_us']:.1f} us a kernel, where the published figure and the "
        "H200's own graph of tiny dependent kernels give 1.1-1.3 us. Those kernels are PyTorch's element-wise "
        "and reduction kernels on a few thousand values, each reading what the kernel before wrote; the model "
        "prices them as the fixed time alone.",
        f"* **Decode: the GEMMs do not reach the datasheet bandwidth.** At batch 1, LLaMA-2-7B's GEMM kernels "
        f"stream its weights at {one['gemm_bytes_per_s'] / 1e12:.2f} TB/s, {one['gemm_bytes_per_s'] / PUBLISHED_BYTES_PER_S:.0%} "
        f"of the 4.8 TB/s the model streams at (a plain copy reached "
        f"{device['copy_bytes_per_s'] / PUBLISHED_BYTES_PER_S:.0%}). The model uses the datasheet figure, no "
        "achievable-bandwidth factor.",
        "* **What would meet the target** is a time per kernel of the kernels this code launches (about 2 us, "
        "not the 1.1-1.3 us of an empty one) and the GEMMs' achieved bandwidth, both measured per operator "
        "on the GPU as Vidur does; taken from the trace above they would be fitted to these very steps, so "
        "they are not in the model. A fused implementation (a kernel per linear layer and a fused attention, "
        "as serving stacks run decode) was not measured: with fewer kernels, the published figure would matter "
        "less.",
        f"* **Prefill (compute-bound) is under-predicted by the tensor cores' achieved rate.** The model runs every "
        f"MAC at the datasheet's 989 TFLOP/s; the 8192^3 product in the same run reached {gemm:.0%} of it. On the "
        f"{len(big)} prefills of at least 4,096 tokens the error is {statistics.fmean(r['error'] for r in big):+.0%} "
        f"on average (1 - {gemm:.2f} = {1 - gemm:.0%} would be the error of a model right about everything but the "
        "rate).",
        "* **Not tuned.** No figure of arch_configs/h200.yaml was set from these measurements: the bandwidth, rate "
        "and sizes are NVIDIA's, the time per kernel is the published H100 figure (which the H200's own tiny-kernel "
        "graph confirms), and the kernel counts are what the measured code launches, profiled.",
        "",
    ]


def main(argv=None) -> None:
    sys.path.insert(0, str(ROOT))
    cached = "--cached" in (sys.argv[1:] if argv is None else argv)   # reuse the last predictions (minutes)
    measured, kernels = json.loads(MEASURED.read_text()), json.loads(KERNELS.read_text())
    out = HERE / "validation_gpu.json"
    rows = json.loads(out.read_text()) if cached else predict(measured["points"], profiled(kernels))
    out.write_text(json.dumps(rows, indent=1))
    figure(rows, HERE / "validation_gpu.png")
    text = markdown(rows, measured["device"], kernels, trace_summary(json.loads(TRACE.read_text())))
    (HERE / "validation_gpu.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
