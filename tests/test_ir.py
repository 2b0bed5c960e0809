"""The IR (neurosim.ir): validation refusals and the JSON round trip.

Every refusal must name the layer (`.where`), the field (`.field`) and carry a
fix ("Fix: ..." in the message), so a user sees one paragraph, not a traceback.
"""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

from neurosim.errors import NeurosimError
from neurosim.ir import Conv2dShape, Layer, Network, Neuron


# -- helpers -----------------------------------------------------------------------
def linear(name: str, n_in: int, n_out: int, **kw) -> Layer:
    return Layer(name, "linear", n_in, n_out, **kw)


def refusal(build) -> NeurosimError:
    """Run `build`, which must be refused with a NeurosimError, and return the error."""
    with pytest.raises(NeurosimError) as info:
        build()
    return info.value


def assert_refusal(exc: NeurosimError, where: str, field: str, *in_fix: str) -> None:
    assert exc.where == where
    assert exc.field == field
    text = str(exc)
    assert text.startswith(f"{where}: field '{field}': ")
    assert "Fix:" in text
    assert exc.fix and f"Fix: {exc.fix}" in text
    for part in in_fix:
        assert part in exc.fix, f"{part!r} not in fix {exc.fix!r}"


def chain(bad: Layer, input_size: int = 4, first_out: int = 16) -> Network:
    """A valid first layer 'fc1' (input_size -> first_out) followed by the layer under test."""
    return Network("net", [linear("fc1", input_size, first_out), bad], input_size=input_size)


def qkv(width: int = 8) -> list[Layer]:
    return [linear("q", width, width, neuron=None, compute="mac"),
            linear("k", width, width), linear("v", width, width)]


# -- a valid network is accepted (so the refusals below are about the one bad field) --
def test_valid_chain_is_accepted():
    net = chain(linear("fc2", 16, 3, inputs=["fc1"], weights=np.zeros((3, 16)), bias=np.zeros(3),
                       neuron_mask=[1, 0, 1], timesteps=2, rate=0.5))
    assert [layer.name for layer in net.layers] == ["fc1", "fc2"]
    assert net.edges == [("fc1", "fc2")]
    assert net["fc2"].neuron_mask.dtype == bool
    assert net["fc2"].live_outputs().tolist() == [True, False, True]


# -- shapes and graph ----------------------------------------------------------------
def test_shapes_that_do_not_chain_are_refused():
    exc = refusal(lambda: chain(linear("fc2", 8, 3, inputs=["fc1"])))
    assert_refusal(exc, "layer 'fc2'", "in_features", "in_features = 16")
    assert "'fc1'" in exc.problem and "16" in exc.problem


def test_first_layer_must_match_network_input_size():
    exc = refusal(lambda: Network("net", [linear("fc1", 5, 16)], input_size=4))
    assert_refusal(exc, "layer 'fc1'", "in_features", "input_size")
    assert "4" in exc.problem and "5" in exc.problem


def test_later_layer_without_inputs_must_match_network_input_size():
    exc = refusal(lambda: chain(linear("fc2", 16, 3)))  # reads the network input, which has 4 features
    assert_refusal(exc, "layer 'fc2'", "in_features", "input_size")


def test_input_naming_a_layer_listed_later_is_refused():
    layers = [linear("fc1", 4, 16), linear("fc2", 16, 16, inputs=["fc3"]), linear("fc3", 16, 16, inputs=["fc1"])]
    exc = refusal(lambda: Network("net", layers, input_size=4))
    assert_refusal(exc, "layer 'fc2'", "inputs", "in order")
    assert "'fc3'" in exc.problem


def test_input_naming_a_missing_layer_is_refused():
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["nope"])))
    assert_refusal(exc, "layer 'fc2'", "inputs")
    assert "'nope'" in exc.problem


