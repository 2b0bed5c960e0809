"""A decoder workload as one sweep row: `neurosim.dse` prices decoder cards through here.

A sweep point of a decoder card is one request (the card's workload, with
`workload.prompt`, `workload.generate`, `workload.batch` axes as card
overrides, and `chips.count` as an arch axis): the row's energy is the whole
request's (prefill and decode, every chip, links counted as interconnect),
its latency the time to the last token (prefill + decode), its counts the
request's; the per-token figures go in its notes.
"""

from __future__ import annotations

from ..arch import ArchConfig
from ..cards import DecoderCard
from ..report import Report
from .report import LLMReport
from .workload import run_workload


def as_report(r: LLMReport, arch: ArchConfig) -> Report:
    """The request as a `Report` (what a sweep row holds)."""
    base = dict(model=r.model, arch=r.arch, mapping=r.mapping, carry=arch.mapping.carry, engine=r.engine)
    if not r.feasible:
        needed = f" (needs {r.chips_needed} chips)" if r.chips_needed else ""
        return Report(**base, feasible=False, notes=[n + needed for n in r.notes[:1]])
    phases = (r.prefill, r.decode)
    energy = {k: sum(p.energy_pj[k] for p in phases) for k in ("compute", "sram", "dram", "interconnect", "leakage")}
    energy["interconnect"] += sum(p.energy_pj["link"] for p in phases)      # chip-to-chip links
    seconds = sum(p.seconds for p in phases)
    notes = [f"TTFT {r.ttft_s:.4g} s; TPOT {r.tpot_mean_s:.4g} s (last {r.tpot_last_s:.4g} s); "
             f"{r.tokens_per_s:.4g} tokens/s; energy/token prefill {r.energy_per_token_prefill_j:.4g} J, "
             f"decode {r.energy_per_token_decode_j:.4g} J; KV peak {r.kv_peak_bytes:.4g} B; "
             f"weights/token {r.weight_bytes_per_token:.4g} B", *r.notes]
    return Report(**base, feasible=True, notes=notes, acs=sum(p.acs for p in phases), macs=sum(p.macs for p in phases),
                  other_ops=sum(p.other_ops for p in phases), energy_pj=sum(energy.values()),
                  energy_breakdown_pj=energy, latency_cycles=seconds * arch.clock_hz, latency_s=seconds,
                  dram_traffic_bytes=sum(p.dram_bytes for p in phases))


def workload_report(card: DecoderCard, arch: ArchConfig, engine: str) -> Report:
    """One sweep point of a decoder card: its workload on the point's arch, with the point's engine."""
    return as_report(run_workload(card, arch, engine="sim" if engine == "sim" else "analytic"), arch)
