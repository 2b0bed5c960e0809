"""Sweep specs: refusals name the spec file, the key and the fix; ranges, sampling, stable point ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from neurosim.cli import main
from neurosim.dse.spec import check_models, load_spec, plan
from neurosim.errors import NeurosimError

GOOD = {"name": "s", "base": "edge-45nm", "models": ["tiny-encoder"],
        "axes": {"cores.count": [4, 16], "mapping": ["spatial", "sequential:rates"]}}


def spec_file(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def refused(tmp_path: Path, data: dict) -> NeurosimError:
    path = spec_file(tmp_path, data)
    with pytest.raises(NeurosimError) as exc:
        sweep = load_spec(path)
        check_models(sweep, plan(sweep))
    err = exc.value
    assert err.where == str(path), err
    assert "Fix:" in str(err) and err.fix
    return err


@pytest.mark.parametrize("mutate, field, words", [
    (lambda d: d.update(axis={"cores.count": [4]}), "axis", "unknown key"),                  # misspelt top key
    (lambda d: d["axes"].update({"cores.cout": [4]}), "axes.cores.cout", "unknown axis"),    # no such field
    (lambda d: d["axes"].update({"cores.count": [16, 0]}), "axes.cores.count", "greater than 0"),  # impossible
    (lambda d: d["axes"].update({"global_buffer.bytes": [-1]}), "axes.global_buffer.bytes", "greater than 0"),
    (lambda d: d["axes"].update({"mapping": ["diagonal"]}), "axes.mapping", "unknown mapping"),
    (lambda d: d["axes"].update({"mapping.carry": ["both"]}), "axes.mapping.carry", "refused by the arch schema"),
    (lambda d: d["axes"].update({"engine": ["spice"]}), "axes.engine", "unknown engine"),
    (lambda d: d["axes"].update({"energy_table": ["no-such-table"]}), "axes.energy_table", "no such file"),
    (lambda d: d["axes"].update({"cores.count": []}), "axes.cores.count", "no values"),
    (lambda d: d["axes"].update({"clock_hz": {"from": 1e8, "to": 1e9}}), "axes.clock_hz.num", "missing"),
    (lambda d: d["axes"].update({"clock_hz": {"from": 0, "to": 1e9, "num": 3, "scale": "log"}}),
     "axes.clock_hz", "log scale"),
    (lambda d: d.update(set={"dram.bytes_per_s": -5}), "set.dram.bytes_per_s", "greater than or equal to 1000"),
    (lambda d: d.update(models=["no-such-model"]), "models (no-such-model)", "no such file"),
    (lambda d: d.update(models=[{"name": "x", "model": "tiny-encoder", "set": {"heads": 3}}]),
     "models (x)", "multiple of heads"),
    (lambda d: d["axes"].update({"model.hiden": [8]}), "models / model.* axes (tiny-encoder)", "unknown key"),
    (lambda d: d.update(sampling={"kind": "random"}), "sampling", "needs 'n'"),
    (lambda d: d.update(base="no-such-chip"), "base", "no such file"),
])
def test_bad_spec_refused_with_file_key_fix(tmp_path, mutate, field, words):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    mutate(data)
    err = refused(tmp_path, data)
    assert err.field == field, str(err)
    assert words in str(err), str(err)


def test_bad_spec_is_one_clear_line_on_the_command_line(tmp_path, capsys):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["axes"]["cores.count"] = [0]
    path = spec_file(tmp_path, data)
    assert main(["sweep", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "axes.cores.count" in err and "Fix:" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_axis_ranges_and_section_values(tmp_path):
    data = dict(GOOD, axes={"global_buffer.bytes": {"from": 65536, "to": 1048576, "num": 5, "scale": "log"},
                            "clock_hz": {"from": 1.0e8, "to": 3.0e8, "num": 3},
                            "dram": [None, {"bytes_per_s": 1.0e9}]})
    sweep = load_spec(spec_file(tmp_path, data))
    assert sweep.axes["global_buffer.bytes"].values() == [65536, 131072, 262144, 524288, 1048576]
    assert sweep.axes["clock_hz"].values() == [1e8, 2e8, 3e8]
    points = plan(sweep)
    assert len(points) == 5 * 3 * 2
    assert {p.arch["dram"] is None for p in points} == {True, False}


def test_point_ids_are_stable_and_order_free(tmp_path):
    a = plan(load_spec(spec_file(tmp_path, GOOD, "a.yaml")))
    flipped = dict(GOOD, axes=dict(reversed(list(GOOD["axes"].items()))))
    b = plan(load_spec(spec_file(tmp_path, flipped, "b.yaml")))
    assert [p.id for p in a] == [p.id for p in plan(load_spec(spec_file(tmp_path, GOOD, "c.yaml")))]
    assert {p.id for p in a} == {p.id for p in b} and len(a) == 4


def test_duplicate_points_are_dropped(tmp_path):
    # spatial ignores carry, but 'sequential' and 'sequential:spikes' are the same config.
    data = dict(GOOD, axes={"mapping": ["sequential", "sequential:spikes", "sequential:rates"]})
    assert len(plan(load_spec(spec_file(tmp_path, data)))) == 2


def test_random_sampling_is_seeded(tmp_path):
    data = dict(GOOD, axes={"cores.count": {"from": 4, "to": 1024, "num": 2, "scale": "log"},
                            "mapping": ["spatial", "sequential:rates"]},
                sampling={"kind": "random", "n": 25, "seed": 3})
    p1 = plan(load_spec(spec_file(tmp_path, data, "r1.yaml")))
    p2 = plan(load_spec(spec_file(tmp_path, data, "r2.yaml")))
    assert [p.id for p in p1] == [p.id for p in p2]
    assert 15 <= len(p1) <= 25   # duplicates drawn twice are kept once
    counts = [p.arch["cores"]["count"] for p in p1]
    assert all(4 <= c <= 1024 and isinstance(c, int) for c in counts) and len(set(counts)) > 10


def test_model_variants_and_card_axes(tmp_path):
    data = dict(GOOD, models=["tiny-encoder", {"name": "tiny-fast", "model": "tiny-encoder", "set": {"timesteps": 1}}],
                axes={"model.seq_len": [4, 8]})
    sweep = load_spec(spec_file(tmp_path, data))
    points = plan(sweep)
    check_models(sweep, points)
    assert [p.model.label for p in points] == ["tiny-encoder", "tiny-encoder", "tiny-fast", "tiny-fast"]
    assert len({p.id for p in points}) == 4
    assert points[0].values == {"model.seq_len": 4}
