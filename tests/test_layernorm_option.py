"""SpikingEncoder's layernorm option: what LayerNorm normalizes by (each step's input, the running mean of the
steps so far, or statistics frozen at calibration), checked step by step by hand, and what the cost model charges."""

from __future__ import annotations

import pytest
import torch

from neurosim.cost.analytic import structural_counts
from neurosim.errors import NeurosimError
from neurosim.frontend import SpikingEncoder, from_torch
from neurosim.frontend.checkpoint import load_encoder
from neurosim.ir import NETWORK_INPUT, Layer, Network, Neuron, Norm
from neurosim.pruning.retrain import clone_encoder

VOCAB, HIDDEN, HEADS, INTER, SEQ, CLASSES = 50, 16, 2, 32, 8, 3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def encoder(layers=1, timesteps=3, **kw) -> SpikingEncoder:
    torch.manual_seed(0)
    model = SpikingEncoder(VOCAB, HIDDEN, HEADS, INTER, layers, SEQ, CLASSES, timesteps=timesteps, **kw)
    with torch.no_grad():   # LayerNorm gains and biases away from torch's 1 and 0, so the affine map shows
        for ln in (model.blocks[0].ln1, model.blocks[0].ln2):
            ln.weight.uniform_(0.5, 2.0)
            ln.bias.uniform_(-0.5, 0.5)
    return model.eval()


def tokens(batch: int = 4) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, SEQ), generator=torch.Generator().manual_seed(1))


def record_block0(model: SpikingEncoder, mode: str, seed: int | None = None) -> dict[str, list[torch.Tensor]]:
    """Every call's attn_out current (W a + b), ln1 input and ln1 output of block 0, in call order."""
    blk, seen = model.blocks[0], {"current": [], "ln_in": [], "ln_out": []}

    def keep_current(module, inputs, output) -> None:
        seen["current"].append(output.detach().clone())

    def keep_ln(module, inputs, output) -> None:
        seen["ln_in"].append(inputs[0].detach().clone())
        seen["ln_out"].append(output.detach().clone())
    hooks = [blk.attn_out.register_forward_hook(keep_current), blk.ln1.register_forward_hook(keep_ln)]
    try:
        with torch.no_grad():
            model(tokens(), mode=mode, seed=seed)
    finally:
        for h in hooks:
            h.remove()
    return seen


