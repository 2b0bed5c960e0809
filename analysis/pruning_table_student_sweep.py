"""Post-training spatial pruning of the distilled student, on a CPU: the budget sweep of analysis/pruning_table.py.

    python analysis/pruning_table_student_sweep.py   # about 3.5 min a row on the loaded 2-core machine, 12 rows

The full table (analysis/pruning_table_student.py) needs a GPU. This is its
"budget sweep" section alone, the same calls (Fisher mask gradients in rate
mode, spiking rates in spike mode, Kwon's selection with the greedy swaps
under M(h, n) <= budget x M(1, 1, T)), for the four scores, with rate-mode
test accuracy and no retraining, on models/spikingbert-minilm-polarity.pt.
Rate mode, because that is where the student works (its spike and
stochastic modes give a constant prediction: models/spikingbert-minilm-polarity.md).
To fit a CPU, the calibration set is small (--calibration, default 64
training sentences) and its rates are measured at --rate-t steps (default 32,
not T = 85). Writes analysis/pruning_table_student_sweep.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VARIANTS_SHOWN = ("fim", "fim_asr_neuron", "fim_asr_attn", "fim_asr")


def run(args) -> dict:
    import torch

    from neurosim.frontend.checkpoint import load_encoder
    from neurosim.pruning import activity, budget, fisher, select
    from neurosim.pruning.data import subset
    from neurosim.pruning.evaluate import accuracy
    from neurosim.pruning.retrain import clone_encoder

    sys.path.insert(0, str(HERE))
    from pruning_table_student import student_splits

    torch.set_num_threads(args.threads)
    start = time.time()
    base, ckpt = load_encoder(args.model)
    splits = student_splits(args.model)(ckpt["vocab"], base.seq_len)
    calib = subset(splits["train"], args.calibration, seed=0)
    test = splits["test"]
    res = dict(model=args.model.name, calibration=len(calib[0]), rate_t=args.rate_t, sweep=[],
               unpruned_rate=accuracy(base, *test, mode="rate"))
    print(f"unpruned: {res['unpruned_rate']:.4f} (rate)", flush=True)
    grads = fisher.mask_gradients(base, *calib)
    stats = activity.spike_stats(base, calib[0], args.rate_t)
    costs = budget.unit_costs(budget.structure(base))
    for frac in args.budgets:
        for variant in fisher.VARIANTS:
            sel = select.select_and_refine(fisher.importance(grads, stats, base, variant), costs, frac * costs.full())
            m = clone_encoder(base)
            select.apply_masks(m, sel.head_keep, sel.neuron_keep)
            row = dict(budget=frac, variant=variant, normalized_c=sel.m / costs.full(),
                       acc_rate=accuracy(m, *test, mode="rate"), heads_kept=sel.head_keep.sum(1).tolist(),
                       neurons_kept=sel.neuron_keep.sum(1).tolist())
            res["sweep"].append(row)
            print(f"budget {frac} {variant}: {row['acc_rate']:.4f} (heads {row['heads_kept']})", flush=True)
    res["seconds"] = round(time.time() - start, 1)
    res["machine"] = f"{platform.machine()} CPU, {args.threads} torch threads (shared 2-core machine), " \
                     f"torch {torch.__version__}"
    return res


def write_markdown(res: dict, md: Path, floor: float) -> None:
    lines = ["# Post-training spatial pruning of the distilled student (rate mode, no retraining)", "",
             f"Written by `python analysis/pruning_table_student_sweep.py` ({res['seconds'] / 60:.1f} min on "
             f"{res['machine']}). Model `{res['model']}`; test set: 1,058 sentences; calibration: "
             f"{res['calibration']} training sentences, their spiking rates measured at T = {res['rate_t']}.", "",
             f"Unpruned: **{100 * res['unpruned_rate']:.2f} %** (rate mode). Embedding floor of the task: "
             f"{100 * floor:.2f} % (models/training/spikingbert-minilm-polarity.results.json).", "",
             "Each cell: test accuracy, rate mode (heads kept per layer). Budget: M(h, n) <= budget x M(1, 1, T) "
             "(Appendix B's AC count, structural).", "",
             "| budget | " + " | ".join(VARIANTS_SHOWN) + " |", "| --- |" + " --- |" * len(VARIANTS_SHOWN)]
    by_budget: dict = {}
    for r in res["sweep"]:
        by_budget.setdefault(r["budget"], {})[r["variant"]] = r
    for frac, d in by_budget.items():
        lines.append(f"| {frac} | " + " | ".join(
            f"{100 * d[v]['acc_rate']:.2f} % ({'/'.join(map(str, d[v]['heads_kept']))} h)" for v in VARIANTS_SHOWN)
            + " |")
    findings = md.with_name("pruning_table_student.findings.md")
    md.write_text("\n".join(lines) + "\n" + ("\n" + findings.read_text() if findings.is_file() else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "spikingbert-minilm-polarity.pt")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.1, 0.3, 0.6])
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--rate-t", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args()
    out = HERE / "pruning_table_student_sweep.json"
    res = json.loads(out.read_text()) if args.reuse else run(args)
    if not args.reuse:
        out.write_text(json.dumps(res, indent=1) + "\n")
    rec = json.loads((REPO / "models" / "training" / "spikingbert-minilm-polarity.results.json").read_text())
    write_markdown(res, out.with_suffix(".md"), rec["embedding_floor"]["test"])
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
