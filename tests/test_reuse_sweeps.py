"""Data reuse in sweeps (issue 22): the dataflow, tile caps, level sizes and ports are axes like any other,
the vectorised closed form gives the same rows as `estimate` one point at a time, and stored sweeps keep
their point ids when the new fields are left at their defaults."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from neurosim.arch import MemoryLevel
from neurosim.cost import reuse
from neurosim.dse import evaluate as ev
from neurosim.dse.spec import LATER_FIELDS, arch_keys, load_spec, plan
from neurosim.errors import NeurosimError


def spec_file(tmp_path: Path, axes: dict, **extra) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "reuse", "base": "edge-45nm", "models": ["tiny-encoder"],
                                    "axes": axes, **extra}, sort_keys=False))
    return path


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return (a or None) == (b or None)


def test_dataflow_tile_level_and_port_axes_give_the_same_rows_in_both_paths(tmp_path):
    spec = spec_file(tmp_path, {"cores.dataflow.stationary": ["weight", "input"],
                                "cores.dataflow.events": ["per_event", "per_input"],
                                "cores.dataflow.tile_tokens": [None, 2],
                                "cores.levels.accumulators.bits_per_cycle": [None, 16],
                                "cores.dataflow.ports": ["overlapped", "serial"],
                                "mapping": ["spatial", "sequential:rates"]})
    points = plan(load_spec(spec))
    assert len(points) == 64
    rows = ev.evaluate_batch(points)
    for point, row in zip(points, rows):
        ref = ev.evaluate_point(point)
        for key, want in ref.items():
            if key != "eval_s":
                assert same(row.get(key), want), (point.values, key, row.get(key), want)
    # every axis moves something: energy with the dataflow and tiles, latency with the port and its use
    by_values = {tuple(p.values.values()): r for p, r in zip(points, rows)}
    names = list(points[0].values)

    def differs(axis: str, column: str) -> bool:
        k = names.index(axis)
        return any(row[column] != other[column] for combo, row in by_values.items()
                   for other in (by_values[c] for c in by_values if c[:k] + c[k + 1:] == combo[:k] + combo[k + 1:])
                   if row["status"] == other["status"] == "ok")
    for axis in ("cores.dataflow.stationary", "cores.dataflow.events", "cores.dataflow.tile_tokens"):
        assert differs(axis, "energy_sram_pj"), axis
    for axis in ("cores.levels.accumulators.bits_per_cycle", "cores.dataflow.ports"):
        assert differs(axis, "latency_cycles"), axis


def test_a_level_axis_sets_one_field_of_the_level_it_names(tmp_path):
    points = plan(load_spec(spec_file(tmp_path, {"cores.levels.accumulators.bytes": [512, 4096]})))
    assert [p.arch["cores"]["levels"][2]["bytes"] for p in points] == [512, 4096]
    assert {p.arch["cores"]["levels"][0]["bytes"] for p in points} == {256}     # the weight RF as shipped


def test_a_level_axis_naming_no_level_of_the_base_is_refused(tmp_path):
    with pytest.raises(NeurosimError) as err:
        load_spec(spec_file(tmp_path, {"cores.levels.psum_rf.bytes": [512]}))
    assert err.value.field == "axes.cores.levels.psum_rf.bytes"
    assert "weight_rf, input_rf, accumulators" in err.value.problem and "cores.levels" in err.value.fix


# -- point ids ---------------------------------------------------------------------------------------------
def _id_as_stored(point) -> str:
    """The id stop 27's code (the last landed, before ports, tile caps and kernel times) gave the point: the
    hash of its arch without those fields."""
    arch = json.loads(json.dumps(point.arch))
    cores = arch["cores"]
    del cores["sram_bits_per_cycle"]
    arch.pop("kernels", None)                  # issue 20's field, where the schema has it
    cores.pop("adds_per_accumulator", None)    # issue 21's accumulator cap
    for level in cores["levels"] or []:
        del level["bits_per_cycle"]
    for key in ("tile_tokens", "tile_inputs", "tile_outputs", "ports"):
        (cores["dataflow"] or {}).pop(key, None)
    canon = json.dumps({"arch": arch, "model": json.loads(point.model.key()), "engine": point.engine},
                       sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def test_point_ids_of_a_stored_sweep_do_not_move_with_new_fields_left_at_their_defaults(tmp_path):
    axes = {"cores.count": [4, 16], "mapping": ["spatial", "sequential:rates"]}
    # edge-45nm as stored sweeps knew it: no port widths (it ships them now, so its own ids are new points)
    portless = {"cores.sram_bits_per_cycle": None} | {f"cores.levels.{name}.bits_per_cycle": None
                                                      for name in ("weight_rf", "input_rf", "accumulators")}
    for extra in ({"set": portless}, {"set": {"cores.dataflow": None, "cores.levels": None,   # without levels
                                              "cores.sram_bits_per_cycle": None}}):
        points = plan(load_spec(spec_file(tmp_path, axes, **extra)))
        assert [p.id for p in points] == [_id_as_stored(p) for p in points]
    # a default stated in the spec is the same point; a value other than the default is a new one
    plain = [p.id for p in plan(load_spec(spec_file(tmp_path, axes, set=portless)))]
    stated = [p.id for p in plan(load_spec(spec_file(tmp_path, dict(axes, **{"cores.dataflow.ports": ["overlapped"]}),
                                                     set=portless)))]
    used = [p.id for p in plan(load_spec(spec_file(tmp_path, dict(axes, **{"cores.dataflow.ports": ["serial"]}),
                                                   set=portless)))]
    assert stated == plain and not set(used) & set(plain)


def test_every_arch_field_added_since_the_stored_ids_is_left_out_of_them_at_its_default():
    """A field added to the arch schema must join `spec.LATER_FIELDS` (or sit under one that has), or every
    stored sweep would re-run on resume. The keys below are stop 27's."""
    stored = {"name", "clock_hz", "energy_table", "static_power_w", "cores", "cores.count", "cores.acs_per_cycle",
              "cores.macs_per_cycle", "cores.sram_bytes", "cores.bank_bytes", "cores.recompute_constant_input",
              "cores.zero_skipping", "cores.levels", "cores.dataflow", "cores.dataflow.stationary",
              "cores.dataflow.events", "cores.dataflow.membranes", "global_buffer", "global_buffer.bytes",
              "global_buffer.bytes_per_cycle", "global_buffer.bank_bytes", "dram", "dram.bytes_per_s",
              "interconnect", "interconnect.topology", "interconnect.hop_mm", "interconnect.link_bits_per_cycle",
              "interconnect.spike_packet_bits", "interconnect.delivery", "precision", "precision.membrane_bits",
              "precision.activation_bits", "mapping", "mapping.kind", "mapping.carry", "mapping.objective", "hbm",
              "hbm.part", "hbm.stacks", "hbm.bytes_per_s_per_stack", "hbm.bytes_per_stack", "hbm.read_pj_per_bit",
              "hbm.write_pj_per_bit", "chips", "chips.count", "chips.link_bytes_per_s", "chips.link_pj_per_bit",
              "chips.topology"} | {f"cores.levels[].{f}" for f in
                                   ("name", "bytes", "holds", "width_bits", "read_pj", "write_pj")}
    now = set(arch_keys()) | {f"cores.levels[].{f}" for f in MemoryLevel.model_fields}
    registered = {".".join(path) for path in LATER_FIELDS}
    for key in sorted(now - stored):
        parts = key.split(".")
        assert any(".".join(parts[:k]) in registered for k in range(1, len(parts) + 1)), key


