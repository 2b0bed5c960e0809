"""NIR import/export (neurosim.frontend.nir_io): round trips, snnTorch's own export, refusals, files.

Refusals must name the NIR node or IR layer (`.where`), the field (`.field`)
and carry a fix ("Fix: ..." in the message), as everywhere else in neurosim.
"""

from __future__ import annotations

from dataclasses import fields, replace

import nir
import numpy as np
import pytest

from neurosim.cards import load_model
from neurosim.errors import NeurosimError
from neurosim.frontend.nir_io import DT, from_nir, to_nir
from neurosim.frontend.nir_neurons import NIRConventionWarning
from neurosim.ir import Attention, Conv2dShape, Layer, Network, Neuron, Norm, Pool2dShape

# Exports of neurosim's default neuron (subtract reset, >=) warn by design; the tests that are about it ask for it.
pytestmark = pytest.mark.filterwarnings("ignore::neurosim.frontend.nir_neurons.NIRConventionWarning")


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
    with pytest.warns(NIRConventionWarning, match="subtract reset"):
        graph = to_nir(net)
    assert isinstance(graph.nodes["fc1"], nir.Affine) and isinstance(graph.nodes["fc2"], nir.Linear)
    lif = graph.nodes["fc1.neuron"]
    assert isinstance(lif, nir.LIF)
    assert np.allclose(lif.tau, DT / (1 - 0.9)) and np.allclose(lif.r * DT / lif.tau, 1.0)  # leak = 1 - dt/tau
    assert set(graph.edges) == {("input", "fc1"), ("fc1", "fc1.neuron"), ("fc1.neuron", "fc2"),
                                ("fc2", "fc2.neuron"), ("fc2.neuron", "output")}
    assert graph.metadata["neurosim"]["neurons"]["fc1.neuron"] == {"reset": "subtract", "reset_order": "leak_first",
                                                                   "fire": ">=", "v_reset": 0.0}
    back = from_nir(graph)   # timesteps and neuron conventions from the metadata neurosim wrote
    assert_same_layers(net, back)
    assert back.name == "mlp" and back["fc2"].bias is None


def test_conv_stack_round_trip_is_equal():
    net = conv_stack()
    graph = to_nir(net)
    assert isinstance(graph.nodes["conv"], nir.Conv2d) and isinstance(graph.nodes["conv.neuron"], nir.IF)
    assert np.allclose(graph.nodes["conv.neuron"].r * DT, 1.0)   # dv/dt = R I: a gain of R dt = 1
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

    with pytest.warns(NIRConventionWarning, match="reset='subtract'"):
        net = from_nir(graph, timesteps=5)
    assert net.input_size == 8
    assert [(lay.name, lay.inputs, lay.in_features, lay.out_features) for lay in net.layers] == [
        ("0", [], 8, 6), ("2", ["0"], 6, 3)]
    for layer, linear, leaky in ((net["0"], model[0], model[1]), (net["2"], model[2], model[3])):
        assert np.array_equal(layer.weights, linear.weight.detach().numpy())
        assert np.array_equal(layer.bias, linear.bias.detach().numpy())
        assert layer.neuron.model == "lif" and layer.timesteps == 5
        assert layer.neuron.vth == float(leaky.threshold[0])
        assert layer.neuron.leak == pytest.approx(float(leaky.beta[0]), rel=1e-6)  # beta = 1 - dt/tau
        # as NIR defines the node; snnTorch writes its subtract-reset Leaky the same way
        assert (layer.neuron.reset, layer.neuron.reset_order, layer.neuron.fire) == ("hard", "reset_first", ">")
    sub = from_nir(graph, timesteps=5, reset="subtract")["0"].neuron
    assert (sub.reset, sub.reset_order, sub.fire) == ("subtract", "leak_first", ">")   # snnTorch's Leaky


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