def test_duplicate_layer_names_are_refused():
    layers = [linear("fc1", 4, 16), linear("fc1", 16, 16, inputs=["fc1"])]
    exc = refusal(lambda: Network("net", layers, input_size=4))
    assert_refusal(exc, "layer 'fc1'", "name", "unique")


def test_seq_len_must_agree_along_a_chain():
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], seq_len=2)))
    assert_refusal(exc, "layer 'fc2'", "seq_len")


def test_unknown_layer_kind_is_refused():
    exc = refusal(lambda: chain(Layer("fc2", "dense", 16, 3, inputs=["fc1"])))
    assert_refusal(exc, "layer 'fc2'", "kind", "linear", "attention", "conv2d")
    assert "'dense'" in exc.problem


def test_empty_network_is_refused():
    exc = refusal(lambda: Network("net", [], input_size=4))
    assert_refusal(exc, "network 'net'", "layers")


# -- masks -----------------------------------------------------------------------------
@pytest.mark.parametrize("length", [15, 17, 0])
def test_neuron_mask_of_wrong_length_is_refused(length):
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], neuron_mask=np.ones(length))))
    assert_refusal(exc, "layer 'fc2'", "neuron_mask", "length 3")


def test_neuron_mask_must_be_one_dimensional():
    exc = refusal(lambda: chain(linear("fc2", 16, 4, inputs=["fc1"], neuron_mask=np.ones((2, 2)))))
    assert_refusal(exc, "layer 'fc2'", "neuron_mask", "1-D", "length 4")


@pytest.mark.parametrize("length", [1, 3])
def test_head_mask_of_wrong_length_is_refused(length):
    attn = Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], heads=2, head_dim=4,
                 head_mask=np.ones(length, int))
    exc = refusal(lambda: Network("net", [*qkv(), attn], input_size=8))
    assert_refusal(exc, "layer 'attn'", "head_mask", "length 2")


@pytest.mark.parametrize("mask", [[1, 2, 0], [1, 0.5, 0], [1, -1, 0], [1, np.nan, 0]])
def test_neuron_mask_with_values_other_than_0_1_is_refused(mask):
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], neuron_mask=np.array(mask))))
    assert_refusal(exc, "layer 'fc2'", "neuron_mask", "1 for a kept unit")
    assert "0 and 1" in exc.problem


def test_head_mask_with_values_other_than_0_1_is_refused():
    attn = Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], heads=2, head_dim=4, head_mask=[1, 3])
    exc = refusal(lambda: Network("net", [*qkv(), attn], input_size=8))
    assert_refusal(exc, "layer 'attn'", "head_mask")
    assert "0 and 1" in exc.problem


# -- timesteps and other integers ---------------------------------------------------------
@pytest.mark.parametrize("timesteps", [0, -1, -85])
def test_non_positive_timesteps_are_refused(timesteps):
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], timesteps=timesteps)))
    assert_refusal(exc, "layer 'fc2'", "timesteps", ">= 1")
    assert repr(timesteps) in exc.problem


@pytest.mark.parametrize("timesteps", [2.5, True, "4"])
def test_non_integer_timesteps_are_refused(timesteps):
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], timesteps=timesteps)))
    assert_refusal(exc, "layer 'fc2'", "timesteps")


def test_zero_out_features_is_refused():
    exc = refusal(lambda: chain(linear("fc2", 16, 0, inputs=["fc1"])))
    assert_refusal(exc, "layer 'fc2'", "out_features", ">= 1")


# -- weights, bias ------------------------------------------------------------------------
def test_weights_of_wrong_shape_are_refused():
    # (in, out) instead of (out, in)
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], weights=np.zeros((16, 3)))))
    assert_refusal(exc, "layer 'fc2'", "weights", "(out, in)")
    assert "(16, 3)" in exc.problem and "(3, 16)" in exc.problem


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight_is_refused(bad):
    w = np.zeros((3, 16))
    w[1, 7] = bad
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], weights=w)))
    assert_refusal(exc, "layer 'fc2'", "weights", "checkpoint")
    assert "NaN" in exc.problem


