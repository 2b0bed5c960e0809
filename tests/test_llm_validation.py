"""Issue 20: the GPU benchmark's decoder (benchmarks/llm_gpu.py), the H200 config, the comparison and the
break-even analysis (analysis/validation_gpu.py, analysis/break_even.py), on a CPU at toy sizes."""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "analysis")]

import break_even  # noqa: E402
import llm_gpu  # noqa: E402
import llm_gpu_ops  # noqa: E402
import validation_gpu  # noqa: E402

torch = pytest.importorskip("torch")


def test_benchmark_shapes_are_the_decoder_cards_shapes():
    from neurosim.cards import load_decoder_card

    for name in ("tinyllama-1.1b", "llama2-7b"):
        card = load_decoder_card(ROOT / "models" / f"{name}.yaml")
        assert llm_gpu.SHAPES[name] == {k: getattr(card, k) for k in llm_gpu.SHAPES[name]}


def test_a_decode_step_against_the_cache_gives_the_logits_of_a_whole_prefill():
    shape = llm_gpu.SHAPES["toy"]          # 4 query heads over 2 key/value heads: the grouped decode path
    tokens = torch.randint(0, shape["vocab"], (2, 9), generator=torch.Generator().manual_seed(3))
    cached = llm_gpu.Decoder(torch, shape, 2, 16, "cpu", torch.float64)
    fresh = llm_gpu.Decoder(torch, shape, 2, 16, "cpu", torch.float64)   # same seed, same weights
    with torch.inference_mode():
        cached.forward(tokens[:, :8], 0)
        step = cached.forward(tokens[:, 8:], 8)
        whole = fresh.forward(tokens, 0)
    assert step.shape == (2, shape["vocab"])
    assert torch.allclose(step, whole, rtol=1e-9, atol=1e-12)
    with torch.inference_mode():   # a different last token changes the logits: the step reads its input
        other = cached.forward((tokens[:, 8:] + 1) % shape["vocab"], 8)
    assert not torch.allclose(step, other)


def test_the_benchmark_runs_on_a_cpu_at_toy_size_and_writes_every_point(tmp_path):
    out = tmp_path / "toy.json"
    llm_gpu.main(["--models", "toy", "--batches", "1", "2", "--prompts", "4", "--min-repeats", "2",
                  "--target-s", "0", "--device", "cpu", "--out", str(out)])
    result = json.loads(out.read_text())
    points = result["points"]
    assert [(p["phase"], p["batch"]) for p in points] == [("prefill", 1), ("decode", 1), ("prefill", 2), ("decode", 2)]
    assert all(p["eager_ms"] > 0 and math.isfinite(p["eager_ms"]) and p["repeats"] == 2 for p in points)
    assert all(math.isnan(p["graph_ms"]) for p in points)          # no CUDA graph on a CPU
    assert result["device"]["gpu"] is None and result["dtype"] == "float32"


def test_the_benchmark_refuses_a_batch_below_one(capsys):
    with pytest.raises(SystemExit):
        llm_gpu.main(["--models", "toy", "--batches", "0", "--device", "cpu"])
    assert "--batches and --prompts must be at least 1" in capsys.readouterr().err


def test_h200_config_gives_nvidias_dense_bf16_rate_bandwidth_and_capacity():
    from neurosim.arch import load_arch

    arch = load_arch("h200")
    flops = arch.cores.count * arch.cores.macs_per_cycle * 2 * arch.clock_hz
    assert flops == pytest.approx(989.4e12, rel=1e-3)          # the datasheet's 1,979 sparse / 2
    assert arch.dram.bytes_per_s == 4.8e12 and arch.hbm.capacity_bytes == 141e9
    assert arch.global_buffer.bytes == 50 * 2**20


