"""Plots: the comparison and the timeline are written as PNG files."""

import pytest

import neurosim
from neurosim.arch import load_arch
from neurosim.errors import NeurosimError
from neurosim.plots import compare_plot, timeline_plot
from neurosim.sim import simulate

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reports():
    net, arch = neurosim.load_model("tiny-encoder"), load_arch("edge-45nm")
    return [simulate(net, arch, "spatial", timeline=True),
            simulate(net, arch, "sequential", "spikes", timeline=True),
            simulate(net, arch, "sequential", "rates", timeline=True)]


def test_compare_plot_writes_a_png(tmp_path, reports):
    infeasible = simulate(neurosim.load_model("spikingbert-4l"), load_arch("edge-45nm"), "spatial")
    out = compare_plot(reports + [infeasible], tmp_path / "compare.png")
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000


@pytest.mark.parametrize("which", [0, 1])
def test_timeline_plot_writes_a_png(tmp_path, reports, which):
    tl = reports[which].timeline
    assert list(tl.columns[:5]) == ["component", "start", "end", "layer", "timestep"]
    assert (tl.end >= tl.start).all() and {"compute", "occupancy"} <= set(tl.kind)
    out = timeline_plot(reports[which], tmp_path / "timeline.png")
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000


def test_timeline_plot_needs_a_timeline(tmp_path):
    r = simulate(neurosim.load_model("tiny-encoder"), load_arch("edge-45nm"))
    with pytest.raises(NeurosimError, match="timeline=True"):
        timeline_plot(r, tmp_path / "x.png")


def test_running_layer_labels_fit_inside_their_layers_run_or_are_left_out():
    import pandas as pd

    from neurosim.plots import running_layer_labels

    # three layers on the pool, one after another (us = 1: times in the axis's units); a character 1 wide
    busy = pd.DataFrame({"component": "pool", "kind": "compute",
                         "layer": ["block0.intermediate", "block0.k", "block0.v", "block0.v"],
                         "start": [0.0, 30.0, 35.0, 36.0], "end": [30.0, 35.0, 36.0, 36.5]})
    labels = running_layer_labels(busy, "pool", us=1.0, char=1.0)
    # 19 characters fit in a run of 30; 'block0.k' (8) does not fit in 5, its 'k' does; v's 1.5 fits 'v' only
    assert labels == [(15.0, "block0.intermediate"), (32.5, "k"), (35.75, "v")]
    # twice as wide: 'intermediate' (24) is what fits in 30, and nothing fits in v's 1.5
    assert running_layer_labels(busy, "pool", us=1.0, char=2.0) == [(15.0, "intermediate"), (32.5, "k")]
    # a channel's row (no compute) is not labelled
    assert running_layer_labels(busy.assign(kind="transfer"), "pool", us=1.0, char=1.0) == []
