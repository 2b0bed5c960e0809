"""ir.Neuron's conventions (reset, its order with the leak, the firing comparison, a synaptic current,
per-neuron values), run alike by the spike engine and the torch neuron modules, checked by hand."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from neurosim.errors import NeurosimError
from neurosim.frontend.neurons import neuron_module
from neurosim.ir import Conv2dShape, Layer, Network, Neuron, Recurrent
from neurosim.spikes import run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def engine_trace(neuron: Neuron, current: float, steps: int) -> list[int]:
    """One neuron driven by a constant current (a weight of `current` on an input that spikes every step)."""
    layer = Layer("n", "linear", 1, 1, timesteps=steps, neuron=neuron, weights=np.array([[current]]))
    trace = run(Network("one", [layer], input_size=1), np.ones((steps, 1, 1), np.uint8), record_rasters=True)
    return trace["n"].raster[:, 0, 0].tolist()


def torch_trace(neuron: Neuron, current: float, steps: int) -> tuple[list[float], list[float]]:
    module, state, spikes, mems = neuron_module(neuron), None, [], []
    for _ in range(steps):
        s, state = module(torch.tensor([current]), state)
        spikes.append(float(s))
        mems.append(float(state[1] if isinstance(state, tuple) else state))
    return spikes, mems


HAND = [
    # (neuron, current, spikes, membranes), each worked out by hand in exact binary fractions
    # the design's neuron: u = .5u + .75 - s*1 -> .75, 1.125 S, .3125, .90625, 1.203125 S, .3515625
    (Neuron("lif", 1.0, 0.5), 0.75, [0, 1, 0, 0, 1, 0], [0.75, 1.125, 0.3125, 0.90625, 1.203125, 0.3515625]),
    # reset first (SpikingJelly soft): u = .5(u - s) + .75 -> .75, 1.125 S, .8125, 1.15625 S, .828125, 1.1640625 S
    (Neuron("lif", 1.0, 0.5, reset_order="reset_first"), 0.75, [0, 1, 0, 1, 0, 1],
     [0.75, 1.125, 0.8125, 1.15625, 0.828125, 1.1640625]),
    # a tie: IF at .5 reaches exactly 1.0 at step 2; ">=" fires there, ">" one step later
    (Neuron("if", 1.0, 1.0), 0.5, [0, 1, 0, 1], [0.5, 1.0, 0.5, 1.0]),
    (Neuron("if", 1.0, 1.0, fire=">"), 0.5, [0, 0, 1, 0], [0.5, 1.0, 1.5, 1.0]),
    # hard reset after the leak (snnTorch Synaptic's "zero"): the step after a spike loses its input
    (Neuron("if", 1.0, 1.0, reset="hard"), 0.75, [0, 1, 0, 0, 1, 0], [0.75, 1.5, 0.0, 0.75, 1.5, 0.0]),
    # hard reset when it fires (NIR, norse, snnTorch Leaky "zero"): the next step integrates from v_reset
    (Neuron("if", 1.0, 1.0, reset="hard", reset_order="reset_first", v_reset=-0.25), 0.75, [0, 1, 0, 1, 0, 1],
     [0.75, 1.5, 0.5, 1.25, 0.5, 1.25]),
    # a synaptic current i = .5i + .5 feeding u = .5u + i - s: i .5, .75, .875; u .5, 1.0 S, .375
    (Neuron("cubalif", 1.0, 0.5, syn_decay=0.5), 0.5, [0, 1, 0], [0.5, 1.0, 0.375]),
    # a GIF that fires on ">": 2.0 is two multiples reached but only one exceeded
    (Neuron("gif", 1.0, 1.0, levels=3, fire=">"), 2.0, [1, 2, 2], [2.0, 3.0, 3.0]),
]


@pytest.mark.parametrize("neuron, current, spikes, mems", HAND)
def test_engine_and_torch_neuron_follow_the_hand_worked_trace(neuron, current, spikes, mems):
    assert engine_trace(neuron, current, len(spikes)) == spikes
    got_spikes, got_mems = torch_trace(neuron, current, len(spikes))
    assert got_spikes == spikes and got_mems == mems


CONVENTIONS = [c for c in itertools.product(("subtract", "hard"), ("leak_first", "reset_first"), (">=", ">"),
                                           (None, 0.75), (1, 3)) if c[3] is None or c[4] == 1]  # CubaLIF: binary


@pytest.mark.parametrize("reset, order, fire, syn, levels", CONVENTIONS)
def test_engine_and_torch_neurons_give_the_same_spikes_under_every_convention(reset, order, fire, syn, levels):
    # quarter-step weights and thresholds: membranes land exactly on thresholds (ties) often
    rng = np.random.default_rng(3)
    steps, n, k, m = 24, 3, 12, 10
    w = rng.integers(-3, 5, size=(m, k)) / 4
    vth = rng.integers(2, 6, size=m) / 4                       # per-neuron thresholds
    model = "cubalif" if syn is not None else ("gif" if levels > 1 else "lif")
    neuron = Neuron(model, vth, np.where(np.arange(m) % 2, 0.5, 1.0), levels=levels, reset=reset, reset_order=order,
                    fire=fire, v_reset=-0.25 if reset == "hard" else 0.0, syn_decay=syn)
    layer = Layer("l", "linear", k, m, seq_len=n, timesteps=steps, neuron=neuron, weights=w, bias=np.full(m, 0.25))
    x = (rng.random((steps, n, k)) < 0.4).astype(np.uint8)
    raster = run(Network("c", [layer], input_size=k), x, record_rasters=True)["l"].raster

    module, state, ties = neuron_module(neuron), None, 0
    expected = []
    for t in range(steps):
        current = torch.from_numpy(x[t]).float() @ torch.from_numpy(w.T).float() + 0.25
        s, state = module(current, state)
        mem = state[1] if isinstance(state, tuple) else state
        ties += int((mem == torch.from_numpy(vth).float()).sum())
        expected.append(s.numpy())
    np.testing.assert_array_equal(raster, np.stack(expected).astype(np.uint8))
    assert ties > 0   # the comparison was put to the test


def test_per_neuron_values_must_have_one_value_per_unit():
    conv = Conv2dShape(1, 2, 4, 4, 3, padding=1)
    ok = Layer("c", "conv2d", 16, 32, spec=conv, neuron=Neuron("lif", np.array([1.0, 2.0]), 0.5))
    assert ok.neuron_values("vth").tolist() == [1.0] * 16 + [2.0] * 16   # per channel, over its positions
    Network("n", [ok], input_size=16)
    bad = Layer("c", "conv2d", 16, 32, spec=conv, neuron=Neuron("lif", np.ones(32)))
    with pytest.raises(NeurosimError) as info:
        Network("n", [bad], input_size=16)
    assert info.value.field == "neuron.vth"
    assert "2 (one per output neuron; conv2d: per output channel)" in info.value.fix


def test_a_synaptic_current_belongs_to_the_cubalif_model_alone():
    for neuron in (Neuron("lif", syn_decay=0.5), Neuron("cubalif")):
        with pytest.raises(NeurosimError) as info:
            Network("n", [Layer("a", "linear", 2, 2, neuron=neuron)], input_size=2)
        assert info.value.field == "neuron.syn_decay"


def test_old_network_json_without_the_new_neuron_fields_reads_with_the_design_defaults(tmp_path):
    old = {"format": 2, "name": "old", "input_size": 2, "layers": [
        {"name": "a", "kind": "linear", "in_features": 2, "out_features": 2,
         "neuron": {"model": "lif", "vth": 1.0, "leak": 0.5, "levels": 1}}]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    neuron = Network.from_json(path)["a"].neuron
    assert neuron == Neuron("lif", 1.0, 0.5)
    assert (neuron.reset, neuron.reset_order, neuron.fire, neuron.syn_decay) == ("subtract", "leak_first", ">=", None)


def test_per_neuron_values_and_conventions_survive_json(tmp_path):
    neuron = Neuron("cubalif", np.array([0.5, 1.0]), np.array([0.25, 0.5]), reset="hard", v_reset=-1.0,
                    reset_order="reset_first", fire=">", syn_decay=np.array([0.0, 0.75]))
    net = Network("n", [Layer("a", "linear", 2, 2, neuron=neuron)], input_size=2)
    net.to_json(tmp_path / "n.json")
    back = Network.from_json(tmp_path / "n.json")["a"].neuron
    assert back == neuron and isinstance(back.vth, np.ndarray)


def test_a_recurrent_connection_feeds_a_layers_own_spikes_one_step_late_counted_by_hand():
    # neuron 0 is driven by the input at step 0 and spikes; its spike reaches neuron 1 (W_rec[1, 0] = 1) at
    # step 1, which spikes; neuron 1's spike at step 2 reaches no one (column 1 is zero). Every own event
    # costs 2 ACs (both live outputs), of which the nonzero weights are 1, then 0.
    layer = Layer("r", "linear", 1, 2, timesteps=3, weights=np.array([[1.0], [0.0]]),
                  recurrent=Recurrent(np.array([[0.0, 0.0], [1.0, 0.0]])))
    x = np.array([1, 0, 0], np.uint8).reshape(3, 1, 1)
    lt = run(Network("r", [layer], input_size=1), x, record_rasters=True)["r"]
    assert lt.raster[:, 0].tolist() == [[1, 0], [0, 1], [0, 0]]
    assert lt.acs_per_step.tolist() == [2, 2, 2] and lt.recurrent_acs == 4
    assert lt.effective_acs_per_step.tolist() == [1, 1, 0]
    with pytest.raises(NeurosimError) as info:
        Network("r", [Layer("r", "linear", 1, 2, neuron=None, recurrent=Recurrent(np.eye(2)))], input_size=1)
    assert info.value.field == "recurrent"
