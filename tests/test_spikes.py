"""The spike engine against a plain torch loop, its own rasters, and the closed form fed its rates."""

import math

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurosim.cards import EncoderCard, encoder_network
from neurosim.cost.analytic import needed_outputs, structural_counts
from neurosim.errors import NeurosimError
from neurosim.ir import Layer, Network, Neuron
from neurosim.paths import MODELS_DIR
from neurosim.spikes import INPUT, kernels, random_weights, run


# -- the reference: a plain, readable torch loop ------------------------------------------
def reference(net: Network, spikes: np.ndarray, handoff: str = "lockstep") -> dict[str, np.ndarray]:
    """Rasters (steps, tokens, outputs) of every spiking layer, float64, written for reading.

    Alignment (handoff.py): at its step t a layer integrates its sources' step-t
    output; lockstep runs every layer for the largest T, history each layer for
    its own timesteps, after which it is silent. Outputs that are not live
    (masks, Q/K/V columns of dead heads) never spike.
    """
    T = net.max_timesteps
    steps = {l.name: T if handoff == "lockstep" else l.timesteps for l in net.layers}
    n = net.layers[0].seq_len
    u = {l.name: torch.zeros(n, l.out_features, dtype=torch.float64) for l in net.layers}
    s = {l.name: torch.zeros(n, l.out_features, dtype=torch.float64) for l in net.layers}
    rasters = {l.name: [] for l in net.layers if l.spiking}
    for t in range(max(steps.values())):
        out = {}
        for l in net.layers:
            live = torch.tensor(needed_outputs(net, l), dtype=torch.float64)
            if t >= steps[l.name]:
                out[l.name] = torch.zeros(n, l.out_features, dtype=torch.float64)
                continue
            if l.kind == "linear":
                x = out[l.inputs[0]] if l.inputs else torch.tensor(spikes[t], dtype=torch.float64)
                w = torch.tensor(np.asarray(l.weights), dtype=torch.float64)
                current = x @ w.T
                if l.bias is not None:
                    current = current + torch.tensor(l.bias, dtype=torch.float64)
            else:
                q, k, v = (out[name] for name in l.inputs)
                current = torch.zeros(n, l.out_features, dtype=torch.float64)
                hd = l.spec.head_dim
                for h in range(l.spec.heads):
                    cols = slice(h * hd, (h + 1) * hd)
                    scores = q[:, cols] @ k[:, cols].T / math.sqrt(hd)
                    current[:, cols] = torch.softmax(scores, dim=1) @ v[:, cols]
            if not l.spiking:
                out[l.name] = current * live
                continue
            nr = l.neuron
            u[l.name] = nr.leak * u[l.name] + current - s[l.name] * nr.vth
            fired = (u[l.name] >= nr.vth).double()
            if nr.levels > 1:
                fired = fired * torch.clamp(torch.floor(u[l.name] / nr.vth), 0, nr.levels)
            s[l.name] = fired * live
            out[l.name] = s[l.name]
            rasters[l.name].append(s[l.name].numpy().copy())
    return {name: np.array(r) for name, r in rasters.items()}


# -- networks ---------------------------------------------------------------------------
def tiny_card(head_masks=None, neuron_masks=None, **changes) -> Network:
    data = yaml.safe_load((MODELS_DIR / "tiny-encoder.yaml").read_text())
    data.update(head_masks=head_masks, neuron_masks=neuron_masks, **changes)
    return encoder_network(EncoderCard.model_validate(data))


def integer_encoder(seed: int, **card) -> Network:
    """Tiny encoder, integer weights; Q weights 0, so attention is uniform (1/4 each) and exact in floats."""
    rng = np.random.default_rng(seed)
    net = tiny_card(**card)
    layers = []
    for l in net.layers:
        if l.kind == "linear":
            w = np.zeros((l.out_features, l.in_features)) if l.tag.role == "q" else \
                rng.integers(-1, 3, (l.out_features, l.in_features)).astype(float)
            l = Layer(**{**l.__dict__, "weights": w})
        layers.append(l)
    return Network(net.name, layers, net.input_size, net.input_rate, net.input_spiking, net.metadata)


def input_spikes(net: Network, steps: int, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((steps, net.layers[0].seq_len, net.input_size)) < rate).astype(np.uint8)


