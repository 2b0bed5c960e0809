"""NIR import/export (neurosim.frontend.nir_io): round trips, snnTorch's own export, refusals, files.

Refusals must name the NIR node or IR layer (`.where`), the field (`.field`)
and carry a fix ("Fix: ..." in the message), as everywhere else in neurosim.
"""

from __future__ import annotations

from dataclasses import fields

import nir
import numpy as np
import pytest

from neurosim.cards import load_model
from neurosim.errors import NeurosimError
from neurosim.frontend.nir_io import DT, from_nir, to_nir
from neurosim.ir import Attention, Conv2dShape, Layer, Network, Neuron, Norm


# -- helpers -----------------------------------------------------------------------------
def refusal(build) -> NeurosimError:
    with pytest.raises(NeurosimError) as info:
        build()
    return info.value


def assert_refusal(exc: NeurosimError, where: str, field: str) -> None:
    assert (exc.where, exc.field) == (where, field)
    assert "Fix:" in str(exc) and exc.fix


def assert_same_layers(a: Network, b: Network) -> None:
    """Every Layer field equal (arrays bit for bit), same input size, same edges."""
    assert a.input_size == b.input_size
    assert a.edges == b.edges
    assert [lay.name for lay in a.layers] == [lay.name for lay in b.layers]
    for la, lb in zip(a.layers, b.layers):
        for f in fields(Layer):
            va, vb = getattr(la, f.name), getattr(lb, f.name)
            if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
                assert isinstance(va, np.ndarray) and isinstance(vb, np.ndarray), (la.name, f.name)
                assert va.shape == vb.shape and np.array_equal(va, vb), (la.name, f.name)
            else:
                assert va == vb, (la.name, f.name, va, vb)


def mlp() -> Network:
    rng = np.random.default_rng(7)
    return Network("mlp", [
        Layer("fc1", "linear", 8, 16, weights=rng.normal(size=(16, 8)), bias=rng.normal(size=16),
              neuron=Neuron("lif", vth=1.0, leak=0.9)),
        Layer("fc2", "linear", 16, 4, inputs=["fc1"], weights=rng.normal(size=(4, 16)),  # no bias: nir.Linear
              neuron=Neuron("lif", vth=0.5, leak=0.75)),
    ], input_size=8)


def conv_stack() -> Network:
    rng = np.random.default_rng(11)
    conv = Conv2dShape(in_channels=2, out_channels=4, in_height=6, in_width=6, kernel=3, stride=2, padding=1)
    return Network("convnet", [
        Layer("conv", "conv2d", 72, 36, spec=conv, weights=rng.normal(size=(4, 2, 3, 3)), bias=rng.normal(size=4),
              neuron=Neuron("if", vth=1.5, leak=1.0)),
        Layer("fc", "linear", 36, 5, inputs=["conv"], weights=rng.normal(size=(5, 36)), bias=rng.normal(size=5),
              neuron=Neuron("lif", vth=1.0, leak=0.8)),
    ], input_size=72)


# -- (1) round trips -----------------------------------------------------------------------
def test_mlp_round_trip_is_equal():
    net = mlp()
    graph = to_nir(net)
    assert isinstance(graph.nodes["fc1"], nir.Affine) and isinstance(graph.nodes["fc2"], nir.Linear)
    lif = graph.nodes["fc1.neuron"]
    assert isinstance(lif, nir.LIF)
    assert np.allclose(lif.tau, DT / (1 - 0.9)) and np.allclose(lif.r * DT / lif.tau, 1.0)  # leak = 1 - dt/tau
    assert set(graph.edges) == {("input", "fc1"), ("fc1", "fc1.neuron"), ("fc1.neuron", "fc2"),
                                ("fc2", "fc2.neuron"), ("fc2.neuron", "output")}
    back = from_nir(graph)
    assert_same_layers(net, back)
    assert back.name == "mlp" and back["fc2"].bias is None


def test_conv_stack_round_trip_is_equal():
    net = conv_stack()
    graph = to_nir(net)
    assert isinstance(graph.nodes["conv"], nir.Conv2d) and isinstance(graph.nodes["conv.neuron"], nir.IF)
    assert isinstance(graph.nodes["conv.neuron.flatten"], nir.Flatten)
    assert list(graph.nodes["input"].output_type["output"]) == [2, 6, 6]
    assert ("conv.neuron", "conv.neuron.flatten") in graph.edges and ("conv.neuron.flatten", "fc") in graph.edges
    back = from_nir(graph)
    assert_same_layers(net, back)
    assert back["conv"].spec == Conv2dShape(2, 4, 6, 6, 3, 2, 1)
    assert back["conv"].neuron == Neuron("if", 1.5, 1.0)


