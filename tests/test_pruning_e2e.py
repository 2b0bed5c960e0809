"""Pruned networks end to end: masked units cost no ACs (closed form, simulator, spike engine); `neurosim prune`
writes a checkpoint that `neurosim run` simulates; retraining keeps the budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import neurosim
from neurosim.cli import build_parser, main
from neurosim.cost import analytic
from neurosim.errors import NeurosimError
from neurosim.frontend import SpikingEncoder, from_torch
from neurosim.frontend.checkpoint import load_encoder
from neurosim.pruning import budget, pipeline
from neurosim.pruning.retrain import RetrainConfig, retrain
from neurosim.pruning.select import apply_masks
from neurosim.sim import simulate
from neurosim.spikes import run as spike_run

VOCAB, HIDDEN, HEADS, INTER, LAYERS, SEQ = 40, 16, 2, 24, 2, 6
ARCH = "spatial-45nm-large"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(timesteps=(8, 8)) -> SpikingEncoder:
    torch.manual_seed(0)
    m = SpikingEncoder(VOCAB, HIDDEN, HEADS, INTER, LAYERS, SEQ, 2, timesteps=list(timesteps))
    m.eval()
    return m


def tokens(n=4):
    return torch.randint(0, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(1))


def _acs(report) -> dict[str, float]:
    return dict(zip(report.per_layer.layer, report.per_layer.acs))


def test_masked_units_cost_no_acs_in_closed_form_simulator_and_engine():
    model = tiny()
    # layer 0: every intermediate neuron pruned; layer 1: head 0 pruned, 10 neurons pruned
    hk = np.array([[True, True], [False, True]])
    nk = np.ones((LAYERS, INTER), bool)
    nk[0, :] = False
    nk[1, :10] = False
    apply_masks(model, hk, nk)
    net = from_torch(model, tokens())
    arch = neurosim.load_arch(ARCH)
    reports = [neurosim.estimate(net, arch, "sequential", "rates"), neurosim.estimate(net, arch, "spatial"),
               simulate(net, arch, "sequential", "rates"), simulate(net, arch, "spatial")]
    for rep in reports:
        acs = _acs(rep)
        # no live neuron in block0.intermediate: it and the layer it feeds do no work
        assert acs["block0.intermediate"] == 0 and acs["block0.output"] == 0
        # block1: only the live units are counted, each at the same price
        t = rep.per_layer.set_index("layer").timesteps["block1.intermediate"]
        r_in = net["block1.attn_out"].rate
        assert acs["block1.intermediate"] == pytest.approx(SEQ * t * r_in * HIDDEN * (INTER - 10), rel=1e-12)
        r_int = net["block1.intermediate"].rate
        assert acs["block1.output"] == pytest.approx(SEQ * t * r_int * (INTER - 10) * HIDDEN, rel=1e-12)
        # head 0 of block 1: its K/V features and its attention outputs cost nothing
        r_a = net["block1.attention"].rate
        assert acs["block1.attn_out"] == pytest.approx(SEQ * t * r_a * (HIDDEN // 2) * HIDDEN, rel=1e-12)
    # the spike engine: masked neurons never spike, and nothing is accumulated for them
    emb = model.embedding(tokens(1)).detach().numpy()[0]
    trace = spike_run(net, emb, handoff="lockstep")
    assert trace["block0.intermediate"].spikes == 0 and trace["block0.output"].acs == 0
    assert trace["block0.intermediate"].acs == 0
    assert (trace["block1.intermediate"].neuron_totals[:, :10] == 0).all()
    assert trace["block1.output"].acs == trace["block1.intermediate"].spikes * HIDDEN
    assert (trace["block1.attention"].neuron_totals[:, : HIDDEN // 2] == 0).all()
    assert trace["block1.attn_out"].acs == trace["block1.attention"].spikes * HIDDEN


def _prune_cli(argv):
    args = build_parser().parse_args(argv)  # `prune` is registered by neurosim.cli
    args.func(args)


def test_prune_cli_writes_a_checkpoint_that_neurosim_run_simulates(tmp_path, capsys):
    model = tiny(timesteps=(10, 10))
    toks = torch.randint(0, VOCAB, (24, SEQ), generator=torch.Generator().manual_seed(2))
    src = tmp_path / "tiny.pt"
    torch.save({"config": dict(vocab_size=VOCAB, hidden=HIDDEN, heads=HEADS, intermediate=INTER, layers=LAYERS,
                               seq_len=SEQ, classes=2, timesteps=[10, 10]),
                "state_dict": model.state_dict(), "vocab": ["<pad>", "<unk>"] + [f"w{i}" for i in range(VOCAB - 2)],
                "sample_tokens": toks, "sample_labels": torch.arange(24) % 2}, src)
    out = tmp_path / "pruned"
    # retraining after each stage is the default, and sample data has no training set
    with pytest.raises(NeurosimError, match="give --retrain 0"):
        _prune_cli(["prune", str(src), "--spatial", "--data", "sample", "--out", str(out)])
    _prune_cli(["prune", str(src), "--spatial", "--temporal", "--budget", "0.5", "--data", "sample", "--retrain", "0",
                "--variance", "0.999", "--out", str(out), "--json"])
    record = json.loads(capsys.readouterr().out)
    pruned, ckpt = load_encoder(tmp_path / "pruned.pt")
    assert (tmp_path / "pruned.md").read_text().startswith("# Model card: pruned")
    assert ckpt["pruning"]["structural_ratio"] == record["structural_ratio"] <= 0.5
    assert pruned.timesteps_config() == record["timesteps"] and max(pruned.timesteps) == 10
    net = neurosim.load_model(tmp_path / "pruned.pt")
    assert analytic.paper_m(net) == record["m"]
    assert analytic.normalized_c(net, 10) == pytest.approx(record["structural_ratio"], rel=1e-12)
    kept = [int(b.neuron_mask.sum()) for b in pruned.blocks]
    assert kept == record["neurons_kept"] and min(kept) < INTER

    for engine in ("analytic", "sim"):
        assert main(["run", "--model", str(tmp_path / "pruned.pt"), "--engine", engine, "--mapping", "sequential",
                     "--carry", "rates", "--json", "--per-layer"]) == 0
        rep = json.loads(capsys.readouterr().out)
        acs = {row["layer"]: row for row in rep["per_layer"]}
        for b in range(LAYERS):
            row = acs[f"block{b}.intermediate"]
            r_in = net[f"block{b}.attn_out"].rate
            # only kept neurons are counted: ACs / (tokens x steps x input rate x inputs) = kept neurons
            assert row["acs"] == pytest.approx(SEQ * row["timesteps"] * r_in * HIDDEN * kept[b], rel=1e-12)
            assert row["timesteps"] == pruned.steps(b, "intermediate")


def test_retraining_keeps_the_budget_and_learns_thresholds():
    model = tiny()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randint(0, VOCAB, (64, SEQ), generator=g), torch.randint(0, 2, (64,), generator=g)
    costs = budget.unit_costs(budget.structure(model))
    m0 = costs.full()
    # a huge lambda: the AC penalty switches units off while the masks train
    cfg = RetrainConfig(epochs=2, penalty_epochs=1, lam=50.0, mask_lr=50.0, batch=16, max_batches=3, budget=0.7,
                        adaptive_threshold=True)
    new, log = retrain(model, (x, y), (x[:16], y[:16]), cfg, m0)
    hk, nk = budget.model_masks(new)
    assert budget.masked_m(costs, hk, nk) <= 0.7 * m0
    assert log.epochs[0]["normalized_c"] < 1.0 and [e["stage"] for e in log.epochs] == ["penalty", "plain"]
    assert any(isinstance(l.threshold, torch.nn.Parameter) and float(l.threshold.detach()) != 1.0
               for b in new.blocks for l in b.lif.values())
    assert all(b.head_gate is None for b in new.blocks)
    # a 1-bit student distilled from the original
    cfg = RetrainConfig(epochs=1, penalty_epochs=0, binary=True, batch=16, max_batches=2)
    student, _ = retrain(model, (x, y), (x[:16], y[:16]), cfg, m0, teacher=model)
    assert student.binary_weights and from_torch(student, x[:1])["block0.k"].weight_bits == 1


def test_pipeline_two_stage_on_tiny_model():
    model = tiny(timesteps=(10, 10))
    g = torch.Generator().manual_seed(4)
    x, y = torch.randint(0, VOCAB, (48, SEQ), generator=g), torch.randint(0, 2, (48,), generator=g)
    opts = pipeline.PruneOptions(budget=0.6, variance=0.999, retrain_epochs=2,
                                 retrain=RetrainConfig(penalty_epochs=1, batch=16, max_batches=2))
    pruned, rec = pipeline.prune(model, (x[:16], y[:16]), opts, train=(x, y), val=(x[:16], y[:16]), log=lambda s: None)
    assert rec["structural_ratio"] <= 0.6 and set(rec["retraining"]) == {"spatial", "temporal"}
    assert rec["m"] == analytic.paper_m(budget.structure(pruned))
    assert model.timesteps == [10, 10] and float(model.blocks[0].neuron_mask.sum()) == INTER  # source untouched