@st.composite
def chains(draw):
    """A chain of 1-3 spiking linear layers with integer weights and thresholds, masks, 1-bit and GIF layers."""
    n, steps = draw(st.integers(1, 4)), draw(st.integers(1, 7))
    sizes = draw(st.lists(st.integers(1, 10), min_size=2, max_size=4))
    layers = []
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        bits = draw(st.sampled_from([8, 32, 1]))
        if bits == 1:  # sign x an integer scale per output row
            w = np.where(rng.random((b, a)) < 0.6, 1.0, -1.0) * rng.integers(1, 3, (b, 1))
        else:
            w = rng.integers(-2, 4, (b, a)).astype(float)
        neuron = Neuron("lif", vth=float(draw(st.integers(1, 3))), leak=draw(st.sampled_from([1.0, 0.5])),
                        levels=draw(st.sampled_from([1, 1, 3])))
        mask = (rng.random(b) < 0.8).astype(int) if draw(st.booleans()) else None
        bias = rng.integers(-1, 2, b).astype(float) if draw(st.booleans()) else None
        layers.append(Layer(f"l{i}", "linear", a, b, inputs=[f"l{i - 1}"] if i else [], seq_len=n,
                            timesteps=draw(st.integers(1, steps)), neuron=neuron, weights=w, bias=bias,
                            weight_bits=bits, neuron_mask=mask))
    layers[-1].timesteps = steps
    net = Network("chain", layers, input_size=sizes[0])
    spikes = (rng.random((steps, n, sizes[0])) < draw(st.floats(0.05, 0.9))).astype(np.uint8)
    return net, spikes


def fan_out_acs(net: Network, trace, layer: Layer, seen: np.ndarray) -> np.ndarray:
    """ACs per step recomputed from the spikes a layer integrated: events x live fan-out."""
    events = (seen != 0).reshape(seen.shape[0], -1).sum(axis=1)
    return events * int(needed_outputs(net, layer).sum())


# -- identical spike trains ---------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.sampled_from(["lockstep", "history"]))
def test_chains_match_the_torch_loop_spike_for_spike(case, handoff):
    net, spikes = case
    trace = run(net, spikes, handoff=handoff, record_rasters=True)
    ref = reference(net, spikes, handoff)
    for layer in net.layers:
        lt = trace[layer.name]
        np.testing.assert_array_equal(lt.raster, ref[layer.name], err_msg=layer.name)
        # ACs == input events x live fan-out, from the returned rasters (the input's, or the source's)
        src = trace.input_raster if not layer.inputs else trace[layer.inputs[0]].raster
        seen = np.zeros((lt.timesteps,) + src.shape[1:], np.uint8)
        k = min(lt.timesteps, src.shape[0])
        seen[:k] = src[:k]
        np.testing.assert_array_equal(lt.acs_per_step, fan_out_acs(net, trace, layer, seen))
        assert lt.spike_bits == layer.neuron.spike_bits
        np.testing.assert_array_equal(lt.neuron_totals, (lt.raster != 0).sum(axis=0))
        if layer.neuron.levels > 1:
            np.testing.assert_array_equal(lt.value_totals, lt.raster.sum(axis=0))
    assert_structural_equal(net, trace)


@pytest.mark.parametrize("handoff", ["lockstep", "history"])
def test_encoder_with_uniform_attention_matches_the_torch_loop(handoff):
    net = integer_encoder(3, head_masks=[[1, 1], [0, 1]], neuron_masks=[[1, 0] * 8, [1] * 16])
    spikes = input_spikes(net, 4, 0.5, seed=4)
    trace = run(net, spikes, handoff=handoff, record_rasters=True)
    ref = reference(net, spikes, handoff)
    assert sum(trace[name].spikes for name in ref) > 50  # the comparison is not vacuous
    for name, raster in ref.items():
        np.testing.assert_array_equal(trace[name].raster, raster, err_msg=name)
    att = trace["block0.attention"]
    v_raster = trace["block0.v"].raster
    np.testing.assert_array_equal(att.acs_per_step, (v_raster != 0).reshape(4, -1).sum(axis=1) * 4)  # x n queries


# -- the closed form fed the measured rates ----------------------------------------------
def assert_structural_equal(net: Network, trace) -> None:
    counts = structural_counts(trace.measured_network(net))
    for row in counts.itertuples():
        lt = trace[row.layer]
        for col in ("acs", "macs", "other_ops", "neuron_updates"):
            assert round(getattr(row, col)) == getattr(lt, col), (row.layer, col, getattr(row, col), getattr(lt, col))
            assert abs(getattr(row, col) - getattr(lt, col)) < 1e-6 * max(1, getattr(lt, col))


@pytest.mark.parametrize("handoff", ["lockstep", "history", "stochastic"])
def test_structural_count_at_measured_rates_equals_the_engine(handoff):
    net = random_weights(tiny_card(head_masks=[[1, 0], [1, 1]], neuron_masks=[[1] * 12 + [0] * 4, [1] * 16]),
                         seed=2)
    trace = run(net, handoff=handoff, seed=5)
    assert trace.acs > 0 and trace.macs > 0
    assert_structural_equal(net, trace)
    assert structural_counts(trace.measured_network(net)).acs.sum() == pytest.approx(trace.acs, rel=1e-12)


