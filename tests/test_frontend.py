"""The PyTorch front end: neurons, the spiking encoder's three modes, extraction into the IR."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

import neurosim
from neurosim.cards import EncoderCard, encoder_network
from neurosim.cost.analytic import structural_counts
from neurosim.errors import NeurosimError
from neurosim.frontend import GIF, LIF, SpikingEncoder, from_torch, rate

VOCAB, HIDDEN, HEADS, INTER, LAYERS, SEQ, CLASSES = 50, 16, 2, 32, 2, 8, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_encoder(timesteps=16, **kw) -> SpikingEncoder:
    torch.manual_seed(0)
    return SpikingEncoder(VOCAB, HIDDEN, HEADS, INTER, LAYERS, SEQ, CLASSES, timesteps=timesteps, **kw)


def tokens(batch: int = 4) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, SEQ), generator=torch.Generator().manual_seed(1))


def trace(neuron: LIF, current: float, steps: int) -> tuple[list[float], list[float]]:
    mem, spikes, mems = None, [], []
    for _ in range(steps):
        s, mem = neuron(torch.tensor([current]), mem)
        spikes.append(float(s))
        mems.append(float(mem))
    return spikes, mems


# -- neurons ---------------------------------------------------------------------------
def test_if_trace_by_hand():
    # I = 0.625 = 5/8, vth = 1, leak = 1 (exact in binary floating point):
    # u1 = .625; u2 = 1.25 spike; u3 = 1.25 + .625 - 1 = .875; u4 = 1.5 spike;
    # u5 = 1.5 + .625 - 1 = 1.125 spike; u6 = .75; u7 = 1.375 spike; u8 = 1.0 spike (u >= vth)
    spikes, mems = trace(LIF(threshold=1.0, leak=1.0), 0.625, 8)
    assert spikes == [0, 1, 0, 1, 1, 0, 1, 1]
    assert mems == [0.625, 1.25, 0.875, 1.5, 1.125, 0.75, 1.375, 1.0]
    # I = 0.6: spikes at steps 2, 4, 5, 7, 9, 10 (6 in 10 = 0.6)
    spikes, mems = trace(LIF(), 0.6, 10)
    assert spikes == [0, 1, 0, 1, 1, 0, 1, 0, 1, 1]
    assert mems == pytest.approx([0.6, 1.2, 0.8, 1.4, 1.0, 0.6, 1.2, 0.8, 1.4, 1.0], abs=1e-6)


def test_lif_trace_with_leak_by_hand():
    # leak 0.5, I = 0.75: u1 = .75; u2 = .375 + .75 = 1.125 spike; u3 = .5625 + .75 - 1 = .3125;
    # u4 = .15625 + .75 = .90625; u5 = .453125 + .75 = 1.203125 spike; u6 = .6015625 + .75 - 1 = .3515625
    spikes, mems = trace(LIF(threshold=1.0, leak=0.5), 0.75, 6)
    assert spikes == [0, 1, 0, 0, 1, 0]
    assert mems == [0.75, 1.125, 0.3125, 0.90625, 1.203125, 0.3515625]


def test_gif_levels():
    g = GIF(levels=3, threshold=1.0)
    assert g.levels == 3
    # I = 2.5: u1 = 2.5 -> floor 2; u2 = 2.5 + 2.5 - 2 = 3 -> 3; u3 = 3 + 2.5 - 3 = 2.5 -> 2; ...
    spikes, mems = trace(g, 2.5, 4)
    assert spikes == [2, 3, 2, 3] and mems == [2.5, 3.0, 2.5, 3.0]
    assert max(trace(GIF(3), 10.0, 5)[0]) == 3           # saturates at `levels`
    assert trace(GIF(3), -1.0, 5)[0] == [0] * 5          # never negative
    assert float(GIF(3).rate(torch.tensor(2.5))) == 2.5  # equilibrium: mean spike value
    assert float(GIF(3).rate(torch.tensor(7.0))) == 3.0


def test_rate_function_and_surrogate_gradient():
    x = torch.tensor([-0.5, 0.3, 0.9, 1.7], requires_grad=True)
    r = rate(x, 1.0)
    assert r.tolist() == pytest.approx([0.0, 0.3, 0.9, 1.0])
    r.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    # spike mode is differentiable through the surrogate, and a learnable threshold gets a gradient
    lif = LIF(threshold=1.0, learn_threshold=True)
    assert isinstance(lif.threshold, nn.Parameter)
    cur = torch.full((5,), 0.7, requires_grad=True)
    mem, total = None, 0
    for _ in range(4):
        s, mem = lif(cur, mem)
        total = total + s.sum()
    total.backward()
    assert cur.grad.abs().sum() > 0 and lif.threshold.grad is not None and lif.threshold.grad != 0


# -- the encoder: equilibrium vs time-stepped ---------------------------------------------
def asr_error(model: SpikingEncoder, toks: torch.Tensor, steps: int) -> float:
    """Mean over spiking layers of the mean |ASR_spike - rate| per neuron."""
    with torch.no_grad():
        model(toks, mode="rate")
        eq = dict(model.last_asr)
        model.timesteps = [steps] * LAYERS
        model(toks, mode="spike")
    return float(np.mean([(model.last_asr[k] - eq[k]).abs().mean().item() for k in eq]))


def test_rate_and_spike_mode_agree_better_as_T_grows():
    # Measured (seed 0): 0.0325 at T=16, 0.0152 at T=64, 0.0108 at T=256. The part that
    # does not vanish (~0.01, in the LayerNorm sublayers) is the per-step LayerNorm and
    # softmax: a nonlinearity of per-step values is not the nonlinearity of their means.
    model, toks = tiny_encoder(), tokens()
    err = {t: asr_error(model, toks, t) for t in (16, 64, 256)}
    assert err[256] < 0.015
    assert err[256] < err[64] < err[16]
    assert err[256] < 0.5 * err[16]
    # a sublayer with no nonlinearity before its neuron converges like 1/T
    with torch.no_grad():
        model(toks, mode="rate")
        eq = model.last_asr["block0.k"]
        model(toks, mode="spike")
    assert (model.last_asr["block0.k"] - eq).abs().max() < 4 / 256


def test_all_modes_record_ir_names_and_stochastic_is_seeded():
    model, toks = tiny_encoder(timesteps=[32, 16]), tokens()
    names = {f"block{b}.{r}" for b in range(LAYERS)
             for r in ("k", "v", "attention", "attn_out", "intermediate", "output")}
    with torch.no_grad():
        for mode in ("rate", "spike", "stochastic"):
            out = model(toks, mode=mode, seed=3)
            assert out.shape == (4, CLASSES)
            assert set(model.last_asr) == names
            assert model.last_asr["block1.intermediate"].shape == (INTER,)
        a = dict(model.last_asr)
        model(toks, mode="stochastic", seed=3)
        assert all(torch.equal(a[k], model.last_asr[k]) for k in names)
        model(toks, mode="stochastic", seed=4)
        assert not all(torch.equal(a[k], model.last_asr[k]) for k in names)
        model(toks, mode="rate")
        eq = model.last_asr
    # Bernoulli regeneration at the carried rates stays near the equilibrium
    assert np.mean([(a[k] - eq[k]).abs().mean().item() for k in names]) < 0.05


def test_rate_mode_trains():
    model, toks = tiny_encoder(), tokens()
    logits = model(toks, mode="rate")
    nn.functional.cross_entropy(logits, torch.zeros(4, dtype=torch.long)).backward()
    assert model.blocks[0].k.weight.grad.abs().sum() > 0


# -- masks ------------------------------------------------------------------------------------
def test_masked_head_outputs_exactly_zero():
    model, toks = tiny_encoder(), tokens()
    blk = model.blocks[0]
    blk.head_mask[1] = 0
    hd = HIDDEN // HEADS
    q, k, v = (torch.rand(2, SEQ, HIDDEN) for _ in range(3))
    out = blk.attend(q, k, v)
    assert torch.all(out[..., hd:] == 0) and torch.any(out[..., :hd] != 0)
    with torch.no_grad():
        for mode in ("rate", "spike", "stochastic"):
            model(toks, mode=mode, seed=0)
            asr = model.last_asr["block0.attention"]
            assert torch.all(asr[hd:] == 0) and torch.any(asr[:hd] > 0), mode


def test_masked_intermediate_neuron_never_spikes():
    model, toks = tiny_encoder(), tokens()
    mask = model.blocks[1].neuron_mask
    mask[::3] = 0
    with torch.no_grad():
        for mode in ("rate", "spike", "stochastic"):
            model(toks, mode=mode, seed=0)
            asr = model.last_asr["block1.intermediate"]
            assert torch.all(asr[mask == 0] == 0), mode
            assert torch.any(asr[mask == 1] > 0), mode


# -- 1-bit weights ------------------------------------------------------------------------------
def test_binary_weights_take_two_values_per_row():
    model = tiny_encoder(binary_weights=True)
    lin = model.blocks[0].intermediate
    w = lin.effective_weight().detach()
    scale = lin.weight.detach().abs().mean(dim=1)
    for row, s in zip(w, scale):
        assert set(row.unique().tolist()) == {-s.item(), s.item()}
    # straight-through: the latent weights still get gradients
    lin(torch.rand(3, HIDDEN)).sum().backward()
    assert lin.weight.grad.abs().sum() > 0
    net = from_torch(model, tokens(2))
    assert all(layer.weight_bits == 1 for layer in net.layers)
    assert all(len(np.unique(row)) == 2 for row in net["block1.output"].weights)


# -- extraction: encoder ------------------------------------------------------------------------
def layout(layer):
    """A layer's kind spec and LayerNorm, without the weights and masks a card does not have."""
    spec = layer.spec
    return type(spec), getattr(spec, "heads", None), getattr(spec, "head_dim", None), \
        layer.norm is not None and layer.norm.layernorm


