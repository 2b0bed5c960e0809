"""One error type for bad input, so users see a paragraph, not a traceback.

Every refusal names where the bad value came from (a file or a layer), the
field, what was wrong, and how to fix it. A message is one line and bounded:
input values are echoed through `brief`, and each part is cut at PART_CHARS.
"""

from __future__ import annotations

import reprlib
from typing import Any

PART_CHARS = 1000   # the most characters of each part (where, field, problem, fix) a message prints
VALUE_CHARS = 80    # the most characters of an input value echoed in a message

# reprlib walks only as much of a value as it prints: a YAML alias bomb or a 1 GB list costs nothing.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, VALUE_CHARS, VALUE_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def clip(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters (cut with '...')."""
    line = " ".join(str(text).splitlines())
    return line if len(line) <= limit else line[: max(0, limit - 3)] + "..."


def brief(value: Any, limit: int = VALUE_CHARS) -> str:
    """A short repr of user input, for messages: never expands more of the value than it prints."""
    try:
        text = _REPR.repr(value)
    except Exception:   # a value whose own repr fails still gets a message
        text = f"<{type(value).__name__}>"
    return clip(text, limit)


class NeurosimError(ValueError):
    """Bad input: a config, model card, network or command-line value."""

    def __init__(self, where: str, field: str, problem: str, fix: str):
        where, field, problem, fix = (clip(part, PART_CHARS) for part in (where, field, problem, fix))
        self.where, self.field, self.problem, self.fix = where, field, problem, fix
        super().__init__(f"{where}: field '{field}': {problem}. Fix: {fix}")
