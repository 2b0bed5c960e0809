"""The seed paper's Tables II and III (spatio-temporal pruning), in shape, on the shipped model and its task.

    python analysis/pruning_table.py              # everything (~15 min on 2 shared CPU cores)
    python analysis/pruning_table.py --reuse      # redraw the table and figure from pruning_table.json
    python analysis/pruning_table.py --model M.pt --device cuda --out analysis/pruning_table_gpu   # another model

The reading against the paper is written by hand in OUT.findings.md (next to
the table) and appended to OUT.md, so a rerun rewrites the numbers, not the prose.

Model (default): models/spiking-sentiment-2l.pt (2 layers, hidden 128, 4
heads, intermediate 256, T = 32), task: movie-review sentence polarity (its
own train / validation / test split). Writes (OUT = analysis/pruning_table):

* OUT.json: every number (and the pruning records), rows in order;
* OUT.md: the tables (main budget 0.6, a tight budget, the PCA readings), with
  the run's settings and timings;
* OUT.png: accuracy vs normalized #C, energy and latency from the simulator on
  both mappings, and a budget sweep of the four score variants.

Rows: baseline; post-training spatial pruning with the four scores (FIM, FIM
x neuron ASR, FIM x attention ASR, FIM x both) under M(h, n) <= budget x M(1,
1, T); + retraining; PCA temporal pruning; + retraining; the two-stage
sequence (spatial -> retrain -> temporal -> retrain); and the two-stage
sequence with 1-bit weights distilled from the original. Columns: test
accuracy in `stochastic` mode (each layer its own t^l, Bernoulli inputs at the
carried rates, seed 1: the sequential dataflow) and in `rate` mode; ACs %
(activity-weighted structural ACs at the rates measured on 256 test
sentences, relative to the baseline); normalized #C (eq. 14, structural);
mean latency in timesteps (mean t^l); and, from the discrete-event simulator
on spatial-45nm-large, energy, latency and peak on-chip memory for the spatial
mapping and the sequential mapping carrying rates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODEL = REPO / "models" / "spiking-sentiment-2l.pt"
ARCH = "spatial-45nm-large"


def outputs(prefix: Path) -> tuple[Path, Path, Path, Path]:
    """The .json, .md, .png a run writes and the hand-written .findings.md it appends."""
    return tuple(prefix.with_name(prefix.name + ext) for ext in (".json", ".md", ".png", ".findings.md"))


def measure(name: str, model, rec: dict | None, ctx: dict) -> dict:
    """Accuracy, counts and simulator results of one row."""
    import neurosim
    from neurosim.cost import analytic
    from neurosim.frontend.extract import from_torch
    from neurosim.pruning.budget import model_masks
    from neurosim.pruning.evaluate import accuracy
    from neurosim.sim import simulate

    import hashlib

    t0 = time.time()
    # a row whose weights, masks and timesteps equal an earlier row's has its numbers: reuse them
    digest = hashlib.sha1(repr(list(model.timesteps)).encode())
    for v in model.state_dict().values():
        digest.update(v.detach().cpu().numpy().tobytes())
    key = digest.hexdigest()
    if key in ctx.setdefault("cache", {}):
        row = dict(ctx["cache"][key], name=name, record=rec, same_as=ctx["cache"][key]["name"], seconds=0.0)
        print(f"  {name}: same network as '{row['same_as']}'", flush=True)
        return row
    x, y = ctx["test"]
    row = dict(name=name, acc_stochastic=accuracy(model, x, y, "stochastic", seed=1),
               acc_rate=accuracy(model, x, y, "rate"))
    net = from_torch(model, ctx["rate_tokens"], name=name)
    acs = float(analytic.structural_counts(net).acs.sum())
    hk, nk = model_masks(model)
    row.update(acs=acs, normalized_c=analytic.paper_m(net) / ctx["m0"], m=analytic.paper_m(net),
               timesteps=list(model.timesteps), mean_t=sum(model.timesteps) / len(model.timesteps),
               heads_kept=hk.sum(1).tolist(), neurons_kept=nk.sum(1).tolist(),
               binary=bool(model.binary_weights))
    arch = neurosim.load_arch(ARCH)
    for label, mapping, carry in (("spatial", "spatial", None), ("sequential", "sequential", "rates")):
        rep = simulate(net, arch, mapping, carry)
        row[label] = dict(feasible=rep.feasible, energy_j=rep.energy_pj * 1e-12 if rep.energy_pj else None,
                          latency_s=rep.latency_s, peak_bytes=(rep.memory_bytes or {}).get("peak_on_chip"),
                          weight_bytes=(rep.memory_bytes or {}).get("weights"), acs=rep.acs,
                          breakdown_j={k: v * 1e-12 for k, v in (rep.energy_breakdown_pj or {}).items()})
    row["record"] = rec
    row["seconds"] = round(time.time() - t0, 1)
    ctx["cache"][key] = row
    print(f"  {name}: acc {100 * row['acc_stochastic']:.2f} % (stochastic), {100 * row['acc_rate']:.2f} % (rate), "
          f"#C {row['normalized_c']:.4f}, ACs {acs / 1e6:.2f} M, t^l {row['timesteps']} ({row['seconds']} s)",
          flush=True)
    return row


def run(args) -> dict:
    import numpy as np
    import torch

    from neurosim.frontend.checkpoint import load_encoder
    from neurosim.pruning import activity, budget, fisher, select
    from neurosim.pruning.data import subset, task_splits
    from neurosim.pruning.pipeline import PruneOptions, baseline_m, plain, prune
    from neurosim.pruning.retrain import RetrainConfig, clone_encoder
    from neurosim.pruning.temporal import allocate_timesteps, layer_sequence, pca_components

    torch.set_num_threads(args.threads)
    start = time.time()
    base, ckpt = load_encoder(args.model)
    base = base.to(args.device)
    splits = task_splits(ckpt["vocab"], base.seq_len)
    calib = subset(splits["train"], args.calibration, seed=0)
    t_conv = max(base.timesteps)
    if args.smoke:  # a quick check that everything runs (numbers meaningless)
        splits = {k: (v[0][:64], v[1][:64]) for k, v in splits.items()}
        calib = subset(splits["train"], 32, seed=0)
    ctx = dict(test=splits["test"], rate_tokens=splits["test"][0][: args.rate_sentences], m0=baseline_m(base, t_conv))
    retrain_cfg = RetrainConfig(penalty_epochs=1, seed=0, max_batches=2 if args.smoke else None)
    epochs = args.epochs
    settings = dict(calibration=len(calib[0]), rate_sentences=args.rate_sentences, budget=args.budget,
                    tight_budget=args.tight_budget, retrain_epochs_per_stage=epochs, retrain=vars(retrain_cfg).copy(),
                    t_conv=t_conv, threads=args.threads, arch=ARCH, model=args.model.name,
                    config={k: ckpt["config"][k] for k in ("layers", "hidden", "heads", "intermediate", "seq_len")},
                    machine=(torch.cuda.get_device_name() if args.device == "cuda" else
                             f"{args.threads} CPU threads of a shared 2-core machine"))
    quiet = (lambda s: None)
    rows, tight_rows = [], []

    print("baseline", flush=True)
    rows.append(measure(f"baseline (unpruned, T = {t_conv})", base, None, ctx))

    print(f"spatial, budget {args.budget}", flush=True)
    from neurosim.pruning.fisher import VARIANT_LABELS
    spatial_models = {}
    for variant in fisher.VARIANTS:
        opts = PruneOptions(temporal=False, budget=args.budget, variant=variant)
        m, rec = prune(base, calib, opts, log=quiet)
        spatial_models[variant] = m
        rows.append(measure(f"spatial: {VARIANT_LABELS[variant]}", m, rec, ctx))

    def retrained(label, opts, teacher=None, table=rows):
        m, rec = prune(base, calib, opts, train=splits["train"], val=splits["val"], teacher=teacher)
        table.append(measure(label, m, rec, ctx))
        return m

    spatial_retrained = retrained("spatial: FIM + ASR (both) + retraining",
                                  PruneOptions(temporal=False, budget=args.budget, retrain_epochs=epochs,
                                               retrain=retrain_cfg))

    print("temporal", flush=True)
    m, rec = prune(base, calib, PruneOptions(spatial=False), log=print)
    rows.append(measure("temporal: PCA (eq. 10)", m, rec, ctx))
    retrained("temporal: PCA + retraining (PCA reallocation every epoch)",
              PruneOptions(spatial=False, retrain_epochs=epochs, retrain=retrain_cfg))
    # two-stage: the spatially pruned and retrained model of the row above, then temporal prune + retrain
    m, rec = prune(spatial_retrained, calib, PruneOptions(spatial=False, t_conv=t_conv, retrain_epochs=epochs,
                                                          retrain=retrain_cfg),
                   train=splits["train"], val=splits["val"])
    rec = dict(rec, spatial=rows[-3]["record"]["spatial"],
               retraining={**rows[-3]["record"]["retraining"], **rec["retraining"]})
    rows.append(measure("two-stage: spatial -> retrain -> temporal -> retrain", m, rec, ctx))
    if not args.skip_binary:
        retrained("two-stage, 1-bit weights + distillation",
                  PruneOptions(budget=args.budget, retrain_epochs=epochs,
                               retrain=RetrainConfig(**{**vars(retrain_cfg), "binary": True})), teacher=base)

    print(f"tight budget {args.tight_budget}", flush=True)
    for variant in fisher.VARIANTS:
        m, rec = prune(base, calib, PruneOptions(temporal=False, budget=args.tight_budget, variant=variant), log=quiet)
        tight_rows.append(measure(f"spatial: {VARIANT_LABELS[variant]}", m, rec, ctx))
    m, rec = prune(base, calib, PruneOptions(temporal=False, budget=args.tight_budget, variant="fim_asr", swap=False),
                   log=quiet)
    tight_rows.append(measure("spatial: FIM + ASR (both), no greedy swaps", m, rec, ctx))
    retrained("spatial: FIM + ASR (both) + retraining",
              PruneOptions(temporal=False, budget=args.tight_budget, retrain_epochs=epochs, retrain=retrain_cfg),
              table=tight_rows)

    print("budget sweep (rate-mode accuracy, no retraining)", flush=True)
    from neurosim.pruning.evaluate import accuracy
    grads = fisher.mask_gradients(base, *calib)
    stats = activity.spike_stats(base, calib[0])
    costs = budget.unit_costs(budget.structure(base))
    sweep = []
    for frac in args.sweep:
        for variant in fisher.VARIANTS:
            imp = fisher.importance(grads, stats, base, variant)
            sel = select.select_and_refine(imp, costs, frac * costs.full())
            m = clone_encoder(base)
            select.apply_masks(m, sel.head_keep, sel.neuron_keep)
            sweep.append(dict(budget=frac, variant=variant, normalized_c=sel.m / costs.full(),
                              acc_rate=accuracy(m, *splits["test"], mode="rate"),
                              acc_val_rate=accuracy(m, *splits["val"], mode="rate"),
                              heads_kept=sel.head_keep.sum(1).tolist(), neurons_kept=sel.neuron_keep.sum(1).tolist()))

    print("PCA readings", flush=True)
    pca = []
    for t in sorted({t_conv, 85}):
        st = activity.spike_stats(base, calib[0], t)
        for data in ("running", "step", "samples"):
            for var in (0.99, 0.999, 0.99999):
                comps = [pca_components(layer_sequence(st, b, data), var) for b in range(len(base.blocks))]
                pca.append(dict(t_conv=t, data=data, variance=var, components=comps,
                                timesteps=allocate_timesteps(comps, t, 1.02)))
    settings["seconds"] = round(time.time() - start, 1)
    return plain(dict(settings=settings, rows=rows, tight_rows=tight_rows, sweep=sweep, pca=pca,
                      torch=torch.__version__, numpy=np.__version__))


# -- output ----------------------------------------------------------------------------------
def _e(j):
    return "-" if j is None else (f"{j * 1e3:.2f} mJ" if j >= 1e-3 else f"{j * 1e6:.0f} uJ")


def _t(s):
    return "-" if s is None else f"{s * 1e6:.1f} us"


def _b(b):
    return "-" if b is None else f"{b / 2**20:.2f} MiB"


def table(rows: list[dict], base: dict) -> list[str]:
    head = ("| # | row | acc. stochastic | acc. rate | ACs % | norm. #C | mean t | heads kept | neurons kept | "
            "spatial: energy | latency | peak mem | sequential (rates): energy | latency | peak mem |")
    lines = [head, "| " + " | ".join(["---"] * 15) + " |"]
    for i, r in enumerate(rows):
        sp, sq = r["spatial"], r["sequential"]
        lines.append(
            f"| {i} | {r['name']} | {100 * r['acc_stochastic']:.2f} % | {100 * r['acc_rate']:.2f} % | "
            f"{100 * r['acs'] / base['acs']:.1f} | {r['normalized_c']:.4f} | {r['mean_t']:.1f} "
            f"({', '.join(map(str, r['timesteps']))}) | {'/'.join(map(str, r['heads_kept']))} | "
            f"{'/'.join(map(str, r['neurons_kept']))} | {_e(sp['energy_j'])} | {_t(sp['latency_s'])} | "
            f"{_b(sp['peak_bytes'])} | {_e(sq['energy_j'])} | {_t(sq['latency_s'])} | {_b(sq['peak_bytes'])} |")
    return lines


def write_markdown(res: dict, md: Path, findings: Path) -> None:
    s = res["settings"]
    rows, tight = res["rows"], res["tight_rows"]
    base = rows[0]
    # runs before the model and machine were recorded were of the shipped model on the 2-core machine
    model = s.get("model", MODEL.name)
    c = s.get("config", dict(layers=2, hidden=128, heads=4, intermediate=256))
    machine = s.get("machine", f"{s['threads']} CPU threads of a shared 2-core machine")
    shipped = "the shipped model" if model == MODEL.name else f"`{model}`"
    lines = [f"# Spatio-temporal pruning of {shipped} (shape of the seed paper's Tables II and III)", "",
             f"Written by `python analysis/pruning_table.py` ({s['seconds'] / 60:.1f} min on {machine}, "
             f"torch {res['torch']}). Model `{model}` ({c['layers']} layers, hidden {c['hidden']}, {c['heads']} "
             f"heads, intermediate {c['intermediate']}, T = {s['t_conv']}); task: movie-review sentence polarity, "
             f"test set of 1,058 sentences; calibration: {s['calibration']} training sentences; simulator: "
             f"`{s['arch']}`.", "",
             "Columns: test accuracy in `stochastic` mode (each layer runs its own t^l from Bernoulli inputs at the "
             "carried rates, seed 1: the sequential dataflow the paper evaluates) and in `rate` mode (the "
             "equilibrium model); **ACs %**: structural ACs at the spiking rates measured on "
             f"{s['rate_sentences']} test sentences, relative to the baseline (what the hardware actually "
             "accumulates); **norm. #C**: eq. 14, M(h, n, t) / M(1, 1, T) (structural, rate-free, as the paper "
             "reports it); **mean t**: mean of the per-layer timesteps t^l (the paper's latency in timesteps); "
             "then energy per inference, latency and peak on-chip memory from the discrete-event simulator "
             "(`neurosim.sim.simulate`) on the spatial mapping and the sequential mapping carrying rates.", "",
             f"## Budget M(h, n) <= {s['budget']} x M(1, 1, T) (the paper's default)", ""]
    lines += table(rows, base)
    lines += ["", f"## A tight budget, {s['tight_budget']} x M(1, 1, T) (spatial only)", "",
              "The same spatial rows where the budget leaves the scores more to decide (at 0.6 they barely "
              "differ).", ""]
    lines += table(tight, base)
    lines += ["", "## Budget sweep (post-training, rate-mode test accuracy)", "",
              "| budget | " + " | ".join(v for v in ("fim", "fim_asr_neuron", "fim_asr_attn", "fim_asr")) + " |",
              "| --- | --- | --- | --- | --- |"]
    by_budget: dict[float, dict] = {}
    for r in res["sweep"]:
        by_budget.setdefault(r["budget"], {})[r["variant"]] = r
    for frac, d in by_budget.items():
        lines.append(f"| {frac} | " + " | ".join(
            f"{100 * d[v]['acc_rate']:.2f} % ({'/'.join(map(str, d[v]['heads_kept']))} h, "
            f"{'/'.join(map(str, d[v]['neurons_kept']))} n)" for v in ("fim", "fim_asr_neuron", "fim_asr_attn",
                                                                         "fim_asr")) + " |")
    lines += ["", "## What PCA sees (c^l and eq. 10's t^l, b = 1.02, on the calibration set)", "",
              "| T_conv | data | variance | c^l | t^l |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {p['t_conv']} | {p['data']} | {p['variance']} | {p['components']} | {p['timesteps']} |"
              for p in res["pca"]]
    prose = "\n" + findings.read_text() if findings.is_file() else ""
    md.write_text("\n".join(lines) + "\n" + prose)




def figure(res: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, tight = res["rows"], res["tight_rows"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0, 0]
    for group, marker, label in ((rows, "o", f"budget {res['settings']['budget']}"),
                                 (tight, "s", f"budget {res['settings']['tight_budget']}")):
        for i, r in enumerate(group):
            ax.scatter(r["normalized_c"], 100 * r["acc_stochastic"], marker=marker, s=40)
            ax.annotate(str(i), (r["normalized_c"], 100 * r["acc_stochastic"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.scatter([], [], marker=marker, color="grey", label=label)
    ax.set_xlabel("normalized #C (eq. 14)")
    ax.set_ylabel("test accuracy, stochastic mode (%)")
    ax.set_title("accuracy vs ACs (numbers: row index in the tables)")
    ax.legend(fontsize=8)

    names = [f"{i}" for i in range(len(rows))]
    xs = np.arange(len(rows))
    for ax, key, scale, unit, title in ((axes[0, 1], "energy_j", 1e3, "mJ", "energy per inference"),
                                        (axes[1, 0], "latency_s", 1e6, "us", "latency per inference")):
        for k, (mapping, off) in enumerate((("spatial", -0.2), ("sequential", 0.2))):
            vals = [(r[mapping][key] or np.nan) * scale for r in rows]
            ax.bar(xs + off, vals, width=0.4, label=mapping if mapping == "spatial" else "sequential (rates)")
        ax.set_xticks(xs, names)
        ax.set_xlabel(f"row (budget {res['settings']['budget']} table)")
        ax.set_ylabel(unit)
        ax.set_title(f"{title}, simulator on {res['settings']['arch']}")
        ax.legend(fontsize=8)

    ax = axes[1, 1]
    for variant in ("fim", "fim_asr_neuron", "fim_asr_attn", "fim_asr"):
        pts = [r for r in res["sweep"] if r["variant"] == variant]
        ax.plot([p["normalized_c"] for p in pts], [100 * p["acc_rate"] for p in pts], marker="o", label=variant)
    ax.axhline(100 * rows[0]["acc_rate"], color="grey", ls=":", label="unpruned")
    ax.set_xlabel("normalized #C (eq. 14)")
    ax.set_ylabel("test accuracy, rate mode (%)")
    ax.set_title("post-training budget sweep, four scores (no retraining)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", action="store_true", help="redraw from pruning_table.json")
    parser.add_argument("--budget", type=float, default=0.6)
    parser.add_argument("--tight-budget", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=2, help="retraining epochs per stage (1 with the penalty)")
    parser.add_argument("--calibration", type=int, default=512)
    parser.add_argument("--rate-sentences", type=int, default=256)
    parser.add_argument("--sweep", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8])
    parser.add_argument("--skip-binary", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=MODEL, help="a SpikingEncoder checkpoint trained on the task")
    parser.add_argument("--device", default="cpu", help="where torch runs: cpu (default) or cuda")
    parser.add_argument("--out", type=Path, default=HERE / "pruning_table", help="OUT: path prefix of what is written")
    parser.add_argument("--smoke", action="store_true", help="tiny data, two batches per epoch; writes to /tmp")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA GPU; "
                     "use --device cpu, or run on a machine with a GPU and a CUDA build of torch")
    if args.smoke:
        args.out = Path("/tmp") / args.out.name
        args.sweep = args.sweep[:2]
    out_json, out_md, out_png, findings = outputs(args.out)
    if args.reuse:
        res = json.loads(out_json.read_text())
    else:
        res = run(args)
        out_json.write_text(json.dumps(res, indent=1) + "\n")
    write_markdown(res, out_md, findings)
    figure(res, out_png)
    print(f"wrote {out_md}, {out_png}" + ("" if args.reuse else f", {out_json}"))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