def test_stochastic_acs_are_regenerated_events_times_fan_out():
    net = random_weights(tiny_card(), seed=1)
    trace = run(net, handoff="stochastic", seed=9, record_rasters=True)
    for layer in net.layers:
        lt = trace[layer.name]
        if layer.kind == "linear" and lt.compute == "ac":
            source = layer.inputs[0] if layer.inputs else INPUT
            np.testing.assert_array_equal(lt.acs_per_step, fan_out_acs(net, trace, layer, lt.seen[source]))
            assert lt.input_events[source] == int((lt.seen[source] != 0).sum())


# -- masks ---------------------------------------------------------------------------------
def test_masked_heads_and_neurons_cause_no_acs_downstream():
    dead = integer_encoder(0, head_masks=[[0, 0], [1, 1]], neuron_masks=[[0] * 16, [1] * 16])
    spikes = input_spikes(dead, 4, 0.5, seed=1)
    trace = run(dead, spikes, record_rasters=True)
    for name in ("block0.q", "block0.k", "block0.v", "block0.attention", "block0.attn_out", "block0.output"):
        lt = trace[name]
        assert lt.acs == 0 and lt.macs == 0 and lt.spikes == 0, name
    assert trace["block0.intermediate"].spikes == 0
    assert trace["block1.k"].acs == 0  # block 1 reads a silent block 0
    partial = integer_encoder(0, head_masks=[[1, 0], [1, 1]], neuron_masks=[[1, 0] * 8, [1] * 16])
    tr = run(partial, spikes, record_rasters=True)
    assert not tr["block0.v"].raster[:, :, 4:].any()          # V columns of the dead head never spike
    assert not tr["block0.attention"].raster[:, :, 4:].any()
    assert not tr["block0.intermediate"].raster[:, :, 1::2].any()
    inter = tr["block0.intermediate"].raster
    np.testing.assert_array_equal(tr["block0.output"].acs_per_step, (inter != 0).reshape(4, -1).sum(axis=1) * 8)
    assert tr["block0.attention"].acs > 0 and tr["block0.output"].acs > 0


# -- determinism, threads --------------------------------------------------------------------
def _same(a, b) -> bool:
    return all(np.array_equal(a[n].acs_per_step, b[n].acs_per_step) and
               (a[n].neuron_totals is None or np.array_equal(a[n].neuron_totals, b[n].neuron_totals))
               for n in a.layers)


def test_threaded_and_serial_kernels_give_the_same_trace(monkeypatch):
    net = random_weights(tiny_card(), seed=3)
    for handoff in ("lockstep", "stochastic"):
        monkeypatch.setattr(kernels, "PARALLEL_WORK", 0)
        threaded = run(net, handoff=handoff, seed=1)
        monkeypatch.setattr(kernels, "PARALLEL_WORK", 10**12)
        serial = run(net, handoff=handoff, seed=1)
        assert _same(threaded, serial)


# -- refusals ---------------------------------------------------------------------------------
def test_a_network_without_weights_is_refused_naming_the_layer():
    with pytest.raises(NeurosimError) as err:
        run(tiny_card())
    assert "block0.q" in str(err.value) and "weights" in str(err.value) and "random_weights" in str(err.value)


def test_bad_inputs_are_refused():
    net = random_weights(tiny_card(), seed=0)
    with pytest.raises(NeurosimError, match="expected"):
        run(net, np.zeros((4, 3, 8), np.uint8))
    with pytest.raises(NeurosimError, match="at least 4 input steps"):
        run(net, np.zeros((2, 4, 8), np.uint8))
    with pytest.raises(NeurosimError, match=r"\[0, 1\]"):
        run(net, np.full((4, 8), 1.5))
    with pytest.raises(NeurosimError, match="handoff"):
        run(net, handoff="teleport")
    conv = Network("c", [Layer("c", "conv2d", 16, 8, spec=__import__("neurosim").Conv2dShape(1, 2, 4, 4, 3))],
                   input_size=16)
    with pytest.raises(NeurosimError, match="needs weights"):
        run(conv)


def test_one_bit_weights_that_are_not_binary_are_binarized_with_a_note():
    layer = Layer("a", "linear", 3, 2, timesteps=2, weights=np.array([[0.5, -1.0, 1.5], [2.0, -2.0, 2.0]]),
                  weight_bits=1)
    trace = run(Network("b", [layer], input_size=3), np.ones((2, 1, 3), np.uint8), record_rasters=True)
    assert any("not +-scale" in note for note in trace.notes)
    # row 0: sign x mean|w| = 1 x (+1 -1 +1) = 1 per step -> spikes at both steps; row 1: 2 x (+1) -> u = 2 >= 1
    np.testing.assert_array_equal(trace["a"].raster[:, 0], [[1, 1], [1, 1]])
