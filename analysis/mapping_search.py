"""What the mapping search finds (issue 19): the best plan per objective against today's three fixed mappings.

    python analysis/mapping_search.py              # every model x chip x objective (tens of minutes on 2 cores)
    python analysis/mapping_search.py --quick      # the shipped encoder only

For the shipped encoder (spiking-sentiment-2l) and SpikingBERT-4L on the shipped neuromorphic chips
(edge-45nm, spatial-45nm-large, loihi), and for a decoder card (TinyLlama-1.1B: one decode step at its
workload's mean cache length, on one chip of llm-45nm-hbm3-x4), `neurosim.mapping.search` finds the best
plan for energy, latency and energy x delay (default budget, seed 0, up to 3 segments; the simulator
confirms the best 2, the decoder's best 1); the three searches of a model and chip share its segments'
closed forms (`space.SegmentTables`).
Writes next to this script:

* mapping_search.md: per model, chip and objective, the best of today's three mappings as the arch runs
  them (its objective), the best plan of one segment (today's mapping with the free choices made for the
  objective), the best plan found and its saving over each, and what it does (which layers on which cores,
  where it carries rates), with the closed form's and the simulator's figures;
* mapping_search.png: energy against latency per model and chip: today's three mappings, every plan shape
  the search priced (grey), and the best plan per objective;
* mapping_search.json: the numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("spiking-sentiment-2l", "spikingbert-4l", "tinyllama-1.1b")
CHIPS = ("edge-45nm", "spatial-45nm-large", "loihi", "llm-45nm-hbm3-x4")
DECODER_CHIPS = ("llm-45nm-hbm3-x4",)      # a decoder on the chip made for it; encoders on the others
OBJECTIVES = ("energy", "latency", "edp")
TODAY = (("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates"))


def value(objective: str, energy_j: float, latency_s: float) -> float:
    return {"energy": energy_j, "latency": latency_s, "edp": energy_j * latency_s}[objective]


def today(net, arch) -> list[dict]:
    """Today's three mappings as the arch runs them (its own objective for the free choices)."""
    import neurosim

    out = []
    for kind, carry in TODAY:
        r = neurosim.estimate(net, arch, kind, carry)
        out.append(dict(mapping=kind if kind == "spatial" else f"sequential/{carry}", feasible=r.feasible,
                        energy_j=r.energy_pj * 1e-12 if r.feasible else None,
                        latency_s=r.latency_s if r.feasible else None,
                        why=None if r.feasible else r.notes[0]))
    return out


def one_case(net, arch, objective: str, tables) -> dict:
    from neurosim.errors import NeurosimError
    from neurosim.mapping import search

    fixed = today(net, arch)
    row = dict(model=net.name, chip=arch.name, objective=objective, today=fixed)
    try:   # the decoder's 333-layer step: one simulator confirmation (about a minute each)
        result = search(net, arch, objective, seed=0, confirm=1 if net.metadata.get("decoder") else 2,
                        tables=tables)
    except NeurosimError as exc:
        return {**row, "found": False, "why": exc.problem}
    best_today = min((f for f in fixed if f["feasible"]), default=None,
                     key=lambda f: (value(objective, f["energy_j"], f["latency_s"]), f["latency_s"], f["energy_j"]))
    one = min((s for s in result.found if len(s.shape) == 1), key=lambda s: s.score, default=None)
    top = result.found[0]
    confirmed = result.table.iloc[0]
    return {**row, "found": True, "method": result.method, "space": result.space_size, "priced": result.priced,
            "seconds": result.seconds, "plan": result.best.label(), "segments": len(result.best.segments),
            "plan_file": result.best.model_dump(exclude_none=True),
            "why": why(net, arch, result.best, best_today),
            "energy_j": top.energy_j, "latency_s": top.latency_s, "peak_bytes": top.peak_bytes,
            "sim_energy_j": float(confirmed.get("sim_energy_j", float("nan"))),
            "sim_latency_s": float(confirmed.get("sim_latency_s", float("nan"))),
            "best_today": best_today,
            "one_segment": None if one is None else dict(label=_shape_label(net, one.shape), energy_j=one.energy_j,
                                                         latency_s=one.latency_s),
            # every shape priced, by its best split: [energy (J), latency (s), segments], 5 digits
            "shapes": [[float(f"{s.energy_j:.5g}"), float(f"{s.latency_s:.5g}"), len(s.shape)] for s in result.found]}


