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
        from ..frontend.checkpoint import load_encoder  # torch, only for checkpoints

        encoder, ckpt = load_encoder(path)
        tokens = ckpt["sample_tokens"][:1]
        emb = encoder.embedding(tokens).detach().numpy()[0]
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