def test_neuron_mask_is_exported_as_silent_neurons():
    net = mlp()
    net["fc1"].neuron_mask = np.array([True, False] * 8)
    layer = from_nir(to_nir(net))["fc1"]
    assert not layer.weights[1::2].any() and not layer.bias[1::2].any()
    assert np.array_equal(layer.weights[::2], net["fc1"].weights[::2])


# -- (2) a graph exported by snnTorch itself ------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_snntorch_export_imports_with_its_weights_thresholds_and_leaks():
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")  # snntorch's export needs it but does not declare it
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    # Per-neuron beta and threshold tensors: with scalar ones snnTorch 1.0 writes 0-d LIF
    # parameters that nir's own type check rejects.
    betas, thresholds = (0.9, 0.75), (0.8, 1.25)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 6), snn.Leaky(beta=torch.full((6,), betas[0]), threshold=torch.full((6,), thresholds[0]),
                                         init_hidden=True),
        torch.nn.Linear(6, 3), snn.Leaky(beta=torch.full((3,), betas[1]), threshold=torch.full((3,), thresholds[1]),
                                         init_hidden=True, output=True),
    )
    graph = export_to_nir(model, torch.zeros(1, 8), ignore_dims=[0])

    net = from_nir(graph)
    assert net.input_size == 8
    assert [(lay.name, lay.inputs, lay.in_features, lay.out_features) for lay in net.layers] == [
        ("0", [], 8, 6), ("2", ["0"], 6, 3)]
    for layer, linear, leaky in ((net["0"], model[0], model[1]), (net["2"], model[2], model[3])):
        assert np.array_equal(layer.weights, linear.weight.detach().numpy())
        assert np.array_equal(layer.bias, linear.bias.detach().numpy())
        assert layer.neuron.model == "lif"
        assert layer.neuron.vth == float(leaky.threshold[0])
        assert layer.neuron.leak == pytest.approx(float(leaky.beta[0]), rel=1e-6)  # beta = 1 - dt/tau


# -- (3) refusals ---------------------------------------------------------------------------
def small_affine(n_in: int = 4, n_out: int = 3) -> nir.Affine:
    rng = np.random.default_rng(0)
    return nir.Affine(weight=rng.normal(size=(n_out, n_in)), bias=np.zeros(n_out))


def test_unsupported_node_type_is_refused_by_name():
    ones = np.ones(3)
    graph = nir.NIRGraph.from_list(small_affine(), nir.LI(tau=ones, r=ones, v_leak=0 * ones))
    exc = refusal(lambda: from_nir(graph))
    assert_refusal(exc, "NIR node 'li'", "type")
    assert "LI" in exc.problem
    for kind in ("Affine", "Conv2d", "IF", "LIF", "CubaLIF", "Flatten", "Scale"):
        assert kind in exc.fix


def test_threshold_node_is_refused_with_the_reason():
    graph = nir.NIRGraph.from_list(small_affine(), nir.Threshold(threshold=np.ones(3)))
    exc = refusal(lambda: from_nir(graph))
    assert_refusal(exc, "NIR node 'threshold'", "type")
    assert "membrane" in exc.problem


def test_non_uniform_threshold_is_refused():
    ones = np.ones(3)
    lif = nir.LIF(tau=ones * 1e-3, r=ones * 10, v_leak=0 * ones, v_threshold=np.array([1.0, 1.0, 2.0]))
    exc = refusal(lambda: from_nir(nir.NIRGraph.from_list(small_affine(), lif)))
    assert_refusal(exc, "NIR node 'lif'", "v_threshold")
    assert "1 to 2" in exc.problem


def test_tau_shorter_than_dt_is_refused_naming_dt():
    ones = np.ones(3)
    lif = nir.LIF(tau=ones * 1e-3, r=ones * 10, v_leak=0 * ones, v_threshold=ones)  # snnTorch-style, beta 0.9
    exc = refusal(lambda: from_nir(nir.NIRGraph.from_list(small_affine(), lif), dt=1.0))
    assert_refusal(exc, "NIR node 'lif'", "tau")
    assert "dt" in exc.fix