def why(net, arch, plan, best_today: dict | None) -> str:
    """Where the best plan's energy differs from today's best mapping's, by kind (closed form), largest first."""
    import neurosim
    from neurosim.mapping import plan_report
    from neurosim.report import format_si

    if best_today is None:
        return "today's mappings do not fit"
    kind, _, carry = best_today["mapping"].partition("/")
    old = neurosim.estimate(net, arch, kind, carry or "spikes").energy_breakdown_pj
    new = plan_report(plan, net, arch).energy_breakdown_pj
    diffs = sorted((((new[k] - old[k]) * 1e-12, k) for k in new), key=lambda d: -abs(d[0]))
    return ", ".join(f"{k} {'+' if d >= 0 else '-'}{format_si(abs(d), 'J')}" for d, k in diffs[:3] if d != 0) or \
        "the same energy by kind"


def _shape_label(net, shape) -> str:
    names = [layer.name for layer in net.layers]
    return " | ".join(f"{k if k == 'spatial' else k + '/' + c} {names[a]}..{names[b]}" for a, b, k, c in shape)



def dumps(cases: list[dict]) -> str:
    """The cases as JSON, one line each (the shapes' figures make them long)."""
    return "[\n" + ",\n".join(json.dumps(c) for c in cases) + "\n]\n"


def saving(objective: str, new: dict, old: dict | None) -> float | None:
    if old is None or old.get("energy_j") is None:
        return None
    a, b = value(objective, new["energy_j"], new["latency_s"]), value(objective, old["energy_j"], old["latency_s"])
    return 100 * (1 - a / b)


