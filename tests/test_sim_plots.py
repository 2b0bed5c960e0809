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