def test_encoder_extraction_matches_card_layout_and_settings():
    model = tiny_encoder(timesteps=[12, 6], threshold=0.9, leak=0.95, learn_threshold=True)
    model.blocks[1].head_mask[0] = 0
    model.blocks[0].neuron_mask[:5] = 0
    with torch.no_grad():
        model.blocks[1].lif["output"].threshold.fill_(1.25)
    net = neurosim.from_torch(model, tokens())

    card = EncoderCard(name="c", kind="spiking_encoder", source="test", layers=LAYERS, hidden=HIDDEN, heads=HEADS,
                       intermediate=INTER, seq_len=SEQ, timesteps=[12, 6], input_rate=1.0,
                       rates=dict(k=.5, v=.5, attention=.5, attn_out=.5, intermediate=.5, output=.5),
                       rates_source="test")
    ref = encoder_network(card)
    keys = ("name", "kind", "in_features", "out_features", "inputs", "seq_len", "timesteps", "tag", "compute")
    for got, want in zip(net.layers, ref.layers, strict=True):
        assert {k: getattr(got, k) for k in keys} == {k: getattr(want, k) for k in keys}
        assert layout(got) == layout(want) and got.spiking == want.spiking

    assert net.input_size == HIDDEN and net.input_spiking is False
    assert net["block1.attention"].spec.head_mask.tolist() == [False, True]
    assert net["block0.intermediate"].neuron_mask.tolist() == [False] * 5 + [True] * (INTER - 5)
    assert net["block0.k"].neuron.vth == pytest.approx(0.9) and net["block0.k"].neuron.leak == 0.95
    assert net["block0.k"].neuron.model == "lif"
    assert net["block1.output"].neuron.vth == 1.25
    assert net["block0.v"].weights.tolist() == model.blocks[0].v.weight.detach().double().tolist()
    assert net["block0.v"].bias.tolist() == model.blocks[0].v.bias.detach().double().tolist()
    assert all(layer.weight_bits == 32 for layer in net.layers)

    # rates: the spike-mode ASR averaged over live neurons
    for layer in net.layers:
        assert (layer.rate is None) == (not layer.spiking)
    asr = model.last_asr["block0.intermediate"].double().numpy()
    assert net["block0.intermediate"].rate == pytest.approx(asr[5:].mean())
    assert net["block1.attention"].rate == pytest.approx(model.last_asr["block1.attention"][8:].double().mean())
    assert "measured" in net.metadata["rates_source"]
    # the back end takes it as it is
    counts = structural_counts(net)
    assert counts.loc[counts.layer == "block0.k", "macs"].item() > 0   # real embedding in: MACs
    assert counts.loc[counts.layer == "block1.k", "acs"].item() > 0     # spikes in: ACs


