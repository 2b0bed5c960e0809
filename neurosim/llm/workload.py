"""A decoder workload on one or many chips: prefill of N tokens, M decode steps, batch B.

Each phase (a prefill chunk, a group of decode steps) of each chip's stage
is an IR network (`cards.decoder_network`) that the single cost model
prices, the closed form (`cost.estimate`) or the simulator (`sim.simulate`),
with the arch's mapping: weights that do not fit on chip are streamed from
DRAM/HBM once per phase (so B sequences decoded together share every weight
read), activations carried between layers as the mapping says. On top of
each phase this module adds what the single-pass cost model does not know:

* the KV cache (`llm.memory`): bytes read and written per phase, on chip
  while it fits the SRAM the phase leaves free, in DRAM/HBM beyond; its time
  bounds the attention layer (max of the layer's own time and the cache
  transfer), its energy is priced by `cost.energy.energy_breakdown_pj`;
* the links between chips (`llm.pipeline`);
* leakage of every chip over the whole wall time (one batch in flight, so
  chips wait for one another and leak while they wait);
* the embedding rows each token reads from DRAM/HBM.

Feasibility: every stage must map (the cost model's own infeasibility);
weights, the embedding table and the off-chip KV cache must fit the chips'
HBM capacity where it is given. A model that fits no given number of chips
is reported infeasible with the fewest chips that would hold it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..arch import ArchConfig
from ..cards import DecoderCard, DecoderPhase, DecoderWorkload, decoder_network
from ..cost.chips import Chips
from ..cost.energy import EventCounts, energy_breakdown_pj
from ..cost.estimate import estimate
from ..cost.layout import step_bits
from ..cost.workload import content_key, workload
from ..errors import NeurosimError
from ..ir import Network
from ..report import Report
from ..schema import validate
from .memory import KVAccess, kv_access, kv_bits_per_token
from .operators import network_seconds
from .pipeline import link_traffic, split_blocks, stage_network
from .plan import DECODE_GROUPS, PhaseRun, decode_runs, last_step, prefill_runs
from .report import LLMReport, PhaseTotals
from .split import best_split, fewest_chips, split_choices

ENGINES = ("analytic", "sim")


@dataclass(frozen=True)
class Request:
    """What is asked of the model: a prompt of `prompt` tokens, `generate` tokens out, `batch` sequences."""

    prompt: int
    generate: int
    batch: int

    @classmethod
    def of(cls, card: DecoderCard, prompt: int | None, generate: int | None, batch: int | None) -> "Request":
        w = card.workload
        req = cls(prompt or w.prompt, generate or w.generate, batch or w.batch)
        validate(vars(req), DecoderWorkload, f"model '{card.name}' (--prompt/--generate/--batch)")  # the card's bounds
        if req.prompt + req.generate > card.context:
            raise NeurosimError(f"model '{card.name}'", "--prompt/--generate", f"prompt + generate = "
                                f"{req.prompt + req.generate} tokens, beyond the model's context of {card.context}",
                                "give a shorter prompt or fewer generated tokens")
        return req


class Pricer:
    """The single cost model on one arch: the closed form or the simulator, each network priced once."""

    def __init__(self, arch: ArchConfig, engine: str):
        if engine not in ENGINES:
            raise NeurosimError("workload", "engine", f"unknown engine {engine!r}", f"use one of {', '.join(ENGINES)}")
        self.arch, self.engine, self._done = arch, engine, {}

    def __call__(self, net: Network) -> Report:
        key = content_key(net)
        if key not in self._done:
            if self.engine == "analytic":
                self._done[key] = estimate(net, self.arch)
            else:
                from ..sim import simulate   # simpy, only when asked for

                self._done[key] = simulate(net, self.arch)
        return self._done[key]


def on_chip_bytes(arch: ArchConfig) -> float:
    return arch.cores.count * arch.cores.sram_bytes + arch.global_buffer.bytes


def default_chunk(card: DecoderCard, arch: ArchConfig, req: Request, mac_based: bool, shards: int = 1) -> int:
    """Prefill tokens per sequence per chunk. Sequential mapping: as many as keep the widest layer's step
    within the global buffer, which it needs. Spatial: the prompt, halved while the stages of a chunk do
    not map (every layer holds its state for every token of a chunk), down to one token."""
    if arch.mapping.kind == "sequential":
        net = decoder_network(card, DecoderPhase(req.batch, 1), range(1), head=False, mac_based=mac_based,
                              shards=shards)
        widest = float(step_bits(workload(net, False), Chips.of(arch)).max())   # bits of one step, one token each
        return max(1, min(req.prompt, int(arch.global_buffer.bytes * 8 // widest)))
    stages = split_blocks(card.layers, chip_count(arch) // shards)

    def maps(chunk: int) -> bool:
        phase = DecoderPhase(req.batch, chunk)
        return all(estimate(stage_network(card, phase, blocks, s == len(stages) - 1, mac_based, shards), arch)
                   .feasible for s, blocks in enumerate(stages) if s in (0, len(stages) - 1))

    chunk = req.prompt
    if not maps(1):
        return chunk       # no chunk maps: the workload is infeasible whatever the chunk
    while chunk > 1 and not maps(chunk):
        chunk = (chunk + 1) // 2
    return chunk


def attention_cycles(report: Report) -> list[float]:
    """Cycles of each causal-attention layer in the report's per-layer rows."""
    rows = report.per_layer
    return [float(c) for k, c in zip(rows["kind"], rows["cycles"]) if k == "causal_attention"]