def test_bias_of_wrong_shape_is_refused():
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], bias=np.zeros(16))))
    assert_refusal(exc, "layer 'fc2'", "bias")


def test_conv_weights_of_wrong_shape_are_refused():
    conv = Conv2dShape(in_channels=2, out_channels=3, in_height=4, in_width=4, kernel=3, padding=1)
    layer = Layer("conv", "conv2d", 32, 48, conv=conv, weights=np.zeros((3, 2, 2, 2)))
    exc = refusal(lambda: Network("net", [layer], input_size=32))
    assert_refusal(exc, "layer 'conv'", "weights", "(out_c, in_c, k, k)")
    assert "(3, 2, 3, 3)" in exc.problem


# -- rates and neurons ----------------------------------------------------------------------
@pytest.mark.parametrize("rate", [1.5, -0.1, float("nan")])
def test_rate_outside_unit_interval_is_refused(rate):
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], rate=rate)))
    assert_refusal(exc, "layer 'fc2'", "rate", "[0, 1]")


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_rate_at_the_ends_of_the_unit_interval_is_accepted(rate):
    assert chain(linear("fc2", 16, 3, inputs=["fc1"], rate=rate))["fc2"].rate == rate


@pytest.mark.parametrize("leak", [0.0, -0.5, 1.5, float("nan")])
def test_bad_neuron_leak_is_refused(leak):
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], neuron=Neuron("lif", leak=leak))))
    assert_refusal(exc, "layer 'fc2'", "neuron.leak", "1.0 for IF")


@pytest.mark.parametrize("vth", [0.0, -1.0])
def test_non_positive_threshold_is_refused(vth):
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], neuron=Neuron("lif", vth=vth))))
    assert_refusal(exc, "layer 'fc2'", "neuron.vth")


def test_unknown_neuron_model_is_refused():
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], neuron=Neuron("izhikevich"))))
    assert_refusal(exc, "layer 'fc2'", "neuron.model", "if", "lif", "gif")


def test_zero_neuron_levels_is_refused():
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], neuron=Neuron("gif", levels=0))))
    assert_refusal(exc, "layer 'fc2'", "neuron.levels")


@pytest.mark.parametrize("levels, bits", [(1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4)])
def test_spike_bits_of_multilevel_neuron(levels, bits):
    # a spike carries 0..levels, so it needs ceil(log2(levels + 1)) bits
    assert Neuron("gif", levels=levels).spike_bits == bits


# -- attention ------------------------------------------------------------------------------
@pytest.mark.parametrize("inputs", [["q", "k"], ["q"], ["q", "k", "v", "v"]])
def test_attention_without_three_inputs_is_refused(inputs):
    attn = Layer("attn", "attention", 8, 8, inputs=inputs, heads=2, head_dim=4)
    exc = refusal(lambda: Network("net", [*qkv(), attn], input_size=8))
    assert_refusal(exc, "layer 'attn'", "inputs", "Q, K and V")


def test_attention_width_must_be_heads_times_head_dim():
    attn = Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], heads=3, head_dim=4)
    exc = refusal(lambda: Network("net", [*qkv(), attn], input_size=8))
    assert_refusal(exc, "layer 'attn'", "in_features/out_features", "12")


