"""YAML loading with pydantic schemas, turning schema errors into one clear paragraph; dotted-key edits of YAML data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import NeurosimError, brief
from .limits import MAX_YAML_BYTES, MAX_YAML_VALUES

M = TypeVar("M", bound=BaseModel)

# PyYAML reads YAML 1.1, where `1e9` and `200.0e6` are text (a float needs a dot and a signed exponent);
# YAML 1.2, and every author, reads them as numbers. This pattern is YAML 1.2's float.
YAML_12_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$")


class YamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader that reads YAML 1.2 floats (1e9, 200.0e6) as numbers."""


YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", YAML_12_FLOAT, list("-+0123456789."))


class Strict(BaseModel):
    """Base for config sections: unknown keys are refused, not ignored, and no type is coerced.

    strict: `count: "16"` is a mistake of the YAML's author, not a number (and `1e9` is a number when
    read by `read_yaml`; plain yaml.safe_load gives text). Python callers pass Python numbers
    (`.item()` of a numpy scalar).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


FIX_MARK = " -- fix: "
NUMBER_TYPES = ("int_type", "float_type", "int_parsing", "float_parsing", "int_from_float")


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed at the parent of `loc`, walking nested models."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        annotation = getattr(info, "annotation", None)
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)


def _type_fix(kind: str, value: Any) -> str | None:
    """The fix for a value of the wrong type that a YAML author is likely to have written."""
    if kind in NUMBER_TYPES and isinstance(value, str):
        return "write the number without quotes"
    if kind in NUMBER_TYPES and isinstance(value, float):
        return "write a whole number (1000, not 1e3 or 1000.0)"
    if kind == "string_type" and isinstance(value, (int, float, bool)):
        return f"quote it: '{value}'"
    return None


def explain(exc: ValidationError, where: str, model: type[BaseModel]) -> NeurosimError:
    """The first schema error as a NeurosimError naming file, key and fix (the value shown briefly)."""
    errors = exc.errors()
    # A misspelt key shows up twice: as an unknown key and as the real key missing. Name the typo.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    if kind == "missing":
        return NeurosimError(where, key, "required key is missing", f"add '{loc[-1]}' (see the shipped examples)")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc)
        return NeurosimError(where, key, "unknown key (a typo?)",
                             f"remove it or use one of: {', '.join(allowed)}")
    msg = err["msg"].removeprefix("Value error, ")
    problem, _, fix = msg.partition(FIX_MARK)      # a validator may state its own fix after FIX_MARK
    fix = fix or _type_fix(kind, err.get("input")) or "correct the value as described"
    return NeurosimError(where, key, f"{problem} (got {brief(err.get('input'))})", fix)


class _TooLarge(Exception):
    pass


class _Cycle(Exception):
    pass


def expanded_size(data: Any, limit: int = MAX_YAML_VALUES) -> int:
    """How many values `data` holds with every alias expanded, counted without expanding anything
    (each shared node once); raises _TooLarge past `limit` and _Cycle for a node that contains itself."""
    memo: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in memo:
            return memo[key]
        if key in open_nodes:
            raise _Cycle
        open_nodes.add(key)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise _TooLarge
        open_nodes.discard(key)
        memo[key] = total
        return total

    return size(data)


def read_yaml(path: str | Path) -> tuple[dict, str]:
    """A YAML file's top-level mapping and its text, refused in one line if it cannot be read, is not YAML,
    is not a mapping, or is larger than any config (bytes, or values once aliases are expanded)."""
    path, where = Path(path), str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise NeurosimError(where, "(file)", f"cannot be read: {exc.strerror or exc}", "check the path") from None
    if len(raw) > MAX_YAML_BYTES:
        raise NeurosimError(where, "(file)", f"larger than {MAX_YAML_BYTES >> 20} MiB, far beyond any config",
                            "give the YAML config, card or spec itself") from None
    try:
        text = raw.decode("utf-8")
        data = yaml.load(text, Loader=YamlLoader)   # SafeLoader's constructors: no Python objects
    except UnicodeDecodeError as exc:
        raise NeurosimError(where, "(file)", f"not UTF-8 text (byte {exc.start})", "give a YAML text file") from None
    except yaml.YAMLError as exc:
        raise NeurosimError(where, "(file)", f"not valid YAML: {exc}", "fix the YAML syntax") from None
    except RecursionError:
        raise NeurosimError(where, "(file)", "nested too deeply to read", "flatten the YAML") from None
    except ValueError as exc:   # a scalar YAML resolves but cannot build, e.g. the date 2020-13-45
        raise NeurosimError(where, "(file)", f"a value YAML cannot read: {exc}", "quote it, or correct it") from None
    if not isinstance(data, dict):
        raise NeurosimError(where, "(top level)", "expected a mapping of keys to values",
                            "write the file as 'key: value' lines")
    check_size(data, where)
    return data, text


def check_size(data: Any, where: str) -> None:
    """Refuse YAML data whose aliases expand past MAX_YAML_VALUES values, or refer to themselves."""
    try:
        expanded_size(data)
    except _TooLarge:
        raise NeurosimError(where, "(file)", f"holds more than {MAX_YAML_VALUES:,} values once its aliases are "
                            "expanded (a config holds thousands)", "write the values out; anchors nested in "
                            "anchors (a 'billion laughs') are refused") from None
    except _Cycle:
        raise NeurosimError(where, "(file)", "an alias refers to the node that contains it (a cycle)",
                            "remove the self-reference") from None
    except RecursionError:
        raise NeurosimError(where, "(file)", "nested too deeply to read", "flatten the YAML") from None


def load_yaml(path: str | Path, model: type[M]) -> M:
    data, _ = read_yaml(path)
    return validate(data, model, str(path))


def validate(data: dict, model: type[M], where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, where, model) from None


def plain_copy(value: Any) -> Any:
    """A deep copy of YAML-like data (dicts, lists, scalars), much faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    return value


def set_dotted(data: dict, key: str, value: Any) -> dict:
    """`data` with `key` ('cores.count') set to `value`, in place; missing sections become dicts."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = plain_copy(value)
    return data
