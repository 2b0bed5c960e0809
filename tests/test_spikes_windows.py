"""Conv2d and pool2d in the spike engine: event-driven, spikes equal to torch's convolution, ACs counted
exactly (a padded border's events reach fewer outputs), effective ACs, and the closed form on measured rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurosim.cost.analytic import structural_counts
from neurosim.frontend.neurons import neuron_module
from neurosim.ir import Conv2dShape, Layer, Linear, Network, Neuron, Pool2dShape
from neurosim.spikes import run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def conv_net(stride: int = 1, padding: int = 1, seed: int = 0, zero: bool = False) -> Network:
    """conv (2 -> 3 channels, 6x6, 3x3 kernel) -> sum pool 2x2 (with a neuron) -> linear; quarter-step weights."""
    rng = np.random.default_rng(seed)
    conv = Conv2dShape(2, 3, 6, 6, 3, stride, padding)
    w = rng.integers(-2, 5, size=(3, 2, 3, 3)) / 4
    if zero:
        w[:, :, 0, :] = 0   # a kernel row of zeros: effective ACs skip it
    oh = conv.out_height
    pool = Pool2dShape(3, oh, oh, 2, 2, 0, "sum")
    po = pool.out_height
    return Network("convnet", [
        Layer("conv", "conv2d", 72, 3 * oh * oh, spec=conv, weights=w, bias=np.array([0.125, 0.0, 0.25]),
              neuron=Neuron("lif", 1.0, 0.5)),
        Layer("pool", "pool2d", 3 * oh * oh, 3 * po * po, inputs=["conv"], spec=pool, neuron=Neuron("if", 2.0)),
        Layer("fc", "linear", 3 * po * po, 4, inputs=["pool"], weights=rng.integers(-2, 5, size=(4, 3 * po * po)) / 4,
              neuron=Neuron("lif", 1.0, 0.75))], input_size=72)


def torch_reference(net: Network, x: np.ndarray) -> dict[str, np.ndarray]:
    """The same network in plain torch: F.conv2d, F.avg_pool2d x k^2 (a sum), a matmul, neurosim's neurons."""
    c, p = net["conv"].spec, net["pool"].spec
    mods = {layer.name: neuron_module(layer.neuron, (-1, 1, 1) if layer.kind != "linear" else (-1,))
            for layer in net.layers}
    state, out = {}, {name: [] for name in mods}
    w = torch.from_numpy(net["conv"].weights).float()
    b = torch.from_numpy(net["conv"].bias).float()
    for t in range(x.shape[0]):
        h = torch.from_numpy(x[t]).float().reshape(-1, c.in_channels, c.in_height, c.in_width)
        h = F.conv2d(h, w, b, stride=c.stride, padding=c.padding)
        h, state["conv"] = mods["conv"](h, state.get("conv"))
        out["conv"].append(h.reshape(h.shape[0], -1).numpy())
        h = F.avg_pool2d(h, p.kernel, p.stride, p.padding) * p.kernel ** 2
        h, state["pool"] = mods["pool"](h, state.get("pool"))
        out["pool"].append(h.reshape(h.shape[0], -1).numpy())
        h = h.reshape(h.shape[0], -1) @ torch.from_numpy(net["fc"].weights.T).float()
        h, state["fc"] = mods["fc"](h, state.get("fc"))
        out["fc"].append(h.numpy())
    return {k: np.stack(v).astype(np.uint8) for k, v in out.items()}


def spikes(steps: int = 12, tokens: int = 3, p: float = 0.4, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, tokens, 72)) < p).astype(np.uint8)


def with_tokens(net: Network, tokens: int, steps: int) -> Network:
    from dataclasses import replace
    return Network(net.name, [replace(lay, seq_len=tokens, timesteps=steps) for lay in net.layers], net.input_size)


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0)])
def test_engine_conv_and_pool_spikes_equal_torchs_convolution(stride, padding):
    x = spikes()
    net = with_tokens(conv_net(stride, padding), x.shape[1], x.shape[0])
    trace = run(net, x, record_rasters=True)
    ref = torch_reference(net, x)
    for name in ("conv", "pool", "fc"):
        np.testing.assert_array_equal(trace[name].raster, ref[name], err_msg=name)
    assert all(trace[name].spikes > 0 for name in ("conv", "pool", "fc"))


def test_a_padded_convs_acs_are_counted_by_hand():
    # 1 input channel 3x3, kernel 3, padding 1 -> 3x3 outputs, 2 output channels. A corner input lies in
    # 4 windows (outputs (0,0), (0,1), (1,0), (1,1)), an edge input in 6, the centre in 9; the closed
    # form's uniform count charges every input the mean, 81 / 9 = 9.
    conv = Conv2dShape(1, 2, 3, 3, 3, 1, 1)
    assert conv.input_fan_out().tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
    layer = Layer("c", "conv2d", 9, 18, spec=conv, timesteps=2, weights=np.ones((2, 1, 3, 3)))
    x = np.zeros((2, 1, 9), np.uint8)
    x[0, 0, [0, 4]] = 1       # step 0: the corner and the centre: (4 + 9) x 2 channels = 26 ACs
    x[1, 0, [1, 3, 8]] = 1    # step 1: two edges and a corner: (6 + 6 + 4) x 2 = 32 ACs
    trace = run(Network("c", [layer], input_size=9), x)
    assert trace["c"].acs_per_step.tolist() == [26, 32] and trace["c"].acs == 58
    assert structural_counts(trace.measured_network(Network("c", [layer], input_size=9))).acs[0] == pytest.approx(58)


