"""The sweep report: a Markdown (or HTML) page with the Pareto front, the best point per objective and figures.

    write_report("out/mem")                                   # out/mem/report.md + out/mem/figures/*.png
    write_report("out/mem", ["energy", "latency"], fmt="html")

Per-layer detail is not kept in results.csv (one row per point); the page
re-evaluates the few points it draws per layer (the best per objective) from
the spec the sweep ran, which takes well under a second per point.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from ..errors import NeurosimError
from .figures import front_breakdown, mapping_comparison, per_layer_latency, scatter_front
from .labels import (area_text, axis_columns, bytes_text, describe, energy_text, latency_text, mapping_label,
                     value_text)
from .pareto import DEFAULT_BY, best_per_objective, objective_columns, pareto_front
from .store import SPEC_COPY, load_results, read_meta

MAX_FRONT_ROWS = 25
PRETTY = {"energy_pj": "energy", "latency_s": "latency", "area_mm2": "chip area", "sram_provided_bytes": "SRAM on chip",
          "memory_peak_on_chip_bytes": "peak on-chip memory"}


def point_table(df: pd.DataFrame, by: list[str], axes: list[str], extra: list[str] = ()) -> pd.DataFrame:
    """Sweep rows as text for people: `extra` and `by` columns, mapping, axes, results with units, point id."""
    out = pd.DataFrame(index=df.index)
    for c in list(extra) + by:
        out[c] = df[c].map(lambda v: PRETTY.get(v, v))
    out["mapping"] = [mapping_label(m, c) for m, c in zip(df["mapping"], df["carry"])]
    for a in axes:
        if a not in ("mapping", "mapping.kind", "mapping.carry") and a not in by and a not in extra:
            out[a] = [value_text(a, v) for v in df[a]]
    out["energy"] = df["energy_pj"].map(energy_text)
    out["latency"] = df["latency_s"].map(latency_text)
    out["chip area"] = df["area_mm2"].map(area_text) if "area_mm2" in df else "-"
    out["SRAM on chip"] = df["sram_provided_bytes"].map(bytes_text) if "sram_provided_bytes" in df else "-"
    out["peak held"] = df["memory_peak_on_chip_bytes"].map(bytes_text)
    out["DRAM traffic"] = df["dram_traffic_bytes"].map(bytes_text)
    out["point"] = df["point_id"]
    return out


def markdown_table(df: pd.DataFrame) -> str:
    """A table's columns and rows as a Markdown table ('|' in cells escaped)."""
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _spec_points(out: Path, ids: set[str]):
    """The sweep's points with these ids, planned again from its spec (None if the spec cannot be loaded)."""
    from .spec import load_spec, plan

    meta = read_meta(out)
    for candidate in (meta.get("spec"), out / SPEC_COPY):
        if candidate and Path(candidate).is_file():
            try:
                points = plan(load_spec(candidate))
            except NeurosimError:
                continue
            found = {p.id: p for p in points if p.id in ids}
            if found:
                return found
    return None


def _per_layer_items(out: Path, best: pd.DataFrame, limit: int = 6) -> tuple[list, str]:
    from .evaluate import point_arch
    from .models import load_point_model

    # Per model: the best-energy and best-latency points (of the simulator where the sweep ran both engines).
    engines = set(best["engine"])
    pick = best[best["best_for"].isin(["energy_pj", "latency_s"])]
    if "sim" in engines and len(engines) > 1:
        pick = pick[pick["engine"] == "sim"]
    rows = pick.drop_duplicates("point_id").head(limit)
    points = _spec_points(out, set(rows["point_id"]))
    if points is None:
        return [], "per-layer latency not drawn: the sweep's spec could not be loaded to re-evaluate its points"
    items = []
    for _, row in rows.iterrows():
        p = points.get(row["point_id"])
        if p is None:
            continue
        net, arch = load_point_model(p.model), point_arch(p)
        if p.engine == "analytic":
            from ..cost.estimate import estimate

            rep = estimate(net, arch)
        else:
            from ..sim import simulate

            rep = simulate(net, arch)
        if rep.per_layer is None:
            continue
        bests = ", ".join(PRETTY.get(b, b) for b in best.loc[best["point_id"] == row["point_id"], "best_for"])
        title = (f"{row['model']}: best {bests}\n{mapping_label(row['mapping'], row['carry'])}, "
                 f"{latency_text(row['latency_s'])} ({p.engine})")
        items.append((title, rep.per_layer, arch.clock_hz))
    return items, ""


