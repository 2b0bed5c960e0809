"""How many chips split each layer's rows (the tensor split K), when the user does not say.

Each pipeline stage may be K chips that split every layer's rows (llm.pipeline); K must divide the
card's kv_heads (a chip holds whole key/value heads). Searched, not given:

* on the arch's chips, every K that divides kv_heads and is at most the chip count is priced (closed
  form) and the best by the arch's `mapping.objective` over the whole request is kept: latency = time to
  the last token (prefill + decode), energy = the request's energy, edp = their product;
* where no K maps on the given chips, the report gives the fewest chips on which some K maps: for each K,
  the fewest chips of that split (`workload.chips_needed`), the least over K. A split of K needs at
  least K chips, so K stops growing once it reaches the best count found.
"""

from __future__ import annotations

from typing import Callable

from .report import LLMReport


def split_choices(kv_heads: int, chips: int) -> list[int]:
    """Every K that divides kv_heads, up to `chips`."""
    return [k for k in range(1, min(kv_heads, chips) + 1) if kv_heads % k == 0]


def request_score(report: LLMReport, objective: str) -> float:
    """The whole request's latency, energy, or energy x latency (lower is better)."""
    seconds = report.prefill.seconds + report.decode.seconds
    joules = (report.prefill.energy_total_pj + report.decode.energy_total_pj) * 1e-12
    return {"latency": seconds, "energy": joules, "edp": seconds * joules}[objective]


def best_split(choices: list[int], trial: Callable[[int], LLMReport], objective: str) -> tuple[int | None, dict]:
    """The K of `choices` whose trial report is feasible and scores lowest (the smallest K on a tie), or None
    when none maps; and every trial report by K."""
    trials = {k: trial(k) for k in choices}
    fit = [k for k in choices if trials[k].feasible]
    return (min(fit, key=lambda k: (request_score(trials[k], objective), k)) if fit else None), trials


def fewest_chips(kv_heads: int, needed: Callable[[int], int | None]) -> tuple[int, int] | None:
    """(chips, K): the fewest chips on which some split K (a divisor of kv_heads) maps, by `needed(K)` (the
    fewest chips for that K, or None); None when no K maps on any count."""
    best = None
    for k in split_choices(kv_heads, kv_heads):
        if best is not None and k >= best[0]:
            break                       # a split of K needs K chips at least: no larger K does better
        n = needed(k)
        if n is not None and (best is None or n < best[0]):
            best = (n, k)
    return best