# -- JSON round trip -------------------------------------------------------------------------
def full_network() -> Network:
    """Weights, bias, masks, a conv2d layer, an attention layer and a GIF neuron."""
    conv = Conv2dShape(in_channels=2, out_channels=3, in_height=4, in_width=4, kernel=3, stride=1, padding=1)
    rng = np.random.default_rng(0)
    gif = Neuron("gif", vth=0.75, leak=0.5, levels=3)
    layers = [
        Layer("conv", "conv2d", 32, 48, conv=conv, seq_len=2, timesteps=4, neuron=gif, weight_bits=8,
              weights=rng.normal(size=(3, 2, 3, 3)), bias=rng.normal(size=3), neuron_mask=np.array([1, 0, 1]),
              rate=0.25),
        Layer("q", "linear", 48, 8, inputs=["conv"], seq_len=2, timesteps=3, neuron=None, compute="mac",
              weights=rng.normal(size=(8, 48)), bias=rng.normal(size=8), role="q", block=0),
        Layer("k", "linear", 48, 8, inputs=["conv"], seq_len=2, timesteps=3, neuron=Neuron("lif", 1.25, 0.9),
              neuron_mask=np.array([1, 1, 0, 1, 1, 1, 1, 0]), rate=0.5, role="k", block=0),
        Layer("v", "linear", 48, 8, inputs=["conv"], seq_len=2, timesteps=3, neuron=Neuron("if"),
              compute="ac", role="v", block=0),
        Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], seq_len=2, timesteps=3, heads=2, head_dim=4,
              head_mask=np.array([0, 1]), role="attention", block=0, rate=0.125),
        Layer("fc", "linear", 8, 5, inputs=["attn"], seq_len=2, timesteps=2, weight_bits=4,
              weights=rng.integers(-8, 8, size=(5, 8)).astype(float), layernorm=True, role="output", block=0,
              rate=1.0),
        Layer("res", "linear", 5, 5, inputs=["fc"], seq_len=2, timesteps=2, residual="fc", layernorm=True,
              norm_weight=rng.normal(size=5), norm_bias=rng.normal(size=5), norm_eps=1e-6),
    ]
    return Network("roundtrip", layers, input_size=32, input_rate=0.5, input_spiking=False,
                   metadata={"source": "test", "hidden": 8, "tags": ["a", "b"], "nested": {"x": 1.5}})


def assert_networks_equal(a: Network, b: Network) -> None:
    assert (a.name, a.input_size, a.input_rate, a.input_spiking) == (b.name, b.input_size, b.input_rate,
                                                                      b.input_spiking)
    assert a.metadata == b.metadata
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        for f in fields(Layer):
            va, vb = getattr(la, f.name), getattr(lb, f.name)
            if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
                assert isinstance(va, np.ndarray) and isinstance(vb, np.ndarray), (la.name, f.name)
                assert va.shape == vb.shape, (la.name, f.name)
                assert np.array_equal(va, vb), (la.name, f.name)
            else:
                assert va == vb, (la.name, f.name, va, vb)
                assert type(va) is type(vb), (la.name, f.name)


def test_json_round_trip_keeps_every_field(tmp_path):
    net = full_network()
    path = tmp_path / "net.json"
    net.to_json(path)
    json.loads(path.read_text())  # plain JSON, readable by anything
    back = Network.from_json(path)

    assert_networks_equal(net, back)
    assert back.edges == net.edges == [("conv", "q"), ("conv", "k"), ("conv", "v"),
                                       ("q", "attn"), ("k", "attn"), ("v", "attn"), ("attn", "fc"), ("fc", "res")]
    assert back["res"].residual == "fc" and back["res"].norm_eps == 1e-6
    assert np.array_equal(back["res"].norm_weight, net["res"].norm_weight)
    # Spot checks on what the generic comparison covers, so a silent drop would show by name.
    assert back["conv"].conv == Conv2dShape(2, 3, 4, 4, 3, 1, 1)
    assert back["conv"].conv.out_height == 4 and back["conv"].conv.out_width == 4
    assert back["conv"].neuron == Neuron("gif", 0.75, 0.5, 3)
    assert back["conv"].neuron.spike_bits == 2  # 0..3 needs 2 bits
    assert back["q"].neuron is None and not back["q"].spiking
    assert back["conv"].neuron_mask.dtype == bool and back["conv"].neuron_mask.tolist() == [True, False, True]
    assert back["attn"].head_mask.dtype == bool and back["attn"].head_mask.tolist() == [False, True]
    assert back["attn"].live_outputs().tolist() == [False] * 4 + [True] * 4
    assert back["conv"].live_outputs().sum() == 2 * 16
    assert np.array_equal(back["conv"].weights, net["conv"].weights)
    assert np.array_equal(back["q"].bias, net["q"].bias)
    assert back["fc"].weights.shape == (5, 8)
    assert back["v"].compute == "ac" and back["q"].compute == "mac"
    assert back.compute_of(back["conv"]) == "mac"  # input_spiking=False survived


