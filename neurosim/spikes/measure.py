"""`neurosim run --engine spikes`: a report whose counts come from the spike engine.

The mapping picks the handoff: spatial -> lockstep (every layer runs the
largest T), sequential carrying spikes -> history, sequential carrying rates
-> stochastic. The engine's measured rates replace the model's assumed ones,
so the energy, latency and memory model prices what the engine counted; the
report's ACs and MACs are the engine's (equal, by construction, to the closed
form fed those rates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..arch import ArchConfig
from ..sim import simulate
from ..errors import NeurosimError
from ..ir import Network
from ..paths import MODELS_DIR, resolve
from ..report import Report
from .engine import run
from .weights import random_weights


def handoff_of(arch: ArchConfig) -> str:
    if arch.mapping.kind == "spatial":
        return "lockstep"
    return "history" if arch.mapping.carry == "spikes" else "stochastic"


def default_input(net: Network, model: str | Path, input_path: str | Path | None) -> tuple[np.ndarray | None, str]:
    """The input and a note saying what it is: a file, a checkpoint's first sample, or seeded random spikes."""
    if input_path is not None:
        try:
            return np.load(input_path), f"input: {input_path}"
        except (OSError, ValueError) as exc:
            raise NeurosimError(str(input_path), "(file)", f"not a readable .npy array ({exc})",
                                "give a (T, seq_len, input_size) spike array or a (seq_len, input_size) "
                                "real array saved with numpy.save") from None
    path = resolve(model, MODELS_DIR, (".yaml", ".yml", ".json", ".pt"), "model")
    if path.suffix == ".pt":
        from ..checkpoint_cache import load   # torch, only when the checkpoint is not cached

        emb = load(path).samples[0]
        return emb, "input: the checkpoint's first sample sentence, its embedding fed as a current every step"
    if not net.input_spiking:
        raise NeurosimError(str(model), "input", "the network's input is a real current and no sample ships "
                            "with it", "give one with --input FILE.npy")
    return None, f"input: seeded random spikes at the model's input rate {net.input_rate:g}"


def engine_report(net: Network, arch: ArchConfig, model: str | Path, *, mapping: str | None = None,
                  carry: str | None = None, seed: int = 0, input_path: str | Path | None = None,
                  timeline: bool = False, device: str | None = None) -> Report:
    if mapping is not None or carry is not None:
        arch = arch.with_mapping(mapping or arch.mapping.kind, carry)
    notes = []
    if any(layer.kind == "linear" and layer.weights is None for layer in net.layers):
        net = random_weights(net, seed=seed)
        notes.append(f"weights: seeded random (seed {seed}), scaled toward the model's assumed rates; not a "
                     "trained model, so the measured rates describe this random network")
    inputs, input_note = default_input(net, model, input_path)
    notes.append(input_note)
    handoff = handoff_of(arch)
    trace = run(net, inputs, handoff=handoff, seed=seed, device=device)
    measured = trace.measured_network(net)
    report = simulate(measured, arch, trace=trace, seed=seed, timeline=timeline)  # exactly the counted work
    report.engine = "spikes"
    rates = {name: lt.rate for name, lt in trace.layers.items() if lt.spiking}
    notes.append(f"spike engine{'' if device is None else f' (torch, {device})'}, {handoff} handoff, seed {seed}; "
                 "measured ASR per layer: "
                 + ", ".join(f"{name} {r:.3f}" for name, r in rates.items()))
    if trace.acs:
        notes.append(f"effective ACs (nonzero input x nonzero weight, what hardware that skips zero weights "
                     f"performs): {trace.effective_acs:,} of {trace.acs:,} ({trace.effective_acs / trace.acs:.1%}); "
                     "the energy above prices every AC")
    norms = [(layer.name, layer.norm) for layer in net.layers if layer.norm is not None]
    bare = [name for name, norm in norms if norm.layernorm and norm.weight is None]
    if bare:
        notes.append(f"LayerNorm counted but not applied on {len(bare)} layer(s) without LayerNorm parameters "
                     f"(e.g. '{bare[0]}'): their currents are W s + b, unnormalized")
    if any(norm.residual for _, norm in norms):
        notes.append("residual adds applied by the engine; moving the residual's data to its reader is not priced")
    notes += trace.notes + measured.metadata.get("rate_notes", [])
    report.notes = notes + report.notes
    if report.per_layer is not None:
        report.per_layer = report.per_layer.assign(asr_measured=[rates.get(n) for n in report.per_layer.layer])
    return report