def write_report(out_dir: str | Path, objectives=("energy", "latency", "area"), fmt: str = "md",
                 page: str | Path | None = None, by=DEFAULT_BY, per_layer: bool = True) -> Path:
    """Write the report page and its figures (DIR/figures/) and the full front (DIR/pareto.csv)."""
    out = Path(out_dir)
    df = load_results(out)
    meta = read_meta(out)
    cols = objective_columns(list(objectives), df)
    axes_all = meta.get("axes") or [c for c in df.columns if "." in c]
    varying = axis_columns(df, axes_all)
    by = [b for b in by if b in df.columns]
    shown_by = [b for b in by if df[b].nunique() > 1] or by[:1]
    front = pareto_front(df, cols, by)
    best = best_per_objective(df, cols, by)
    front.to_csv(out / "pareto.csv", index=False)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)

    sections: list[tuple] = []
    status = df["status"].value_counts()
    name = meta.get("name", out.name)
    sections.append(("h1", f"Sweep report: {name}"))
    sections.append(("p", f"{len(df)} points: {status.get('ok', 0)} feasible, {status.get('infeasible', 0)} "
                          f"infeasible, {status.get('error', 0)} failed. Models: {', '.join(df['model'].unique())}; "
                          f"engines: {', '.join(df['engine'].unique())}; varied: "
                          f"{', '.join(varying) or '(nothing)'}. Spec: `{meta.get('spec', '?')}`."))
    sections.append(("p", "All objectives are minimised: energy per inference, latency per inference, the area of "
                          "one chip (mm², from `arch_configs/area/`) or the SRAM it provides ('memory'). 'peak held' "
                          "is what the model keeps on chip at once. Fronts are computed per "
                          f"{' and '.join(by) or 'sweep'}; the full front is in `pareto.csv`."))

    sections.append(("h2", f"Pareto front ({', '.join(PRETTY.get(c, c) for c in cols)})"))
    for key, g in front.groupby(by, sort=False) if by else [((), front)]:
        key = key if isinstance(key, tuple) else (key,)
        title = " / ".join(str(k) for k in key)
        sections.append(("h3", f"{title}: {len(g)} points on the front"))
        t = point_table(g.head(MAX_FRONT_ROWS), [], [a for a in varying if a not in by])
        sections.append(("table", t))
        if len(g) > MAX_FRONT_ROWS:
            sections.append(("p", f"... and {len(g) - MAX_FRONT_ROWS} more (lowest {cols[0]} first) in pareto.csv."))

    sections.append(("h2", "Best point per objective"))
    sections.append(("table", point_table(best, shown_by, varying, extra=["best_for"])))

    sections.append(("h2", "Figures"))
    scatter_front(df, figs / "energy_latency.png", by, cols if len(cols) == 3 else None)
    sections.append(("img", "figures/energy_latency.png",
                     "Energy vs latency of every feasible point (log-log), coloured by mapping; black staircase: "
                     "the energy-latency Pareto front" + (f"; red rings: the front with {PRETTY.get(cols[2], cols[2])} "
                                                          "as a third objective." if len(cols) == 3 else ".")))
    both = {"sim", "analytic"} <= set(front["engine"])
    front_breakdown(front[front["engine"] == "sim"] if both else front, varying, figs / "front_breakdown.png", by)
    sections.append(("img", "figures/front_breakdown.png",
                     "Where the energy of the front's points goes (compute, SRAM, DRAM, interconnect, leakage)"
                     + (", simulator's fronts (the closed form's are in the table above)." if both else ".")))
    if per_layer:
        items, why_not = _per_layer_items(out, best)
        if items:
            per_layer_latency(items, figs / "per_layer_latency.png")
            sections.append(("img", "figures/per_layer_latency.png",
                             "Time per layer of the best points, re-evaluated with per-layer detail. Sequential "
                             "mapping: layers run one after another (bars add up to the latency). Spatial: layers "
                             "overlap in a pipeline (each bar is that layer's own compute time)."))
        elif why_not:
            sections.append(("p", why_not))
    mapping_comparison(df, figs / "mapping_comparison.png")
    sections.append(("img", "figures/mapping_comparison.png",
                     "Lowest energy and lowest latency each mapping reaches on this sweep's configurations, "
                     "per model, models ordered by weight size."))

    errors = df[df["status"] == "error"]
    if len(errors):
        sections.append(("h2", f"Failed points ({len(errors)})"))
        counts = errors["error"].fillna("?").str.replace(r"\(point [0-9a-f]+\)", "(point ...)", regex=True)
        sections.append(("table", counts.value_counts().head(10).rename_axis("error").reset_index(name="points")))
    infeasible = df[df["status"] == "infeasible"]
    if len(infeasible):
        sections.append(("h2", f"Infeasible points ({len(infeasible)})"))
        reasons = infeasible["notes"].fillna("?").str.replace(r"\d[\d.]*", "N", regex=True)
        sections.append(("table", reasons.value_counts().head(10).rename_axis("reason (numbers as N)")
                         .reset_index(name="points")))

    page = Path(page) if page else out / ("report.html" if fmt == "html" else "report.md")
    page.write_text(_render_html(sections, name) if fmt == "html" else _render_md(sections))
    return page


def _render_md(sections) -> str:
    out = []
    for kind, *rest in sections:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + rest[0])
        elif kind == "p":
            out.append(rest[0])
        elif kind == "table":
            out.append(markdown_table(rest[0]))
        elif kind == "img":
            out.append(f"![{rest[1]}]({rest[0]})\n\n*{rest[1]}*")
    return "\n\n".join(out) + "\n"


def _render_html(sections, title: str) -> str:
    body = []
    for kind, *rest in sections:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(rest[0])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(rest[0])}</p>")
        elif kind == "table":
            body.append(rest[0].to_html(index=False, escape=True, border=0, classes="t"))
        elif kind == "img":
            body.append(f'<figure><img src="{html.escape(rest[0])}" alt="{html.escape(rest[1])}">'
                        f"<figcaption>{html.escape(rest[1])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table.t{border-collapse:collapse;font-size:12px}table.t td,table.t th{border-bottom:1px solid #ddd;"
             "padding:2px 8px;text-align:left}img{max-width:100%}figcaption{font-size:13px;color:#444}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


__all__ = ["write_report", "describe"]
