"""The IR (neurosim.ir): validation refusals and the JSON round trip.

Every refusal must name the layer (`.where`), the field (`.field`) and carry a
fix ("Fix: ..." in the message), so a user sees one paragraph, not a traceback.
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass

import numpy as np
import pytest

from neurosim.errors import NeurosimError
from neurosim.ir import FORMAT, Attention, Conv2dShape, EncoderTag, Layer, Linear, Network, Neuron, Norm


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
    attn = Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], spec=Attention(2, 4, np.ones(length, int)))
    exc = refusal(lambda: Network("net", [*qkv(), attn], input_size=8))
    assert_refusal(exc, "layer 'attn'", "spec.head_mask", "length 2")


@pytest.mark.parametrize("mask", [[1, 2, 0], [1, 0.5, 0], [1, -1, 0], [1, np.nan, 0]])
def test_neuron_mask_with_values_other_than_0_1_is_refused(mask):
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], neuron_mask=np.array(mask))))
    assert_refusal(exc, "layer 'fc2'", "neuron_mask", "1 for a kept unit")
    assert "0 and 1" in exc.problem


def test_head_mask_with_values_other_than_0_1_is_refused():
    attn = Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], spec=Attention(2, 4, [1, 3]))
    exc = refusal(lambda: Network("net", [*qkv(), attn], input_size=8))
    assert_refusal(exc, "layer 'attn'", "spec.head_mask")
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
    layer = Layer("conv", "conv2d", 32, 48, spec=conv, weights=np.zeros((3, 2, 2, 2)))
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
    attn = Layer("attn", "attention", 8, 8, inputs=inputs, spec=Attention(2, 4))
    exc = refusal(lambda: Network("net", [*qkv(), attn], input_size=8))
    assert_refusal(exc, "layer 'attn'", "inputs", "Q, K and V")


def test_attention_width_must_be_heads_times_head_dim():
    attn = Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], spec=Attention(3, 4))
    exc = refusal(lambda: Network("net", [*qkv(), attn], input_size=8))
    assert_refusal(exc, "layer 'attn'", "in_features/out_features", "12")


# -- JSON round trip -------------------------------------------------------------------------
def full_network() -> Network:
    """Weights, bias, masks, a conv2d layer, an attention layer, a GIF neuron, norms and encoder tags."""
    conv = Conv2dShape(in_channels=2, out_channels=3, in_height=4, in_width=4, kernel=3, stride=1, padding=1)
    rng = np.random.default_rng(0)
    gif = Neuron("gif", vth=0.75, leak=0.5, levels=3)
    layers = [
        Layer("conv", "conv2d", 32, 48, spec=conv, seq_len=2, timesteps=4, neuron=gif, weight_bits=8,
              weights=rng.normal(size=(3, 2, 3, 3)), bias=rng.normal(size=3), neuron_mask=np.array([1, 0, 1]),
              rate=0.25),
        Layer("q", "linear", 48, 8, inputs=["conv"], seq_len=2, timesteps=3, neuron=None, compute="mac",
              weights=rng.normal(size=(8, 48)), bias=rng.normal(size=8), tag=EncoderTag(0, "q")),
        Layer("k", "linear", 48, 8, inputs=["conv"], seq_len=2, timesteps=3, neuron=Neuron("lif", 1.25, 0.9),
              neuron_mask=np.array([1, 1, 0, 1, 1, 1, 1, 0]), rate=0.5, tag=EncoderTag(0, "k")),
        Layer("v", "linear", 48, 8, inputs=["conv"], seq_len=2, timesteps=3, neuron=Neuron("if"),
              compute="ac", tag=EncoderTag(0, "v")),
        Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], seq_len=2, timesteps=3,
              spec=Attention(2, 4, np.array([0, 1])), tag=EncoderTag(0, "attention"), rate=0.125),
        Layer("fc", "linear", 8, 5, inputs=["attn"], seq_len=2, timesteps=2, weight_bits=4,
              weights=rng.integers(-8, 8, size=(5, 8)).astype(float), norm=Norm(), tag=EncoderTag(0, "output"),
              rate=1.0),
        Layer("res", "linear", 5, 5, inputs=["fc"], seq_len=2, timesteps=2,
              norm=Norm(residual="fc", weight=rng.normal(size=5), bias=rng.normal(size=5), eps=1e-6)),
    ]
    return Network("roundtrip", layers, input_size=32, input_rate=0.5, input_spiking=False,
                   metadata={"source": "test", "hidden": 8, "tags": ["a", "b"], "nested": {"x": 1.5}})


def assert_same(va, vb, where) -> None:
    """Equal values of equal types; arrays by shape and content, dataclasses (specs, norms) field by field."""
    assert type(va) is type(vb), (where, va, vb)
    if isinstance(va, np.ndarray):
        assert va.shape == vb.shape and va.dtype == vb.dtype and np.array_equal(va, vb), where
    elif is_dataclass(va):
        for f in fields(va):
            assert_same(getattr(va, f.name), getattr(vb, f.name), (*where, f.name))
    else:
        assert va == vb, (where, va, vb)


def assert_networks_equal(a: Network, b: Network) -> None:
    assert (a.name, a.input_size, a.input_rate, a.input_spiking) == (b.name, b.input_size, b.input_rate,
                                                                      b.input_spiking)
    assert a.metadata == b.metadata
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert_same(la, lb, (la.name,))


def test_json_round_trip_keeps_every_field(tmp_path):
    net = full_network()
    path = tmp_path / "net.json"
    net.to_json(path)
    json.loads(path.read_text())  # plain JSON, readable by anything
    back = Network.from_json(path)

    assert_networks_equal(net, back)
    assert back.edges == net.edges == [("conv", "q"), ("conv", "k"), ("conv", "v"),
                                       ("q", "attn"), ("k", "attn"), ("v", "attn"), ("attn", "fc"), ("fc", "res")]
    assert back["res"].norm.residual == "fc" and back["res"].norm.eps == 1e-6 and back["res"].norm.layernorm
    assert np.array_equal(back["res"].norm.weight, net["res"].norm.weight)
    # Spot checks on what the generic comparison covers, so a silent drop would show by name.
    assert back["conv"].spec == Conv2dShape(2, 3, 4, 4, 3, 1, 1)
    assert back["conv"].spec.out_height == 4 and back["conv"].spec.out_width == 4
    assert back["q"].spec == Linear() and back["q"].tag == EncoderTag(0, "q") and back["q"].norm is None
    assert back["fc"].norm == Norm() and back["conv"].tag is None
    assert back["conv"].neuron == Neuron("gif", 0.75, 0.5, 3)
    assert back["conv"].neuron.spike_bits == 2  # 0..3 needs 2 bits
    assert back["q"].neuron is None and not back["q"].spiking
    assert back["conv"].neuron_mask.dtype == bool and back["conv"].neuron_mask.tolist() == [True, False, True]
    assert back["attn"].spec.head_mask.dtype == bool and back["attn"].spec.head_mask.tolist() == [False, True]
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


@pytest.mark.parametrize("index, nested, key, cls", [
    (0, "neuron", "threshold", "Neuron"), (0, "spec", "kernal", "Conv2dShape"), (4, "spec", "head", "Attention"),
    (6, "norm", "epsilon", "Norm"), (1, "tag", "layer", "EncoderTag")])
def test_from_dict_refuses_an_unknown_nested_field(index, nested, key, cls):
    data = full_network().to_dict()
    data["layers"][index][nested][key] = 1
    exc = refusal(lambda: Network.from_dict(data))
    assert exc.where == "network JSON"
    assert exc.field == f"layers[{index}].{nested}.{key}" and cls in exc.fix and "Fix:" in str(exc)


@pytest.mark.parametrize("change,field,words", [
    (dict(norm=Norm(residual="nowhere")), "norm.residual", "not a layer listed before it"),
    (dict(norm=Norm(residual="a")), "norm.residual", "a residual adds outputs of the same width"),
    (dict(norm=Norm(layernorm=False, residual="<input>", weight=np.ones(4))), "norm.weight", "layernorm to true"),
    (dict(norm=Norm(bias=np.ones(3))), "norm.bias", "one value per output"),
    (dict(norm=Norm(eps=0.0)), "norm.eps", "eps"),
    (dict(norm=Norm(layernorm=False)), "norm", "drop it"),
])
def test_residual_and_layernorm_parameters_are_checked(change, field, words):
    a = Layer("a", "linear", 4, 6)
    b = Layer("b", "linear", 6, 4, inputs=["a"], **change)
    exc = refusal(lambda: Network("n", [a, b], input_size=4))
    assert exc.where == "layer 'b'" and exc.field == field
    assert words in str(exc)


# -- layer kinds: each kind's fields live in its spec, checked by the spec --------------------------------------------
def test_a_linear_layer_gets_its_spec_without_being_given_one():
    layer = linear("fc", 4, 3)
    assert layer.spec == Linear() and layer.n_weights() == 12
    assert layer.live_outputs().tolist() == [True] * 3


def test_a_spec_of_another_kind_is_refused():
    exc = refusal(lambda: chain(linear("fc2", 16, 8, inputs=["fc1"], spec=Attention(2, 4))))
    assert_refusal(exc, "layer 'fc2'", "spec", "Linear", "'attention'")
    assert "Attention" in exc.problem


def test_a_conv2d_layer_without_its_shape_is_refused():
    exc = refusal(lambda: Network("net", [Layer("conv", "conv2d", 32, 48)], input_size=32))
    assert_refusal(exc, "layer 'conv'", "spec", "Conv2dShape(in_channels, out_channels")


def test_attention_spec_refuses_a_neuron_mask_and_points_to_its_head_mask():
    attn = Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], spec=Attention(2, 4), neuron_mask=np.ones(8))
    exc = refusal(lambda: Network("net", [*qkv(), attn], input_size=8))
    assert_refusal(exc, "layer 'attn'", "neuron_mask", "spec.head_mask")


def test_attention_live_outputs_follow_its_live_heads():
    attn = Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], spec=Attention(2, 4, [0, 1]))
    net = Network("net", [*qkv(), attn], input_size=8)
    assert net["attn"].spec.live_heads().tolist() == [False, True]
    assert net["attn"].live_outputs().tolist() == [False] * 4 + [True] * 4
    assert net["attn"].n_weights() == 0


def test_an_encoder_tag_with_an_unknown_role_is_refused():
    exc = refusal(lambda: chain(linear("fc2", 16, 3, inputs=["fc1"], tag=EncoderTag(0, "query"))))
    assert_refusal(exc, "layer 'fc2'", "tag.role", "attn_out", "intermediate")


@pytest.mark.parametrize("index, part, key, value, field, in_fix", [
    (4, "spec", "heads", 0, "spec.heads", ">= 1"),
    (4, "spec", "head_mask", [1, 1, 0], "spec.head_mask", "length 2"),
    (0, "spec", "padding", -1, "spec.padding", "non-negative"),
    (0, "spec", "kernel", 9, "spec.kernel", "smaller kernel"),
    (6, "norm", "eps", -1e-5, "norm.eps", "1e-5"),
    (6, "norm", "weight", [1.0, 2.0], "norm.weight", "one value per output"),
    (1, "tag", "block", -1, "tag.block", "from 0"),
])
def test_a_bad_field_in_a_spec_is_refused_with_the_layer_name_field_path_and_fix(index, part, key, value, field,
                                                                                 in_fix):
    data = full_network().to_dict()
    name = data["layers"][index]["name"]
    data["layers"][index][part][key] = value
    exc = refusal(lambda: Network.from_dict(data))
    assert_refusal(exc, f"network JSON (layer '{name}')", field, in_fix)


# -- JSON format versions ---------------------------------------------------------------------------------------------
# Format 1, as neurosim wrote it before kind specs: every kind's fields flat on every layer (unused ones at their
# defaults), and no "format" key. Written out literally so that the reader of old files stays tested as they were.
FORMAT_1 = """{
  "name": "old", "input_size": 16, "input_rate": 0.5, "input_spiking": true, "metadata": {"source": "format 1"},
  "layers": [
    {"name": "conv", "kind": "conv2d", "in_features": 16, "out_features": 32, "inputs": [], "seq_len": 2,
     "timesteps": 3, "neuron": {"model": "lif", "vth": 1.0, "leak": 0.9, "levels": 1}, "compute": null,
     "weight_bits": 8, "weights": null, "bias": [0.5, -0.5], "heads": 0, "head_dim": 0,
     "conv": {"in_channels": 1, "out_channels": 2, "in_height": 4, "in_width": 4, "kernel": 3, "stride": 1,
              "padding": 1},
     "head_mask": null, "neuron_mask": [1, 0], "rate": 0.25, "layernorm": false, "residual": null,
     "norm_weight": null, "norm_bias": null, "norm_eps": 1e-05, "role": null, "block": null},
    {"name": "q", "kind": "linear", "in_features": 32, "out_features": 8, "inputs": ["conv"], "seq_len": 2,
     "timesteps": 3, "neuron": null, "compute": "mac", "heads": 0, "head_dim": 0, "conv": null,
     "role": "q", "block": 0},
    {"name": "k", "kind": "linear", "in_features": 32, "out_features": 8, "inputs": ["conv"], "seq_len": 2,
     "timesteps": 3, "rate": 0.5, "role": "k", "block": 0},
    {"name": "v", "kind": "linear", "in_features": 32, "out_features": 8, "inputs": ["conv"], "seq_len": 2,
     "timesteps": 3, "rate": 0.5, "role": "v", "block": 0},
    {"name": "attn", "kind": "attention", "in_features": 8, "out_features": 8, "inputs": ["q", "k", "v"],
     "seq_len": 2, "timesteps": 3, "heads": 2, "head_dim": 4, "head_mask": [1, 0], "conv": null, "rate": 0.125,
     "layernorm": false, "residual": null, "role": "attention", "block": 0},
    {"name": "out", "kind": "linear", "in_features": 8, "out_features": 8, "inputs": ["attn"], "seq_len": 2,
     "timesteps": 3, "rate": 0.5, "layernorm": true, "residual": "v",
     "norm_weight": [1, 1, 1, 1, 2, 2, 2, 2], "norm_bias": [0, 0, 0, 0, 0, 0, 0, 0.5], "norm_eps": 1e-06,
     "role": "attn_out", "block": 0},
    {"name": "ffn", "kind": "linear", "in_features": 8, "out_features": 8, "inputs": ["out"], "seq_len": 2,
     "timesteps": 3, "layernorm": true, "role": "intermediate", "block": 0}
  ]
}"""


def test_a_format_1_json_loads_into_the_kind_specs(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(FORMAT_1)
    net = Network.from_json(path)

    assert net["conv"].spec == Conv2dShape(1, 2, 4, 4, 3, 1, 1)
    assert net["conv"].neuron_mask.tolist() == [True, False] and net["conv"].live_outputs().sum() == 16
    attn = net["attn"].spec
    assert (type(attn), attn.heads, attn.head_dim, attn.head_mask.tolist()) == (Attention, 2, 4, [True, False])
    out = net["out"].norm
    assert (out.layernorm, out.residual, out.eps) == (True, "v", 1e-6)
    assert out.weight.tolist() == [1, 1, 1, 1, 2, 2, 2, 2] and out.bias[-1] == 0.5
    assert net["ffn"].norm == Norm()                            # LayerNorm without parameters
    assert net["q"].norm is None and net["conv"].norm is None   # format 1's "layernorm": false
    assert [layer.tag for layer in net.layers] == [None] + [EncoderTag(0, r) for r in
                                                            ("q", "k", "v", "attention", "attn_out", "intermediate")]
    assert [type(layer.spec) for layer in net.layers] == [Conv2dShape, Linear, Linear, Linear, Attention, Linear,
                                                         Linear]
    assert net.metadata == {"source": "format 1"} and net.input_rate == 0.5


def test_a_format_1_json_round_trips_in_the_current_format(tmp_path):
    old = Network.from_dict(json.loads(FORMAT_1))
    old.to_json(tmp_path / "new.json")
    written = json.loads((tmp_path / "new.json").read_text())
    assert written["format"] == FORMAT == 2
    assert written["layers"][4]["spec"] == {"heads": 2, "head_dim": 4, "head_mask": [True, False]}
    assert written["layers"][5]["tag"] == {"block": 0, "role": "attn_out"}
    assert not {"heads", "conv", "layernorm", "residual", "norm_eps", "role", "block"} & set(written["layers"][0])
    assert_networks_equal(old, Network.from_json(tmp_path / "new.json"))


@pytest.mark.parametrize("layer, key, value, in_fix", [
    (1, "heads", 4, "attention"),         # a linear layer with heads
    (4, "conv", {"in_channels": 1}, "conv2d"),
    (2, "block", None, "'block'"),        # a role without its block
])
def test_a_format_1_field_that_the_layer_cannot_have_is_refused_by_its_path(layer, key, value, in_fix):
    data = json.loads(FORMAT_1)
    data["layers"][layer][key] = value
    exc = refusal(lambda: Network.from_dict(data))
    assert_refusal(exc, "network JSON", f"layers[{layer}].{key}", in_fix)


@pytest.mark.parametrize("version", [3, 0, "2", 2.5, True])
def test_an_unknown_format_version_is_refused(version):
    data = full_network().to_dict()
    data["format"] = version
    exc = refusal(lambda: Network.from_dict(data))
    assert_refusal(exc, "network JSON", "format", "upgrade neurosim")
    assert repr(version) in exc.problem


def test_the_current_format_is_written_first_and_read_back():
    data = full_network().to_dict()
    assert next(iter(data)) == "format" and data["format"] == FORMAT
    assert_networks_equal(full_network(), Network.from_dict(json.loads(json.dumps(data))))
