"""Where sequential mapping overtakes spatial unrolling as on-chip memory shrinks.

    python analysis/mapping_crossover.py            # sweep (resumes if already run), figure, summary
    python analysis/mapping_crossover.py --workers 0

Runs sweeps/memory-vs-mapping.yaml (four encoder sizes x per-core SRAM from
2 KiB to 512 KiB on the 1296-core 45 nm chip x three dataflows x closed form
and simulator) into analysis/out/memory-vs-mapping/, then writes next to this
script:

* mapping_crossover.png: latency (top) and energy (bottom) per inference
  against total on-chip SRAM, one column per model (smallest first); lines:
  closed form, markers: simulator; light grey: where spatial unrolling does
  not fit, dark grey: where no mapping fits (a core cannot hold one output
  neuron of a layer); dotted: the model's weight size; arrow: where sequential
  (spikes) overtakes spatial in the simulator's latency.
* mapping_crossover.md: the numbers behind the figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPEC = REPO / "sweeps" / "memory-vs-mapping.yaml"
OUT = HERE / "out" / "memory-vs-mapping"


def load(workers: int | None):
    from neurosim.dse.store import RESULTS, load_results
    from neurosim.dse.sweep import run_sweep

    run_sweep(SPEC, OUT, resume=(OUT / RESULTS).exists(), workers=workers, progress=True)
    df = load_results(OUT)
    cores = 1296   # spatial-45nm-large; the spec varies SRAM per core only
    df["onchip_mib"] = df["cores.sram_bytes"] * cores / 2**20
    df["label"] = [m if m == "spatial" else f"sequential ({c})" for m, c in zip(df["mapping"], df["carry"])]
    return df


def crossover(df, model: str, engine: str) -> dict:
    """For one model and engine: where spatial fits, and below which memory sequential (spikes) is faster."""
    g = df[(df["model"] == model) & (df["engine"] == engine)]
    piv = g.pivot_table(index="onchip_mib", columns="label", values="latency_s")
    en = g.pivot_table(index="onchip_mib", columns="label", values="energy_pj")
    sp, ss, sr = piv.get("spatial"), piv.get("sequential (spikes)"), piv.get("sequential (rates)")
    fits = sp.dropna().index
    seq_fits = sr.dropna().index
    out = {"spatial_min_mib": float(fits.min()) if len(fits) else None,
           "sequential_min_mib": float(seq_fits.min()) if len(seq_fits) else None}
    faster = [m for m in fits if sp[m] <= ss[m]]
    out["spatial_beats_spikes_from_mib"] = float(min(faster)) if faster else None
    slower = [m for m in fits if sp[m] > ss[m]]
    out["overtaken_below_mib"] = float(max(slower)) if slower and faster and max(slower) < min(faster) else (
        float(max(slower)) if slower else None)
    out["rates_fastest_everywhere"] = bool((sr.loc[fits] <= sp.loc[fits]).all() and (sr <= ss).all())
    out["rates_cheapest_everywhere"] = bool((en["sequential (rates)"] <= en.drop(columns="sequential (rates)")
                                             .min(axis=1).fillna(float("inf"))).all())
    rates = en["sequential (rates)"].dropna()   # from the smallest memory where it fits
    out["rates_energy_small_vs_large"] = rates.iloc[0] / rates.iloc[-1]
    return out


def figure(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from neurosim.dse.labels import MAPPING_COLORS, MAPPING_ORDER

    models = list(df.groupby("model")["memory_weights_bytes"].max().sort_values().index)
    fig, axes = plt.subplots(2, len(models), figsize=(4.3 * len(models), 7.6), sharex=True)
    for col, model in enumerate(models):
        g = df[df["model"] == model]
        weights_mib = g["memory_weights_bytes"].max() / 2**20
        fits = g[(g["label"] == "spatial") & (g["status"] == "ok")]["onchip_mib"]
        for row, (value, scale, unit) in enumerate((("latency_s", 1e3, "ms"), ("energy_pj", 1e-9, "mJ"))):
            ax = axes[row, col]
            for label in MAPPING_ORDER:
                color = MAPPING_COLORS[label]
                for engine, style in (("analytic", dict(linestyle="-", linewidth=1.6)),
                                      ("sim", dict(linestyle="none", marker="o", markersize=4.5,
                                                   markerfacecolor="none"))):
                    s = g[(g["label"] == label) & (g["engine"] == engine) & (g["status"] == "ok")]
                    s = s.sort_values("onchip_mib")
                    ax.plot(s["onchip_mib"], s[value] * scale, color=color, **style,
                            label=f"{label} ({'closed form' if engine == 'analytic' else 'simulator'})")
            xmin = g["onchip_mib"].min()
            seq_fits = g[(g["label"] != "spatial") & (g["status"] == "ok")]["onchip_mib"]
            if len(seq_fits) and seq_fits.min() > xmin:
                ax.axvspan(xmin / 1.2, seq_fits.min() / 1.19, color="0.7", zorder=0.5,
                           label="no mapping fits (a core cannot hold one output neuron)")
            if len(fits):
                ax.axvspan(xmin / 1.2, fits.min() / 1.19, color="0.88", zorder=0,
                           label="spatial does not fit")
            else:
                ax.axvspan(xmin / 1.2, g["onchip_mib"].max() * 1.2, color="0.88", zorder=0,
                           label="spatial does not fit")
            ax.axvline(weights_mib, color="k", linestyle=":", linewidth=1, label="weights (fp32)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(xmin / 1.2, g["onchip_mib"].max() * 1.2)
            for axis, subs in ((ax.xaxis, (1.0, 3.0)), (ax.yaxis, (1.0, 2.0, 5.0))):
                axis.set_major_locator(LogLocator(base=10, subs=subs))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                axis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="major", alpha=0.3)
            ax.set_ylabel(f"{'latency' if row == 0 else 'energy'} per inference ({unit})")
            if row == 1:
                ax.set_xlabel("on-chip SRAM, all cores (MiB)")
            if row == 0:
                ax.set_title(f"{model}\n({weights_mib:.3g} MiB of weights)", fontsize=10)
                c = crossover(df, model, "sim")
                if c["overtaken_below_mib"] and c["spatial_beats_spikes_from_mib"]:
                    x = c["overtaken_below_mib"]
                    sim_sp = g[(g["label"] == "spatial") & (g["engine"] == "sim") & (g["onchip_mib"] == x)]
                    y = float(sim_sp["latency_s"].iloc[0]) * 1e3
                    ax.annotate(f"simulator: sequential (spikes)\nfaster at <= {x:.3g} MiB", xy=(x, y),
                                xytext=(x * 2.2, y * 1.6), fontsize=7, ha="left", va="bottom",
                                arrowprops=dict(arrowstyle="->", lw=0.8))
    handles, labels = axes[0, -1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Spatial unrolling vs sequential mapping as on-chip memory shrinks "
                 "(1296-core 45 nm chip, SRAM per core 2 KiB to 512 KiB)", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(df) -> str:
    models = list(df.groupby("model")["memory_weights_bytes"].max().sort_values().index)
    lines = ["# Mapping crossover: numbers behind mapping_crossover.png", "",
             f"Sweep: `sweeps/memory-vs-mapping.yaml`, {len(df)} points "
             f"({(df['status'] == 'ok').sum()} feasible). Regenerate: `python analysis/mapping_crossover.py`.", "",
             "| model | weights | engine | sequential fits from | spatial fits from | "
             "spatial faster than sequential (spikes) from | sequential (spikes) faster at or below | "
             "sequential (rates) fastest everywhere | sequential (rates) cheapest everywhere | "
             "sequential (rates) energy, smallest memory where it fits vs 648 MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v:.3g} MiB"  # noqa: E731
    for m in models:
        w = df[df["model"] == m]["memory_weights_bytes"].max() / 2**20
        for engine in ("analytic", "sim"):
            c = crossover(df, m, engine)
            lines.append(f"| {m} | {w:.3g} MiB | {'closed form' if engine == 'analytic' else 'simulator'} | "
                         f"{f(c['sequential_min_mib'])} | {f(c['spatial_min_mib'])} | "
                         f"{f(c['spatial_beats_spikes_from_mib'])} | "
                         f"{f(c['overtaken_below_mib'])} | {'yes' if c['rates_fastest_everywhere'] else 'no'} | "
                         f"{'yes' if c['rates_cheapest_everywhere'] else 'no'} | "
                         f"{c['rates_energy_small_vs_large']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=None, help="Dask workers (default: cores; 0: in process)")
    args = parser.parse_args(argv)
    df = load(args.workers)
    figure(df, HERE / "mapping_crossover.png")
    text = summary(df)
    (HERE / "mapping_crossover.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
