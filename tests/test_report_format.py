"""Numbers as people read them (SI prefixes, µ, no e-notation) and the figures' choices, checked on small cases."""

from __future__ import annotations

import pandas as pd
import neurosim
from neurosim.plots import axis_scale, compare_plot, stall_share, timeline_rows
from neurosim.report import Report, format_area, format_bytes, format_si


def test_si_numbers_use_micro_and_never_e_notation():
    assert format_si(3.2e-6, "J") == "3.2 µJ"
    assert format_si(4.54752e7, "cycles") == "45.5 Mcycles"
    assert format_si(2.5e15, "ops") == "2,500 Tops"
    assert format_si(None, "s") == "-"
    assert axis_scale([19.6e-6], "s") == (1e-6, "µs")


def test_areas_read_in_mm2_or_um2():
    assert format_area(13.4006) == "13.4 mm²"
    assert format_area(1620.4) == "1,620 mm²"
    assert format_area(0.002982) == "2,982 µm²"
    assert format_area(0.0) == "0 mm²" and format_area(None) == "-"
    assert format_bytes(1.5 * 2**20) == "1.5 MiB"


def report(mapping: str, latency_cycles: float, stall: float | None, layers: int = 3) -> Report:
    return Report(model="m", arch="a", mapping=mapping, carry="spikes", engine="sim", feasible=True,
                  energy_pj=1e6, energy_breakdown_pj=dict(compute=4e5, sram=3e5, dram=0, interconnect=2e5,
                                                          leakage=1e5),
                  latency_cycles=latency_cycles, latency_s=latency_cycles / 1e9, stall_cycles=stall,
                  per_layer=pd.DataFrame({"layer": [f"l{i}" for i in range(layers)]}))


def test_stall_share_of_the_latency():
    assert stall_share(report("sequential", 1000, 250)) == 0.25     # one pool: its stalls are on the path
    assert stall_share(report("spatial", 1000, 1500, layers=3)) == 0.5   # summed over 3 stages: mean 500
    assert stall_share(report("spatial", 1000, 9000, layers=3)) == 1.0   # never more than the latency
    assert stall_share(report("sequential", 1000, None)) == 0.0         # the closed form has no stalls


def test_compare_plot_draws_infeasible_and_feasible_bars(tmp_path):
    bad = Report(model="m", arch="a", mapping="spatial", carry="spikes", engine="sim", feasible=False)
    out = compare_plot([report("sequential", 1000, 250), bad], tmp_path / "c.png")
    assert out.stat().st_size > 10_000


def test_timeline_rows_follow_the_network_order_in_every_block():
    net = neurosim.load_model("tiny-encoder")
    order = [layer.name for layer in net.layers]
    # tiles started in another order (block 1's k before its q), then the channels
    started = [order[1], order[0], *order[2:7], order[8], order[7], *order[9:]]
    busy = pd.DataFrame({"component": [f"tile {n}" for n in started] + ["interconnect"],
                         "kind": ["compute"] * len(started) + ["transfer"], "start": range(len(started) + 1),
                         "end": range(1, len(started) + 2), "layer": started + [None]})
    rep = Report(model="m", arch="a", mapping="spatial", carry="spikes", engine="sim", feasible=True,
                 per_layer=pd.DataFrame({"layer": order}))
    assert timeline_rows(rep, busy, 40) == [f"tile {n}" for n in order] + ["interconnect"]


def test_the_interconnect_has_one_name_in_tables_and_figures():
    from neurosim.dse.figures import BREAKDOWN_LABELS
    from neurosim.report import BREAKDOWN

    assert "interconnect" in BREAKDOWN and BREAKDOWN_LABELS["interconnect"] == "interconnect"