# -- tile caps by hand -------------------------------------------------------------------------------------------
def test_tile_caps_bound_each_tile_below_what_the_levels_allow():
    """32 tokens x 128 inputs x 128 outputs, output stationary, 256 partial sums, 64-element RFs: tiles
    m 16, n 16, k 4 (tests/test_reuse.py); at most 4 tokens a tile: m 4, so n = 256 / 4 = 64, and the
    RFs' k bound is 64 / 64 = 1 for weights (k x n) and 64 / 4 = 16 for inputs (m x k): k 1."""
    dims = dict(m=32, k=128, n=128)
    capacity = {"weights": np.array([64.0]), "inputs": np.array([64.0]), "outputs": np.array([256.0])}
    free = reuse.gemm_tiles(dims, "output", capacity)
    assert {d: int(v[0]) for d, v in free.items()} == dict(m=16, n=16, k=4)
    capped = reuse.gemm_tiles(dims, "output", capacity, {"m": np.array([4.0])})
    assert {d: int(v[0]) for d, v in capped.items()} == dict(m=4, n=64, k=1)
    # event-driven: a 64-weight row tile and 256 membranes give 4 tokens a tile; a cap of 2 gives 2
    layer = reuse.EventLayer(tokens=32, inputs=128, outputs=256, steps=1)
    assert reuse.event_tiles(layer, 64, 256)[1] == 4 and reuse.event_tiles(layer, 64, 256, np.inf, 2)[1] == 2
    assert reuse.event_tiles(layer, 64, 256, 16)[0] == 16 and reuse.event_tiles(layer, 64, 256, 16)[1] == 16