def layernorm_by_hand(z: torch.Tensor, ln) -> torch.Tensor:
    mean = z.sum(-1, keepdim=True) / z.shape[-1]
    var = ((z - mean) ** 2).sum(-1, keepdim=True) / z.shape[-1]
    return (z - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def test_per_step_layernorm_normalizes_each_steps_own_input():
    model = encoder()
    assert model.layernorm == "step"   # the default: what every earlier checkpoint ran
    emb = model.embedding(tokens()).detach()   # block 0's residual: the embedding, the same every step
    seen = record_block0(model, "spike")
    assert len(seen["ln_in"]) == 3
    for current, ln_in in zip(seen["current"], seen["ln_in"]):
        torch.testing.assert_close(ln_in, current + emb, rtol=0, atol=0)


def test_running_mean_layernorm_step_t_is_the_affine_map_of_the_mean_of_steps_1_to_t():
    model = encoder(layernorm="running_mean")
    emb = model.embedding(tokens()).detach()
    seen = record_block0(model, "spike")
    currents = [c + emb for c in seen["current"]]
    assert len(seen["ln_in"]) == 3
    for t in range(3):
        mean = sum(currents[: t + 1]) / (t + 1)
        torch.testing.assert_close(seen["ln_in"][t], mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(seen["ln_out"][t], layernorm_by_hand(mean, model.blocks[0].ln1),
                                   rtol=1e-5, atol=1e-5)
    # step 1 has no earlier steps: the running mean is that step's own input
    torch.testing.assert_close(seen["ln_in"][0], currents[0], rtol=0, atol=0)


def test_running_mean_in_stochastic_mode_runs_over_the_sublayers_own_steps():
    model = encoder(timesteps=[[2, 2, 2, 5, 2, 2]], layernorm="running_mean")
    emb = model.embedding(tokens()).detach()
    seen = record_block0(model, "stochastic", seed=3)
    assert len(seen["ln_in"]) == 5   # t_FC = 5 steps of the attn_out sublayer
    for t in range(5):
        mean = sum(c + emb for c in seen["current"][: t + 1]) / (t + 1)
        torch.testing.assert_close(seen["ln_in"][t], mean, rtol=1e-6, atol=1e-6)


def test_running_mean_leaves_rate_mode_alone_and_changes_spike_mode():
    step, running = encoder(layers=2, timesteps=8), encoder(layers=2, timesteps=8, layernorm="running_mean")
    with torch.no_grad():
        assert torch.equal(step(tokens(), mode="rate"), running(tokens(), mode="rate"))
        assert torch.equal(step(tokens(), mode="rate_t", seed=2), running(tokens(), mode="rate_t", seed=2))
        assert not torch.equal(step(tokens(), mode="spike"), running(tokens(), mode="spike"))


def save(model: SpikingEncoder, path, **config_changes) -> None:
    config = dict(vocab_size=VOCAB, hidden=HIDDEN, heads=HEADS, intermediate=INTER, layers=len(model.blocks),
                  seq_len=SEQ, classes=CLASSES, timesteps=model.timesteps_config(), **config_changes)
    torch.save({"config": config, "state_dict": model.state_dict(), "sample_tokens": tokens(2)}, path)


def test_a_checkpoint_without_the_option_keeps_per_step_layernorm_exactly(tmp_path):
    model = encoder(layers=2, timesteps=8)
    save(model, tmp_path / "old.pt")                                 # saved before the option existed
    save(model, tmp_path / "new.pt", layernorm="running_mean")
    old, _ = load_encoder(tmp_path / "old.pt")
    new, _ = load_encoder(tmp_path / "new.pt")
    assert (old.layernorm, new.layernorm) == ("step", "running_mean")
    with torch.no_grad():
        assert torch.equal(old(tokens(), mode="spike"), model(tokens(), mode="spike"))
        assert torch.equal(new(tokens(), mode="spike"),
                           encoder(layers=2, timesteps=8, layernorm="running_mean")(tokens(), mode="spike"))
    assert clone_encoder(new).layernorm == "running_mean"   # pruning's copies keep it


def test_an_unknown_layernorm_is_refused(tmp_path):
    with pytest.raises(ValueError, match="layernorm must be one of step, running_mean, frozen, got 'batch'"):
        encoder(layernorm="batch")
    save(encoder(), tmp_path / "bad.pt", layernorm="batch")
    with pytest.raises(NeurosimError, match="config.layernorm.*expected one of step, running_mean, frozen"):
        load_encoder(tmp_path / "bad.pt")


def calibrated(**kw) -> SpikingEncoder:
    model = encoder(layernorm="frozen", **kw)
    model.calibrate_layernorm(tokens(6))
    return model


def test_each_layernorm_option_is_priced_by_its_ops_per_element():
    models = {"step": encoder(timesteps=5), "running_mean": encoder(timesteps=5, layernorm="running_mean"),
              "frozen": calibrated(timesteps=5)}
    nets = {ln: from_torch(model, tokens(2)) for ln, model in models.items()}
    assert [nets[ln]["block0.attn_out"].norm.statistics for ln in models] == ["step", "running_mean", "frozen"]
    # per LayerNorm: 8 tokens x 5 steps x 16 outputs = 640 elements; 6 ops each, 7 with the running mean's
    # accumulator, 2 with frozen statistics (residual add, affine)
    for ln, per_element in (("step", 6), ("running_mean", 7), ("frozen", 2)):
        ops = structural_counts(nets[ln], activity=False).set_index("layer").other_ops
        assert ops["block0.attn_out"] == ops["block0.output"] == 640 * per_element
    again = Network.from_dict(nets["frozen"].to_dict())
    assert again["block0.output"].norm.statistics == "frozen"


def test_layernorm_statistics_on_a_layer_without_layernorm_are_refused():
    norm = Norm(layernorm=False, residual=NETWORK_INPUT, statistics="frozen")
    with pytest.raises(NeurosimError, match="norm.statistics"):
        Network("n", [Layer("a", "linear", 4, 4, neuron=Neuron(), norm=norm)], input_size=4)
    with pytest.raises(NeurosimError, match="norm.statistics.*expected one of step, running_mean, frozen"):
        Network("n", [Layer("a", "linear", 4, 4, neuron=Neuron(), norm=Norm(residual=NETWORK_INPUT,
                                                                             statistics="batch"))], input_size=4)


def test_frozen_statistics_are_the_calibration_means_of_each_tokens_mean_and_variance():
    model, step = calibrated(layers=2), encoder(layers=2)
    seen = {}

    def keep(module, inputs) -> None:
        seen.setdefault(id(module), []).append(inputs[0].detach().clone())
    hooks = [ln.register_forward_pre_hook(keep) for blk in step.blocks for ln in (blk.ln1, blk.ln2)]
    with torch.no_grad():
        step(tokens(6), mode="rate")
    for h in hooks:
        h.remove()
    for b, blk in enumerate(step.blocks):
        for i, ln in enumerate((blk.ln1, blk.ln2)):
            z = seen[id(ln)][0]                                      # (6 sentences, 8 tokens, 16 features)
            mean = z.sum(-1) / 16
            var = ((z - mean.unsqueeze(-1)) ** 2).sum(-1) / 16
            torch.testing.assert_close(model.layernorm_stats[b, i], torch.stack([mean.mean(), var.mean()]))


def test_frozen_layernorm_step_is_the_affine_map_of_that_steps_input_computed_by_hand():
    model = calibrated()
    blk, emb = model.blocks[0], model.embedding(tokens()).detach()
    currents, ln_out = [], []
    hooks = [blk.attn_out.register_forward_hook(lambda m, i, o: currents.append(o.detach().clone()) and None),
             blk.lif["attn_out"].register_forward_pre_hook(lambda m, i: ln_out.append(i[0].detach().clone()) and None)]
    with torch.no_grad():
        model(tokens(), mode="spike")
    for h in hooks:
        h.remove()
    mean, var = (float(v) for v in model.layernorm_stats[0, 0])
    ln = blk.ln1
    assert len(ln_out) == 3
    for current, out in zip(currents, ln_out):
        by_hand = (current + emb - mean) / (var + ln.eps) ** 0.5 * ln.weight + ln.bias
        torch.testing.assert_close(out, by_hand, rtol=1e-5, atol=1e-5)


def test_an_uncalibrated_frozen_layernorm_refuses_to_run():
    with pytest.raises(ValueError, match="calibrate_layernorm"):
        encoder(layernorm="frozen")(tokens(), mode="rate")


def test_frozen_statistics_travel_with_the_checkpoint_and_pruning_copies(tmp_path):
    model = calibrated(layers=2, timesteps=8)
    save(model, tmp_path / "frozen.pt", layernorm="frozen")
    loaded, _ = load_encoder(tmp_path / "frozen.pt")
    assert torch.equal(loaded.layernorm_stats, model.layernorm_stats)
    with torch.no_grad():
        assert torch.equal(loaded(tokens(), mode="spike"), model(tokens(), mode="spike"))
    assert torch.equal(clone_encoder(loaded).layernorm_stats, model.layernorm_stats)


def test_the_spike_engine_refuses_a_layernorm_it_does_not_apply():
    from neurosim.spikes import run

    import numpy as np

    net = from_torch(calibrated(timesteps=3), tokens(2))
    current = np.full((8, net.input_size), 0.5, dtype=np.float32)   # 8 tokens of a constant input current
    with pytest.raises(NeurosimError, match="norm.statistics.*'frozen'.*each step's input alone"):
        run(net, current)
    assert run(from_torch(encoder(timesteps=3), tokens(2)), current).acs > 0   # per-step LayerNorm runs
