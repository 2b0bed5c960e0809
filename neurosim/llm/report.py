"""What a decoder workload costs: per-token figures for people and JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..report import format_bytes, format_si, side_by_side

BREAKDOWN = ("compute", "sram", "dram", "interconnect", "link", "leakage")


@dataclass
class PhaseTotals:
    """Sums over every step (or chunk) of one phase kind, all chips and links together."""

    seconds: float = 0.0
    energy_pj: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in BREAKDOWN})
    acs: float = 0.0
    macs: float = 0.0
    other_ops: float = 0.0
    weight_bytes: float = 0.0        # weights read from DRAM/HBM (streamed, not resident, and embedding rows)
    kv_read_bytes: float = 0.0
    kv_off_chip_bytes: float = 0.0   # KV bytes read or written in DRAM/HBM
    link_bytes: float = 0.0
    dram_bytes: float = 0.0          # all DRAM/HBM traffic: weights, spills, KV

    @property
    def energy_total_pj(self) -> float:
        return sum(self.energy_pj.values())

    def add(self, other: "PhaseTotals", repeats: float = 1.0) -> None:
        self.seconds += other.seconds * repeats
        for k, v in other.energy_pj.items():
            self.energy_pj[k] += v * repeats
        for name in ("acs", "macs", "other_ops", "weight_bytes", "kv_read_bytes", "kv_off_chip_bytes",
                     "link_bytes", "dram_bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name) * repeats)


@dataclass
class LLMReport:
    model: str
    arch: str
    mapping: str
    engine: str
    mac_based: bool
    chips: int
    prompt: int
    generate: int
    batch: int
    feasible: bool
    notes: list[str] = field(default_factory=list)
    chips_needed: int | None = None        # where it does not fit: the fewest chips that would hold it
    prefill: PhaseTotals | None = None
    decode: PhaseTotals | None = None
    ttft_s: float | None = None
    tpot_mean_s: float | None = None
    tpot_last_s: float | None = None
    tokens_per_s: float | None = None      # decode: batch x generated tokens / decode time
    energy_per_token_prefill_j: float | None = None
    energy_per_token_decode_j: float | None = None
    kv_peak_bytes: float | None = None     # all sequences, all layers, at the last token
    kv_on_chip_bytes: float | None = None  # of the peak, held in on-chip SRAM
    weight_bytes_per_token: float | None = None   # decode: weights moved from DRAM/HBM per generated token
    prefill_chunk: int | None = None
    tensor_split: int | None = None        # chips of a pipeline stage that split every layer's rows

    @property
    def label(self) -> str:
        what = "MAC-based" if self.mac_based else "spiking"
        return f"{what}, {self.mapping}"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("prefill", "decode")}
        for name in ("prefill", "decode"):
            phase = getattr(self, name)
            out[name] = None if phase is None else {**phase.__dict__, "energy_pj": dict(phase.energy_pj)}
        return out


def _column(r: LLMReport) -> list[str]:
    if not r.feasible:
        return [r.label, "NO"] + ["-"] * 14
    decode = r.decode.energy_pj
    total = sum(decode.values()) or 1.0
    return ([r.label, "yes", format_si(r.ttft_s, "s"), format_si(r.tpot_mean_s, "s"), format_si(r.tpot_last_s, "s"),
             f"{r.tokens_per_s:.4g}", format_si(r.energy_per_token_prefill_j, "J"),
             format_si(r.energy_per_token_decode_j, "J")]
            + [f"{100 * decode[k] / total:.0f}%" for k in BREAKDOWN]
            + [format_bytes(r.kv_peak_bytes) + f" ({100 * r.kv_on_chip_bytes / max(r.kv_peak_bytes, 1):.0f}% on chip)",
               format_bytes(r.weight_bytes_per_token)])


LABELS = (["", "feasible", "time to first token", "time per output token (mean)", "  (last token)", "tokens/s (decode)",
           "energy/token, prefill", "energy/token, decode"] + [f"  decode: {k}" for k in BREAKDOWN]
          + ["KV cache, peak", "weights moved / token"])


def llm_table(reports: list[LLMReport]) -> str:
    """Reports side by side, one column each."""
    first = reports[0]
    head = (f"{first.model} on {first.arch} x {first.chips} chip(s): prompt {first.prompt}, generate {first.generate}, "
            f"batch {first.batch} (engine: {first.engine})")
    return side_by_side(head, LABELS, [_column(r) for r in reports], [(r.label, r.notes) for r in reports])
