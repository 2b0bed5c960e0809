"""The SpikeLLM-style decoder (neurosim.frontend.decoder): modes agree, spikes are counted, OBS splits."""

from __future__ import annotations

import pytest
import torch

from neurosim.errors import NeurosimError
from neurosim.frontend.decoder import DecoderConfig, Spiking, SpikingDecoder
from neurosim.frontend.spikellm import gif_linear


def tiny(seed: int = 0) -> SpikingDecoder:
    torch.manual_seed(seed)
    return SpikingDecoder(DecoderConfig(vocab_size=11, hidden=16, heads=2, intermediate=24, layers=2, seq_len=8))


TOKENS = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_spike_trains_give_the_fake_quant_output_when_nothing_is_dropped():
    # addbit 0: one step of n-bit spikes carries every code, so the two paths are the same computation
    model = tiny()
    model.set_spiking(Spiking(n_bits=4, addbit=0, kv_addbit=0, weight_bits=4, mode="fake"))
    fake = model(TOKENS)
    model.set_spiking(Spiking(n_bits=4, addbit=0, kv_addbit=0, weight_bits=4, mode="spike"))
    assert torch.allclose(model(TOKENS), fake, atol=1e-4)
    # with addbit 1 the GIF drops the top code's last unit: close, not equal
    model.set_spiking(Spiking(n_bits=4, addbit=1, mode="fake"))
    fake = model(TOKENS)
    model.set_spiking(Spiking(n_bits=4, addbit=1, mode="spike"))
    spiked = model(TOKENS)
    assert not torch.allclose(spiked, fake, atol=1e-4)
    assert sum(c.residue for c in model.counts.values()) > 0


@torch.no_grad()
def test_every_gif_input_counts_its_spike_slots():
    model = tiny()
    model.calibrate([TOKENS], low_p=0.5)
    model.set_spiking(Spiking(n_bits=3, addbit=2, kv_addbit=1, mode="spike"))
    model(TOKENS)
    names = {f"block{b}.{r}" for b in range(2) for r in ("q", "k", "v", "o", "gate", "up", "down", "k_cache",
                                                          "v_cache")}
    assert set(model.counts) == names
    vectors = TOKENS.numel()
    for name, m in model.gif_inputs().items():
        c, multi = model.counts[name], int(m.multi.sum())
        single = m.in_features - multi
        assert c.vectors == vectors and c.steps == 4 and c.spike_bits == 3
        assert c.slots == vectors * (multi * 4 + single)
        assert 0 < c.total_events <= c.slots
    cache = model.counts["block0.k_cache"]
    multi = int(model.blocks[0].attn.k_multi.sum())
    assert cache.vectors == vectors * 2 and cache.steps == 2            # one vector per token and head
    assert cache.slots == vectors * (multi * 2 + (16 - multi))


@torch.no_grad()
def test_a_layers_spikes_are_those_of_gif_linear_on_its_input():
    model = tiny()
    model.calibrate([TOKENS], low_p=0.5)
    settings = Spiking(n_bits=4, addbit=1, weight_bits=None, mode="spike")
    model.set_spiking(settings)
    seen = {}
    down = model.blocks[1].down
    down.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], out=out))
    model(TOKENS)
    expected = gif_linear(seen["x"], down.weight, None, 4, 1, down.multi)
    assert torch.equal(seen["out"], expected)


@torch.no_grad()
def test_a_cached_key_reaches_the_queries_after_it():
    model, sent = tiny(), {}
    for n in (1, 2):
        model.set_spiking(Spiking(n_bits=3, addbit=1, mode="spike"))
        model(TOKENS[:1, :n])
        sent[n] = model.counts["block0.k_cache"]
    # causal: token 0's key is the same in both runs; with two tokens key 0 reaches 2 queries, key 1 one
    first = sent[1].total_events
    second = sent[2].total_events - first
    assert sent[1].acs == first and sent[2].acs == 2 * first + second