def test_exporting_attention_is_refused():
    rng = np.random.default_rng(0)
    qkv = [Layer(n, "linear", 8, 8, weights=rng.normal(size=(8, 8))) for n in "qkv"]
    attn = Layer("attn", "attention", 8, 8, inputs=["q", "k", "v"], spec=Attention(2, 4))
    exc = refusal(lambda: to_nir(Network("enc", [*qkv, attn], input_size=8)))
    assert_refusal(exc, "layer 'attn'", "kind")


def test_exporting_a_layer_without_weights_is_refused():
    net = Network("card", [Layer("fc1", "linear", 8, 4)], input_size=8)
    exc = refusal(lambda: to_nir(net))
    assert_refusal(exc, "layer 'fc1'", "weights")


def test_exporting_a_residual_add_is_refused():
    rng = np.random.default_rng(0)
    a = Layer("a", "linear", 8, 8, weights=rng.normal(size=(8, 8)))
    b = Layer("b", "linear", 8, 8, inputs=["a"], weights=rng.normal(size=(8, 8)), norm=Norm(residual="a"))
    exc = refusal(lambda: to_nir(Network("res", [a, b], input_size=8)))
    assert_refusal(exc, "layer 'b'", "norm.residual")


def test_exporting_layernorm_parameters_is_refused_but_a_bare_layernorm_is_not():
    rng = np.random.default_rng(0)
    a = Layer("a", "linear", 8, 8, weights=rng.normal(size=(8, 8)))
    b = Layer("b", "linear", 8, 8, inputs=["a"], weights=rng.normal(size=(8, 8)), norm=Norm(bias=np.zeros(8)))
    exc = refusal(lambda: to_nir(Network("ln", [a, b], input_size=8)))
    assert_refusal(exc, "layer 'b'", "norm.weight/norm.bias")
    bare = Layer("b", "linear", 8, 8, inputs=["a"], weights=rng.normal(size=(8, 8)), norm=Norm())
    assert "b" in to_nir(Network("ln", [a, bare], input_size=8)).nodes


# -- other conventions ----------------------------------------------------------------------
def test_scale_folds_into_the_weights_it_feeds():
    affine, scale = small_affine(), np.array([1.0, 2.0, 0.5, -1.0])
    net = from_nir(nir.NIRGraph.from_list(nir.Scale(scale=scale), affine))
    assert np.array_equal(net.layers[0].weights, affine.weight * scale)
    assert net.layers[0].neuron is None  # no neuron node: a real-valued output


def test_cuba_lif_is_read_as_lif_and_noted():
    dt, ones = DT, np.ones(3)
    tau_mem, tau_syn = dt / (1 - 0.8), dt  # snnTorch Synaptic(alpha=0, beta=0.8) as it exports
    cuba = nir.CubaLIF(tau_syn=ones * tau_syn, tau_mem=ones * tau_mem, r=ones * tau_mem / dt, v_leak=0 * ones,
                       v_threshold=ones * 0.7, w_in=ones * tau_syn / dt)
    affine = small_affine()
    net = from_nir(nir.NIRGraph.from_list(affine, cuba))
    layer = net.layers[0]
    assert layer.neuron.model == "lif" and layer.neuron.vth == 0.7
    assert layer.neuron.leak == pytest.approx(0.8, rel=1e-12)
    assert np.array_equal(layer.weights, affine.weight)  # gain 1: weights kept as they are
    assert "tau_syn" in net.metadata["nir_notes"][0]


# -- (4) files ------------------------------------------------------------------------------
@pytest.mark.parametrize("build", [mlp, conv_stack])
def test_written_file_reads_back(tmp_path, build):
    net = build()
    path = tmp_path / f"{net.name}.nir"
    nir.write(path, to_nir(net))
    back = from_nir(path)
    assert_same_layers(net, back)
    assert back.name == net.name
    assert_same_layers(net, load_model(str(path)))  # the CLI's --model path


def test_a_file_that_is_not_nir_is_refused(tmp_path):
    path = tmp_path / "broken.nir"
    path.write_text("not hdf5")
    assert_refusal(refusal(lambda: from_nir(path)), str(path), "file")