def test_round_trip_of_a_round_trip_is_identical(tmp_path):
    net = full_network()
    net.to_json(tmp_path / "a.json")
    Network.from_json(tmp_path / "a.json").to_json(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()


def test_from_dict_refuses_an_unknown_layer_field():
    data = full_network().to_dict()
    data["layers"][2]["widht"] = 3
    exc = refusal(lambda: Network.from_dict(data))
    assert_refusal(exc, "network JSON", "layers[2].widht", "in_features", "out_features")


def test_from_json_refuses_an_unknown_layer_field_naming_the_file(tmp_path):
    data = full_network().to_dict()
    data["layers"][0]["timestep"] = 4  # typo of 'timesteps'
    path = tmp_path / "net.json"
    path.write_text(json.dumps(data))
    exc = refusal(lambda: Network.from_json(path))
    assert_refusal(exc, str(path), "layers[0].timestep", "timesteps")


def test_from_dict_refuses_a_missing_input_size():
    data = full_network().to_dict()
    del data["input_size"]
    exc = refusal(lambda: Network.from_dict(data))
    assert_refusal(exc, "network JSON", "input_size", "input_size")


def test_from_dict_validates_layers():
    data = full_network().to_dict()
    data["layers"][3]["in_features"] = 7  # layer 'v' reads 'conv', which has 48 outputs
    exc = refusal(lambda: Network.from_dict(data))
    assert_refusal(exc, "network JSON (layer 'v')", "in_features", "in_features = 48")


# -- regressions: bugs found while writing these tests, now fixed -------------------------------------------------------
def test_to_json_accepts_the_numpy_integers_that_validation_accepts(tmp_path):
    net = Network("n", [linear("fc1", np.int64(4), np.int64(3), timesteps=np.int64(2))], input_size=np.int64(4))
    net.to_json(tmp_path / "n.json")
    back = Network.from_json(tmp_path / "n.json")
    assert back["fc1"].in_features == 4 and back["fc1"].timesteps == 2


@pytest.mark.parametrize("nested, key", [("neuron", "threshold"), ("conv", "kernal")])
def test_from_dict_refuses_an_unknown_nested_field(nested, key):
    data = full_network().to_dict()
    data["layers"][0][nested][key] = 1
    exc = refusal(lambda: Network.from_dict(data))
    assert exc.where == "network JSON"
    assert key in exc.field and "Fix:" in str(exc)


@pytest.mark.parametrize("change,field,words", [
    (dict(residual="nowhere"), "residual", "not a layer listed before it"),
    (dict(residual="a"), "residual", "a residual adds outputs of the same width"),
    (dict(norm_weight=np.ones(4)), "norm_weight", "layernorm: true"),
    (dict(layernorm=True, norm_bias=np.ones(3)), "norm_bias", "one value per output"),
    (dict(layernorm=True, norm_eps=0.0), "norm_eps", "eps"),
])
def test_residual_and_layernorm_parameters_are_checked(change, field, words):
    a = Layer("a", "linear", 4, 6)
    b = Layer("b", "linear", 6, 4, inputs=["a"], **change)
    exc = refusal(lambda: Network("n", [a, b], input_size=4))
    assert exc.where == "layer 'b'" and exc.field == field
    assert words in str(exc)
