"""Operator times measured on a GPU (a profile), and a decoder layer's time looked up in them.

An arch config's `kernels.profile` names a CSV written by benchmarks/llm_gpu_ops.py: each operator the
decoder launches (a linear layer, causal attention, an element-wise op), timed alone on the machine at a
grid of shapes, launch gaps included. On such an arch `neurosim.llm` sets a phase's time to the sum of its
layers' profiled times (Vidur's way: Agrawal et al., MLSys 2024) instead of the datasheet model's.

Lookup. Rows of one operator and the same fixed shape form a curve in one size (linear: M tokens at its K
and N; element-wise: T tokens at its width; decode attention: the cache length, per number of sequences;
prefill attention: the prompt length, per number of sequences):

* between two profiled sizes, linear interpolation; attention interpolates in the cache or prompt length
  at the profiled sequence counts on each side, then linearly in the sequences;
* below the smallest, the smallest's time (a kernel does not get faster with less work than it has);
  above the largest, the largest's time scaled in proportion (bandwidth- or compute-bound there);
* a shape the profile lacks: the nearest profiled one (by weights K x N, by width, by heads x head_dim),
  its time scaled by the work's ratio (a linear layer's weights, an element-wise op's elements, the heads);
* a prefill chunk after a cache (past tokens p > 0, q new ones): the profiled causal prefill of p + q
  tokens, scaled by the chunk's share of its query-key pairs, (q p + q (q + 1) / 2) / ((p + q)(p + q + 1) / 2).
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NeurosimError
from ..ir import Network

COLUMNS = ("op", "tokens", "in_features", "out_features", "sequences", "heads", "kv_heads", "head_dim",
           "query_tokens", "past_tokens", "us", "calls")
ELEMENTWISE = ("input", "rmsnorm", "rotary", "add", "silu_product")
PROFILED_BITS = 16            # benchmarks/llm_gpu_ops.py times bf16 weights and activations
NO_KERNEL = ("last_token",)   # each sequence's last token: a view in the profiled code (x[:, -1]), no kernel
OPS = ("linear", "attention") + ELEMENTWISE
FIELD = "kernels.profile"
MADE_BY = "write it with benchmarks/llm_gpu_ops.py on the GPU (its columns: " + ", ".join(COLUMNS) + ")"

Curve = list[tuple[float, float, float]]   # (size, sequences, us), sorted


@dataclass
class OperatorTable:
    """A profile's curves: (op, fixed shape...) -> the profiled (size, sequences, microseconds)."""

    path: str
    curves: dict[tuple, Curve] = field(default_factory=dict)

    def add(self, key: tuple, size: float, sequences: float, us: float) -> None:
        bisect.insort(self.curves.setdefault(key, []), (size, sequences, us))

    def nearest(self, key: tuple, measure: Callable[[tuple], float]) -> tuple[tuple, float]:
        """The profiled key of the same kind (all but the last field of `key` equal up to the shape) whose
        `measure` is nearest `key`'s in ratio, and the ratio key / nearest."""
        same = [k for k in self.curves if k[0] == key[0] and k[-1] == key[-1]]
        if not same:
            raise NeurosimError(self.path, FIELD, f"the profile has no '{key[0]}' operator"
                                + (f" for a {key[-1]} phase" if key[0] == "attention" else ""), MADE_BY)
        best = min(same, key=lambda k: abs(math.log(measure(k) / measure(key))))
        return best, measure(key) / measure(best)


def interpolate(points: list[tuple[float, float]], x: float) -> float:
    """Linear between profiled sizes, the first's time below them, in proportion above them."""
    xs = [p[0] for p in points]
    i = bisect.bisect_left(xs, x)
    if i < len(xs) and xs[i] == x:
        return points[i][1]
    if i == 0:
        return points[0][1]
    if i == len(xs):
        return points[-1][1] * x / xs[-1]
    (x0, t0), (x1, t1) = points[i - 1], points[i]
    return t0 + (t1 - t0) * (x - x0) / (x1 - x0)


def curve_us(curve: Curve, size: float, sequences: float) -> float:
    """A curve's time at (size, sequences): in the size at each profiled sequence count, then in the sequences."""
    per_count = sorted({s for _, s, _ in curve})
    times = [(s, interpolate([(x, us) for x, c, us in curve if c == s], size)) for s in per_count]
    return interpolate(times, sequences)


def linear_us(table: OperatorTable, tokens: float, k: int, n: int) -> float:
    key, scale = ("linear", k, n, "any"), 1.0
    if key not in table.curves:
        key, scale = table.nearest(key, lambda c: c[1] * c[2])
    return scale * curve_us(table.curves[key], tokens, 1)


def elementwise_us(table: OperatorTable, op: str, tokens: float, width: int) -> float:
    key, scale = (op, width, "any"), 1.0
    if key not in table.curves:
        key, scale = table.nearest(key, lambda c: c[1])
    return curve_us(table.curves[key], tokens * scale, 1)    # the same elements at the profiled width


