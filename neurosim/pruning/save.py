"""Write a pruned SpikingEncoder as a checkpoint (the same .pt format as the shipped model) and a model card.

The checkpoint is what `frontend.checkpoint.load_encoder` reads: `config`
(SpikingEncoder arguments, per-layer `timesteps` = t^l), `state_dict` (weights,
learned thresholds, `head_mask` / `neuron_mask` buffers), `vocab`,
`sample_tokens` (and `sample_labels`), plus `pruning`: the plain-data record
of what was done (pipeline.prune), which the loader ignores. So
`neurosim run --model PRUNED.pt` simulates the pruned network: masked heads
and neurons and the per-layer timesteps reach the IR through extraction.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .pipeline import plain
from .retrain import encoder_config


def save_pruned(model, source_ckpt: dict, out: str | Path, record: dict, source_name: str = "") -> tuple[Path, Path]:
    """Write OUT (.pt added if missing) and OUT's model card (.md); returns both paths."""
    out = Path(out)
    if out.suffix != ".pt":
        out = out.with_name(out.name + ".pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = encoder_config(model, learn_threshold=False)  # learned thresholds load into buffers
    ckpt = {"config": cfg, "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "vocab": list(source_ckpt.get("vocab", [])), "sample_tokens": source_ckpt["sample_tokens"],
            "pruning": plain(dict(record, source=source_name))}
    if "sample_labels" in source_ckpt:
        ckpt["sample_labels"] = source_ckpt["sample_labels"]
    torch.save(ckpt, out)
    card = out.with_suffix(".md")
    card.write_text(model_card(out.stem, cfg, record, source_name))
    return out, card


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def model_card(name: str, cfg: dict, record: dict, source: str) -> str:
    lines = [f"# Model card: {name}", "",
             f"A pruned SpikingBERT-style encoder written by `neurosim prune` from `{source or 'a checkpoint'}` "
             "(the seed paper's spatio-temporal pruning, `neurosim.pruning`).", "",
             "## Shape", "",
             "| hidden | heads | intermediate | layers | tokens | timesteps t^l | weights |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             f"| {cfg['hidden']} | {cfg['heads']} | {cfg['intermediate']} | {cfg['layers']} | {cfg['seq_len']} | "
             f"{', '.join(map(str, cfg['timesteps']))} | {'1-bit' if cfg['binary_weights'] else 'fp32'} |", "",
             "## What was pruned", "",
             "| layer | heads kept | intermediate neurons kept | t^l (k, v, attention, attn_out, intermediate, "
             "output) |", "| --- | --- | --- | --- |"]
    for b in range(cfg["layers"]):
        t = record["timesteps"][b]
        lines.append(f"| {b} | {record['heads_kept'][b]} / {cfg['heads']} | {record['neurons_kept'][b]} / "
                     f"{cfg['intermediate']} | {', '.join(map(str, t)) if isinstance(t, list) else t} |")
    lines += ["", f"* M(h, n, t) (Appendix B, `cost.analytic.paper_m`): {record['m']:,} ACs; unpruned M(1, 1, T) at "
              f"T = {record['t_conv']}: {record['m0']:,}; structural ratio M / M(1, 1, T) = "
              f"{record['structural_ratio']:.4f}; mean timesteps over the spiking sublayers {record['mean_t']:.2f}."]
    opts = record.get("options", {})
    if "spatial" in record:
        s = record["spatial"]
        lines.append(f"* Spatial: scores `{s['variant']}` (Fisher of the masks from per-sample gradients in "
                     f"`{s['grad_mode']}` mode on {s['calibration']} calibration sentences, x ASR as the variant "
                     f"says), selection `{s['method']}` under M <= {s['budget']:g} x M(1, 1, T), "
                     f"{s['swaps']} greedy swaps.")
    if "temporal" in record:
        t = record["temporal"]
        lines.append(f"* Temporal: PCA of the per-timestep ASR (`{t['data']}`, per {t.get('granularity', 'block')}) "
                     f"at T_conv = {t['t_conv']}, "
                     f"variance {t['variance']:g}: c^l = {t['components']}; eq. 10 with b = {t['b']:g} gives "
                     f"t^l = {t['timesteps']}.")
    for stage, r in record.get("retraining", {}).items():
        last = r["epochs"][-1] if r["epochs"] else {}
        lines.append(f"* Retrained after the {stage} stage: {len(r['epochs'])} epochs in {r['seconds']} s "
                     f"(L_pred + lambda M while the masks train, + eta sum ||a_l||_2 in the final stage; options "
                     f"{ {k: v for k, v in opts.get('retrain', {}).items() if k in ('lam', 'eta', 'penalty_epochs', 'mode', 'binary')} }); "
                     f"last validation accuracy ({opts.get('retrain', {}).get('mode', 'rate')}) "
                     f"{last.get('val', float('nan')):.4f}.")
    if "accuracy" in record:
        lines += ["", "## Accuracy (test set)", "", "| mode | accuracy |", "| --- | --- |"]
        lines += [f"| {k} | {_pct(v)} |" for k, v in record["accuracy"].items()]
    lines += ["", "## Thresholds (learned when retrained with adaptive thresholds)", "",
              ", ".join(f"{k} {v:.3f}" for k, v in record["thresholds"].items()), "",
              "## Use", "", f"`neurosim run --model {name}.pt` (the simulator), `neurosim ops --model {name}.pt` "
              "(op counts); `neurosim.frontend.checkpoint.load_encoder` gives the torch model.", ""]
    return "\n".join(lines)
