"""Inputs and handoffs of the spike engine: rate coding, Bernoulli regeneration, determinism, the front end."""

import numpy as np
import pytest
import torch

from neurosim.errors import NeurosimError
from neurosim.ir import Layer, Network, Neuron
from neurosim.spikes import random_weights, rate_code, run
from neurosim.spikes.handoff import regenerate

from test_spikes import integer_encoder, tiny_card


def two_layers(t_first: int, t_second: int, n: int = 4, width: int = 8) -> Network:
    """A source layer with varied per-neuron rates, and a consumer that runs t_second steps."""
    rng = np.random.default_rng(0)
    first = Layer("a", "linear", 6, width, seq_len=n, timesteps=t_first, weights=rng.integers(0, 3, (width, 6)),
                  neuron=Neuron(vth=3.0))
    second = Layer("b", "linear", width, 2, inputs=["a"], seq_len=n, timesteps=t_second, weights=np.ones((2, width)))
    return Network("pair", [first, second], input_size=6)


def test_stochastic_inputs_converge_to_the_source_asr():
    # Each regenerated input is Bernoulli(ASR) per step; over 4000 steps its mean has a standard
    # deviation of at most sqrt(0.25 / 4000) = 0.0079. Tolerance: 5 sigma (0.04) for every one of the
    # 32 (token, neuron) pairs, and 0.01 for their mean absolute error. Seed fixed: the test is deterministic.
    net = two_layers(t_first=12, t_second=4000)
    trace = run(net, rate_code(np.full((4, 6), 0.3), 12, seed=1), handoff="stochastic", seed=7,
                record_rasters=True)
    source = trace["a"].asr
    assert 0.05 < source.mean() < 0.95 and source.std() > 0.05  # a spread of rates, not all 0 or 1
    seen = trace["b"].seen["a"].mean(axis=0)
    assert np.abs(seen - source).max() < 0.04
    assert np.abs(seen - source).mean() < 0.01


def test_regeneration_keeps_the_mean_value_of_multi_level_spikes():
    counts = np.array([[10, 5, 0, 20]], np.int32)    # events in 20 steps
    values = np.array([[25, 5, 0, 60]], np.int32)    # mean value per event 2.5, 1, -, 3
    live = np.arange(4, dtype=np.int64)
    draws = np.array([regenerate(counts, values, 20, live, 4, seed=3, stream=1, t=t) for t in range(4000)])
    mean_value = draws.mean(axis=0)[0]                # expected: values / steps = 1.25, 0.25, 0, 3
    np.testing.assert_allclose(mean_value, [1.25, 0.25, 0.0, 3.0], atol=0.06)
    assert set(np.unique(draws[:, 0, 0])) == {0, 2, 3}  # 2.5 is sent as 2 or 3
    assert (draws[:, 0, 3] == 3).all()                  # rate 1: every step


def test_same_seed_same_trace_other_seed_other_trace():
    net = random_weights(tiny_card(), seed=4)
    a, b = run(net, handoff="stochastic", seed=11), run(net, handoff="stochastic", seed=11)
    for name in a.layers:
        np.testing.assert_array_equal(a[name].acs_per_step, b[name].acs_per_step)
        if a[name].spiking:
            np.testing.assert_array_equal(a[name].neuron_totals, b[name].neuron_totals)
    np.testing.assert_array_equal(a.input_events_per_step, b.input_events_per_step)
    c = run(net, handoff="stochastic", seed=12)
    assert any(not np.array_equal(a[n].neuron_totals, c[n].neuron_totals) for n in a.layers if a[n].spiking)


def test_consumers_of_one_source_draw_the_same_spikes():
    # q, k and v of block 1 all read block0.output: under the stochastic handoff they see one draw per step
    net = integer_encoder(1)
    trace = run(net, handoff="stochastic", seed=2, record_rasters=True)
    seen = [trace[f"block1.{r}"].seen["block0.output"] for r in ("q", "k", "v")]
    assert seen[0].any()
    np.testing.assert_array_equal(seen[0], seen[1])
    np.testing.assert_array_equal(seen[0], seen[2])


