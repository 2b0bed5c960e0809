"""Decoder (LLM) workloads on one or many chips: prefill, decode with a KV cache, batch, pipelines.

    from neurosim.llm import run_workload
    from neurosim.cards import load_decoder_card
    card = load_decoder_card("models/llama2-7b.yaml")
    report = run_workload(card, load_arch("llm-45nm-hbm3-x4"), prompt=512, generate=128, batch=1)

Modules: plan (which phases are priced: prefill chunks, coarsened decode
steps), pipeline (blocks over chips, link traffic), memory (the KV cache),
workload (pricing every phase with the single cost model and adding the
cache, links and leakage), report (per-token figures).
"""

from .report import LLMReport, llm_table
from .workload import ENGINES, Request, run_workload

__all__ = ["ENGINES", "LLMReport", "Request", "llm_table", "run_workload"]
