"""Sweep specs (YAML): a base arch config, axes to vary, models, sampling, engine.

    name: memory-vs-mapping
    base: edge-45nm                      # shipped arch name, or a path (relative to this file)
    models:                              # shipped names / paths, or variants of a card
      - tiny-encoder
      - {name: sbert-4l-T40, model: spikingbert-4l, set: {timesteps: 40}}
    engine: analytic                     # analytic (closed form) | sim (discrete-event); or an axis
    set: {static_power_w: 0.01}          # fixed arch overrides for every point (dotted keys)
    axes:                                # dotted arch keys (any config field), or engine / mapping / model.<card key>
      cores.count: [16, 64, 256]
      cores.dataflow.stationary: [weight, output, input]
      cores.levels.accumulators.bytes: [512, 1024, 4096]   # a memory level of the base, by name
      global_buffer.bytes: {from: 65536, to: 8388608, num: 8, scale: log}
      mapping: [spatial, sequential:spikes, sequential:rates]
      energy_table: [horowitz-45nm, loihi-14nm]
    sampling: {kind: grid}               # or {kind: random, n: 200, seed: 0}

Every axis value is merged into the base config and validated by the arch
schema when the spec is loaded, so an impossible value is refused with the
spec file, the axis and the fix; every point's merged config is validated
again when the points are planned. A point's id is a hash of its canonical
JSON (merged arch, model, engine), so a resumed sweep skips finished points
whatever order or spec they came from; fields added to the arch schema later
(`LATER_FIELDS`) enter it only when a point gives them a value other than
their default, so adding a field never re-runs a stored sweep.

A grid is counted before it is planned (`point_count`, arithmetic, nothing
built): above MAX_POINTS it is refused unless a limit asks for its first
points only, which `plan` then builds lazily.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from ..arch import ArchConfig, MemoryLevel, load_arch, load_energy_table
from ..cards import Rate
from ..errors import NeurosimError, brief
from ..limits import MAX_POINTS
from ..paths import ENERGY_DIR, MODELS_DIR, resolve
from ..schema import Strict, explain, plain_copy, read_yaml, set_dotted, validate
from .models import ModelRef, load_point_model

ENGINES = ("analytic", "sim")
MAPPING_SHORTHAND = {"spatial": {"kind": "spatial", "carry": "spikes"},
                     "sequential": {"kind": "sequential", "carry": "spikes"},
                     "sequential:spikes": {"kind": "sequential", "carry": "spikes"},
                     "sequential:rates": {"kind": "sequential", "carry": "rates"}}


class AxisRange(Strict):
    """`num` values from `from` to `to` (both included), evenly spaced on a linear or log scale.
    Integer endpoints give integer values (rounded, duplicates dropped)."""

    from_: int | float = Field(alias="from")
    to: int | float
    num: int = Field(ge=1, le=MAX_POINTS)   # values are built (np.linspace) to draw from or walk
    scale: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _positive_for_log(self):
        if self.scale == "log" and (self.from_ <= 0 or self.to <= 0):
            raise ValueError("a log scale needs 'from' and 'to' > 0")
        return self

    @property
    def integer(self) -> bool:
        return isinstance(self.from_, int) and isinstance(self.to, int)

    def values(self) -> list:
        space = np.geomspace if self.scale == "log" else np.linspace
        return _tidy(space(self.from_, self.to, self.num), self.integer)

    def draw(self, rng: np.random.Generator) -> int | float:
        lo, hi = sorted((self.from_, self.to))
        x = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if self.scale == "log" else rng.uniform(lo, hi)
        return _tidy(np.array([x]), self.integer)[0]


def _tidy(values: np.ndarray, integer: bool) -> list:
    """Plain Python numbers: ints rounded (order kept, duplicates dropped), floats to 12 significant digits."""
    if integer:
        return list(dict.fromkeys(int(round(v)) for v in values))
    return list(dict.fromkeys(float(f"{v:.12g}") for v in values))


class ModelVariant(Strict):
    """A model under a label of its own, optionally with model-card keys overridden (e.g. timesteps)."""

    name: str
    model: str
    set: dict[str, Any] = {}
    rate: Rate | None = None   # assumed rate where none is known (e.g. NIR graphs)


class Sampling(Strict):
    kind: Literal["grid", "random"] = "grid"
    n: int | None = Field(None, ge=1)   # random: points drawn per model
    seed: int = 0

    @model_validator(mode="after")
    def _n(self):
        if self.kind == "random" and self.n is None:
            raise ValueError("random sampling needs 'n' (points drawn per model)")
        if self.kind == "grid" and self.n is not None:
            raise ValueError("'n' applies to random sampling only (a grid takes every combination)")
        return self


class SweepSpec(Strict):
    name: str
    description: str = ""
    base: str
    models: list[Any] = Field(min_length=1)
    engine: Literal["analytic", "sim"] = "analytic"
    set: dict[str, Any] = {}
    axes: dict[str, Any] = {}
    sampling: Sampling = Sampling()


@dataclass
class Point:
    """One design point, as plain data that travels to a worker."""

    id: str
    index: int
    model: ModelRef
    engine: str
    values: dict[str, Any]        # axis key -> value as the spec gave it (the row's axis columns)
    arch: dict[str, Any]          # the merged, validated arch config
    energy_path: str              # the energy table file the point's energy_table resolves to
    where: str                    # names the point in errors: "<spec file> (point <id>)"


@dataclass
class Sweep:
    """A loaded, validated spec, ready to plan."""

    path: Path
    spec: SweepSpec
    base_arch: dict[str, Any]
    base_dir: Path                # folder of the base config (relative energy tables are read there)
    models: list[ModelVariant]
    model_paths: dict[str, str]   # model label -> resolved file
    axes: dict[str, list | AxisRange]
    text: str = ""
    energy_paths: dict[str, str] = field(default_factory=dict)

    @property
    def axis_names(self) -> list[str]:
        return list(self.axes)


# -- arch keys ---------------------------------------------------------------------
def _nested_model(annotation) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return nested[0] if nested else None


def arch_keys(model: type[BaseModel] = ArchConfig, prefix: str = "") -> list[str]:
    """Every settable dotted key of the arch schema: sections and their fields."""
    out = []
    for name, info in model.model_fields.items():
        out.append(prefix + name)
        nested = _nested_model(info.annotation)
        if nested is not None:
            out += arch_keys(nested, prefix + name + ".")
    return out


LEVELS = "cores.levels."   # cores.levels.<level name>.<field>: one field of one memory level, by its name


def _level_key(key: str) -> tuple[str, str] | None:
    """(level name, field) of a `cores.levels.<name>.<field>` key (None for any other key)."""
    if not key.startswith(LEVELS) or key.count(".") < 3:
        return None
    name, _, field_ = key.removeprefix(LEVELS).rpartition(".")
    return (name, field_) if field_ in MemoryLevel.model_fields else None


def _is_arch_key(key: str) -> bool:
    return key in arch_keys() or _level_key(key) is not None


def set_arch(arch: dict, key: str, value: Any) -> dict:
    """`arch` with the dotted `key` set to `value`, in place; `cores.levels.<name>.<field>` sets a field of
    the level of that name (refused where there is none)."""
    level = _level_key(key)
    if level is None:
        return set_dotted(arch, key, mapping_value(value) if key == "mapping" else value)
    name, field_ = level
    levels = (arch.get("cores") or {}).get("levels") or []
    match = [lv for lv in levels if isinstance(lv, dict) and lv.get("name") == name]
    if not match:
        raise KeyError(f"the config has no memory level named {brief(name)} (its levels: "
                       f"{', '.join(str(lv.get('name')) for lv in levels) or 'none'})")
    match[0][field_] = plain_copy(value)
    return arch


def _allowed_axes_text() -> str:
    return (", ".join(arch_keys()) + "; cores.levels.<level name>.<field> (e.g. cores.levels.accumulators.bytes); "
            "or engine, model.<card key> (e.g. model.timesteps), "
            "workload.prompt / workload.generate / workload.batch (decoder cards)")


# -- loading -----------------------------------------------------------------------
def _refuse(where: Path | str, key: str, problem: str, fix: str) -> NeurosimError:
    return NeurosimError(str(where), key, problem, fix)


def _relative(path: Path, name: str) -> str:
    """A name as given, or the file of that name next to the spec."""
    candidate = path.parent / name
    return str(candidate) if candidate.is_file() else name


def _axis_values(path: Path, key: str, raw: Any) -> list | AxisRange:
    if isinstance(raw, list):
        if not raw:
            raise _refuse(path, f"axes.{key}", "the axis lists no values", "give at least one value")
        return raw
    if isinstance(raw, dict):
        try:
            return AxisRange.model_validate(raw)
        except ValidationError as exc:
            err = explain(exc, str(path), AxisRange)
            sub = "" if err.field == "(top level)" else "." + err.field.replace("from_", "from")
            raise _refuse(path, f"axes.{key}{sub}", err.problem,
                          err.fix + " (a range is {from: A, to: B, num: N, scale: linear|log})") from None
    raise _refuse(path, f"axes.{key}", f"expected a list of values or a range, got {brief(raw)}",
                  "write [v1, v2, ...] or {from: A, to: B, num: N, scale: linear|log}")


def mapping_value(value: Any) -> Any:
    """The 'mapping' axis shorthand ('spatial', 'sequential:rates', ...) as a mapping section."""
    if isinstance(value, str) and value in MAPPING_SHORTHAND:
        return dict(MAPPING_SHORTHAND[value])
    return value


def _check_arch_value(sweep_path: Path, base: dict, key: str, value: Any, label: str) -> None:
    try:
        merged = set_arch(plain_copy(base), key, value)
    except KeyError as exc:
        raise _refuse(sweep_path, label, exc.args[0], "name a level of the base config (cores.levels), or set "
                      "the whole list with cores.levels") from None
    try:
        ArchConfig.model_validate(merged)
    except ValidationError as exc:
        err = explain(exc, str(sweep_path), ArchConfig)
        raise _refuse(sweep_path, label, f"value {brief(value)} is refused by the arch schema at '{err.field}': "
                      f"{err.problem}", "give a value the arch config accepts (see arch_configs/ and "
                      "neurosim/arch.py), or drop it") from None


def _energy_path(name: str, base_dir: Path) -> str:
    if (base_dir / name).is_file():
        return str(base_dir / name)
    return str(resolve(name, ENERGY_DIR, (".yaml", ".yml"), "energy table"))


def load_spec(path: str | Path) -> Sweep:
    """Read and validate a sweep spec; every refusal names the file, the key and the fix."""
    path = Path(path)
    data, text = read_yaml(path)
    spec = validate(data, SweepSpec, str(path))

    try:
        base = load_arch(_relative(path, spec.base))
    except NeurosimError as exc:
        raise _refuse(path, "base", f"{exc.where}: {exc.field}: {exc.problem}", exc.fix) from None
    base_dict = base.model_dump()
    base_dir = Path(base.path).parent

    for key, value in spec.set.items():
        if not _is_arch_key(key):
            raise _refuse(path, f"set.{key}", "no such arch config field", f"use one of: {_allowed_axes_text()}")
        _check_arch_value(path, base_dict, key, value, f"set.{key}")
        set_arch(base_dict, key, value)

    models = _load_models(path, spec.models)
    model_paths = {}
    for m in models:
        try:
            model_paths[m.name] = str(resolve(_relative(path, m.model), MODELS_DIR,
                                              (".yaml", ".yml", ".json", ".pt", ".nir"), "model"))
        except NeurosimError as exc:
            raise _refuse(path, f"models ({m.name})", exc.problem, exc.fix) from None

    axes: dict[str, list | AxisRange] = {}
    energy_paths: dict[str, str] = {}
    for key, raw in spec.axes.items():
        values = _axis_values(path, key, raw)
        label = f"axes.{key}"
        listed = values if isinstance(values, list) else values.values()
        if key == "engine":
            bad = [v for v in listed if v not in ENGINES]
            if bad or isinstance(values, AxisRange):
                raise _refuse(path, label, f"unknown engine {brief(bad[0] if bad else values)}",
                              f"list engines from: {', '.join(ENGINES)}")
        elif key.startswith(("model.", "workload.")):   # card keys; workload.*: a decoder card's request
            if isinstance(values, AxisRange) and key == "model.timesteps" and not values.integer:
                raise _refuse(path, label, "timesteps must be integers", "give integer 'from' and 'to'")
        elif not _is_arch_key(key):
            raise _refuse(path, label, "unknown axis: no such arch config field", f"use one of: {_allowed_axes_text()}")
        else:
            if isinstance(values, AxisRange) and key in ("mapping", "energy_table", "name"):
                raise _refuse(path, label, "a numeric range cannot give this field's values", "list the values")
            if key == "mapping":
                bad = [v for v in listed if isinstance(v, str) and v not in MAPPING_SHORTHAND]
                if bad:
                    raise _refuse(path, label, f"unknown mapping {brief(bad[0])}",
                                  f"use {', '.join(MAPPING_SHORTHAND)}, or a section {{kind: ..., carry: ...}}")
            # A range's bounds stand for its values (the schema's limits are intervals); each point is checked
            # again when planned, so a range of a million values costs two checks here, not a million.
            for v in (listed if isinstance(values, list) else dict.fromkeys([listed[0], listed[-1]])):
                _check_arch_value(path, base_dict, key, v, label)
            if key == "energy_table":
                for v in listed:
                    try:
                        energy_paths[v] = _energy_path(v, base_dir)
                        load_energy_table(energy_paths[v])
                    except NeurosimError as exc:
                        raise _refuse(path, label, f"energy table {brief(v)}: {exc.problem}", exc.fix) from None
        axes[key] = values
    if any(k.startswith(("model.", "workload.")) for k in axes):
        for m in models:
            if Path(model_paths[m.name]).suffix not in (".yaml", ".yml"):
                raise _refuse(path, next(k for k in axes if k.startswith("model.")),
                              f"model.* axes change model-card keys, but model '{m.name}' is not a card "
                              f"({model_paths[m.name]})", "list only model cards (.yaml) in this spec, "
                              "or drop the model.* axis")
    if base_dict["energy_table"] not in energy_paths:
        energy_paths[base_dict["energy_table"]] = _energy_path(base_dict["energy_table"], base_dir)
    return Sweep(path, spec, base_dict, base_dir, models, model_paths, axes, text, energy_paths)


def _load_models(path: Path, raw: list) -> list[ModelVariant]:
    models = []
    for i, entry in enumerate(raw):
        if isinstance(entry, str):
            models.append(ModelVariant(name=Path(entry).stem if entry.endswith((".yaml", ".yml", ".json", ".pt",
                                                                               ".nir")) else entry, model=entry))
        elif isinstance(entry, dict):
            try:
                models.append(ModelVariant.model_validate(entry))
            except ValidationError as exc:
                err = explain(exc, str(path), ModelVariant)
                raise _refuse(path, f"models[{i}].{err.field}", err.problem, err.fix) from None
        else:
            raise _refuse(path, f"models[{i}]", f"expected a model name or a mapping, got {brief(entry)}",
                          "write a shipped name, a path, or {name: LABEL, model: NAME, set: {key: value}}")
    names = [m.name for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _refuse(path, "models", f"two models share the label {brief(dupes[0])}",
                      "give each variant its own 'name'")
    return models


# -- planning ----------------------------------------------------------------------
# Fields added to the arch schema after the last landed version (stop 27, whose ids a stored sweep holds):
# issue 22's ports and tile caps, issue 20's fixed time per kernel; each with the default that means "not
# used". A point that leaves one at its default hashes as it did before the field existed, so resuming a
# stored sweep does not re-run it. A field added from now on joins this list with its default
# (tests/test_reuse_sweeps.py checks). (section, ..., field): default; "levels[]": every level of the list.
LATER_FIELDS = {("cores", "sram_bits_per_cycle"): None,
                ("cores", "levels[]", "bits_per_cycle"): None,
                ("cores", "dataflow", "tile_tokens"): None, ("cores", "dataflow", "tile_inputs"): None,
                ("cores", "dataflow", "tile_outputs"): None, ("cores", "dataflow", "ports"): "overlapped",
                ("kernels",): None, ("cores", "adds_per_accumulator"): 1}


def canonical_arch(arch: dict) -> dict:
    """The arch as a point's id sees it: `LATER_FIELDS` left at their defaults are dropped (a copy)."""
    arch = plain_copy(arch)
    for path, default in sorted(LATER_FIELDS.items(), key=lambda kv: -len(kv[0])):   # inner fields first
        *parents, last = path
        nodes = [arch]
        for part in parents:
            if part == "levels[]":
                nodes = [lv for node in nodes for lv in (node.get("levels") or []) if isinstance(lv, dict)]
            else:
                nodes = [node[part] for node in nodes if isinstance(node.get(part), dict)]
        for node in nodes:
            if last in node and node[last] == default:
                del node[last]
    return arch


