"""neurosim's prediction against measured H200 latency (issue 20): prefill and decode step of the
TinyLlama-1.1B and LLaMA-2-7B shapes, bf16, batch 1/8/32, prompt 128/512/2048.

    python analysis/validation_gpu.py            # prices every point (minutes)
    python analysis/validation_gpu.py --cached   # the .md and .png again from validation_gpu.json

Reads what the GPU measured (benchmarks/llm_gpu.py -> benchmarks/results/llm_gpu.json: the times;
benchmarks/llm_gpu_kernels.py -> llm_gpu_kernels.json: the kernels each forward launches, and
llm_gpu_trace.json: one replayed decode step kernel by kernel). Each measured point is priced by
`neurosim.llm.run_workload` on arch_configs/h200.yaml (NVIDIA's published figures and a published
per-kernel time, nothing fitted) and on arch_configs/h200-profiled.yaml (each operator's time measured alone
on an H200 by benchmarks/llm_gpu_ops.py: arch_configs/h200_ops.csv), MAC-based (real bf16 activations: the GPU's arithmetic), weights at
16 bits, one request of the point's prompt and one generated token, with the kernels the measured code
launches (`kernels_per_layer`, h200 only): the time to first token against the measured prefill, the decode step
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
PROFILED = "h200-profiled"             # the same GPU, each operator's time measured alone (kernels.profile)
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

    arch, profiled_arch = load_arch(ARCH), load_arch(PROFILED)
    bare = arch.model_copy(update={"kernels": None}).loaded_from(arch.path, arch.energy)
    out = []
    for p in points:
        card = bf16_card(p["model"], p["prompt"] + 1)
        k = counts[(p["model"], p["phase"], p["batch"], p["prompt"])]
        phase = {p["phase"]: kernels_per_layer(k["per_block"], k["outside_blocks"])}
        row = dict(p, kernels=forward_kernels(card.layers, k))
        for key, on in (("predicted_ms", arch), ("no_kernels_ms", bare), ("profiled_ms", profiled_arch)):
            r = run_workload(card, on, prompt=p["prompt"], generate=1, batch=p["batch"], mac_based=True,
                             kernels_per_layer=phase)
            if not r.feasible:
                raise SystemExit(f"{p['model']} B={p['batch']} N={p['prompt']} does not map on {ARCH}: {r.notes}")
            row[key] = (r.ttft_s if p["phase"] == "prefill" else r.tpot_last_s) * 1e3
            row["chunk"] = r.prefill_chunk
        row["error"] = row["predicted_ms"] / p["graph_ms"] - 1
        row["error_no_kernels"] = row["no_kernels_ms"] / p["graph_ms"] - 1
        row["error_profiled"] = row["profiled_ms"] / p["graph_ms"] - 1
        out.append(row)
        print(p["model"], p["phase"], p["batch"], p["prompt"], f"{row['error']:+.0%} {row['error_profiled']:+.0%}",
              file=sys.stderr)
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


def in_step(trace: dict, measured: list[dict]) -> list[dict]:
    """Each traced decode step's blocks split into GEMMs, attention and element-wise kernels (a kernel's time runs
    from its start to the next kernel's: its gap included), against the same operators' profiled times. Read
    from the kernel order of benchmarks/llm_gpu.py's block (7 GEMMs: q, k, v, o, gate, up, down; 8 norm kernels
    before q; the cache writes and attention between v and o; a residual add after down and its split-K reduce)."""
    from neurosim.arch import load_arch
    from neurosim.llm.operators import attention_us, elementwise_us, linear_us

    ops, out = load_arch(PROFILED).operators, []
    graph = {(p["model"], p["batch"], p["prompt"]): p["graph_ms"] for p in measured if p["phase"] == "decode"}
    for t in trace["traces"]:
        ks, b, n = t["kernels"], t["batch"], t["prompt"]
        card = bf16_card(t["model"], n + 1)
        h, d = card.hidden, card.hidden // card.heads
        kv, ff = card.kv_heads * d, card.intermediate
        at = [k["start_us"] for k in ks]
        gemms = [i for i, k in enumerate(ks) if "nvjet" in k["name"]]
        got = dict(gemm=0.0, attention=0.0, elementwise=0.0)
        for block in range(card.layers):
            q, k, v, o, gate, up, down = gemms[7 * block:7 * block + 7]
            after = down + 1 + ("splitK" in ks[down + 1]["name"])        # the residual add after down
            gemm = sum(at[i + 1] - at[i] for i in (q, k, v, o, gate, up)) + at[after] - at[down]
            attention = at[o] - at[v + 1]
            got["gemm"] += gemm
            got["attention"] += attention
            got["elementwise"] += at[after + 1] - at[q - 8] - gemm - attention    # the block's other kernels
        layers = card.layers
        profiled = dict(gemm=layers * (2 * linear_us(ops, b, h, h) + 2 * linear_us(ops, b, h, kv)
                                       + 2 * linear_us(ops, b, h, ff) + linear_us(ops, b, ff, h)),
                        attention=layers * attention_us(ops, b, card.heads, card.kv_heads, d, 1, n),
                        elementwise=layers * (2 * elementwise_us(ops, "rmsnorm", b, h) + 2 * elementwise_us(ops, "add", b, h)
                                              + elementwise_us(ops, "rotary", b, h) + elementwise_us(ops, "rotary", b, kv)
                                              + elementwise_us(ops, "silu_product", b, ff)))
        out.append(dict(model=t["model"], batch=b, prompt=n, graph_us=graph[(t["model"], b, n)] * 1e3,
                        traced_us=at[-1] + ks[-1]["us"], got=got, profiled=profiled))
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
        ax.scatter([r["graph_ms"] for r in sel], [r["profiled_ms"] for r in sel], marker=marker,
                   color=colors[model], label=f"{model} {phase}", zorder=3)
        ax.scatter([r["graph_ms"] for r in sel], [r["predicted_ms"] for r in sel], marker=marker,
                   facecolors="none", edgecolors=colors[model], alpha=0.5, zorder=2)
    lo = min(min(r["predicted_ms"], r["graph_ms"]) for r in rows) / 1.5
    hi = max(max(r["profiled_ms"], r["graph_ms"]) for r in rows) * 1.5
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="y = x", zorder=1)
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.88", label="within 10 %", zorder=0)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured on one H200, CUDA graph (ms)",
           ylabel="neurosim (ms)", title="Predicted vs measured latency\n(filled: h200-profiled, operators measured "
           "alone;\nhollow: h200, datasheet and 1.3 us per kernel)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def profile_header(arch_name: str) -> str:
    """The GPU, torch and date line of the arch's operator profile (its CSV's header)."""
    from neurosim.arch import load_arch

    arch = load_arch(arch_name)
    lines = Path(arch.operators.path).read_text().splitlines()
    return next(line[2:] for line in lines if line.startswith("# GPU:"))


def one_pass(rows: list[dict]) -> list[float]:
    """Each prefill's error with its operators summed over the measured schedule (the whole prompt in one pass;
    run_workload prices the chunks its global buffer holds)."""
    from neurosim.arch import load_arch
    from neurosim.cards import DecoderPhase, decoder_network
    from neurosim.llm.operators import network_seconds

    table = load_arch(PROFILED).operators
    out = []
    for r in rows:
        if r["phase"] == "prefill":
            net = decoder_network(bf16_card(r["model"], r["prompt"] + 1), DecoderPhase(r["batch"], r["prompt"]),
                                  mac_based=True)
            out.append(network_seconds(table, net) * 1e3 / r["graph_ms"] - 1)
    return out


def markdown(rows: list[dict], device: dict, kernels: dict, traces: list[dict], steps: list[dict]) -> str:
    from neurosim.arch import load_arch

    fixed_us = load_arch(ARCH).kernels.fixed_s * 1e6
    decode = mean_abs(rows, "decode", "error_profiled")
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
        "same torch): torch.profiler's CUDA activity of one forward with 1 and with 2 blocks.",
        "",
        "Predicted (`python analysis/validation_gpu.py`): `run_workload(card with 16-bit weights, ARCH, prompt=N, "
        "generate=1, batch=B, mac_based=True)`, time to first token for prefill, the decode step for decode, on "
        "two configs of the same GPU:",
        "",
        f"* **h200-profiled** (arch_configs/h200-profiled.yaml): each layer's time is its operator's time measured "
        "alone on an H200 (`kernels.profile: h200_ops.csv`), Vidur's way. The profile "
        "(`python benchmarks/llm_gpu_ops.py --out arch_configs/h200_ops.csv`; "
        f"{profile_header(PROFILED)}) times every operator the measured decoder launches, each alone in a replayed "
        "CUDA graph of repeated calls (launch gaps included), weights and KV caches cycled over 3x the L2 so they "
        "come from HBM as in a step: the linear layers as bf16 GEMMs over M = 1..65,536 tokens at each of the "
        "cards' (K, N), attention (cache writes, SDPA, heads back) at 1-64 sequences x 16-4,096 cached or prompt "
        "tokens, and the element-wise code (RMSNorm, rotary, SiLU x up, residual add, embedding gather) at "
        "1-65,536 tokens. A step is the sum of its layers' profiled times (neurosim.llm.operators interpolates "
        "between profiled shapes); no figure of the profile comes from the end-to-end timings below.",
        f"* **h200** (arch_configs/h200.yaml, unchanged): the datasheet's 4.8 TB/s and 989 TFLOP/s, plus "
        f"{fixed_us:.1f} us per kernel (published for an H100 with CUDA graphs; the H200 measured here gave "
        + "-".join(f"{v:.2f}" for v in sorted(kernels["floor_us"].values()))
        + " us for a graph of tiny dependent kernels) times the kernels the measured code launches "
        "(`kernels_per_layer`, profiled).",
        "",
        "Both price the same phases: the prefill in the chunks neurosim picks (the 'prefill chunk' column: as many "
        "tokens as keep a layer's activations in the 50 MB L2), where the measured code ran the whole prompt at "
        "once (see below). Error = predicted / measured (graph) - 1.",
        "",
        f"**Mean absolute error with the operator profile: decode {decode:.1%}, prefill "
        f"{mean_abs(rows, 'prefill', 'error_profiled'):.1%}** (every decode point within "
        f"{max(abs(r['error_profiled']) for r in rows if r['phase'] == 'decode'):.1%}, every prefill within "
        f"{max(abs(r['error_profiled']) for r in rows if r['phase'] == 'prefill'):.1%}). From the datasheet "
        f"alone: decode {mean_abs(rows, 'decode'):.0%}, prefill {mean_abs(rows, 'prefill'):.0%} with "
        f"{fixed_us:.1f} us per kernel, {mean_abs(rows, 'decode', 'error_no_kernels'):.0%} and "
        f"{mean_abs(rows, 'prefill', 'error_no_kernels'):.0%} without. The issue's target, decode within 10 %, "
        + ("is met with the profile; not from the datasheet alone." if decode <= 0.10 else "is not met."),
        "",
        "| model | phase | batch | prompt | kernels | measured graph (ms) | measured eager (ms) | h200-profiled (ms) "
        "| error | h200 (ms) | error | prefill chunk |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        chunk = r["chunk"] if r["phase"] == "prefill" else ""
        lines.append(f"| {r['model']} | {r['phase']} | {r['batch']} | {r['prompt']} | {r['kernels']} | "
                     f"{r['graph_ms']:.3f} | {r['eager_ms']:.3f} | {r['profiled_ms']:.3f} | "
                     f"{r['error_profiled']:+.1%} | {r['predicted_ms']:.3f} | {r['error']:+.0%} | {chunk} |")
    lines += ["", "![predicted vs measured](validation_gpu.png)", ""] + left(rows, device, traces, fixed_us)
    lines += in_step_reading(steps)
    return "\n".join(lines)


def left(rows: list[dict], device: dict, traces: list[dict], fixed_us: float) -> list[str]:
    """What the errors are made of, from this run's numbers and one traced step (nothing here changes the model)."""
    gemm = device["bf16_flop_per_s"] / 989.4e12
    trace_rows = ["| model | batch | prompt | kernels | step (us) | idle gaps (us) | GEMM kernels (us) | GEMM "
                  "bandwidth over the weights (TB/s) | other kernels: count, us, median us |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    trace_rows += [f"| {t['model']} | {t['batch']} | {t['prompt']} | {t['kernels']} | {t['span_us']:.0f} | "
                   f"{t['gap_us']:.0f} (median {t['gap_median_us']:.2f}) | {t['gemm_us']:.0f} | "
                   f"{t['gemm_bytes_per_s'] / 1e12:.2f} | {t['small']}, {t['small_us']:.0f}, "
                   f"{t['small_median_us']:.2f} |" for t in traces]
    one = next(t for t in traces if t["model"] == "llama2-7b" and t["batch"] == 1)
    err = lambda sel: statistics.fmean(r["error_profiled"] for r in rows if sel(r))   # noqa: E731
    single = lambda r: r["phase"] == "decode" and r["batch"] == 1                     # noqa: E731
    batched = lambda r: r["phase"] == "decode" and r["batch"] > 1                     # noqa: E731
    whole = one_pass(rows)
    return [
        "## What the error is made of",
        "",
        "**Why the datasheet config is off** (it predicts every point short). One replayed decode step per row, "
        "kernel by kernel (`python benchmarks/llm_gpu_kernels.py --trace MODEL BATCH PROMPT ...`, "
        "benchmarks/results/llm_gpu_trace.json; read, never fed into a model). GEMM kernels: cuBLAS's (their "
        "split-K reductions are among the others); bandwidth: the step's weights over their time.",
        "",
        *trace_rows,
        "",
        f"* Each kernel costs more than the published {fixed_us:.1f} us: the step's kernels leave an idle gap of "
        f"{one['gap_median_us']:.2f} us (median) between them, and the {one['small']} kernels that are not GEMMs take "
        f"{one['small_median_us']:.2f} us each (median) though their work is nanoseconds: about "
        f"{one['gap_median_us'] + one['small_median_us']:.1f} us a kernel. The GEMMs do not reach the datasheet "
        f"bandwidth: at batch 1, LLaMA-2-7B's stream its weights at {one['gemm_bytes_per_s'] / 1e12:.2f} TB/s, "
        f"{one['gemm_bytes_per_s'] / PUBLISHED_BYTES_PER_S:.0%} of 4.8 TB/s (a plain copy reached "
        f"{device['copy_bytes_per_s'] / PUBLISHED_BYTES_PER_S:.0%}). Prefill's tensor cores run below the datasheet "
        f"rate: the 8192^3 product reached {gemm:.0%} of 989 TFLOP/s. h200.yaml keeps NVIDIA's figures (no "
        "achievable-bandwidth or -rate factor), so it stays a datasheet bound, "
        f"{min(-r['error'] for r in rows):.0%}-{max(-r['error'] for r in rows):.0%} short.",
        "* The profile holds all three: each operator's time as this code runs it on this GPU, its launches, "
        "gaps, achieved bandwidth and rate included, measured per operator in a separate microbenchmark.",
        "",
        "**What is left with the profile.**",
        "",
        f"* **Decode at batch 1: {err(single):+.1%} on average** (the six points within "
        f"{max(abs(r['error_profiled']) for r in rows if single(r)):.1%}): the step is the sum of its operators "
        "measured alone, in part because errors of opposite sign cancel (below).",
        f"* **Decode at batch 8 and 32: {err(batched):+.1%} on average**, every point short: at those batches the "
        "step takes longer than its operators alone; the traced steps below show where (operator by operator "
        "inside a step).",
        f"* **Prefill: mean {err(lambda r: r['phase'] == 'prefill'):+.1%}, both signs** (the largest, "
        f"{min(rows, key=lambda r: r['error_profiled'] if r['phase'] == 'prefill' else 1)['error_profiled']:+.1%}, "
        "TinyLlama's 128-token prompt at batch 1; not attributed either). neurosim prices a prefill "
        "in chunks (the 'prefill chunk' column), the measured code ran each prompt in one pass; a chunk's "
        "attention after a cache is the profiled causal prefill of the whole prefix scaled to the chunk's share "
        "of its query-key pairs (the measured code cannot run a chunk after a cache, so that shape was not "
        "profiled). Summing the operators over the measured schedule instead (the whole prompt in one pass, "
        f"which run_workload refuses as its activations exceed the L2) gives a mean absolute prefill error of "
        f"{statistics.fmean(abs(e) for e in whole):.1%} (within {max(abs(e) for e in whole):.1%}), against "
        f"{mean_abs(rows, 'prefill', 'error_profiled'):.1%} chunked: the chunking is a small part of what is left.",
        "* **What the profile does not cover.** It is this code on this GPU: plain torch eager kernels (an RMSNorm "
        "is 8 kernels) replayed in a CUDA graph. A fused implementation (a serving stack's kernels) needs its own "
        "profile. Shapes outside the two cards' are priced from the nearest profiled shape scaled by the work "
        "(neurosim.llm.operators): not validated here. Energy is not validated (no power was measured).",
        "* **Not tuned.** The profile was measured once, by its own script, operator by operator; the lookup rules "
        "(linear interpolation in the tokens, proportional above the grid) were written before the comparison; "
        "no figure of either config was set from the end-to-end measurements above.",
        "",
    ]