def decoder_checkpoint(card, card_path: Path | None = None) -> Path:
    """The trained weights of a decoder card: the .pt beside its card (neurosim prune --obs writes both), else
    models/weights/NAME.pt; or a clear refusal."""
    path = MODELS_DIR / "weights" / f"{card.name}.pt"
    if card_path is not None and Path(card_path).with_suffix(".pt").is_file():
        path = Path(card_path).with_suffix(".pt")
    if not path.is_file():
        raise NeurosimError(f"model '{card.name}'", "--engine spikes", "the spike engine runs a decoder on its "
                            f"trained weights and spike encoders, and neither {path.name} beside its card nor "
                            f"models/weights/{path.name} exists", "run a trained decoder (spikellm-decoder-2l), or price this card from its "
                            "assumed rates with --engine analytic or --engine sim")
    return path


def decoder_engine_report(card, arch: ArchConfig, *, mapping: str | None = None, carry: str | None = None,
                          prompt: int | None = None, generate: int | None = None, batch: int | None = None,
                          seed: int = 0, card_path: Path | None = None):
    """`neurosim run --engine spikes` on a trained decoder: its spikes measured by the engine, then its prefill
    and decode priced (neurosim.llm, simulator) at the measured rates.

    The engine runs the checkpoint's held-out sample, `batch` windows of prompt + generate characters,
    teacher-forced (each generated token is the sample's own next one): the prefill of the prompt, then one
    decode step per generated token against the KV cache of spikes before it. The rates of every GIF input
    over all those phases, per block, replace the card's."""
    from ..cards import DecoderCard
    from ..frontend import decoder_ir
    from ..llm.workload import Request, run_workload

    req = Request.of(card, prompt, generate, batch)
    path = decoder_checkpoint(card, card_path)
    model, spiking, ckpt = decoder_ir.load_decoder(path)
    sample = ckpt["sample_tokens"]
    if req.batch > sample.shape[0]:
        raise NeurosimError(f"model '{card.name}'", "--batch", f"the checkpoint ships {sample.shape[0]} sample "
                            f"windows, {req.batch} asked for", f"give --batch {sample.shape[0]} or fewer")
    tokens = sample[:req.batch, :req.prompt + req.generate]
    runs, cache = [], None
    for start, stop in [(0, req.prompt)] + [(i, i + 1) for i in range(req.prompt, req.prompt + req.generate)]:
        net, current = decoder_ir.engine_network(model, spiking, tokens[:, start:stop], past=start)
        trace = run(net, current, seed=seed, kv_cache=cache)
        runs.append((net, trace))
        cache = trace.kv_cache
    rates = decoder_ir.engine_rates(runs, card.layers)
    source = (f"measured by the spike engine: {path.name} on {req.batch} held-out sample window(s) of "
              f"{req.prompt + req.generate} characters")
    data = card.model_dump()
    data["spiking"]["rates"].update({role: sum(r) / len(r) for role, r in rates.items()})
    data["spiking"]["block_rates"] = rates           # each block priced at its own measured rates
    data["rates_source"] = source
    report = run_workload(DecoderCard.model_validate(data), arch, req.prompt, req.generate, req.batch,
                          mapping=mapping, carry=carry, engine="sim")
    report.engine = "spikes"
    report.notes = engine_notes([trace for _, trace in runs], rates, report, req) + report.notes
    return report


def engine_notes(traces: list, rates: dict[str, list[float]], report, req) -> list[str]:
    """What the engine counted, beside what the workload's cost model priced at the rates it measured."""
    prefill, steps = traces[0], traces[1:]
    decode_acs = sum(t.acs for t in steps)
    spikes = sum(lt.spikes for lt in prefill.layers.values())
    notes = [f"spike engine (CPU), exact counts: prefill {prefill.acs:,} ACs, {prefill.macs:,} MACs, {spikes:,} "
             f"multi-level spike events ({req.batch} x {req.prompt} tokens); decode {decode_acs:,} ACs "
             f"({req.generate} steps, each against the KV cache of spikes before it)"]
    if report.feasible:
        notes.append(f"the cost model at the measured rates per block: prefill {report.prefill.acs:,.0f} ACs "
                     f"({report.prefill.acs / prefill.acs - 1:+.2%} vs the engine), decode "
                     f"{report.decode.acs:,.0f} ({report.decode.acs / decode_acs - 1:+.2%}): one rate per role and "
                     "block over all tokens, where the engine counts each token's own spikes")
    notes.append("measured rates (events / (values x T)) per block: " + "; ".join(
        f"{role} " + "/".join(f"{r:.3f}" for r in per_block) for role, per_block in rates.items()))
    return notes + prefill.notes
