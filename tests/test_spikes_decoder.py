"""The spike engine on SpikeLLM-style decoder phases (neurosim/spikes/decoder.py): counts by hand, the torch
decoder's own spikes, and three counts (engine, closed form at the measured rates, simulator) that agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurosim.arch import load_arch
from neurosim.cost.analytic import structural_counts
from neurosim.errors import NeurosimError
from neurosim.frontend import decoder_ir
from neurosim.frontend.decoder import DecoderConfig, Spiking, SpikingDecoder
from neurosim.sim import simulate
from neurosim.spikes import run

TOKENS = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))


def tiny(hidden=16, heads=2, intermediate=24, layers=2, seed=0) -> SpikingDecoder:
    torch.manual_seed(seed)
    return SpikingDecoder(DecoderConfig(vocab_size=11, hidden=hidden, heads=heads, intermediate=intermediate,
                                        layers=layers, seq_len=8))


def torch_trains(model: SpikingDecoder, spiking: Spiking, tokens: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """The spikes every GIF input of the torch decoder sent, (T, tokens, channels), and its logits."""
    model.set_spiking(Spiking(**{**spiking.__dict__, "mode": "spike"}))
    for count in model.counts.values():
        count.trains = []
    with torch.no_grad():
        logits = model(tokens)
    trains = {}
    for name, count in model.counts.items():
        train = count.trains[0]
        if name.endswith("_cache"):     # (T, batch, heads, tokens, head_dim) -> (T, batch x tokens, heads x head_dim)
            T, B, H, N, D = train.shape
            train = train.permute(0, 1, 3, 2, 4).reshape(T, B * N, H * D)
        trains[name] = (train.reshape(train.shape[0], -1, train.shape[-1]).numpy().astype(np.uint8), count.acs)
    return trains, logits


def test_a_two_channel_decoder_costs_what_is_counted_by_hand():
    # hidden 2, one head of 2: every GIF input quantizes 2 channels per token (or token and head) to 3 bits, so
    # the smaller is code 0 (no spike) and the larger code 7, sent as 3 + 3 (n = 2: spikes of at most 3) and
    # 1 unit dropped: exactly one event per token, step and group. 3 tokens, T = 2: 6 events per input.
    model = tiny(hidden=2, heads=1, intermediate=2, layers=1)
    spiking = Spiking(n_bits=2, addbit=1, kv_addbit=1, weight_bits=None)
    tokens = torch.tensor([[1, 5, 9]])
    net, current = decoder_ir.engine_network(model, spiking, tokens)
    trace = run(net, current)
    acs = {name: trace[f"block0.{name}"].acs for name in ("q", "k", "v", "o", "gate", "up", "down", "attention")}
    # a linear input: 6 events x 2 outputs; attention: key j reaches the 3 - j queries at or after it,
    # (3 + 2 + 1) per step and operand, x 2 steps, for K and for V
    assert acs == dict(q=12, k=12, v=12, o=12, gate=12, up=12, down=12, attention=24)
    assert trace["block0.attention"].acs_by_source == {"block0.rope_k": 12, "block0.v": 12}
    assert trace["block0.attn_norm"].spikes == 6 and trace["block0.attn_norm"].value_totals.sum() == 3 * 6
    assert trace["lm_head"].macs == 2 * 11            # the last token only, real input: MACs
    assert trace.acs == 108


@pytest.mark.parametrize("low_p", [0.0, 0.5])
def test_engine_spikes_equal_the_torch_decoders_own_neuron_for_neuron(low_p):
    model = tiny()
    model.calibrate([TOKENS], low_p=low_p)
    spiking = Spiking(n_bits=4, addbit=1, kv_addbit=1, weight_bits=4)
    net, current = decoder_ir.engine_network(model, spiking, TOKENS)
    encoders = [layer.name for layer in net.layers if layer.kind == "elementwise" and layer.spec.op == "encode"]
    # with no split (low_p 0) q, k and v read one train, as the card's IR says; with OBS each reads its own
    assert (encoders == []) == (low_p == 0.0)
    trace = run(net, current, record_rasters=True)
    trains, logits = torch_trains(model, spiking, TOKENS)
    assert len(trains) == 18
    for gif, (train, torch_acs) in trains.items():
        source = decoder_ir.gif_emitter(net, gif)
        np.testing.assert_array_equal(trace[source].raster, train, err_msg=gif)
        reader = trace[f"{gif.split('.')[0]}.{decoder_ir.GIF_READERS[gif.split('.')[1]][1]}"]
        engine_acs = reader.acs_by_source[source] if gif.endswith("_cache") else reader.acs
        assert engine_acs == torch_acs, gif


@pytest.mark.parametrize("low_p", [0.0, 0.9])
def test_three_counts_agree_on_a_decoder_phase(low_p):
    model = tiny()
    model.calibrate([TOKENS], low_p=low_p)
    net, current = decoder_ir.engine_network(model, Spiking(n_bits=3, addbit=2, kv_addbit=2), TOKENS)
    trace = run(net, current)
    measured = trace.measured_network(net)
    assert "rate_notes" not in measured.metadata          # every consumer saw the rate it is priced at
    counts = structural_counts(measured).set_index("layer")
    for name, lt in trace.layers.items():
        for col in ("acs", "macs", "other_ops", "neuron_updates"):
            assert counts.loc[name, col] == pytest.approx(getattr(lt, col), rel=1e-12, abs=1e-9), (name, col)
    assert trace.acs > 0 and trace.macs == 11 * 16 * 3    # the LM head on each sequence's last token
    arch = load_arch("spatial-45nm-large")
    for carry in ("spikes", "rates"):
        assert simulate(net, arch, "sequential", carry, trace=trace).acs == trace.acs
    assert simulate(measured, arch, "spatial").acs == pytest.approx(trace.acs, rel=1e-12)


def test_the_engine_computes_the_torch_decoders_logits():
    model = tiny()
    model.calibrate([TOKENS], low_p=0.5)
    spiking = Spiking(n_bits=4, addbit=1, kv_addbit=1, weight_bits=4)
    net, current = decoder_ir.engine_network(model, spiking, TOKENS)
    logits = torch_trains(model, spiking, TOKENS)[1][:, -1].numpy()   # each sequence's last token
    np.testing.assert_allclose(run(net, current).output, logits, atol=1e-5)   # float32 sums in another order


def test_decoder_phases_refuse_what_the_engine_does_not_run():
    model = tiny(layers=1)
    net, current = decoder_ir.engine_network(model, Spiking(), TOKENS[:1])
    with pytest.raises(NeurosimError, match="handoff"):
        run(net, current, handoff="stochastic")
    with pytest.raises(NeurosimError, match="embedding rows"):
        run(net)
    with pytest.raises(NeurosimError, match="device"):
        run(net, current, device="cpu")
    from dataclasses import replace

    from neurosim.ir import Network, Neuron

    lif = [replace(layer, neuron=Neuron("lif")) if layer.name == "block0.silu" else layer for layer in net.layers]
    with pytest.raises(NeurosimError, match="SpikeLLM's GIF"):
        run(Network(net.name, lif, net.input_size, net.input_rate, net.input_spiking, net.metadata), current)


def test_a_card_of_the_measured_rates_prices_every_block_at_its_own():
    # no split (low_p 0): the engine's network is the card's prefill IR, layer for layer
    from neurosim.cards import DecoderPhase, decoder_network

    model = tiny()
    model.calibrate([TOKENS], low_p=0.0)
    spiking = Spiking(n_bits=4, addbit=1, kv_addbit=1)
    net, current = decoder_ir.engine_network(model, spiking, TOKENS)
    trace = run(net, current)
    rates = decoder_ir.engine_rates([(net, trace)], 2)
    assert rates["down"][0] != rates["down"][1]
    card = decoder_ir.decoder_card(model, spiking, rates, "tiny", "test", "measured", dict(prompt=4, generate=4, batch=1))
    priced = structural_counts(decoder_network(card, DecoderPhase(3, 8))).set_index("layer")
    for name, lt in trace.layers.items():
        if lt.kind == "linear":
            assert priced.loc[name, "acs"] == pytest.approx(lt.acs, rel=1e-12), name
    assert card.spiking.rates.down == pytest.approx(sum(rates["down"]) / 2)


def test_decode_steps_read_the_kv_cache_and_add_what_a_longer_prefill_adds():
    # prompt of 5, then 3 decode steps, each one token per sequence against the cache of the steps before
    model = tiny()
    model.calibrate([TOKENS], low_p=0.5)
    spiking = Spiking(n_bits=4, addbit=1, kv_addbit=1, weight_bits=4)
    logits = torch_trains(model, spiking, TOKENS)[1].numpy()
    net, current = decoder_ir.engine_network(model, spiking, TOKENS[:, :5])
    trace = run(net, current)
    prompt_acs, steps_acs = trace.acs, 0
    for i in range(5, 8):
        net, current = decoder_ir.engine_network(model, spiking, TOKENS[:, i:i + 1], past=i)
        step = run(net, current, kv_cache=trace.kv_cache)
        np.testing.assert_allclose(step.output, logits[:, i], atol=1e-5)    # the torch decoder's next-token logits
        counts = structural_counts(step.measured_network(net)).set_index("layer")
        for name, lt in step.layers.items():                                # three counts, on a decode step too
            assert counts.loc[name, "acs"] == pytest.approx(lt.acs, rel=1e-12, abs=1e-9), name
        # every key, cached or new, reaches the one query of its sequence once (2 heads over 2 kv heads)
        cache = step.kv_cache["block0.rope_k"].raster
        assert cache.shape[1] == 3 * (i + 1)
        assert step["block0.attention"].acs_by_source["block0.rope_k"] == np.count_nonzero(cache)
        steps_acs += step.acs
        trace = step
    whole = run(*decoder_ir.engine_network(model, spiking, TOKENS))
    assert steps_acs == whole.acs - prompt_acs                              # exactly: keys are quantized per token
    with pytest.raises(NeurosimError, match="kv_cache"):
        run(*decoder_ir.engine_network(model, spiking, TOKENS[:, 5:6], past=5))