def kv_seconds(access: KVAccess, layer_cycles: list[float], arch: ArchConfig) -> float:
    """Time the cache transfer adds beyond each attention layer's own time (the layer waits for its keys)."""
    if not layer_cycles:
        return 0.0
    share = 1.0 / len(layer_cycles)           # every attention layer of a stage caches the same width
    dram_s = access.off_chip_bits / 8 / arch.dram.bytes_per_s if arch.dram is not None else 0.0
    buffer_s = (access.read_on + access.write_on) / 8 / arch.global_buffer.bytes_per_cycle / arch.clock_hz
    kv_layer_s = (dram_s + buffer_s) * share
    return sum(max(0.0, kv_layer_s - c / arch.clock_hz) for c in layer_cycles)


def kv_energy(access: KVAccess, arch: ArchConfig) -> dict[str, float]:
    """On-chip cache bits priced as global-buffer SRAM accesses, off-chip ones as DRAM/HBM bits."""
    chips = Chips.of(arch)
    ev = EventCounts(buffer_read_bits=access.read_on, buffer_write_bits=access.write_on,
                     dram_read_bits=access.read_off, dram_write_bits=access.write_off)
    e = energy_breakdown_pj(ev, arch.energy, core_array_bytes=chips.core_array, buffer_array_bytes=chips.buffer_array,
                            static_power_w=0.0, latency_s=0.0)
    return {"sram": float(e["sram"][0]), "dram": float(e["dram"])}


def kernel_seconds(net: Network, arch: ArchConfig, kernels: Mapping[str, float]) -> float:
    """The fixed time of the kernels one stage's network launches, on an arch that has one (`arch.kernels`):
    each layer launches `kernels[role]` kernels, its role being its name within its block ('q', 'attn_norm',
    'lm_head'...), one where the workload does not say (an implementation that fuses each layer)."""
    if arch.kernels is None or arch.kernels.fixed_s is None:
        return 0.0
    return arch.kernels.fixed_s * sum(kernels.get(layer.name.rsplit(".", 1)[-1], 1) for layer in net.layers)


def streamed_bytes(report: Report) -> float:
    rows = report.per_layer
    return float(rows["streamed_weight_bytes"].sum()) if "streamed_weight_bytes" in rows else 0.0


def chip_count(arch: ArchConfig) -> int:
    return arch.chips.count if arch.chips is not None else 1


