"""A trained SpikeLLM-style decoder (`frontend.decoder`) as a decoder card and an IR network carrying
the spike activity measured on its sample text, so that neurosim's cost models price what it sent.

The card format (`cards.DecoderCard`, kind spiking_decoder) gives one rate per linear-input role
and block (`block_rates`; `rates` holds their means): the fraction of (channel, step) slots that
carry a spike over its T steps.
From a spike-mode run (a `SpikeCount` per GIF input) the rate of a role is

    events / (values x T)        (`SpikeCount.dense_rate`, pooled over the inputs of the role)

where q, k and v read the attention input and gate and up the MLP input, so that the closed
form's count, rate x channels x T x tokens x outputs, equals the accumulates the spikes caused.
With Optimal Brain Spiking a single-step channel has one slot, not T; its spike still counts once
in `events`, so the ACs stay exact, while the per-slot rate (`SpikeCount.rate`) is higher.
`measured_network` is the card's prefill IR, each block's emitting layers at their own rates. What
the card does not carry: the zero-point and scale multiplies of each
GIF input (two per output and token) and the single-step path's shorter spike trains in time.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import torch

from ..cards import DecoderCard, DecoderPhase, decoder_network
from ..ir import ElementOps, Network
from .decoder import DecoderConfig, Spiking, SpikingDecoder
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
    """The card of `model`: its shapes, SpikeLLM's GIF (levels 2^n - 1, T = 2^addbit), its rates per block
    (`block_rates`, which the cost model reads) and their means (`rates`).

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
                     timesteps=2 ** spiking.addbit, real_inputs=["head"], rates=dict(**mean, head=1.0),
                     block_rates={role: list(r) for role, r in rates.items()}),
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


# GIF input -> (its emitter in cards.decoder_network, the consumer that reads it); K and V are read by the attention
GIF_READERS = {"q": ("attn_norm", "q"), "k": ("attn_norm", "k"), "v": ("attn_norm", "v"), "o": ("attention", "o"),
               "gate": ("mlp_norm", "gate"), "up": ("mlp_norm", "up"), "down": ("silu", "down"),
               "k_cache": ("rope_k", "attention"), "v_cache": ("v", "attention")}


def _splits(model: SpikingDecoder) -> dict[str, list[int]]:
    """Every GIF input's Optimal Brain Spiking split (1: multi-step channel), named as in `model.counts`."""
    out = {name: m.multi.to(torch.int64).tolist() for name, m in model.gif_inputs().items()}
    for b, block in enumerate(model.blocks):
        for role in "kv":
            out[f"block{b}.{role}_cache"] = getattr(block.attn, f"{role}_multi").flatten().to(torch.int64).tolist()
    return out


def _encoders(layers: list, splits: dict[str, list[int]], blocks: int) -> tuple[list, dict]:
    """Give every consumer of an emitter its own GIF inputs (an `encode` layer) where their splits differ, as
    each SpikeLLM layer quantizes its own input; returns the layers and each emitter's split."""
    by_name, meta, extra = {layer.name: layer for layer in layers}, {}, {}
    for b in range(blocks):
        readers: dict[str, list[str]] = {}
        for gif, (emitter, _) in GIF_READERS.items():
            readers.setdefault(emitter, []).append(gif)
        for emitter, gifs in readers.items():
            name, masks = f"block{b}.{emitter}", [splits[f"block{b}.{g}"] for g in gifs]
            if all(mask == masks[0] for mask in masks):
                meta[name] = {"multi": masks[0]}
                continue
            src = by_name[name]
            extra[name] = []
            for gif, mask in zip(gifs, masks):     # emitter -> encode -> consumer
                enc = f"block{b}.{gif}_input"
                extra[name].append(replace(src, name=enc, kind="elementwise", inputs=[name], spec=ElementOps("encode"),
                                           weights=None, bias=None))
                meta[enc] = {"multi": mask}
                reader = by_name[f"block{b}.{GIF_READERS[gif][1]}"]
                by_name[reader.name] = replace(reader, inputs=[enc if i == name else i for i in reader.inputs])
            by_name[name] = replace(src, neuron=None, rate=None, timesteps=1)
    out = []
    for layer in layers:
        out.append(by_name[layer.name])
        out += extra.get(layer.name, [])
    return out, meta


