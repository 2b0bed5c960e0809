"""neurosim's prediction against measured H200 latency (issue 20): prefill and decode step of the
TinyLlama-1.1B and LLaMA-2-7B shapes, bf16, batch 1/8/32, prompt 128/512/2048.

    python analysis/llm_validation.py      # reads benchmarks/results/llm_gpu.json (benchmarks/llm_gpu.py)
    python analysis/llm_validation.py --cached   # redraw from analysis/llm_validation.json

Each measured point is priced by `neurosim.llm.run_workload` on arch_configs/h200.yaml (NVIDIA's
published figures, nothing fitted), MAC-based (real-valued bf16 activations: the GPU's arithmetic),
weights at 16 bits, one request of the point's prompt and one generated token: the prefill's time to
first token against the measured prefill, the last (only) decode step against the measured step.
The prefill chunk is neurosim's own (the whole prompt where a layer's activations fit the 50 MB L2).
Writes benchmarks/results/llm_gpu.{md,png} and the predictions to analysis/llm_validation.json.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "benchmarks" / "results" / "llm_gpu.json"
TABLE = ROOT / "benchmarks" / "results" / "llm_gpu.md"
FIGURE = ROOT / "benchmarks" / "results" / "llm_gpu.png"
PREDICTED = Path(__file__).with_suffix(".json")
ARCH = "h200"


def bf16_card(model: str, context: int):
    """The shipped card of `model` as the GPU runs it: 16-bit weights, context at least `context`."""
    from neurosim.cards import load_decoder_card

    card = load_decoder_card(ROOT / "models" / f"{model}.yaml")
    # the benchmark's random weights need no trained context; the last step reads prompt + 1 positions
    return card.model_copy(update={"weight_bits": 16, "context": max(card.context, context)})


def predict(points: list[dict]) -> list[dict]:
    """Each measured point with neurosim's predicted milliseconds and its error (predicted / measured - 1)."""
    from neurosim.arch import load_arch
    from neurosim.llm import run_workload

    arch, reports, out = load_arch(ARCH), {}, []
    for p in points:
        key = (p["model"], p["batch"], p["prompt"])
        if key not in reports:
            card = bf16_card(p["model"], p["prompt"] + 1)
            reports[key] = run_workload(card, arch, prompt=p["prompt"], generate=1, batch=p["batch"],
                                        mac_based=True)
        r = reports[key]
        if not r.feasible:
            raise SystemExit(f"{key} does not map on {ARCH}: {r.notes}")
        seconds = r.ttft_s if p["phase"] == "prefill" else r.tpot_last_s
        out.append({**p, "predicted_ms": seconds * 1e3, "chunk": r.prefill_chunk,
                    "error": seconds * 1e3 / p["graph_ms"] - 1, "error_eager": seconds * 1e3 / p["eager_ms"] - 1})
    return out


def mean_abs(rows: list[dict], phase: str | None = None, key: str = "error") -> float:
    return statistics.fmean(abs(r[key]) for r in rows if phase in (None, r["phase"]))


def per_block_gap(rows: list[dict]) -> dict[str, float]:
    """Decode: (measured - predicted) / blocks, median over batch and prompt, per model (ms)."""
    from llm_gpu import SHAPES   # benchmarks/ is on sys.path (main)

    gaps = {}
    for model in sorted({r["model"] for r in rows}):
        d = [(r["graph_ms"] - r["predicted_ms"]) / SHAPES[model]["layers"] for r in rows
             if r["model"] == model and r["phase"] == "decode"]
        gaps[model] = statistics.median(d)
    return gaps


