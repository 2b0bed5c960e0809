"""The sweep's shortcuts give the reference's numbers: points planned section by section are the merged arch
validated as one config (same ids, same refusals), and the batched closed form, which prices each distinct
point once where points differ only in what a part does not read, gives `cost.estimate`'s rows on every
shipped arch."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from neurosim.arch import load_arch
from neurosim.cards import load_model
from neurosim.cost import closed_form
from neurosim.cost.chips import Chips
from neurosim.cost.distinct import distinct
from neurosim.cost.workload import workload
from neurosim.dse import evaluate as ev
from neurosim.dse.spec import load_spec, merged_arch, plan, point_id
from neurosim.errors import NeurosimError
from neurosim.ir import Network

SHIPPED_ARCHS = ("edge-45nm", "loihi", "spatial-45nm-large", "h200", "llm-45nm-hbm3-x4")


def spec_file(tmp_path: Path, base: str, axes: dict, models=("tiny-encoder",)) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "shortcuts", "base": base, "models": list(models), "axes": axes},
                                   sort_keys=False))
    return path


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return (a or None) == (b or None)


def test_distinct_groups_points_equal_in_every_column():
    # points 0 and 2 agree in both columns; 1 differs in the list, 3 in one entry of the (n, 2) array
    first, inverse = distinct([["a", "b", "a", "a"], np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, -2.0]])], 4)
    assert len(first) == 3
    assert inverse[0] == inverse[2] and len({inverse[0], inverse[1], inverse[3]}) == 3
    assert (first[inverse] == [0, 1, 0, 3]).all()


@pytest.mark.parametrize("base", SHIPPED_ARCHS)
def test_batched_rows_equal_estimate_one_point_at_a_time_on_every_shipped_arch(tmp_path, base):
    """Core counts that share every other field share their pool sizes' scores and their levels' counts."""
    spec = spec_file(tmp_path, base, {"cores.count": [4, 16, 64, 300], "cores.sram_bytes": [65536, 1048576],
                                      "mapping": ["spatial", "sequential:spikes", "sequential:rates"]},
                     models=("tiny-encoder", "spikingbert-4l"))
    points = plan(load_spec(spec))
    rows = ev.evaluate_batch(points)
    statuses = set()
    for point, row in zip(points, rows):
        ref = ev.evaluate_point(point)
        statuses.add(ref["status"])
        for key, want in ref.items():
            if key not in ("eval_s", "point_id"):
                assert same(row.get(key), want), (point.values, key, row.get(key), want)
    assert "ok" in statuses


def test_a_batch_picks_each_points_pool_as_it_would_alone():
    arch = load_arch("edge-45nm")
    work, table = workload(load_model("spikingbert-4l"), False, False), arch.energy
    archs = []
    for count, gb in [(16, 2**19), (300, 2**19), (4096, 2**19), (300, 2**21)]:
        a = arch.model_dump()
        a["cores"]["count"], a["global_buffer"]["bytes"] = count, gb
        archs.append(a)
    together = closed_form.pool_cores(work, Chips(archs), table, "rates")
    alone = [closed_form.pool_cores(work, Chips([a]), table, "rates")[0] for a in archs]
    assert together.tolist() == alone
    assert len(set(alone)) > 1     # the sizes differ, so a copied score would show


def test_planned_points_are_the_merged_arch_validated_as_one_config(tmp_path):
    spec = spec_file(tmp_path, "edge-45nm", {"cores.count": [16, 64], "cores.levels.accumulators.bytes": [512, 2048],
                                             "global_buffer.bytes": [262144, 1048576], "dram.bytes_per_s": [1e9, 1e10],
                                             "mapping": ["spatial", "sequential:rates"], "engine": ["analytic", "sim"]})
    sweep = load_spec(spec)
    points = plan(sweep)
    assert len(points) == 2 ** 6
    for p in points:
        arch = merged_arch(sweep, p.values)
        assert p.arch == arch and list(p.arch) == list(arch)
        assert p.id == point_id(arch, p.model, p.engine)
    assert len({p.id for p in points}) == len(points)


def test_a_combination_one_section_refuses_is_refused_as_one_config_refuses_it(tmp_path):
    # each value alone fits the base; a 4 KiB level below a 2 KiB SRAM does not
    spec = spec_file(tmp_path, "edge-45nm", {"cores.sram_bytes": [65536, 2048],
                                             "cores.levels.accumulators.bytes": [1024, 4096]})
    sweep = load_spec(spec)
    with pytest.raises(NeurosimError) as planned:
        plan(sweep)
    with pytest.raises(NeurosimError) as alone:
        merged_arch(sweep, {"cores.sram_bytes": 2048, "cores.levels.accumulators.bytes": 4096})
    assert str(planned.value) == str(alone.value)
    assert planned.value.field == "axes" and "larger than the core SRAM" in planned.value.problem
    assert str(spec) in planned.value.where


def test_consumers_are_the_layers_that_read_a_layer_in_order():
    net = load_model("spikingbert-4l")
    assert isinstance(net, Network)
    for layer in net.layers:
        want = [other.name for other in net.layers if layer.name in other.inputs]
        assert [c.name for c in net.consumers(layer.name)] == want
    assert net.consumers("no such layer") == []