def test_h200_decode_step_at_batch_one_is_the_bf16_weights_over_the_datasheet_bandwidth():
    from neurosim.arch import load_arch
    from neurosim.llm import run_workload

    card = validation_gpu.bf16_card("tinyllama-1.1b", 129)
    arch = load_arch("h200")
    no_kernels = arch.model_copy(update={"kernels": None}).loaded_from(arch.path, arch.energy)
    report = run_workload(card, no_kernels, prompt=128, generate=1, batch=1, mac_based=True)
    # by hand: per block q, o (2048 x 2048), k, v (2048 x 256), gate, up, down (2048 x 5632); the LM head
    block = 2048 * (2 * 2048 + 2 * 256 + 3 * 5632)
    weights = (22 * block + 32000 * 2048) * 2                   # bytes at 16 bits
    assert validation_gpu.card_parameters(card) * 2 == weights
    kv = 22 * 2 * 256 * 2 * 129                                 # the cache the step reads and writes, about
    assert report.tpot_last_s == pytest.approx((weights + kv) / 4.8e12, rel=0.02)
    # with the arch's time per kernel: one kernel a layer by default (the input, 15 layers a block, the final
    # norm and the LM head), or the profiled counts, 42 a block and 10 beside them
    fused = run_workload(card, arch, prompt=128, generate=1, batch=1, mac_based=True)
    assert fused.tpot_last_s - report.tpot_last_s == pytest.approx((1 + 22 * 15 + 2) * 1.3e-6, rel=1e-9)
    torch_code = run_workload(card, arch, prompt=128, generate=1, batch=1, mac_based=True,
                              kernels_per_layer={"decode": validation_gpu.kernels_per_layer(42, 10)})
    assert torch_code.tpot_last_s - report.tpot_last_s == pytest.approx((22 * 42 + 10) * 1.3e-6, rel=1e-9)
    assert torch_code.ttft_s - report.ttft_s == pytest.approx(fused.ttft_s - report.ttft_s)   # prefill: one a layer


def test_the_hand_counted_kernels_of_a_block_are_the_profiled_ones():
    """The element-wise kernels read off benchmarks/llm_gpu.py's code, plus a kernel for each of the 7 linear
    layers (cuBLAS, no split-K at TinyLlama's batch-1 decode except down's reduction) and 4 for attention (two
    cache writes, a memset, the fused attention kernel), are the block TinyLlama's decode profile shows."""
    measured = json.loads(validation_gpu.KERNELS.read_text())
    point = validation_gpu.profiled(measured)["tinyllama-1.1b", "decode", 1, 128]
    elementwise = sum(v for k, v in validation_gpu.ELEMENTWISE_KERNELS.items()
                      if k not in ("input", "final_norm", "last_token"))
    assert elementwise + 7 + 1 + 4 == point["per_block"] == 42
    names = point["one_block_kernels"]
    assert sum("rsqrt" in n for n in names) == 3                          # attn_norm, mlp_norm, final_norm
    assert sum("nvjet" in n for n in names) == 8                           # 7 linear layers and the LM head
    counts = validation_gpu.kernels_per_layer(point["per_block"], point["outside_blocks"])
    block = [k for k in counts if k not in ("input", "final_norm", "last_token", "lm_head")]
    assert sum(counts[k] for k in block) == pytest.approx(42)
    assert counts["input"] + counts["final_norm"] + counts["lm_head"] == point["outside_blocks"] == 10


def test_the_operator_benchmark_runs_on_a_cpu_and_writes_a_profile_the_model_reads(tmp_path):
    from neurosim.llm.operators import load_operator_table

    out = tmp_path / "toy_ops.csv"
    llm_gpu_ops.main(["--models", "toy", "--device", "cpu", "--tokens", "1", "--element-tokens", "1", "--batches", "1",
                      "--lengths", "2", "--out", str(out)])
    ops = load_operator_table(out, "test")
    toy = llm_gpu.SHAPES["toy"]
    h, d = toy["hidden"], toy["hidden"] // toy["heads"]
    kv, ff = toy["kv_heads"] * d, toy["intermediate"]
    linear = {("linear", k, n, "any") for k, n in ((h, h), (h, kv), (h, ff), (ff, h), (h, toy["vocab"]))}
    element = {("rmsnorm", h, "any"), ("add", h, "any"), ("silu_product", ff, "any"), ("input", h, "any"),
               ("rotary", h, "any"), ("rotary", kv, "any")}
    attention = {("attention", toy["heads"], toy["kv_heads"], d, phase) for phase in ("decode", "prefill")}
    assert set(ops.curves) == linear | element | attention           # one curve per shape, one point each
    assert all(len(c) == 1 and c[0][2] > 0 for c in ops.curves.values())
    assert "# GPU: no GPU" in out.read_text()


