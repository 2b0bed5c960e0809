"""A trained SpikeLLM-style decoder (`frontend.decoder`) as a decoder card and an IR network carrying
the spike activity measured on its sample text, so that neurosim's cost models price what it sent.

The card format (`cards.DecoderCard`, kind spiking_decoder) gives one rate per linear-input role
for the whole model: the fraction of (channel, step) slots that carry a spike over its T steps.
From a spike-mode run (a `SpikeCount` per GIF input) the rate of a role is

    events / (values x T)        (`SpikeCount.dense_rate`, pooled over the inputs of the role)

where q, k and v read the attention input and gate and up the MLP input, so that the closed
form's count, rate x channels x T x tokens x outputs, equals the accumulates the spikes caused.
With Optimal Brain Spiking a single-step channel has one slot, not T; its spike still counts once
in `events`, so the ACs stay exact, while the per-slot rate (`SpikeCount.rate`) is higher. The
card holds the mean over blocks; `measured_network` puts each block's own rates on the IR layers
that emit the spikes. What the card does not carry: the zero-point and scale multiplies of each
GIF input (two per output and token) and the single-step path's shorter spike trains in time.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ..cards import DecoderCard, DecoderPhase, decoder_network
from ..ir import Network
from .decoder import Spiking, SpikingDecoder
from .spikellm import SpikeCount, gif_neuron

# card rate role -> the decoder's GIF inputs that read those spikes
ROLES = {"attn": ("q", "k", "v"), "o": ("o",), "mlp": ("gate", "up"), "down": ("down",),
         "k": ("k_cache",), "v": ("v_cache",)}
# card rate role -> the IR layer (of cards.decoder_network) whose neuron emits those spikes
EMITTERS = {"attn": "attn_norm", "o": "attention", "mlp": "mlp_norm", "down": "silu", "k": "rope_k", "v": "v"}


@torch.no_grad()
def measure(model: SpikingDecoder, tokens: torch.Tensor, spiking: Spiking) -> dict[str, SpikeCount]:
    """The spikes each GIF input sends when `model` runs `tokens` (batch, seq) as SpikeLLM spiking."""
    before = model.spiking
    model.set_spiking(Spiking(**{**asdict(spiking), "mode": "spike"}))
    try:
        model(tokens)
        return dict(model.counts)
    finally:
        model.set_spiking(before)


def pooled_rate(counts: list[SpikeCount]) -> float:
    """Events per (value, step) over several inputs together."""
    return sum(c.total_events for c in counts) / sum(c.elements * c.steps for c in counts)


def block_rates(counts: dict[str, SpikeCount], layers: int) -> dict[str, list[float]]:
    """Per card role, one rate per block."""
    return {role: [pooled_rate([counts[f"block{b}.{name}"] for name in names]) for b in range(layers)]
            for role, names in ROLES.items()}


def decoder_card(model: SpikingDecoder, spiking: Spiking, rates: dict[str, list[float]], name: str,
                 source: str, rates_source: str, workload: dict) -> DecoderCard:
    """The card of `model`: its shapes, SpikeLLM's GIF (levels 2^n - 1, T = 2^addbit), block-mean rates.

    The LM head's input stays real, as in SpikeLLM (`real_inputs: [head]`); its card rate is the dense
    bound 1.0, which the cost model does not read while the input is real.
    """
    c = model.config
    if spiking.kv_addbit != spiking.addbit:
        from ..errors import NeurosimError
        raise NeurosimError("decoder_card", "kv_addbit", f"the card has one T for every GIF, but addbit is "
                            f"{spiking.addbit} and kv_addbit {spiking.kv_addbit}", "use the same addbit for both")
    neuron = gif_neuron(spiking.n_bits)
    mean = {role: sum(r) / len(r) for role, r in rates.items()}
    return DecoderCard(
        name=name, kind="spiking_decoder", source=source, layers=c.layers, hidden=c.hidden, heads=c.heads,
        kv_heads=c.heads, intermediate=c.intermediate, vocab=c.vocab_size, context=c.seq_len,
        weight_bits=spiking.weight_bits or 32, kv_bits=spiking.n_bits + spiking.kv_addbit,
        spiking=dict(neuron=dict(model=neuron.model, levels=neuron.levels, vth=neuron.vth, leak=neuron.leak),
                     timesteps=2 ** spiking.addbit, real_inputs=["head"], rates=dict(**mean, head=1.0)),
        attention=dict(scores="spiking", mix="spiking"), rates_source=rates_source, workload=workload)


def measured_network(card: DecoderCard, rates: dict[str, list[float]], batch: int, tokens: int) -> Network:
    """The IR of a prefill of `tokens` per sequence at `batch`, each block's emitting layers at its own
    measured rates."""
    data = decoder_network(card, DecoderPhase(batch, tokens)).to_dict()
    layers = {layer["name"]: layer for layer in data["layers"]}
    for role, per_block in rates.items():
        for b, rate in enumerate(per_block):
            layers[f"block{b}.{EMITTERS[role]}"]["rate"] = rate
    data["metadata"]["rates_source"] = "measured per block: " + card.rates_source
    return Network.from_dict(data, f"{card.name} (measured)")