def test_encoder_checkpoint_faults_are_refused_naming_the_layer():
    model = tiny_encoder()
    with torch.no_grad():
        model.blocks[1].intermediate.weight[3, 2] = float("nan")
    with pytest.raises(NeurosimError, match=r"layer 'block1\.intermediate'.*NaN"):
        from_torch(model, tokens())
    model = tiny_encoder()
    model.blocks[0].k.weight = nn.Parameter(torch.zeros(HIDDEN, HIDDEN // 2))  # a mis-shaped checkpoint
    with pytest.raises(NeurosimError, match=r"layer 'block0\.k'.*weights.*\(16, 8\)"):
        from_torch(model, tokens())


# -- extraction: nn.Sequential -------------------------------------------------------------------
def test_sequential_mlp_weights_exact_and_rates_measured():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 6), LIF(threshold=0.5), nn.Dropout(0.1), nn.Linear(6, 2), LIF(leak=0.9),
                        nn.Linear(2, 3))
    with torch.no_grad():  # first layer: every neuron gets the current 0.25 = vth / 2 -> rate exactly 1/2
        mlp[0].weight.zero_()
        mlp[0].bias.fill_(0.25)
    x = torch.rand(5, 4)
    net = from_torch(mlp, x, timesteps=16)
    assert [layer.name for layer in net.layers] == ["0", "3", "5"]
    for layer, lin in zip(net.layers, (mlp[0], mlp[3], mlp[5])):
        assert np.array_equal(layer.weights, lin.weight.detach().numpy())
        assert np.array_equal(layer.bias, lin.bias.detach().numpy())
    assert net["0"].neuron.vth == 0.5 and net["0"].neuron.model == "if"
    assert net["3"].neuron.leak == pytest.approx(0.9) and net["3"].neuron.model == "lif"
    assert net["5"].neuron is None and net["5"].rate is None
    assert net["0"].rate == 0.5 and net["0"].timesteps == 16
    assert net.input_spiking is False and net.input_size == 4