def point_id(arch: dict, model: ModelRef | dict, engine: str) -> str:
    """Stable id: a hash of the point's canonical JSON (merged arch without the later fields it leaves at
    their defaults, model file and overrides, engine)."""
    model = json.loads(model.key()) if isinstance(model, ModelRef) else model
    canon = json.dumps({"arch": canonical_arch(arch), "model": model, "engine": engine},
                       sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _axis_size(values: list | AxisRange) -> int:
    return len(values) if isinstance(values, list) else values.num   # a range's upper bound: ints may repeat


def point_count(sweep: Sweep) -> int:
    """The points the spec asks for, counted without building them: models x the grid (or x n drawn), an
    upper bound where a range's integer values repeat or two combinations give the same point."""
    per_model = sweep.spec.sampling.n if sweep.spec.sampling.kind == "random" else \
        math.prod(_axis_size(v) for v in sweep.axes.values())
    return len(sweep.models) * per_model


def simulated_count(sweep: Sweep) -> int:
    """Of `point_count`, the points that run the simulator (for random sampling: as many as expected)."""
    engines = sweep.axes.get("engine", [sweep.spec.engine])
    return point_count(sweep) * sum(e != "analytic" for e in engines) // len(engines)


def refuse_too_many(sweep: Sweep, count: int) -> NeurosimError:
    what = "grid" if sweep.spec.sampling.kind == "grid" else "random sampling"
    return _refuse(sweep.path, "axes" if what == "grid" else "sampling.n",
                   f"the {what} asks for {count:,} points, more than {MAX_POINTS:,} can be planned at once "
                   "(each is validated and held in memory before the sweep starts)",
                   "pass --limit N to run the first N points (then --resume for the next), sample "
                   "{kind: random, n: N}, or give fewer axis values")


def _combinations(sweep: Sweep) -> Iterator[dict[str, Any]]:
    """The axis combinations of one model, one at a time (the same sequence on every call)."""
    names = sweep.axis_names
    if sweep.spec.sampling.kind == "grid":
        lists = [v if isinstance(v, list) else v.values() for v in sweep.axes.values()]
        for combo in itertools.product(*lists):
            yield dict(zip(names, combo))
        return
    rng = np.random.default_rng(sweep.spec.sampling.seed)
    for _ in range(sweep.spec.sampling.n):
        combo = {}
        for key, values in sweep.axes.items():
            combo[key] = values[int(rng.integers(len(values)))] if isinstance(values, list) else values.draw(rng)
        yield combo


def plan(sweep: Sweep, limit: int | None = None, skip: Iterable[str] = ()) -> list[Point]:
    """Every point of the sweep (models x axis combinations), each validated; duplicates dropped.

    With `limit`, only the first `limit` points whose ids are not in `skip` (finished points), built
    lazily, so a grid of any size can be run in slices; without it, a grid of more than MAX_POINTS
    is refused with its size.
    """
    if limit is None and point_count(sweep) > MAX_POINTS:
        raise refuse_too_many(sweep, point_count(sweep))
    skip = set(skip)
    points = []
    for point in _walk(sweep):
        if limit is not None and point.id in skip:
            continue
        points.append(point)
        if limit is not None and len(points) >= limit:
            break
    return points


def _walk(sweep: Sweep) -> Iterator[Point]:
    """Every distinct point in plan order, built one at a time; a point's index is its place in the plan."""
    seen: set[str] = set()
    refs: dict[str, tuple[ModelRef, dict]] = {}
    archs = _ArchSections(sweep)
    for variant in sweep.models:
        for combo in _combinations(sweep):
            point = _point(sweep, variant, combo, refs, len(seen), archs)
            if point.id not in seen:
                seen.add(point.id)
                yield point


def merged_arch(sweep: Sweep, combo: dict[str, Any]) -> dict[str, Any]:
    """The base arch with a combination's arch values set, validated by the schema as one config (the
    reference `_ArchSections` must agree with); an impossible combination is refused with the spec file."""
    arch = plain_copy(sweep.base_arch)
    for key, value in combo.items():
        if key != "engine" and not key.startswith(("model.", "workload.")):
            try:
                set_arch(arch, key, value)
            except KeyError as exc:   # a level named by one axis, replaced by another axis's whole list
                raise _refuse(sweep.path, "axes", f"the combination {brief(combo, 300)}: {exc.args[0]}",
                              "drop or change the values that cannot go together") from None
    try:
        return ArchConfig.model_validate(arch).model_dump()
    except ValidationError as exc:
        err = explain(exc, str(sweep.path), ArchConfig)
        raise _refuse(sweep.path, "axes", f"the combination {brief(combo, 300)} is refused at '{err.field}': "
                      f"{err.problem}", "drop or change the values that cannot go together") from None


# The arch schema's sections, each validated on its own: a top-level field, but `dram` and `hbm` together
# (ArchConfig derives the DRAM from the stacks). No other check of ArchConfig spans sections.
_JOINT_SECTIONS = {"hbm": "dram"}
_ID_DUMPS = dict(sort_keys=True, separators=(",", ":"), default=str)   # a point id's canonical JSON


class _ArchSections:
    """`merged_arch` for many combinations, each distinct section validated once.

    The points of a grid mostly share their sections (a core-count axis changes `cores` alone), and the
    schema checks each section on its own (`_JOINT_SECTIONS`), so a section set to the same values is
    validated once, with the base's other sections, and its dump and its part of the point id's canonical
    JSON are kept. A combination that any of its sections' checks refuses goes through `merged_arch`,
    which refuses it as before."""

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.fields = list(ArchConfig.model_fields)
        self.section = {f: _JOINT_SECTIONS.get(f, f) for f in self.fields}
        self.names = list(dict.fromkeys(self.section.values()))
        self.sections: dict[tuple, tuple[dict, dict]] = {}   # (section, its combo values) -> (dump, id JSON)
        self.keys: dict[str, str | None] = {}                # combo key -> its section (None: not the arch's)
        axis_sections = {self.section_of(k) for k in sweep.axes}
        self.axis_sections = [name for name in self.names if name in axis_sections]

    def section_of(self, key: str) -> str | None:
        if key not in self.keys:
            arch_key = key != "engine" and not key.startswith(("model.", "workload."))
            self.keys[key] = self.section.get(key.split(".")[0], key.split(".")[0]) if arch_key else None
        return self.keys[key]

    def arch(self, combo: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """(the merged, validated arch, its canonical JSON as `point_id` hashes it)."""
        given: dict[str, list] = {}
        for key, value in combo.items():
            section = self.section_of(key)
            if section is not None:
                given.setdefault(section, []).append((key, type(value).__name__, repr(value)))
        # the sections no axis sets are the base's: looked up once, on the first combination
        untouched = self.sections.get(("(the base's)", ()))
        if untouched is None:
            parts, texts = {}, {}
            for section in self.names:
                if section not in self.axis_sections:
                    found = self._found(section, (), combo)
                    if found is None:
                        return self._refused(combo)
                    parts.update(found[0])
                    texts.update(found[1])
            untouched = self.sections[("(the base's)", ())] = (parts, texts)
        parts, texts = dict(untouched[0]), dict(untouched[1])   # texts: field -> "key":value in the id's JSON
        for section in self.axis_sections:
            found = self._found(section, tuple(given.get(section, ())), combo)
            if found is None:
                return self._refused(combo)
            parts.update(found[0])
            texts.update(found[1])
        arch = {f: parts[f] for f in self.fields}
        return arch, "{" + ",".join(texts[f] for f in sorted(texts)) + "}"

    def _found(self, section: str, values: tuple, combo: dict[str, Any]) -> tuple[dict, dict] | None:
        """A section's dump and id JSON parts with the combination's `values` set; None where refused."""
        entry = (section, values)
        if entry not in self.sections:
            try:
                self.sections[entry] = self._validate(section, {k: combo[k] for k, _, _ in values})
            except (KeyError, ValidationError, NeurosimError):
                return None
        return self.sections[entry]

    def _validate(self, section: str, values: dict) -> tuple[dict, dict[str, str]]:
        arch = plain_copy(self.sweep.base_arch)
        for key, value in values.items():
            set_arch(arch, key, value)
        dump = ArchConfig.model_validate(arch).model_dump()
        mine = {f: dump[f] for f in self.fields if self.section[f] == section}
        canon = canonical_arch(mine)
        return mine, {k: f"{json.dumps(k)}:{json.dumps(v, **_ID_DUMPS)}" for k, v in canon.items()}

    def _refused(self, combo: dict[str, Any]) -> tuple[dict[str, Any], str]:
        arch = merged_arch(self.sweep, combo)   # refuses the combination as one config does
        return arch, json.dumps(canonical_arch(arch), **_ID_DUMPS)


def _point(sweep: Sweep, variant: ModelVariant, combo: dict[str, Any], refs: dict, index: int,
           archs: _ArchSections) -> Point:
    """One combination of one model as a validated point."""
    card_set = dict(variant.set)
    engine = sweep.spec.engine
    for key, value in combo.items():
        if key == "engine":
            engine = value
        elif key.startswith("model."):
            card_set[key.removeprefix("model.")] = value
        elif key.startswith("workload."):     # a decoder card's prompt, generate, batch
            card_set[key] = value
    arch, arch_json = archs.arch(combo)
    ref = ModelRef(variant.name, sweep.model_paths[variant.name],
                   tuple(sorted((k, _freeze(v)) for k, v in card_set.items())), variant.rate)
    key = ref.key()
    if key not in refs:   # one ModelRef (and its canonical form) per distinct model
        refs[key] = (ref, json.loads(key), json.dumps(json.loads(key), **_ID_DUMPS))
    ref, _, model_json = refs[key]
    # `point_id`'s hash, its canonical JSON assembled from the sections' parts (sorted keys: arch, engine, model)
    canon = f'{{"arch":{arch_json},"engine":{json.dumps(engine, **_ID_DUMPS)},"model":{model_json}}}'
    pid = hashlib.sha256(canon.encode()).hexdigest()[:16]
    table = arch["energy_table"]
    energy = sweep.energy_paths.get(table) or _energy_path(table, sweep.base_dir)
    return Point(pid, index, ref, engine, dict(combo), arch, energy, f"{sweep.path} (point {pid})")


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def check_models(sweep: Sweep, points: list[Point]) -> None:
    """Build each distinct model once, so that a bad model or card override is refused before the sweep."""
    done = set()
    for p in points:
        key = p.model.key()
        if key in done:
            continue
        done.add(key)
        try:
            load_point_model(p.model)
        except NeurosimError as exc:
            field_ = "models / model.* axes" if any(k.startswith("model.") for k in sweep.axes) else "models"
            problem = re.sub(r" \(got \{.*\}\)$", "", exc.problem)   # not the whole card again
            raise _refuse(sweep.path, f"{field_} ({p.model.label})", f"{exc.where}: field '{exc.field}': "
                          f"{problem}", exc.fix) from None
