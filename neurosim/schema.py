"""YAML loading with pydantic schemas, turning schema errors into one clear paragraph; dotted-key edits of YAML data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import NeurosimError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config sections: unknown keys are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


FIX_MARK = " -- fix: "


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


def explain(exc: ValidationError, where: str, model: type[BaseModel]) -> NeurosimError:
    """The first schema error as a NeurosimError naming file, key and fix."""
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
    return NeurosimError(where, key, f"{problem} (got {err.get('input')!r})", fix or "correct the value as described")


def load_yaml(path: str | Path, model: type[M]) -> M:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise NeurosimError(str(path), "(file)", f"not valid YAML: {exc}", "fix the YAML syntax") from None
    except OSError as exc:
        raise NeurosimError(str(path), "(file)", f"cannot be read: {exc.strerror}", "check the path") from None
    if not isinstance(data, dict):
        raise NeurosimError(str(path), "(top level)", "expected a mapping of keys to values",
                            "write the file as 'key: value' lines")
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
