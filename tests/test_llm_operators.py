"""Issue 20: an operator profile (kernels.profile, neurosim.llm.operators) looked up by hand on tiny tables,
bad profiles refused, and a profiled decoder priced as the sum of its operators counted by hand."""

from pathlib import Path

import pytest
import yaml

from neurosim.arch import load_arch
from neurosim.cards import DecoderCard
from neurosim.errors import NeurosimError
from neurosim.llm import run_workload
from neurosim.llm.operators import COLUMNS, attention_us, elementwise_us, linear_us, load_operator_table
from neurosim.paths import ARCH_DIR
from neurosim.schema import validate

HEADER = ",".join(COLUMNS)


def table(tmp_path: Path, *rows: str, name: str = "ops.csv"):
    path = tmp_path / name
    path.write_text("# a hand-made profile\n" + HEADER + "\n" + "\n".join(rows) + "\n")
    return load_operator_table(path, "test arch")


def linear(m, k, n, us):
    return f"linear,{m},{k},{n},,,,,,,{us},2"


def element(op, t, width, us):
    return f"{op},{t},{width},{width},,,,,,,{us},2"


def attention(seqs, query, past, us, heads=2, kv_heads=1, head_dim=4):
    return f"attention,{seqs * query},8,8,{seqs},{heads},{kv_heads},{head_dim},{query},{past},{us},2"


def test_an_exact_profiled_shape_returns_its_row_and_between_rows_is_linear(tmp_path):
    ops = table(tmp_path, linear(16, 4, 8, 11.0), linear(1, 4, 8, 2.0), linear(4, 4, 8, 5.0))   # rows in any order
    assert linear_us(ops, 4, 4, 8) == 5.0
    assert linear_us(ops, 2, 4, 8) == pytest.approx(2.0 + (5.0 - 2.0) * (2 - 1) / (4 - 1))     # 3.0
    assert linear_us(ops, 10, 4, 8) == pytest.approx(5.0 + (11.0 - 5.0) * (10 - 4) / (16 - 4))  # 8.0
    assert linear_us(ops, 32, 4, 8) == pytest.approx(11.0 * 32 / 16)     # past the largest: in proportion
    assert linear_us(ops, 0.5, 4, 8) == 2.0                                # below the smallest: its time


def test_an_unprofiled_shape_takes_the_nearest_scaled_by_the_work(tmp_path):
    ops = table(tmp_path, linear(1, 4, 8, 2.0), linear(1, 64, 64, 30.0),
                element("rmsnorm", 1, 8, 1.0), element("rmsnorm", 4, 8, 2.5))
    assert linear_us(ops, 1, 4, 16) == pytest.approx(2.0 * (4 * 16) / (4 * 8))   # nearest K x N: 4 x 8, twice the weights
    # width 16 is not profiled: 2 tokens of 16 are 4 tokens' elements at width 8
    assert elementwise_us(ops, "rmsnorm", 2, 16) == 2.5


def test_decode_attention_interpolates_in_the_cache_then_in_the_sequences(tmp_path):
    ops = table(tmp_path, attention(1, 1, 10, 3.0), attention(1, 1, 30, 5.0),
                attention(4, 1, 10, 6.0), attention(4, 1, 30, 14.0))
    assert attention_us(ops, 4, 2, 1, 4, 1, 30) == 14.0
    # cache 20: 4.0 at one sequence, 10.0 at four; two sequences are a third of the way: 4 + 6 / 3
    assert attention_us(ops, 2, 2, 1, 4, 1, 20) == pytest.approx(6.0)


def test_a_prefill_chunk_after_a_cache_is_its_share_of_the_whole_prefixs_pairs(tmp_path):
    ops = table(tmp_path, attention(1, 8, 0, 16.0), attention(1, 2, 0, 3.0))
    assert attention_us(ops, 1, 2, 1, 4, 8, 0) == 16.0
    # 4 new queries after 4 cached keys: 4 x 4 + 4 x 5 / 2 = 26 of the 8 x 9 / 2 = 36 pairs of an 8-token prefill
    assert attention_us(ops, 1, 2, 1, 4, 4, 4) == pytest.approx(16.0 * 26 / 36)


@pytest.mark.parametrize("rows, field, words", [
    ([linear(1, 4, 8, -1.0)], "us", "got '-1.0'"),
    ([linear(1, 4, 8, "fast")], "us", "'fast'"),
    (["conv,1,4,8,,,,,,,2.0,2"], "op", "unknown operator 'conv'"),
    ([linear("", 4, 8, 2.0)], "tokens", "got ''"),
    ([attention(1, 4, 2, 5.0)], "past_tokens", "prefill row after a cache"),
])
def test_a_bad_profile_row_is_refused_with_its_row_and_column(tmp_path, rows, field, words):
    with pytest.raises(NeurosimError) as err:
        table(tmp_path, *rows)
    assert err.value.field == field and words in err.value.problem and "(row 1)" in err.value.where