def test_sequential_conv_gif_and_spike_train_input():
    seq = nn.Sequential(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), LIF()), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 10), GIF(levels=3, threshold=0.5))
    train = (torch.rand(20, 3, 1, 6, 6, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    net = from_torch(seq, train, time_major=True)
    conv = net["0.0"]
    assert conv.kind == "conv2d" and (conv.spec.out_channels, conv.spec.out_height, conv.spec.kernel) == (4, 6, 3)
    assert conv.out_features == 144 and net["2"].in_features == 144
    assert net["2"].neuron.model == "gif" and net["2"].neuron.levels == 3 and net["2"].neuron.spike_bits == 2
    assert net.input_spiking and net.input_rate == pytest.approx(float(train.mean()))
    assert conv.timesteps == 20 and 0 <= conv.rate <= 1


def test_unsupported_module_is_refused_by_name():
    with pytest.raises(NeurosimError) as info:
        from_torch(nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4)), torch.rand(2, 4))
    assert "LSTM" in str(info.value) and "nn.Linear" in str(info.value) and "module '1'" in str(info.value)
    with pytest.raises(NeurosimError, match="LSTM is not supported"):
        from_torch(nn.LSTM(4, 4), torch.rand(2, 4))
    with pytest.raises(NeurosimError, match="must directly follow"):
        from_torch(nn.Sequential(LIF(), nn.Linear(4, 2)), torch.rand(2, 4))