@torch.no_grad()
def test_calibration_splits_each_input_at_low_p():
    model = tiny()
    model.calibrate([TOKENS[:2], TOKENS[2:]], low_p=0.75)
    for name, m in model.gif_inputs().items():
        assert int((~m.multi).sum()) >= int(0.75 * m.in_features), name    # ties may add single-step channels
        assert int(m.multi.sum()) >= 1, name
    k_multi = model.blocks[0].attn.k_multi
    assert k_multi.shape == (2, 1, 8) and int((~k_multi).sum()) >= 12
    # the split is saved with the weights
    state = model.state_dict()
    assert torch.equal(state["blocks.0.attn.q.multi"], model.blocks[0].attn.q.multi)


@torch.no_grad()
@pytest.mark.parametrize("mode", ["fake", "spike"])
def test_spiking_decoder_is_causal(mode):
    # each key and value is quantized per token and head, so a later token cannot change an earlier output
    model = tiny()
    model.set_spiking(Spiking(n_bits=4, addbit=1, mode=mode))
    changed = TOKENS.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 11
    assert torch.allclose(model(TOKENS)[:, :-1], model(changed)[:, :-1], atol=1e-5)


def test_bad_spiking_settings_are_refused():
    with pytest.raises(NeurosimError, match="mode"):
        Spiking(mode="binary")
    with pytest.raises(NeurosimError, match="n_bits"):
        Spiking(n_bits=1)
    with pytest.raises(NeurosimError, match="low_p"):
        tiny().calibrate([TOKENS], low_p=2.0)


@torch.no_grad()
def test_the_exported_network_prices_exactly_the_accumulates_the_spikes_caused():
    from neurosim.cost.analytic import structural_counts
    from neurosim.frontend import decoder_ir

    model = tiny()
    model.calibrate([TOKENS], low_p=0.5)
    spiking = Spiking(n_bits=3, addbit=1)
    counts = decoder_ir.measure(model, TOKENS, spiking)
    assert model.spiking is None                      # measuring leaves the model as it was
    rates = decoder_ir.block_rates(counts, 2)
    card = decoder_ir.decoder_card(model, spiking, rates, "tiny", "test", "measured in the test",
                                   dict(prompt=4, generate=4, batch=1))
    assert card.spiking.timesteps == 2 and card.spiking.neuron.levels == 7 and card.kv_bits == 4
    net = decoder_ir.measured_network(card, rates, batch=3, tokens=8)
    table = structural_counts(net).set_index("layer")
    acs = table["acs"]
    # each event is a 3-bit spike (levels 7), which the energy table prices per bit or as a shift-add
    assert (table.loc[[f"block{b}.{r}" for b in range(2) for r in ("q", "o", "gate", "down")],
                      "input_spike_bits"] == 3).all()
    for b in range(2):
        events = {name: counts[f"block{b}.{name}"].total_events for name in ("q", "k", "v", "o", "gate", "up",
                                                                             "down")}
        # each event adds one weight row to every output: q, k, v and o have 16 outputs, gate and up 24
        assert acs[[f"block{b}.q", f"block{b}.k", f"block{b}.v"]].sum() == pytest.approx(
            16 * (events["q"] + events["k"] + events["v"]))
        assert acs[f"block{b}.o"] == pytest.approx(16 * events["o"])
        assert acs[[f"block{b}.gate", f"block{b}.up"]].sum() == pytest.approx(24 * (events["gate"] + events["up"]))
        assert acs[f"block{b}.down"] == pytest.approx(16 * events["down"])
        for name in ("q", "o", "gate", "down"):                # the engine-side count agrees
            assert counts[f"block{b}.{name}"].acs == pytest.approx(
                acs[f"block{b}.{name}"] if name in ("o", "down") else events[name] * (16 if name == "q" else 24))
    assert net["block1.rope_k"].rate == pytest.approx(rates["k"][1])


def test_a_card_with_two_step_counts_is_refused():
    from neurosim.frontend import decoder_ir

    rates = {role: [0.5, 0.5] for role in decoder_ir.ROLES}
    with pytest.raises(NeurosimError, match="kv_addbit"):
        decoder_ir.decoder_card(tiny(), Spiking(addbit=2, kv_addbit=1), rates, "t", "s", "r",
                                dict(prompt=2, generate=2, batch=1))