def test_a_profile_without_a_column_is_refused_naming_the_column(tmp_path):
    path = tmp_path / "ops.csv"
    path.write_text(HEADER.replace(",us,", ",time,") + "\n" + "linear,1,4,8,,,,,,,2.0,2\n")
    with pytest.raises(NeurosimError) as err:
        load_operator_table(path, "test arch")
    assert err.value.field == "us" and "benchmarks/llm_gpu_ops.py" in err.value.fix


def profiled_arch(tmp_path: Path, **kernels):
    data = yaml.safe_load((ARCH_DIR / "h200-profiled.yaml").read_text())
    data["kernels"] = kernels
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_arch(path)


def test_an_arch_whose_profile_file_is_missing_is_refused_at_load(tmp_path):
    with pytest.raises(NeurosimError) as err:
        profiled_arch(tmp_path, profile="nowhere.csv")
    assert err.value.field == "kernels.profile" and "nowhere.csv" in err.value.problem
    assert err.value.where.endswith("arch.yaml")


def test_an_arch_with_both_a_time_per_kernel_and_a_profile_is_refused(tmp_path):
    with pytest.raises(NeurosimError) as err:
        profiled_arch(tmp_path, profile="ops.csv", fixed_s=1e-6)
    assert err.value.field == "kernels" and "not both" in err.value.problem


# -- a one-block card on a profiled H200: every operator a constant time, counted by hand ---------------
D, HEADS, KV_HEADS, HD, INTER, VOCAB = 8, 2, 1, 4, 12, 10
CONSTANT = 10**6      # rows at 1 and at this many tokens with one time: the time is that between them
TIMES = {("linear", D, HEADS * HD): 13.0, ("linear", D, KV_HEADS * HD): 17.0, ("linear", D, INTER): 19.0,
         ("linear", INTER, D): 23.0, ("linear", D, VOCAB): 29.0, "input": 7.0, "rmsnorm": 1.0, "rotary": 2.0,
         "add": 3.0, "silu_product": 5.0, "attention": 11.0}


def constant_profile(tmp_path: Path) -> None:
    rows = []
    for key, us in TIMES.items():
        if isinstance(key, tuple):
            rows += [linear(t, key[1], key[2], us) for t in (1, CONSTANT)]
        elif key == "attention":
            rows += [attention(s, 1, past, us, HEADS, KV_HEADS, HD) for s in (1, CONSTANT) for past in (1, CONSTANT)]
            rows += [attention(s, q, 0, us, HEADS, KV_HEADS, HD) for s in (1, CONSTANT) for q in (2, CONSTANT)]
        else:
            widths = {"silu_product": [INTER], "rotary": [HEADS * HD, KV_HEADS * HD]}.get(key, [D])
            rows += [element(key, t, w, us) for w in widths for t in (1, CONSTANT)]
    table(tmp_path, *rows)


def test_a_profiled_decoder_costs_the_sum_of_its_operators_counted_by_hand(tmp_path):
    card = validate(dict(name="one-block", kind="spiking_decoder", source="test", layers=1, hidden=D, heads=HEADS,
                         kv_heads=KV_HEADS, intermediate=INTER, vocab=VOCAB, context=64, weight_bits=16, kv_bits=16,
                         spiking=dict(neuron=dict(model="lif"), timesteps=1,
                                      rates=dict(attn=0.5, o=0.5, mlp=0.5, down=0.5, head=1.0)), rates_source="test",
                         workload=dict(prompt=3, generate=1, batch=2)), DecoderCard, "test card")
    constant_profile(tmp_path)
    arch = profiled_arch(tmp_path, profile="ops.csv")
    t = TIMES
    # a block: 2 norms, q k v, 2 rotary, attention, o, 2 residual adds, gate up, SiLU x up, down
    block = (2 * t["rmsnorm"] + t[("linear", D, HEADS * HD)] * 2 + t[("linear", D, KV_HEADS * HD)] * 2
             + 2 * t["rotary"] + t["attention"] + 2 * t["add"] + 2 * t[("linear", D, INTER)] + t["silu_product"]
             + t[("linear", INTER, D)])
    step = t["input"] + block + t["rmsnorm"] + t[("linear", D, VOCAB)]    # the embedding, one block, final norm, head
    report = run_workload(card, arch, prompt=3, generate=1, batch=2, mac_based=True, prefill_chunk=3)
    assert report.feasible
    assert report.tpot_last_s == pytest.approx(step * 1e-6, rel=1e-12)
    assert report.ttft_s == pytest.approx(step * 1e-6, rel=1e-12)   # one chunk; its last-token slice launches nothing
    with pytest.raises(NeurosimError) as err:                        # the profile timed bf16 operators only
        run_workload(card, arch, prompt=3, generate=1, batch=2)
    assert err.value.field == "kernels.profile" and "spiking" in err.value.problem
    with pytest.raises(NeurosimError) as err:                        # nor other weights than bf16's
        run_workload(card.model_copy(update={"weight_bits": 4}), arch, prompt=3, generate=1, batch=2, mac_based=True)
    assert err.value.field == "kernels.profile" and "4-bit weights" in err.value.problem