def test_sequential_faults_are_refused_naming_the_layer():
    mlp = nn.Sequential(nn.Linear(4, 3), LIF(), nn.Linear(3, 2))
    with torch.no_grad():
        mlp[2].weight[1, 1] = float("nan")
    with pytest.raises(NeurosimError, match=r"layer '2': field 'weights': contains NaN"):
        from_torch(mlp, torch.rand(2, 4))
    with pytest.raises(NeurosimError, match=r"layer '2': field 'in_features'"):
        from_torch(nn.Sequential(nn.Linear(4, 3), LIF(), nn.Linear(5, 2)), torch.rand(2, 4))


# -- snnTorch / SpikingJelly, detected by type (stand-ins: neither is a dependency) ---------------
def test_foreign_neurons_detected_when_importable(monkeypatch):
    class Leaky(nn.Module):
        def __init__(self, beta, threshold=1.0, reset_mechanism="subtract"):
            super().__init__()
            self.beta, self.threshold, self.reset_mechanism = torch.tensor(beta), torch.tensor(threshold), reset_mechanism

    class LIFNode(nn.Module):
        def __init__(self, tau=2.0, v_threshold=1.0, v_reset=None, decay_input=True):
            super().__init__()
            self.tau, self.v_threshold, self.v_reset, self.decay_input = tau, v_threshold, v_reset, decay_input

    snn = types.ModuleType("snntorch")
    snn.Leaky = Leaky
    sj, ab, neuron = (types.ModuleType(n) for n in ("spikingjelly", "spikingjelly.activation_based",
                                                     "spikingjelly.activation_based.neuron"))
    neuron.LIFNode = LIFNode
    sj.activation_based, ab.neuron = ab, neuron
    for mod in (snn, sj, ab, neuron):
        monkeypatch.setitem(sys.modules, mod.__name__, mod)

    seq = nn.Sequential(nn.Linear(4, 3), Leaky(beta=0.8, threshold=0.5), nn.Linear(3, 2), LIFNode(tau=4.0))
    net = from_torch(seq, torch.rand(2, 4))
    assert (net["0"].neuron.leak, net["0"].neuron.vth) == (pytest.approx(0.8), 0.5)
    assert (net["0"].neuron.reset_order, net["0"].neuron.fire) == ("leak_first", ">")   # snnTorch's rules
    assert net["2"].neuron.leak == 0.75  # 1 - 1/tau
    assert (net["2"].neuron.reset_order, net["2"].neuron.fire) == ("reset_first", ">=")  # SpikingJelly's
    # SpikingJelly's decay_input divides the input by tau: folded into the layer's weights
    assert np.allclose(net["2"].weights, seq[2].weight.detach().numpy() / 4.0)
    zero = from_torch(nn.Sequential(nn.Linear(4, 3), Leaky(0.9, reset_mechanism="zero")), torch.rand(2, 4))
    assert (zero["0"].neuron.reset, zero["0"].neuron.reset_order) == ("hard", "reset_first")
    hard = from_torch(nn.Sequential(nn.Linear(4, 3), LIFNode(v_reset=-0.5)), torch.rand(2, 4))["0"].neuron
    assert (hard.reset, hard.v_reset, hard.vth) == ("hard", 0.0, 1.5)   # read shifted by v_reset
    with pytest.raises(NeurosimError, match="reset_mechanism"):
        from_torch(nn.Sequential(nn.Linear(4, 3), Leaky(0.9, reset_mechanism="none")), torch.rand(2, 4))


def test_snntorch_leaky_rates_match_snntorch_itself():
    snntorch = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(6, 20), snntorch.Leaky(beta=0.9, threshold=0.5))
    x = torch.rand(4, 6)
    net = from_torch(seq, x, timesteps=40)
    assert net["0"].neuron.model == "lif" and net["0"].neuron.leak == pytest.approx(0.9)
    lin, leaky = seq
    mem, total = leaky.init_leaky(), 0.0
    with torch.no_grad():
        for _ in range(40):
            spk, mem = leaky(lin(x), mem)
            total += spk.mean().item()
    assert net["0"].rate == pytest.approx(total / 40)