class Priced:
    """Every phase run priced on every stage, and what the runs share (the KV room of each stage). A stage is
    `shards` chips that split its rows; one chip's network is priced and counted `shards` times."""

    def __init__(self, card: DecoderCard, arch: ArchConfig, runs: list[PhaseRun], mac_based: bool, price: Pricer,
                 shards: int = 1, kernels: Mapping[str, Mapping[str, float]] | None = None):
        self.card, self.arch, self.count, self.shards = card, arch, chip_count(arch), shards
        self.kernels = kernels or {}
        if shards > self.count:
            raise NeurosimError(arch.path, "chips.count", f"rows split over {shards} chips need at least {shards} "
                                f"chips, the arch has {self.count}", f"give chips.count >= {shards}, or split less")
        self.stages = split_blocks(card.layers, self.count // shards)
        last = len(self.stages) - 1
        self.nets = {run: [stage_network(card, run.phase, blocks, s == last and run.head, mac_based, shards)
                           for s, blocks in enumerate(self.stages)] for run in runs}
        self.reports = {run: [price(net) for net in nets] for run, nets in self.nets.items()}

    def first_infeasible(self) -> Report | None:
        return next((r for reports in self.reports.values() for r in reports if not r.feasible), None)

    def rooms(self) -> list[float]:
        """Per stage, the on-chip bytes every phase leaves free (the KV cache's on-chip share)."""
        free = on_chip_bytes(self.arch)
        return [min(free - reports[s].memory_bytes["peak_on_chip"] for reports in self.reports.values())
                for s in range(len(self.stages))]

    def totals(self, run: PhaseRun, rooms: list[float]) -> PhaseTotals:
        """One occurrence of `run` over every stage, link and chip."""
        arch, phase, t, k = self.arch, run.phase, PhaseTotals(), self.shards
        for net, report, room in zip(self.nets[run], self.reports[run], rooms):
            kv = kv_access(kv_bits_per_token(net), phase.batch, phase.past_tokens, phase.query_tokens, room)
            if arch.operators is not None:   # measured operator times (kernels.profile): the layers' sum
                t.seconds += network_seconds(arch.operators, net)
            else:
                t.seconds += report.latency_s + kv_seconds(kv, attention_cycles(report), arch)   # chips in parallel
                t.seconds += kernel_seconds(net, arch, self.kernels.get(run.kind, {}))
            for kind in ("compute", "sram", "dram", "interconnect"):
                t.energy_pj[kind] += k * report.energy_breakdown_pj[kind]
            for kind, v in kv_energy(kv, arch).items():
                t.energy_pj[kind] += k * v
            t.acs, t.macs = t.acs + k * report.acs, t.macs + k * report.macs
            t.other_ops += k * report.other_ops
            t.weight_bytes += k * streamed_bytes(report)
            t.kv_read_bytes += k * (kv.read_on + kv.read_off) / 8
            t.kv_off_chip_bytes += k * kv.off_chip_bits / 8
            t.dram_bytes += k * (report.dram_traffic_bytes + kv.off_chip_bits / 8)
        if arch.dram is not None:   # each new token's embedding row, read from DRAM/HBM by the first chip
            rows = phase.batch * phase.query_tokens * self.card.hidden * self.card.weight_bits
            t.weight_bytes, t.dram_bytes = t.weight_bytes + rows / 8, t.dram_bytes + rows / 8
            t.energy_pj["dram"] += rows * arch.energy.dram_read_pj_per_bit
            t.seconds += rows / 8 / arch.dram.bytes_per_s if arch.operators is None else 0.0   # profiled: 'input'
        link = link_traffic(self.card, phase, len(self.stages), arch, k, run.head)
        t.seconds += link.seconds
        t.energy_pj["link"] += link.energy_pj
        t.link_bytes += link.bits / 8
        t.energy_pj["leakage"] = self.count * arch.static_power_w * t.seconds * 1e12
        return t

    def kv_peak(self, req: Request, rooms: list[float]) -> tuple[float, float]:
        """(bytes, of which on chip) of the cache at the last token: N + M entries per sequence."""
        nets = next(iter(self.nets.values()))
        per_chip = [kv_bits_per_token(net) * req.batch * (req.prompt + req.generate) / 8 for net in nets]
        return (self.shards * sum(per_chip),
                self.shards * sum(min(b, max(room, 0.0)) for b, room in zip(per_chip, rooms)))

    def capacity_shortfall(self, req: Request, rooms: list[float]) -> tuple[float, float] | None:
        """(bytes the fullest chip keeps in HBM, its capacity) where that exceeds the capacity, else None: its
        stage's weights, the off-chip part of its KV cache at the last token, and (first chip) the embedding."""
        if self.arch.hbm is None:
            return None
        run = next(iter(self.nets))
        embedding = self.card.vocab * self.card.hidden * self.card.weight_bits / 8
        need = []
        for s, (net, report, room) in enumerate(zip(self.nets[run], self.reports[run], rooms)):
            kv = kv_bits_per_token(net) * req.batch * (req.prompt + req.generate) / 8
            need.append(report.memory_bytes["weights"] + max(0.0, kv - max(room, 0.0)) + (embedding if s == 0 else 0))
        capacity = self.arch.hbm.capacity_bytes
        return (max(need), capacity) if max(need) > capacity else None


def with_chip_count(arch: ArchConfig, count: int) -> ArchConfig:
    links = arch.chips.model_copy(update={"count": count}) if arch.chips is not None else None
    return arch.model_copy(update={"chips": links}).loaded_from(arch.path, arch.energy)


def chips_needed(card: DecoderCard, arch: ArchConfig, req: Request, mac_based: bool, shards: int = 1) -> int | None:
    """The fewest chips (more than the arch gives, at least `shards`, at most one block per `shards` chips) on
    which every stage maps a
    one-token prefill chunk and the last decode step (the smallest phases: a prefill can always be cut
    into one-token chunks), by bisection with the closed form; None if one block per chip does not map."""
    if arch.chips is None:
        return None
    probe = [PhaseRun("prefill", DecoderPhase(req.batch, 1), 1), last_step(req.prompt, req.generate, req.batch)]

    def fits(count: int) -> bool:
        chips = with_chip_count(arch, count)
        return Priced(card, chips, probe, mac_based, Pricer(chips, "analytic"), shards).first_infeasible() is None

    lo, hi = max(arch.chips.count, shards - 1), card.layers * shards    # fewer than `shards` chips cannot split
    if not fits(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def run_workload(card: DecoderCard, arch: ArchConfig, prompt: int | None = None, generate: int | None = None,
                 batch: int | None = None, *, mapping: str | None = None, carry: str | None = None,
                 engine: str = "analytic", mac_based: bool = False, decode_groups: int = DECODE_GROUPS,
                 prefill_chunk: int | None = None, tensor_split: int | None = None,
                 kernels_per_layer: Mapping[str, Mapping[str, float]] | None = None) -> LLMReport:
    """Prefill and decode of a decoder card on `arch` (its chips, its mapping unless overridden).

    Unset prompt/generate/batch take the card's workload. `mac_based`: the same model with real-valued
    activations (MACs, no timesteps) on the same chip. `decode_groups`: decode steps are priced as at most
    this many groups of consecutive steps (see `llm.plan`). `tensor_split`: each pipeline stage is that many
    chips splitting every layer's rows; None: searched (`llm.split`: the best by the arch's objective, or
    where none maps, the fewest chips). `kernels_per_layer`: on an arch with `kernels`, the kernels each
    layer launches, per phase kind and the layer's role in its block, e.g. {"decode": {"attn_norm": 8}}
    (default: one a layer, an implementation that fuses each layer)."""
    req = Request.of(card, prompt, generate, batch)
    if mapping is not None or carry is not None:
        arch = arch.with_mapping(mapping or arch.mapping.kind, carry)
    for name, value in (("prefill_chunk", prefill_chunk), ("tensor_split", tensor_split),
                        ("decode_groups", decode_groups)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise NeurosimError("workload", name, f"got {value!r}", "give a whole number >= 1")

    def priced(k: int, engine: str = engine, groups: int = decode_groups, needed: bool = True) -> LLMReport:
        return price_request(card, arch, req, engine, mac_based, groups, prefill_chunk, k, kernels_per_layer, needed)

    if tensor_split is not None or arch.chips is None or card.kv_heads == 1:
        return priced(tensor_split or 1)
    choices = split_choices(card.kv_heads, chip_count(arch))
    if choices == [1]:
        k, trials = None, {1: priced(1, needed=False)}
        if trials[1].feasible:
            return trials[1]
    else:   # trials: the closed form, decode in one group (counts and bytes exact, latency close; see llm.plan)
        k, trials = best_split(choices, lambda k: priced(k, "analytic", 1, needed=False), arch.mapping.objective)
    if k is not None:
        out = priced(k)
        out.notes.append(f"rows split over {k} chip(s) per stage: the lowest {arch.mapping.objective} of the splits "
                         f"{'/'.join(map(str, choices))} (divisors of kv_heads; neurosim.llm.split)")
        return out
    fewest = fewest_chips(card.kv_heads, lambda k: trials[k].chips_needed if k in trials and trials[k].chips_needed
                          else chips_needed(card, arch, req, mac_based, k))
    out = trials[1]
    out.engine = engine
    out.notes = [out.notes[0] + (f"; it maps on {fewest[0]} chips with each layer's rows split over {fewest[1]} of "
                                 "them" if fewest else "; it maps on no number of chips, whatever the split of its rows")]
    out.chips_needed = fewest[0] if fewest else None
    return out


def price_request(card: DecoderCard, arch: ArchConfig, req: Request, engine: str, mac_based: bool, decode_groups: int,
                  prefill_chunk: int | None, tensor_split: int,
                  kernels: Mapping[str, Mapping[str, float]] | None = None,
                  needed: bool = True) -> LLMReport:
    """The request priced with rows split over `tensor_split` chips per stage; where it does not map or fit,
    an infeasible report with (`needed`) the fewest chips of that split that would hold it."""
    chunk = min(prefill_chunk or default_chunk(card, arch, req, mac_based, tensor_split), req.prompt)
    runs = (prefill_runs(req.prompt, req.batch, chunk, decode_groups)
            + decode_runs(req.prompt, req.generate, req.batch, decode_groups))
    last = last_step(req.prompt, req.generate, req.batch)
    priced = Priced(card, arch, runs + [last], mac_based, Pricer(arch, engine), tensor_split, kernels)
    out = LLMReport(model=card.name + (" (MAC-based)" if mac_based else ""), arch=arch.name, mapping=arch.mapping.kind,
                    engine=engine, mac_based=mac_based, chips=priced.count, prompt=req.prompt,
                    generate=req.generate, batch=req.batch, feasible=False, prefill_chunk=chunk,
                    tensor_split=tensor_split)
    bad = priced.first_infeasible()
    if bad is not None:
        out.chips_needed = chips_needed(card, arch, req, mac_based, tensor_split) if needed else None
        more = ("" if not needed else f"; it maps on {out.chips_needed} chips" if out.chips_needed else
                f"; one block per {tensor_split} chip(s) does not map either: split its rows over more chips "
                "(tensor_split)")
        out.notes = [f"a stage does not map: {bad.notes[0]}{more}"]
        return out
    rooms = priced.rooms()
    short = priced.capacity_shortfall(req, rooms)
    if short is not None:
        need, capacity = short
        out.chips_needed = math.ceil(priced.count * need / capacity)
        out.notes = [f"a chip must keep {need / 2**30:.3g} GiB in HBM (its weights, embedding, off-chip KV cache) "
                     f"and holds {capacity / 2**30:.3g} GiB; at least {out.chips_needed} chips are needed"]
        return out
    prefill, decode = PhaseTotals(), PhaseTotals()
    for run in runs:
        (prefill if run.kind == "prefill" else decode).add(priced.totals(run, rooms), run.repeats)
    fill(out, req, prefill, decode, priced.totals(last, rooms), priced.kv_peak(req, rooms))
    out.notes = notes(priced, req, chunk, decode_groups)
    return out


def fill(out: LLMReport, req: Request, prefill: PhaseTotals, decode: PhaseTotals, last: PhaseTotals,
         kv: tuple[float, float]) -> None:
    """The per-token figures (docs/design.md: energy per token = decode energy / (M x B))."""
    out.feasible, out.prefill, out.decode = True, prefill, decode
    out.ttft_s = prefill.seconds
    out.tpot_mean_s = decode.seconds / req.generate
    out.tpot_last_s = last.seconds
    out.tokens_per_s = req.batch * req.generate / decode.seconds
    out.energy_per_token_prefill_j = prefill.energy_total_pj * 1e-12 / (req.batch * req.prompt)
    out.energy_per_token_decode_j = decode.energy_total_pj * 1e-12 / (req.batch * req.generate)
    out.kv_peak_bytes, out.kv_on_chip_bytes = kv
    out.weight_bytes_per_token = decode.weight_bytes / (req.batch * req.generate)


def notes(priced: Priced, req: Request, chunk: int, decode_groups: int) -> list[str]:
    sizes = sorted({len(b) for b in priced.stages})
    split = f", each {priced.shards} chips splitting every layer's rows" if priced.shards > 1 else ""
    out = [f"{len(priced.stages)} pipeline stage(s) of {'/'.join(map(str, sizes))} blocks{split} over {priced.count} "
           "chip(s); one batch in flight, every chip leaks over the whole time"]
    if chunk < req.prompt:
        why = ("the stages of a larger chunk do not map" if priced.arch.mapping.kind == "spatial" else
               "the widest step of a larger chunk does not fit the global buffer; weights are streamed once per chunk")
        out.append(f"prefill in chunks of {chunk} tokens per sequence ({why})")
    if req.generate > decode_groups:
        out.append(f"{req.generate} decode steps priced as {decode_groups} groups at their mean cache length, and "
                   "the last step on its own (exact for counts, bytes and operation and memory energy; see "
                   "neurosim.llm.plan)")
    return out