def test_the_shipped_h200_profile_times_every_operator_shape_of_both_cards_without_scaling():
    from neurosim.arch import load_arch
    from neurosim.cards import DecoderPhase, decoder_network

    curves = load_arch(validation_gpu.PROFILED).operators.curves
    for model in ("tinyllama-1.1b", "llama2-7b"):
        card = validation_gpu.bf16_card(model, 2049)
        for phase in (DecoderPhase(32, 1, 2048.0), DecoderPhase(8, 512)):
            for layer in decoder_network(card, phase, range(1), mac_based=True).layers:
                op, size = getattr(layer.spec, "op", None), layer.seq_len
                if op == "last_token":     # a view in the measured code: no operator
                    continue
                if layer.kind == "linear":
                    key = ("linear", layer.in_features, layer.out_features, "any")
                elif layer.kind == "causal_attention":
                    a = layer.spec
                    key = ("attention", a.heads, a.kv_heads, a.head_dim, "decode" if a.past_tokens else "prefill")
                    size = a.past_tokens or layer.seq_len / a.sequences
                else:
                    key = (op, layer.in_features, "any")
                assert key in curves, (model, layer.name)
                assert size <= max(x for x, _, _ in curves[key]), (model, layer.name)   # inside the grid


def test_mean_absolute_error_is_taken_over_the_named_phase():
    rows = [dict(phase="decode", error=-0.5), dict(phase="decode", error=0.1), dict(phase="prefill", error=-0.3)]
    assert validation_gpu.mean_abs(rows, "decode") == pytest.approx(0.3)
    assert validation_gpu.mean_abs(rows) == pytest.approx(0.3)
    assert validation_gpu.mean_abs(rows, "prefill") == pytest.approx(0.3)
    rows[2]["error"] = -0.9
    assert validation_gpu.mean_abs(rows) == pytest.approx(0.5)


def test_the_break_even_rate_is_interpolated_in_log_rate():
    rates = [0.01, 0.1, 1.0]
    assert break_even.crossing(rates, [1.0, 3.0, 5.0], 2.0) == pytest.approx(math.sqrt(0.01 * 0.1))
    assert break_even.crossing(rates, [3.0, 4.0, 5.0], 2.0) == "never"
    assert break_even.crossing(rates, [0.5, 1.0, 1.5], 2.0) == "always"


def test_a_spiking_linear_layer_costs_more_energy_at_a_higher_rate_and_the_mac_layer_none():
    from neurosim.arch import load_arch

    arch = load_arch("edge-45nm")
    name = "linear 768x768, 128 tokens"
    low, high = (break_even.priced(break_even.layer_networks(r)[name], arch)[0] for r in (0.01, 0.5))
    mac = break_even.priced(break_even.layer_networks(None)[name], arch)[0]
    assert low < high and mac > 0
    narrow = break_even.priced(break_even.layer_networks(None)[name], break_even.with_bits(arch, 3))[0]
    assert narrow < mac          # 3-bit activations move fewer bits than the chip's 32


def test_the_integer_datapath_prices_a_mac_as_horowitzs_8_bit_multiply_and_32_bit_add():
    from neurosim.arch import load_arch
    from neurosim.cost.estimate import estimate

    arch = break_even.integer_datapath(load_arch("edge-45nm"))
    net = break_even.layer_networks(None)["linear 768x768, 128 tokens"]
    report = estimate(net, arch)
    assert report.macs == 768 * 768 * 128
    assert report.energy_breakdown_pj["compute"] == pytest.approx(report.macs * (0.2 + 0.1), rel=1e-9)
    assert load_arch("edge-45nm").energy.mac_pj == 4.6                  # the shipped table is untouched