def in_step_reading(steps: list[dict]) -> list[str]:
    """The traced steps' operators against their profiled times (`in_step`)."""
    ratio = lambda s, k: s["got"][k] / s["profiled"][k]   # noqa: E731
    span = [s["traced_us"] / s["graph_us"] for s in steps]
    rows = ["| model | batch | cache | step, graph (us) | step, traced (us) | GEMMs: traced / profiled (us) | attention "
            "| element-wise |", "| --- | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    rows += [f"| {s['model']} | {s['batch']} | {s['prompt']} | {s['graph_us']:.0f} | {s['traced_us']:.0f} | "
             + " | ".join(f"{s['got'][k]:.0f} / {s['profiled'][k]:.0f} ({ratio(s, k):.2f})"
                          for k in ("gemm", "attention", "elementwise")) + " |" for s in steps]
    small = [ratio(s, "elementwise") for s in steps]
    single, batched = ([ratio(s, "gemm") for s in steps if (s["batch"] == 1) == one] for one in (True, False))
    attention = [ratio(s, "attention") for s in steps if s["batch"] == 1]
    spread = lambda v: f"{min(v):.2f}" if f"{min(v):.2f}" == f"{max(v):.2f}" else f"{min(v):.2f}-{max(v):.2f}"  # noqa: E731
    return [
        "**Operator by operator inside a step.** The traced decode steps above, their blocks' kernels grouped into "
        "the profile's operators (a kernel's time from its start to the next one's, so its gap included; "
        "`in_step` in analysis/validation_gpu.py), against the same operators' profiled times (read, never fed "
        "into the model). The trace ran under torch.profiler, which lengthens a step by "
        f"{min(span) - 1:.0%}-{max(span) - 1:.0%} over its graph timing: a traced time may be long by up to that much.",
        "",
        *rows,
        "",
        f"* In a step the element-wise kernels take {spread(small)}x their profiled time, more than the "
        f"profiler's share, and at batch 1 attention {spread(attention)}x; the GEMMs take {spread(single)}x theirs "
        "at batch 1. The batch-1 agreement is in part these cancelling, not each operator right. At batch 32 the "
        f"GEMMs gain less ({spread(batched)}x) and the small kernels' excess is what is left: the batched steps' "
        "shortfall. Why an operator runs differently among its neighbours than alone (what the kernel before leaves "
        "in the L2, launches queued behind a long kernel) was not measured; a profile of operators in sequence "
        "(each timed between its real neighbours) would be the next step.",
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
    trace = json.loads(TRACE.read_text())
    text = markdown(rows, measured["device"], kernels, trace_summary(trace), in_step(trace, measured["points"]))
    (HERE / "validation_gpu.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