def attention_us(table: OperatorTable, sequences: float, heads: int, kv_heads: int, head_dim: int,
                 query: float, past: float) -> float:
    decode = query == 1
    key, scale = ("attention", heads, kv_heads, head_dim, "decode" if decode else "prefill"), 1.0
    if key not in table.curves:
        key, scale = table.nearest(key, lambda c: c[1] * c[3])
    if decode:
        return scale * curve_us(table.curves[key], past, sequences)
    whole = query + past
    share = (query * past + query * (query + 1) / 2) / (whole * (whole + 1) / 2)
    return scale * share * curve_us(table.curves[key], whole, sequences)


def layer_us(table: OperatorTable, layer) -> float:
    """One IR layer of a MAC-based decoder network, priced as its profiled operator."""
    tokens = layer.seq_len
    if layer.kind == "linear":
        if layer.weight_bits != PROFILED_BITS:
            raise NeurosimError(table.path, FIELD, f"layer '{layer.name}' has {layer.weight_bits}-bit weights; the "
                                f"profile timed {PROFILED_BITS}-bit (bf16) GEMMs",
                                f"give the card weight_bits: {PROFILED_BITS}, or use a config without a profile")
        return linear_us(table, tokens, layer.in_features, layer.out_features)
    if layer.kind == "causal_attention":
        a = layer.spec
        return attention_us(table, a.sequences, a.heads, a.kv_heads, a.head_dim, tokens / a.sequences, a.past_tokens)
    op = getattr(layer.spec, "op", None)
    if layer.kind == "elementwise" and op in NO_KERNEL:
        return 0.0
    if layer.kind == "elementwise" and op in ELEMENTWISE:
        return elementwise_us(table, op, tokens, layer.in_features)
    raise NeurosimError(table.path, FIELD, f"layer '{layer.name}' ({layer.kind} {op or ''}) is no operator the "
                        f"profile times ({', '.join(OPS)})", "price this network on a config without a profile")


def network_seconds(table: OperatorTable, net: Network) -> float:
    """A phase's time on a profiled machine: its layers' operators one after another."""
    if not net.metadata.get("mac_based", False):
        raise NeurosimError(table.path, FIELD, f"'{net.name}' is a spiking network; the profile times the "
                            "GPU's bf16 operators on real-valued activations",
                            "price the MAC-based model (mac_based=True, --mac-based), or use a config without a profile")
    return sum(layer_us(table, layer) for layer in net.layers) * 1e-6


def load_operator_table(path: Path, where: str) -> OperatorTable:
    """The profile at `path` (named in an arch config at `where`), every row checked."""
    if not path.is_file():
        raise NeurosimError(where, FIELD, f"no profile file {path}", "give a CSV next to the arch config; " + MADE_BY)
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(lines)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise NeurosimError(f"{path}", missing[0], f"the profile has no column '{missing[0]}'", MADE_BY)
    table = OperatorTable(str(path))
    for number, row in enumerate(reader, start=2):
        add_row(table, row, f"{path} (row {number - 1})")
    if not table.curves:
        raise NeurosimError(str(path), "op", "the profile has no rows", MADE_BY)
    return table


def add_row(table: OperatorTable, row: dict, where: str) -> None:
    op = row["op"]
    if op not in OPS:
        raise NeurosimError(where, "op", f"unknown operator {op!r}", f"use one of {', '.join(OPS)}")
    needed = {"linear": ("tokens", "in_features", "out_features"),
              "attention": ("sequences", "heads", "kv_heads", "head_dim", "query_tokens", "past_tokens")}
    v = {c: number(row, c, where, positive=c != "past_tokens") for c in needed.get(op, ("tokens", "in_features"))}
    us = number(row, "us", where)
    if op == "linear":
        table.add(("linear", int(v["in_features"]), int(v["out_features"]), "any"), v["tokens"], 1, us)
    elif op in ELEMENTWISE:
        table.add((op, int(v["in_features"]), "any"), v["tokens"], 1, us)
    elif v["query_tokens"] == 1 and v["past_tokens"] > 0:
        table.add(("attention", int(v["heads"]), int(v["kv_heads"]), int(v["head_dim"]), "decode"),
                  v["past_tokens"], v["sequences"], us)
    elif v["past_tokens"] == 0:
        table.add(("attention", int(v["heads"]), int(v["kv_heads"]), int(v["head_dim"]), "prefill"),
                  v["query_tokens"], v["sequences"], us)
    else:
        raise NeurosimError(where, "past_tokens", "a prefill row after a cache (query_tokens > 1, past_tokens > 0)",
                            "profile prefills from an empty cache (past_tokens 0) and decode steps (query_tokens 1)")


def number(row: dict, column: str, where: str, positive: bool = True) -> float:
    text = row.get(column) or ""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise NeurosimError(where, column, f"got {text!r}", f"give a finite number{' above 0' if positive else ' >= 0'}")
    return value