def test_rate_coding_is_seeded_bernoulli():
    p = np.linspace(0, 1, 12).reshape(3, 4)
    spikes = rate_code(p, 3000, seed=5)
    np.testing.assert_allclose(spikes.mean(axis=0), p, atol=0.04)
    np.testing.assert_array_equal(spikes, rate_code(p, 3000, seed=5))
    # the engine draws the same input spikes from the same probabilities and seed
    net = Network("one", [Layer("a", "linear", 4, 2, seq_len=3, timesteps=5, weights=np.ones((2, 4)))],
                  input_size=4)
    trace = run(net, p, seed=5, record_rasters=True)
    np.testing.assert_array_equal(trace.input_raster, rate_code(p, 5, seed=5))
    assert trace.input_kind == "rates"


def test_history_consumer_reads_silence_after_its_source_stops():
    net = two_layers(t_first=3, t_second=6)
    spikes = np.ones((6, 4, 6), np.uint8)
    trace = run(net, spikes, handoff="history", record_rasters=True)
    assert trace["a"].timesteps == 3 and trace["b"].timesteps == 6
    assert trace["b"].acs_per_step[3:].sum() == 0 and trace["b"].acs_per_step[:3].sum() > 0
    lock = run(net, spikes, handoff="lockstep")
    assert lock["a"].timesteps == lock["b"].timesteps == 6


def test_a_real_input_of_a_current_fed_network_is_applied_every_step_from_one_held_product():
    layer = Layer("a", "linear", 2, 1, timesteps=4, weights=np.array([[1.0, 1.0]]), neuron=Neuron(vth=1.0))
    net = Network("c", [layer], input_size=2, input_spiking=False)
    trace = run(net, np.array([[0.25, 0.25]]), record_rasters=True)  # current 0.5 per step
    np.testing.assert_array_equal(trace["a"].raster[:, 0, 0], [0, 1, 0, 1])
    # the first layer's work on a real input is MACs, and a constant input's product is computed once, held
    assert trace["a"].acs == 0 and trace["a"].macs == 1 * 2
    assert trace.input_kind == "current"
    with pytest.raises(NeurosimError, match="current"):
        run(net)


def test_spike_mode_of_the_front_end_matches_every_layer():
    """The front end's spike mode and the engine (lockstep) on a 2-block SpikingEncoder with a pruned head
    and pruned neurons: every live neuron of every layer, through residual adds and LayerNorms, spikes
    the same number of times. (Masked K/V features are computed by torch and read by no one; the engine
    does not compute them.) Float32 on both sides, the same operations in the same order: equal ASRs.
    """
    from neurosim.frontend.encoder import SpikingEncoder
    from neurosim.frontend.extract import from_torch

    torch.manual_seed(0)
    model = SpikingEncoder(vocab_size=50, hidden=16, heads=2, intermediate=32, layers=2, seq_len=8, classes=2,
                           timesteps=20).eval()
    with torch.no_grad():
        for blk in model.blocks:
            for lin in (blk.k, blk.v):
                lin.weight.mul_(3.0)  # livelier K and V
        model.blocks[1].head_mask[0] = 0
        model.blocks[0].neuron_mask[:10] = 0
        tokens = torch.randint(0, 50, (1, 8))
        net = from_torch(model, tokens)
        model(tokens, mode="spike")
        emb = model.embedding(tokens).numpy()[0]
    assert net["block1.attn_out"].norm.residual == "block0.output" and net["block0.attn_out"].norm.residual == "<input>"
    trace = run(net, emb)
    for layer in net.layers:
        if not layer.spiking:
            continue
        live = trace[layer.name].live
        ours = trace[layer.name].asr.mean(axis=0)[live]
        theirs = model.last_asr[layer.name].numpy()[live]
        assert ours.mean() > 0.02, layer.name
        assert np.abs(ours - theirs).max() < 1e-6, layer.name