@torch.no_grad()
def engine_network(model: SpikingDecoder, spiking: Spiking, tokens: torch.Tensor,
                   past: int = 0) -> tuple[Network, np.ndarray]:
    """The IR of a phase over `tokens` (batch, n) with the model's weights (4-bit as it runs them) and Optimal
    Brain Spiking splits, for the spike engine (`neurosim.spikes.run`), and its input: the embedding rows. A
    prefill (past 0), or a decode step after `past` tokens per sequence (run it with the kv_cache before).

    The layers are `cards.decoder_network`'s; where the consumers of one emitter (q, k, v of the attention
    norm; gate, up of the MLP norm) have different splits, each reads its own `encode` layer of GIF neurons.
    The rates are the dense bound 1.0 until the engine measures them (`SpikeTrace.measured_network`)."""
    from ..spikes.decoder import GIF_INPUTS, SETTINGS
    from .decoder import ROPE_BASE, quantized_weight

    c, (batch, n) = model.config, tokens.shape
    rates = {role: [1.0] * c.layers for role in ROLES}
    card = decoder_card(model, spiking, rates, f"{type(model).__name__} ({c.layers} blocks)", "a trained "
                        "frontend.decoder.SpikingDecoder", "dense bound 1.0 until the spike engine measures the rates",
                        dict(prompt=1, generate=1, batch=1))     # the phase below, not the card's workload, is run
    net = decoder_network(card, DecoderPhase(batch, n, past))
    modules = {"final_norm": model.norm.weight, "lm_head": model.head.weight}
    for b, block in enumerate(model.blocks):
        modules.update({f"block{b}.attn_norm": block.n1.weight, f"block{b}.mlp_norm": block.n2.weight})
        modules.update({f"block{b}.{role}": quantized_weight(m.weight, spiking) for role, m in block.linears().items()})
    layers = [replace(layer, weights=modules[layer.name].numpy().astype(np.float32)) if layer.name in modules
              else layer for layer in net.layers]
    layers, splits = _encoders(layers, _splits(model), c.layers)
    settings = dict(rmsnorm_eps=model.norm.eps, rope_base=ROPE_BASE, query_bits=spiking.n_bits)
    meta = dict(net.metadata, **{GIF_INPUTS: splits, SETTINGS: settings})
    current = model.embed(tokens).reshape(batch * n, c.hidden).numpy().astype(np.float32)
    return Network(net.name, layers, net.input_size, net.input_rate, net.input_spiking, meta), current


def load_decoder(path) -> tuple[SpikingDecoder, Spiking, dict]:
    """A trained decoder checkpoint (models/training/train_spiking_decoder.py): the fine-tuned model with its
    OBS splits, its spiking settings, and the checkpoint (sample tokens, low_p, perplexities)."""
    from ..errors import NeurosimError

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = SpikingDecoder(DecoderConfig(**ckpt["config"]))
        model.load_state_dict(ckpt["state_dict"])
        spiking = Spiking(**ckpt["spiking"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise NeurosimError(str(path), "(checkpoint)", f"not a spiking decoder checkpoint ({str(exc)[:200]})",
                            "give a checkpoint written by models/training/train_spiking_decoder.py") from None
    return model, spiking, ckpt


def gif_emitter(net: Network, gif: str) -> str:
    """The layer of an engine network (`engine_network`) whose neuron sends GIF input `gif` (block{b}.<name>):
    the consumer's own `encode` layer, else the emitter it shares."""
    block, name = gif.split(".")
    own = f"{block}.{name}_input"
    return own if any(layer.name == own for layer in net.layers) else f"{block}.{GIF_READERS[name][0]}"


def engine_rates(runs: list[tuple[Network, object]], layers: int) -> dict[str, list[float]]:
    """Per card role and block, the events / (values x T) that spike engine runs sent ((network, trace) pairs
    of `engine_network` phases: a prefill and its decode steps), pooled over the role's GIF inputs and the
    runs as `block_rates` pools a torch run's counts."""
    def rate(names):
        lts = [trace[gif_emitter(net, name)] for net, trace in runs for name in names]
        return sum(lt.spikes for lt in lts) / sum(lt.neuron_updates for lt in lts)
    return {role: [rate([f"block{b}.{name}" for name in names]) for b in range(layers)]
            for role, names in ROLES.items()}