def markdown(cases: list[dict]) -> str:
    from neurosim.report import format_si

    lines = ["# What the mapping search finds", "",
             "Written by `python analysis/mapping_search.py` (closed form; the best 2 plans of each search "
             "confirmed by the simulator). Today: the best of today's three fixed mappings (spatial, sequential "
             "carrying spikes or rates) as the arch config runs them, its free choices (spare cores, pool size) "
             "made for the arch's own objective (edp on every shipped chip). One segment: the best of the same "
             "three mappings with those choices made for the row's objective. Saving: of the row's objective, "
             "by the best plan found over each. The decoder (tinyllama-1.1b) is one decode step at its "
             "workload's mean cache length (prompt 512, 128 tokens: 575.5 cached tokens, batch 1) on one "
             "chip of llm-45nm-hbm3-x4 (its 256 cores and HBM; splitting a decoder over the four chips is "
             "neurosim.llm's), against today's three mappings on the same chip. What the plans do and why: "
             "docs/mapping-search.md, \"What it finds\".", "",
             "| model | chip | objective | today (best) | one segment | best plan | closed form: energy, latency "
             "| simulator: energy, latency | saving vs today | vs one segment | energy against today's, by kind "
             "| search |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        head = f"| {c['model']} | {c['chip']} | {c['objective']} |"
        if not c["found"]:
            lines.append(f"{head} no mapping fits | - | - | - | - | - | - | - | {c['why']} |")
            continue
        t, one = c["best_today"], c["one_segment"]
        s_today, s_one = saving(c["objective"], c, t), saving(c["objective"], c, one)
        fmt = lambda s: "-" if s is None else f"{s:.1f} %"  # noqa: E731
        lines.append(
            f"{head} {t['mapping'] if t else 'none fits'} | {one['label'] if one else '-'} | {c['plan']} | "
            f"{format_si(c['energy_j'], 'J')}, {format_si(c['latency_s'], 's')} | "
            f"{format_si(c['sim_energy_j'], 'J')}, {format_si(c['sim_latency_s'], 's')} | {fmt(s_today)} | "
            f"{fmt(s_one)} | {c['why']} | {c['method']}, {c['priced']:,} of {c['space']:,} plans, "
            f"{c['seconds']:.0f} s |")
    return "\n".join(lines) + "\n"


def figure(cases: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from neurosim.report import format_si

    models = sorted({c["model"] for c in cases}, key=MODELS.index)
    rows = [[ch for ch in CHIPS if any(c["chip"] == ch and c["model"] == m for c in cases)] for m in models]
    width = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(models), width, figsize=(4.6 * width, 4.0 * len(models)), squeeze=False)
    marks = {"energy": ("*", "tab:green"), "latency": ("P", "tab:blue"), "edp": ("X", "tab:red")}
    today_marks = {"spatial": "s", "sequential/spikes": "^", "sequential/rates": "o"}
    for i, model in enumerate(models):
        for j in range(len(rows[i]), width):
            axes[i][j].set_visible(False)
        for j, chip in enumerate(rows[i]):
            ax, here = axes[i][j], [c for c in cases if c["model"] == model and c["chip"] == chip]
            step = " (a decode step, one chip)" if chip in DECODER_CHIPS else ""
            ax.set_title(f"{model} on {chip}{step}", fontsize=9)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_si(v, "s")))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_si(v, "J")))
            per = "decode step" if chip in DECODER_CHIPS else "inference"
            ax.set_xlabel(f"latency per {per} (s)")
            ax.set_ylabel(f"energy per {per} (J)")
            shapes = [s for c in here if c["found"] for s in c["shapes"]]
            if shapes:
                ax.scatter([s[1] for s in shapes], [s[0] for s in shapes], s=6, c="0.8",
                           label="plan shapes priced", zorder=1)
            for f in here[0]["today"] if here else []:
                if f["feasible"]:
                    ax.scatter(f["latency_s"], f["energy_j"], marker=today_marks[f["mapping"]], facecolors="none",
                               edgecolors="k", s=110, label=f"today: {f['mapping']}", zorder=5)
            for c in here:
                if c["found"]:
                    m, col = marks[c["objective"]]
                    ax.scatter(c["latency_s"], c["energy_j"], marker=m, color=col, s=90, zorder=4,
                               label=f"best for {c['objective']} ({c['segments']} seg.)")
            if not shapes:
                ax.text(0.5, 0.5, "no mapping fits\n(weights exceed the SRAM,\nno DRAM)", ha="center",
                        va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the shipped encoder only")
    parser.add_argument("--from-json", action="store_true", help="redraw the table and figure from mapping_search.json")
    args = parser.parse_args()
    if args.from_json:
        cases = json.loads((HERE / "mapping_search.json").read_text())
        (HERE / "mapping_search.md").write_text(markdown(cases))
        figure(cases, HERE / "mapping_search.png")
        return
    import neurosim
    from neurosim.mapping.space import SegmentTables

    from neurosim.mapping.cli import map_network

    models = MODELS[:1] if args.quick else MODELS
    cases = []
    for model in models:
        decoder = map_network(model, None).metadata.get("decoder", False)
        for chip in (c for c in CHIPS if (c in DECODER_CHIPS) == decoder):
            net, arch = map_network(model, None), neurosim.load_arch(chip)   # a decoder: one decode step
            tables = SegmentTables(net, arch, OBJECTIVES)     # each segment priced once for the three searches
            for objective in OBJECTIVES:
                cases.append(one_case(net, arch, objective, tables))
                c = cases[-1]
                print(f"{model} on {chip}, {objective}: {c.get('plan', c.get('why'))}", flush=True)
            (HERE / "mapping_search.json").write_text(dumps(cases))
    (HERE / "mapping_search.json").write_text(dumps(cases))
    (HERE / "mapping_search.md").write_text(markdown(cases))
    figure(cases, HERE / "mapping_search.png")


if __name__ == "__main__":
    main()
