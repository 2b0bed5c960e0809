"""One error type for bad input, so users see a paragraph, not a traceback.

Every refusal names where the bad value came from (a file or a layer), the
field, what was wrong, and how to fix it.
"""

from __future__ import annotations


class NeurosimError(ValueError):
    """Bad input: a config, model card, network or command-line value."""

    def __init__(self, where: str, field: str, problem: str, fix: str):
        self.where, self.field, self.problem, self.fix = where, field, problem, fix
        super().__init__(f"{where}: field '{field}': {problem}. Fix: {fix}")