def test_effective_acs_skip_zero_weights_counted_by_hand():
    # conv as above with the top kernel row zeroed in channel 0: an output reads input row oy - 1 + ky, so
    # ky = 0 is the tap from the row above. The corner (0, 0) feeds outputs (0,0), (0,1), (1,0), (1,1) through
    # taps ky = 1, 1, 0, 0: channel 0 keeps 2 of 4, channel 1 all 4 -> 6 effective of 8 ACs.
    w = np.ones((2, 1, 3, 3))
    w[0, 0, 0, :] = 0
    layer = Layer("c", "conv2d", 9, 18, spec=Conv2dShape(1, 2, 3, 3, 3, 1, 1), timesteps=1, weights=w)
    x = np.zeros((1, 1, 9), np.uint8)
    x[0, 0, 0] = 1
    lt = run(Network("c", [layer], input_size=9), x)["c"]
    assert (lt.acs, lt.effective_acs) == (8, 6)
    # a linear layer: inputs 0 and 2 spike; their weight rows to 3 outputs hold 2 and 1 nonzero weights
    lin = Layer("l", "linear", 3, 3, timesteps=1, weights=np.array([[1.0, 0, 0], [0, 5, 2], [1, 0, 0]]))
    lt = run(Network("l", [lin], input_size=3), np.array([[[1, 0, 1]]], np.uint8))["l"]
    assert (lt.acs, lt.effective_acs) == (6, 3)


@pytest.mark.parametrize("handoff", ["lockstep", "history", "stochastic"])
def test_engine_conv_equals_the_closed_form_on_measured_rates(handoff):
    x = spikes(steps=10, tokens=2)
    net = with_tokens(conv_net(2, 1), 2, 10)
    trace = run(net, x if handoff != "stochastic" else None, handoff=handoff, seed=3)
    counts = structural_counts(trace.measured_network(net))
    for row in counts.itertuples():
        lt = trace[row.layer]
        for col in ("acs", "macs", "neuron_updates"):
            assert getattr(row, col) == pytest.approx(getattr(lt, col), rel=1e-12, abs=1e-9), (row.layer, col)
    assert trace["conv"].acs > 0 and trace["pool"].acs > 0


def test_a_pool_without_a_neuron_gives_real_sums_and_its_reader_does_macs():
    pool = Pool2dShape(1, 4, 4, 2, 2, 0, "avg")
    layers = [Layer("p", "pool2d", 16, 4, spec=pool, neuron=None, timesteps=1),
              Layer("fc", "linear", 4, 2, inputs=["p"], weights=np.ones((2, 4)), neuron=None, timesteps=1)]
    net = Network("pool", layers, input_size=16)
    x = np.zeros((1, 1, 16), np.uint8)
    x[0, 0, [0, 1, 4]] = 1                         # three spikes in the top-left window: average 3/4
    trace = run(net, x)
    assert trace["p"].acs == 3 and trace["p"].macs == 0
    assert trace["fc"].acs == 0 and trace["fc"].macs == 4 * 2
    assert net.compute_of(net["fc"]) == "mac"


def test_a_pool_layer_has_no_weights_nor_bias_and_checks_its_shape():
    from neurosim.errors import NeurosimError
    pool = Pool2dShape(2, 4, 4, 2, 2)
    with pytest.raises(NeurosimError, match="no bias"):
        Network("p", [Layer("p", "pool2d", 32, 8, spec=pool, bias=np.zeros(2))], input_size=32)
    with pytest.raises(NeurosimError) as info:
        Network("p", [Layer("p", "pool2d", 32, 9, spec=pool)], input_size=32)
    assert info.value.field == "out_features"
    assert Layer("x", "linear", 2, 2).spec == Linear()


def test_nonzero_connections_are_the_effective_acs_when_every_input_fires():
    # every input spikes every step: the engine's effective ACs per token and step are exactly the IR's
    # count of nonzero-weight synapses, for conv (taps inside the input only), pool and linear layers
    net = with_tokens(conv_net(2, 1, zero=True), 1, 1)
    net["conv"].neuron_mask = np.array([True, False, True])
    net = Network(net.name, net.layers, net.input_size)
    trace = run(net, np.ones((1, 1, 72), np.uint8))
    conv = net["conv"]
    assert conv.spec.nonzero_connections(conv, conv.live_outputs()) == trace["conv"].effective_acs
    assert trace["conv"].effective_acs < trace["conv"].acs   # the zeroed kernel row
    pool = net["pool"]
    assert pool.spec.nonzero_connections(pool, pool.live_outputs()) == pool.spec.window_taps() * 3
    lin = Layer("l", "linear", 3, 2, weights=np.array([[0.0, 1, 2], [0, 0, 3]]))
    assert lin.spec.nonzero_connections(lin, np.array([True, False])) == 2