def test_a_reset_potential_that_differs_between_neurons_is_refused():
    ones = np.ones(3)
    lif = nir.LIF(tau=ones * 1e-3, r=ones * 10, v_leak=0 * ones, v_threshold=ones, v_reset=np.array([0.0, 0, -1]))
    exc = refusal(lambda: from_nir(nir.NIRGraph.from_list(small_affine(), lif), timesteps=1))
    assert_refusal(exc, "NIR node 'lif'", "v_reset")


def test_tau_shorter_than_dt_is_refused_naming_dt():
    ones = np.ones(3)
    lif = nir.LIF(tau=ones * 1e-3, r=ones * 10, v_leak=0 * ones, v_threshold=ones)  # snnTorch-style, beta 0.9
    exc = refusal(lambda: from_nir(nir.NIRGraph.from_list(small_affine(), lif), dt=1.0, timesteps=1))
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
    net = from_nir(nir.NIRGraph.from_list(nir.Scale(scale=scale), affine), timesteps=1)
    assert np.array_equal(net.layers[0].weights, affine.weight * scale)
    assert net.layers[0].neuron is None  # no neuron node: a real-valued output


def test_cuba_lif_is_read_with_its_synaptic_current():
    dt, ones = DT, np.ones(3)
    tau_mem, tau_syn = dt / (1 - 0.8), dt / (1 - 0.5)  # snnTorch Synaptic(alpha=0.5, beta=0.8) as it exports
    cuba = nir.CubaLIF(tau_syn=ones * tau_syn, tau_mem=ones * tau_mem, r=ones * tau_mem / dt, v_leak=0 * ones,
                       v_threshold=ones * 0.7, w_in=ones * tau_syn / dt)
    affine = small_affine()
    layer = from_nir(nir.NIRGraph.from_list(affine, cuba), timesteps=4).layers[0]
    assert layer.neuron.model == "cubalif" and layer.neuron.vth == 0.7
    assert layer.neuron.leak == pytest.approx(0.8, rel=1e-12) and layer.neuron.syn_decay == pytest.approx(0.5)
    assert np.array_equal(layer.weights, affine.weight)  # gain 1: weights kept as they are


def test_a_graph_without_a_timestep_count_is_refused_and_the_input_gives_one():
    graph = nir.NIRGraph.from_list(small_affine(), nir.IF(r=np.ones(3) / DT, v_threshold=np.ones(3)))
    exc = refusal(lambda: from_nir(graph))
    assert_refusal(exc, "NIR graph", "timesteps")
    assert "inputs=" in exc.fix
    net = from_nir(graph, inputs=np.zeros((7, 1, 4), np.uint8))
    assert [lay.timesteps for lay in net.layers] == [7]


def test_if_and_lif_take_one_euler_step_of_dt_and_v_leak_is_a_constant_current():
    affine, ones = small_affine(), np.ones(3)
    # IF: dv/dt = R I, so R = 2/dt doubles the weights; LIF: tau dv/dt = v_leak - v + R I
    net = from_nir(nir.NIRGraph.from_list(affine, nir.IF(r=2 * ones / DT, v_threshold=ones)), timesteps=1)
    assert np.allclose(net.layers[0].weights, 2 * affine.weight)
    tau = DT / (1 - 0.75)
    lif = nir.LIF(tau=ones * tau, r=ones, v_leak=ones * 0.5, v_threshold=ones, v_reset=ones * -0.25)
    layer = from_nir(nir.NIRGraph.from_list(affine, lif), timesteps=1).layers[0]
    assert np.allclose(layer.weights, affine.weight * 0.25)     # gain R dt / tau = 0.25
    assert np.allclose(layer.bias, 0.25 * 0.5)                  # (dt / tau) v_leak every step
    assert (layer.neuron.reset, layer.neuron.v_reset, layer.neuron.fire) == ("hard", -0.25, ">")


