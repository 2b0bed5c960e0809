"""What temporal pruning buys on each dataflow.

    python analysis/temporal_pruning.py            # sweep (resumes if already run), figure, summary
    python analysis/temporal_pruning.py --workers 0

Runs sweeps/temporal-pruning.yaml (SpikingBERT-4L at T = 85, and pruned to a
mean of 40 or 20 timesteps either uniformly or per layer, on the large 45 nm
chip, three dataflows, closed form and simulator) into
analysis/out/temporal-pruning/ and writes next to this script:

* temporal_pruning.png: energy and latency per inference from the simulator,
  one bar group per timestep schedule, each bar labelled with its change from
  T = 85 on the same dataflow.
* temporal_pruning.md: the numbers (both engines).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPEC = REPO / "sweeps" / "temporal-pruning.yaml"
OUT = HERE / "out" / "temporal-pruning"
BASELINE = "T=85"


def load(workers: int | None):
    from neurosim.dse.store import RESULTS, load_results
    from neurosim.dse.sweep import run_sweep

    run_sweep(SPEC, OUT, resume=(OUT / RESULTS).exists(), workers=workers, progress=True)
    df = load_results(OUT)
    df["label"] = [m if m == "spatial" else f"sequential ({c})" for m, c in zip(df["mapping"], df["carry"])]
    return df


def table(df, engine: str, value: str):
    from neurosim.dse.labels import MAPPING_ORDER

    order = list(dict.fromkeys(df["model"]))
    t = df[df["engine"] == engine].pivot_table(index="model", columns="label", values=value)
    return t.loc[order, [m for m in MAPPING_ORDER if m in t.columns]]


def figure(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from neurosim.dse.labels import MAPPING_COLORS

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.2))
    for ax, (value, scale, ylabel) in zip(axes, (("energy_pj", 1e-12, "energy per inference (J)"),
                                                 ("latency_s", 1e3, "latency per inference (ms)"))):
        t = table(df, "sim", value) * scale
        x = np.arange(len(t.index))
        w = 0.8 / len(t.columns)
        for j, label in enumerate(t.columns):
            xs = x + (j - (len(t.columns) - 1) / 2) * w
            vals = t[label].to_numpy()
            ax.bar(xs, vals, w * 0.95, color=MAPPING_COLORS[label], label=label)
            base = t.loc[BASELINE, label]
            for xi, v, name in zip(xs, vals, t.index):
                if name != BASELINE:
                    ax.text(xi, v, f"{100 * (v / base - 1):+.0f}%", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels([n.replace(" (", "\n(") for n in t.index], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("timesteps per encoder layer (t = per-layer schedule)")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("What temporal pruning buys on each dataflow: SpikingBERT-4L on the 1296-core 45 nm chip "
                 "(simulator; % = change from T = 85 on the same dataflow)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(df) -> str:
    lines = ["# Temporal pruning per dataflow: numbers behind temporal_pruning.png", "",
             f"Sweep: `sweeps/temporal-pruning.yaml` ({len(df)} points). "
             "Regenerate: `python analysis/temporal_pruning.py`. Change from T = 85 on the same dataflow "
             "in brackets.", ""]
    for engine, name in (("sim", "simulator"), ("analytic", "closed form")):
        for value, scale, unit in (("energy_pj", 1e-9, "mJ"), ("latency_s", 1e3, "ms")):
            t = table(df, engine, value) * scale
            lines += [f"## {'energy' if value == 'energy_pj' else 'latency'} per inference ({unit}), {name}", "",
                      "| schedule | " + " | ".join(t.columns) + " |", "|---|" + "---|" * len(t.columns)]
            for name_, row in t.iterrows():
                cells = [f"{v:.4g} ({100 * (v / t.loc[BASELINE, c] - 1):+.0f}%)" for c, v in row.items()]
                lines.append(f"| {name_} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=None, help="Dask workers (default: cores; 0: in process)")
    args = parser.parse_args(argv)
    df = load(args.workers)
    figure(df, HERE / "temporal_pruning.png")
    text = summary(df)
    (HERE / "temporal_pruning.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
