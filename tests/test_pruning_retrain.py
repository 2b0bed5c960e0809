"""Retraining as the seed paper does it (issue 24): at each sublayer's t^l, the activity loss on the encoder
layers' outputs in the final stage only, the joint and adaptive-threshold variants, and run-to-run
reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurosim.frontend import SpikingEncoder, from_torch
from neurosim.frontend.checkpoint import load_encoder
from neurosim.pruning import budget, pipeline
from neurosim.pruning.retrain import RetrainConfig, activity_norm, retrain
from neurosim.pruning.save import save_pruned

from test_pruning_e2e import HEADS, HIDDEN, INTER, LAYERS, SEQ, VOCAB, tiny as e2e_tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(timesteps=(6, 6)) -> SpikingEncoder:
    return e2e_tiny(timesteps)


def data(n=48, seed=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (n, SEQ), generator=g), torch.randint(0, 2, (n,), generator=g)


def test_rate_t_logits_depend_on_the_timesteps_and_rate_logits_do_not():
    model = tiny()
    x, _ = data(8)
    with torch.no_grad():
        at6 = model(x, mode="rate_t", seed=0)
        rate6 = model(x, mode="rate")
        model.timesteps = [1, 1]
        at1 = model(x, mode="rate_t", seed=0)
        rate1 = model(x, mode="rate")
        again = model(x, mode="rate_t", seed=0)
    assert not torch.allclose(at6, at1)
    assert torch.equal(rate6, rate1)          # the equilibrium model never reads t^l
    assert torch.equal(at1, again)            # seeded draws


def test_rate_t_counts_what_an_if_neuron_fires_on_a_constant_current():
    # block 0's K and V read the embedding, a constant current: t steps of an IF neuron with subtract reset fire
    # floor(t I / vth) times, which is what rate_t gives and what spike mode counts.
    model = tiny(timesteps=(7, 7))
    x, _ = data(8)
    with torch.no_grad():
        model(x, mode="rate_t", seed=0)
        quantised = {k: v.clone() for k, v in model.last_asr.items()}
        model(x, mode="spike")
    for role in ("k", "v"):
        assert torch.equal(quantised[f"block0.{role}"], model.last_asr[f"block0.{role}"])
        counts = quantised[f"block0.{role}"] * 7 * 8 * SEQ   # whole spikes over 7 steps, 8 sentences, SEQ tokens
        assert torch.all((counts - counts.round()).abs() < 1e-3)


def test_retraining_at_t_learns_something_else_when_t_changes():
    x, y = data()
    cfg = RetrainConfig(epochs=1, penalty_epochs=0, train_masks=False, batch=16, max_batches=3)
    m0 = budget.unit_costs(budget.structure(tiny())).full()
    quiet = dict(log=lambda s: None)
    at6, _ = retrain(tiny((6, 6)), (x, y), (x[:16], y[:16]), cfg, m0, **quiet)
    at1, _ = retrain(tiny((1, 1)), (x, y), (x[:16], y[:16]), cfg, m0, **quiet)
    w6, w1 = at6.blocks[0].k.weight, at1.blocks[0].k.weight
    assert not torch.allclose(w6, w1)
    with torch.no_grad():
        at1.timesteps = [6, 6]
        assert not torch.allclose(at6(x, mode="rate_t", seed=3), at1(x, mode="rate_t", seed=3))
    # the same in `rate` mode, which is blind to t^l, learns the same weights
    rate = RetrainConfig(**{**cfg.__dict__, "mode": "rate"})
    r6, _ = retrain(tiny((6, 6)), (x, y), (x[:16], y[:16]), rate, m0, **quiet)
    r1, _ = retrain(tiny((1, 1)), (x, y), (x[:16], y[:16]), rate, m0, **quiet)
    assert torch.equal(r6.blocks[0].k.weight, r1.blocks[0].k.weight)


def test_retraining_is_reproducible_whatever_ran_before():
    x, y = data()
    cfg = RetrainConfig(epochs=2, penalty_epochs=1, lam=20.0, mask_lr=20.0, batch=16, max_batches=3, budget=0.8)
    m0 = budget.unit_costs(budget.structure(tiny())).full()
    a, log_a = retrain(tiny(), (x, y), (x[:16], y[:16]), cfg, m0, log=lambda s: None)
    torch.rand(1000)                       # the global random state moves on
    np.random.rand(10)
    b, log_b = retrain(tiny(), (x, y), (x[:16], y[:16]), cfg, m0, log=lambda s: None)
    assert log_a.epochs == log_b.epochs
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.are_deterministic_algorithms_enabled()   # restored after the run


def test_activity_loss_sums_the_norms_of_the_encoder_layers_outputs_only():
    model = tiny()
    x, _ = data(4)
    model.keep_rates = True
    model(x, mode="rate_t", seed=0)
    by_hand = sum(model.last_rates[f"block{b}.output"].mean(dim=1).norm(dim=-1).mean() for b in range(LAYERS))
    assert float(activity_norm(model)) == pytest.approx(float(by_hand))
    everything = sum(r.mean(dim=1).norm(dim=-1).mean() for r in model.last_rates.values())
    assert float(everything) > float(by_hand)


def _prune(opts, x, y):
    return pipeline.prune(tiny((10, 10)), (x[:16], y[:16]), opts, train=(x, y), val=(x[:16], y[:16]),
                          log=lambda s: None)


def test_two_stage_adds_the_activity_loss_in_the_final_stage_only():
    x, y = data()
    opts = pipeline.PruneOptions(budget=0.6, variance=0.999, retrain_epochs=1,
                                 retrain=RetrainConfig(penalty_epochs=1, batch=16, max_batches=2, pca_every=None))
    _, rec = _prune(opts, x, y)
    assert [(s, r["activity"]) for s, r in rec["retraining"].items()] == [("spatial", False), ("temporal", True)]
    assert rec["structural_ratio"] <= 0.6


def test_joint_strategy_prunes_both_on_the_original_then_retrains_once():
    x, y = data()
    retrain_cfg = RetrainConfig(penalty_epochs=1, batch=16, max_batches=2, pca_every=None)
    joint = pipeline.PruneOptions(budget=0.6, variance=0.999, retrain_epochs=1, strategy="joint", retrain=retrain_cfg)
    pruned, rec = _prune(joint, x, y)
    assert list(rec["retraining"]) == ["joint"] and rec["retraining"]["joint"]["activity"]
    # the temporal stage saw the unpruned model: the same t^l as temporal pruning alone
    _, alone = pipeline.prune(tiny((10, 10)), (x[:16], y[:16]), pipeline.PruneOptions(spatial=False, variance=0.999),
                              log=lambda s: None)
    assert rec["temporal"]["timesteps"] == alone["temporal"]["timesteps"]
    assert rec["structural_ratio"] <= 0.6 and pruned.sublayer_timesteps == rec["temporal"]["timesteps"]
    with pytest.raises(ValueError, match="joint"):
        pipeline.prune(tiny(), (x, y), pipeline.PruneOptions(temporal=False, strategy="joint", retrain_epochs=1),
                       train=(x, y), val=(x, y))


def test_adaptive_stage_scales_the_timesteps_down_and_learns_thresholds():
    x, y = data()
    opts = pipeline.PruneOptions(spatial=False, variance=0.999, retrain_epochs=1, adaptive_scale=0.25,
                                 retrain=RetrainConfig(penalty_epochs=0, batch=16, max_batches=2, pca_every=None))
    pruned, rec = _prune(opts, x, y)
    before = rec["temporal"]["timesteps"]
    assert pruned.sublayer_timesteps == [[max(1, -(-t // 4)) for t in row] for row in before]   # ceil(t / 4)
    assert list(rec["retraining"]) == ["temporal", "adaptive"]
    assert any(abs(float(l.threshold.detach()) - 1.0) > 1e-6 for b in pruned.blocks for l in b.lif.values())


def test_per_sublayer_timesteps_reach_the_ir_and_survive_a_checkpoint(tmp_path):
    model = tiny()
    table = [[6, 5, 4, 3, 2, 1], [2, 2, 3, 3, 4, 4]]
    model.timesteps = table
    x, _ = data(3)
    net = from_torch(model, x)
    roles = ("k", "v", "attention", "attn_out", "intermediate", "output")
    assert [[net[f"block{b}.{r}"].timesteps for r in roles] for b in range(LAYERS)] == table
    assert net["block0.q"].timesteps == 4 and net["block1.q"].timesteps == 3   # t_Q = t_Attn
    src = dict(vocab=[], sample_tokens=x)
    out, _ = save_pruned(model, src, tmp_path / "p", dict(heads_kept=[2, 2], neurons_kept=[24, 24], m=1, m0=1,
                                                          t_conv=6, structural_ratio=1.0, mean_t=3.0,
                                                          timesteps=table, thresholds={}))
    back, ckpt = load_encoder(out)
    assert back.sublayer_timesteps == table and ckpt["config"]["timesteps"] == table
    with pytest.raises(ValueError, match="6 counts"):
        model.timesteps = [[1, 2, 3], [1, 2, 3]]


def test_prune_cli_refuses_joint_or_adaptive_without_retraining(tmp_path):
    from neurosim.cli import build_parser
    from neurosim.errors import NeurosimError

    model = tiny()
    src = tmp_path / "tiny.pt"
    torch.save({"config": dict(vocab_size=VOCAB, hidden=HIDDEN, heads=HEADS, intermediate=INTER, layers=LAYERS,
                               seq_len=SEQ, classes=2, timesteps=[6, 6]),
                "state_dict": model.state_dict(), "vocab": ["<pad>", "<unk>"] + [f"w{i}" for i in range(VOCAB - 2)],
                "sample_tokens": data(8)[0], "sample_labels": torch.arange(8) % 2}, src)

    def cli(*extra):
        args = build_parser().parse_args(["prune", str(src), "--data", "sample", "--retrain", "0",
                                          "--out", str(tmp_path / "p"), *extra])
        args.func(args)

    with pytest.raises(NeurosimError, match="retraining stages"):
        cli("--spatial", "--temporal", "--strategy", "joint")
    with pytest.raises(NeurosimError, match="retraining stages"):
        cli("--temporal", "--adaptive")
    assert not (tmp_path / "p.pt").exists()


def test_retraining_refuses_a_mode_without_differentiable_rates():
    x, y = data(16)
    with pytest.raises(ValueError, match="rate_t, rate"):
        retrain(tiny(), (x, y), (x, y), RetrainConfig(mode="spike", max_batches=1), 1.0, log=lambda s: None)


def test_a_checkpoint_with_a_short_sublayer_timestep_list_is_refused_by_field(tmp_path):
    from neurosim.errors import NeurosimError

    model = tiny()
    path = tmp_path / "bad.pt"
    torch.save({"config": dict(vocab_size=VOCAB, hidden=HIDDEN, heads=HEADS, intermediate=INTER, layers=LAYERS,
                               seq_len=SEQ, classes=2, timesteps=[[6, 6, 6], [6, 6, 6]]),
                "state_dict": model.state_dict(), "vocab": [], "sample_tokens": data(2)[0]}, path)
    with pytest.raises(NeurosimError, match="config.timesteps"):
        load_encoder(path)