def ops_per_block(model: str = "toy") -> float:
    """Kernels one decode step of benchmarks/llm_gpu.py launches per block: torch ops that are not views,
    counted at the dispatcher on a CPU (bf16, as on the GPU) as the difference of 2 and 1 blocks."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from llm_gpu import SHAPES, Decoder

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += not func.is_view
            return func(*args, **(kwargs or {}))

    counts = []
    for layers in (1, 2):
        model_ = Decoder(torch, dict(SHAPES[model], layers=layers), 1, 4, "cpu", torch.bfloat16)
        with torch.inference_mode(), Count() as c:
            model_.forward(torch.zeros(1, 1, dtype=torch.long), 2)
        counts.append(c.ops)
    return counts[1] - counts[0]


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 6))
    colors = {"tinyllama-1.1b": "tab:blue", "llama2-7b": "tab:red"}
    for (model, phase), marker in {(m, ph): mk for m in colors for ph, mk in (("decode", "o"), ("prefill", "s"))}.items():
        sel = [r for r in rows if r["model"] == model and r["phase"] == phase]
        ax.scatter([r["graph_ms"] for r in sel], [r["predicted_ms"] for r in sel], marker=marker,
                   color=colors[model], label=f"{model} {phase} (CUDA graph)")
        ax.scatter([r["eager_ms"] for r in sel], [r["predicted_ms"] for r in sel], marker=marker,
                   facecolors="none", edgecolors=colors[model], alpha=0.5)
    lo = min(min(r["predicted_ms"], r["graph_ms"]) for r in rows) / 1.5
    hi = max(max(r["predicted_ms"], r["eager_ms"]) for r in rows) * 1.5
    ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="y = x")
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.85", label="within 10 %")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured on one H200 (ms)",
           ylabel="neurosim on arch_configs/h200.yaml (ms)",
           title="Predicted vs measured latency (hollow: eager, no graph)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def markdown(rows: list[dict], device: dict, gaps: dict[str, float], ops: int) -> str:
    lines = [
        "# LLM latency on one NVIDIA H200: measured (benchmarks/llm_gpu.py) against neurosim (arch_configs/h200.yaml)",
        "",
        f"GPU: {device['gpu']} ({device['sms']} SMs, {device['memory_bytes'] / 1e9:.0f} GB), torch {device['torch']}, "
        f"CUDA {device['cuda_version']}; ceilings measured in the same run: device-to-device copy "
        f"{device['copy_bytes_per_s'] / 1e12:.2f} TB/s (read + written; datasheet 4.8), 8192^3 bf16 product "
        f"{device['bf16_flop_per_s'] / 1e12:.0f} TFLOP/s (datasheet 989 dense). Measured: median of CUDA-event runs "
        "after two warm-ups, random bf16 weights, KV cache preallocated; 'graph' replays the same kernels as one "
        "CUDA graph, 'eager' launches them one by one from Python. Predicted: `run_workload(card with 16-bit weights, "
        "h200, prompt=N, generate=1, batch=B, mac_based=True)`, time to first token for prefill, the decode step "
        "for decode. Error = predicted / measured (graph) - 1. Reproduce: `python benchmarks/llm_gpu.py --out "
        "benchmarks/results/llm_gpu.json` on the GPU, then `python analysis/llm_validation.py`.",
        "",
        f"**Mean absolute error (against CUDA-graph times): decode {mean_abs(rows, 'decode'):.0%}, prefill "
        f"{mean_abs(rows, 'prefill'):.0%}, all {mean_abs(rows):.0%}** (against eager times: decode "
        f"{mean_abs(rows, 'decode', 'error_eager'):.0%}, prefill {mean_abs(rows, 'prefill', 'error_eager'):.0%}). "
        "The issue's target, decode within 10 %, is not met.",
        "",
        "| model | phase | batch | prompt | measured graph (ms) | measured eager (ms) | predicted (ms) | error | prefill chunk |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        chunk = r["chunk"] if r["phase"] == "prefill" else ""
        lines.append(f"| {r['model']} | {r['phase']} | {r['batch']} | {r['prompt']} | {r['graph_ms']:.3f} | "
                     f"{r['eager_ms']:.3f} | {r['predicted_ms']:.3f} | {r['error']:+.0%} | {chunk} |")
    lines += ["", "![predicted vs measured](llm_gpu.png)", ""] + causes(rows, device, gaps, ops)
    return "\n".join(lines)


def causes(rows: list[dict], device: dict, gaps: dict[str, float], ops: int) -> list[str]:
    """Why the errors are what they are, from numbers of this run (nothing here changes the model)."""
    gemm = device["bf16_flop_per_s"] / 989.4e12
    copy = device["copy_bytes_per_s"] / 4.8e12
    big = [r for r in rows if r["phase"] == "prefill" and r["batch"] * r["prompt"] >= 4096]
    gap = ", ".join(f"{m} {g * 1e3:.0f} us" for m, g in gaps.items())
    per_kernel = statistics.fmean(gaps.values()) * 1e3 / ops
    return [
        "## Why the errors are what they are",
        "",
        f"* **Prefill (compute-bound) is under-predicted by the tensor cores' achieved rate.** The model runs every "
        f"MAC at the datasheet's 989 TFLOP/s; the 8192^3 product in the same run reached {gemm:.0%} of it. On the "
        f"{len(big)} prefills of at least 4,096 tokens the error is {statistics.fmean(r['error'] for r in big):+.0%} "
        f"on average (1 - {gemm:.2f} = {1 - gemm:.0%} would be the error of a model that is right about everything "
        "but the rate). Small prefills add the fixed per-kernel cost below.",
        f"* **Decode is under-predicted by a fixed cost per block, not by bandwidth.** The model streams the weights "
        f"and the KV cache at 4.8 TB/s; a plain copy reached {copy:.0%} of that: at the copy's rate every "
        f"decode prediction would rise by {1 / copy - 1:.0%}, a small part of the gap. Measured minus predicted is nearly the same for every batch "
        f"and prompt and both models when counted per block: {gap} (medians). One decode step of "
        f"benchmarks/llm_gpu.py launches {ops} kernels per block (torch ops that are not views, counted at the "
        f"dispatcher), so about {per_kernel:.1f} us per kernel: the launch-to-launch floor of small kernels "
        "(norms, rotary, residual adds, cache writes) that even a CUDA graph keeps. neurosim prices bytes and "
        "MACs and has no per-operation overhead, so it predicts the roofline of a perfectly fused decoder, "
        "which plain torch is not. Eager launches from Python add ~10 ms more (the eager column).",
        "* **Not tuned.** No figure of arch_configs/h200.yaml was changed after the measurement; the errors "
        "above are the model's against NVIDIA's published figures. A fused implementation (one kernel per "
        "linear layer and a fused attention, as serving stacks use) was not measured: the session's device time "
        "allowed one run.",
        "",
    ]


def main(argv=None) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    cached = "--cached" in (sys.argv[1:] if argv is None else argv)   # reuse the last predictions (minutes)
    measured = json.loads(MEASURED.read_text())
    rows = json.loads(PREDICTED.read_text()) if cached else predict(measured["points"])
    PREDICTED.write_text(json.dumps(rows, indent=1))
    figure(rows, FIGURE)
    TABLE.write_text(markdown(rows, measured["device"], per_block_gap(rows), ops_per_block()))
    print(TABLE.read_text())


if __name__ == "__main__":
    main()