def test_per_neuron_thresholds_and_time_constants_are_read_per_neuron():
    affine, ones = small_affine(), np.ones(3)
    taus = DT / (1 - np.array([0.5, 0.75, 0.875]))
    lif = nir.LIF(tau=taus, r=taus / DT, v_leak=0 * ones, v_threshold=np.array([1.0, 1.0, 2.0]))
    neuron = from_nir(nir.NIRGraph.from_list(affine, lif), timesteps=1).layers[0].neuron
    assert neuron.vth.tolist() == [1.0, 1.0, 2.0] and np.allclose(neuron.leak, [0.5, 0.75, 0.875])


def test_unit_r_puts_the_gain_into_the_weights():
    net = mlp()
    graph = to_nir(net, unit_r=True)
    lif = graph.nodes["fc1.neuron"]
    assert np.all(lif.r == 1) and np.allclose(graph.nodes["fc1"].weight, net["fc1"].weights / (1 - 0.9))
    back = from_nir(graph)
    assert np.allclose(back["fc1"].weights, net["fc1"].weights) and np.allclose(back["fc1"].bias, net["fc1"].bias)


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


def pooled_stack() -> Network:
    """conv -> LIF -> sum pool -> IF -> (flatten) -> linear, as NIR graphs of spiking CNNs have them."""
    rng = np.random.default_rng(3)
    conv = Conv2dShape(1, 2, 6, 6, 3, 1, 1)
    pool = Pool2dShape(2, 6, 6, 2, 2, 0, "sum")
    nir_lif = dict(reset="hard", reset_order="reset_first", fire=">")
    return Network("pooled", [
        Layer("conv", "conv2d", 36, 72, spec=conv, weights=rng.normal(size=(2, 1, 3, 3)),
              neuron=Neuron("lif", 1.0, 0.5, **nir_lif)),
        Layer("pool", "pool2d", 72, 18, inputs=["conv"], spec=pool, neuron=Neuron("if", 2.0, 1.0, **nir_lif)),
        Layer("fc", "linear", 18, 3, inputs=["pool"], weights=rng.normal(size=(3, 18)), neuron=None),
    ], input_size=36)


def test_pooling_round_trips_through_nir_and_snntorch_reads_an_average_pool():
    net = pooled_stack()
    graph = to_nir(net)
    assert isinstance(graph.nodes["pool"], nir.SumPool2d) and isinstance(graph.nodes["pool.neuron"], nir.IF)
    assert ("pool.neuron", "pool.neuron.flatten") in graph.edges
    assert_same_layers(net, from_nir(graph))
    avg = replace(net["pool"], spec=replace(net["pool"].spec, mode="avg"), neuron=None)
    graph = to_nir(Network("avg", [net["conv"], avg, net["fc"]], input_size=36))
    assert isinstance(graph.nodes["pool"], nir.AvgPool2d)
    pytest.importorskip("snntorch")
    import torch
    from snntorch.import_nir import import_from_nir
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in import_from_nir(graph).modules())


def test_from_torch_reads_an_average_pool_and_its_rates_are_the_engines():
    torch = pytest.importorskip("torch")
    from neurosim.frontend import LIF, from_torch
    from neurosim.spikes import run

    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), LIF(0.5, 0.5), torch.nn.AvgPool2d(2),
                              LIF(0.25), torch.nn.Flatten(), torch.nn.Linear(18, 3), LIF(1.0))
    with torch.no_grad():
        seq[0].weight.copy_(torch.randint(-2, 5, seq[0].weight.shape) / 4)
        seq[0].bias.zero_()
        seq[5].weight.copy_(torch.randint(-2, 5, seq[5].weight.shape) / 4)
    x = (torch.rand(8, 1, 1, 6, 6, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    net = from_torch(seq, x, time_major=True)
    assert [lay.kind for lay in net.layers] == ["conv2d", "pool2d", "linear"]
    assert net["2"].spec == Pool2dShape(2, 6, 6, 2, 2, 0, "avg")
    trace = run(net, x.reshape(8, 1, 36).numpy().astype(np.uint8))
    for layer in net.layers:
        assert trace[layer.name].rate == pytest.approx(layer.rate, abs=1e-12), layer.name
