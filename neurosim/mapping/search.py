"""`search`: the best plan of a network on a chip for an objective, under caps; the simulator confirms it.

Where the space (`space.Space`: shapes x resource choices) holds no more plans than the budget, every plan is
priced (exhaustive). Where it holds more, a (mu + lambda) evolution strategy (Beyer and Schwefel, "Evolution
strategies: a comprehensive introduction", Natural Computing 2002) searches the shapes: a shape is a
genome (its cut points, each segment's kind and carry), mutated by adding, removing or moving a cut or by
changing a segment's kind or carry; mu parents and lambda children compete and the best mu survive
(elitist, so the best plan found is never lost). A shape is scored by its best resource choice on a coarse
look (at most 12 options of each segment, `space.COARSE_OPTIONS`), so that the budget buys many shapes; the
best 24 shapes found are then priced on every choice. Why this and not the random or pruned search of
Timeloop's mapper: the shapes are few and discrete, neighbouring shapes cost alike (moving a cut shifts a
few layers), and each shape's resource choices are priced in one vectorised call, so the search spends its
budget on shapes, where the structure is. The start population holds today's three mappings, so the
result is never worse than the best of them. The best few plans by the closed form are then run through
the simulator (segment by segment, `price.plan_report`); the plan chosen is the best of those by the
simulator's figures, the closed form's rank a tie-break.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..arch import ArchConfig
from ..errors import NeurosimError
from ..ir import Network
from ..report import Report
from .plan import Plan
from .price import plan_report
from .space import KINDS, LAST_KINDS, Scored, SegmentTables, Shape, Space

OBJECTIVES = ("energy", "latency", "edp")
MU, LAMBDA = 8, 16          # parents kept, children made per generation
STALL_GENERATIONS = 30      # the evolution stops after this many generations without a better plan
FINE_SHAPES = 24            # the evolution's best shapes, priced at last on every resource choice
# Plans the closed form may price before the search turns from exhaustive to evolution. Composing a plan from
# its segments' arrays costs microseconds; the time goes into each segment's closed form (run once per segment
# over every budget), so the budget is set by how many plans a few minutes compose.
DEFAULT_BUDGET = 2_000_000


@dataclass
class SearchResult:
    best: Plan                       # the plan chosen (confirmed by the simulator where confirm > 0)
    report: Report                   # its report: the simulator's where confirmed, else the closed form's
    table: pd.DataFrame              # the best plans found (one per shape), best first, and today's mappings
    method: str                      # "exhaustive" or "evolution"
    space_size: int                  # plans in the space
    priced: int                      # plans priced by the closed form
    seconds: float
    search_seconds: float            # of which the closed-form search (the rest: confirming)
    found: list[Scored]              # every shape priced, by its best resource choice, best first


def objective_value(objective: str, energy_j: float, latency_s: float) -> float:
    return {"energy": energy_j, "latency": latency_s, "edp": energy_j * latency_s}[objective]


def exhaustive(space: Space, bar=None) -> list[Scored]:
    found = []
    for segments in range(1, space.max_segments + 1):
        for shape in space.shapes(segments):
            before = space.priced
            scored = space.best(shape)
            if scored is not None:
                found.append(scored)
            if bar is not None:
                bar.update(space.priced - before)
    return found


def mutate(shape: Shape, cuts: list[int], L: int, rng: np.random.Generator, max_segments: int) -> Shape:
    """A neighbour of a shape: a cut added, removed or moved, or one segment's kind or carry changed."""
    bounds = [s[1] for s in shape[:-1]]
    kinds = [(s[2], s[3]) for s in shape]
    move = rng.integers(4)
    if move == 0 and len(shape) < max_segments:                 # add a cut
        free = [c for c in cuts if c not in bounds]
        if free:
            c = int(rng.choice(free))
            at = int(np.searchsorted(bounds, c))
            bounds.insert(at, c)
            kinds.insert(at, KINDS[rng.integers(len(KINDS))])
    elif move == 1 and len(shape) > 1:                          # remove a cut (the segments merge)
        at = int(rng.integers(len(bounds)))
        bounds.pop(at)
        kinds.pop(at)
    elif move == 2 and bounds:                                  # move a cut to a neighbouring cut point
        at = int(rng.integers(len(bounds)))
        i = cuts.index(bounds[at]) + (1 if rng.integers(2) else -1)
        if 0 <= i < len(cuts) and cuts[i] not in bounds:
            bounds[at] = cuts[i]
            bounds.sort()
    else:                                                       # change one segment's kind or carry
        at = int(rng.integers(len(kinds)))
        options = LAST_KINDS if at == len(kinds) - 1 else KINDS
        kinds[at] = options[rng.integers(len(options))]
    if kinds[-1] not in LAST_KINDS:
        kinds[-1] = (kinds[-1][0], "spikes")
    firsts = [0] + [b + 1 for b in bounds]
    return tuple((a, b, k, c) for a, b, (k, c) in zip(firsts, bounds + [L - 1], kinds))


def evolve(space: Space, budget: int, seed: int, bar=None) -> list[Scored]:
    """(mu + lambda) evolution of shapes, each scored by its best resource choice on a coarse look
    (`Space.choices`), until the budget is spent; the best FINE_SHAPES shapes are then priced on every
    resource choice."""
    rng = np.random.default_rng(seed)
    L, seen = len(space.net.layers), {}

    def score(shape: Shape, coarse: bool = True) -> Scored | None:
        if shape not in seen or not coarse:
            before = space.priced
            seen[shape] = space.best(shape, coarse)
            if bar is not None:
                bar.update(space.priced - before)
        return seen[shape]

    population = list(space.shapes(1))              # today's three mappings
    while len(population) < MU:
        population.append(mutate(population[rng.integers(len(population))], space.cuts, L, rng, space.max_segments))
    rank = lambda s: score(s).score if score(s) is not None else (np.inf,) * 3  # noqa: E731
    best, stall = None, 0
    while space.priced < budget and stall < STALL_GENERATIONS:
        children = [mutate(population[rng.integers(len(population))], space.cuts, L, rng, space.max_segments)
                    for _ in range(LAMBDA)]
        population = sorted(set(population + children), key=rank)[:MU]
        top = rank(population[0])
        stall = 0 if best is None or top < best else stall + 1
        best = top if best is None or top < best else best
    for shape in sorted((s for s in seen if seen[s] is not None), key=rank)[:FINE_SHAPES]:
        score(shape, coarse=False)
    return [s for s in seen.values() if s is not None]


def no_room(net: Network, arch: ArchConfig) -> None:
    """Refuse at once a chip without DRAM whose cores cannot hold the weights: every plan keeps every weight
    pinned on some segment's cores there, so no plan fits."""
    from ..cost.workload import workload

    weights = workload(net, False, arch.cores.zero_skipping).weight_bytes.sum()
    sram = arch.cores.count * arch.cores.sram_bytes
    if arch.dram is None and weights > sram:
        raise NeurosimError(f"model '{net.name}' on '{arch.name}'", "caps", f"no plan fits: the weights "
                            f"({weights / 2**20:.1f} MiB) exceed the cores' SRAM ({sram / 2**20:.1f} MiB) and the "
                            "chip has no DRAM to stream them from", "give a chip with more SRAM or with DRAM")


def search(net: Network, arch: ArchConfig, objective: str = "edp", budget: int = DEFAULT_BUDGET, seed: int = 0,
           max_segments: int = 3, max_latency_s: float | None = None, max_energy_j: float | None = None,
           max_memory_bytes: float | None = None, confirm: int = 3, keep: int = 10,
           progress: bool = False, tables: SegmentTables | None = None) -> SearchResult:
    """The best plan of `net` on `arch` for `objective` (see the module's doc). `tables`: segments already
    priced (`space.SegmentTables` of the same network and chip, holding `objective`), shared by searches."""
    if objective not in OBJECTIVES:
        raise NeurosimError("--objective", "objective", f"unknown objective {objective!r}",
                            f"use one of {', '.join(OBJECTIVES)}")
    if budget < 1:
        raise NeurosimError("--budget", "budget", f"{budget} plans: the search prices at least one",
                            "give a positive number of plans")
    t0 = time.perf_counter()
    no_room(net, arch)
    space = Space(net, arch, objective, max_segments, dict(latency_s=max_latency_s, energy_j=max_energy_j,
                                                            memory_bytes=max_memory_bytes), tables)
    size = space.size()
    method = "exhaustive" if size <= budget else "evolution"
    from tqdm import tqdm

    with tqdm(total=min(size, budget), desc=f"map {net.name} ({method})", unit="plan", disable=not progress,
              dynamic_ncols=True) as bar:
        found = exhaustive(space, bar) if method == "exhaustive" else evolve(space, budget, seed, bar)
    search_s = time.perf_counter() - t0
    if not found:
        raise NeurosimError(f"model '{net.name}' on '{arch.name}'", "caps", "no plan in the space fits the chip "
                            "within the caps", "loosen --max-latency, --max-energy or --max-memory, or give a "
                            "larger chip")
    found.sort(key=lambda s: s.score)
    top = found[:keep]
    plans = [space.plan(s) for s in top]
    confirmed = [plan_report(p, net, arch, "sim") for p in plans[:confirm]]
    table = results_table(space, top, plans, confirmed, net, arch)
    chosen = min(range(len(confirmed)), key=lambda i: (not confirmed[i].feasible, objective_value(
        objective, (confirmed[i].energy_pj or 0) * 1e-12, confirmed[i].latency_s or 0), i)) if confirmed else 0
    report = confirmed[chosen] if confirmed else plan_report(plans[0], net, arch)
    return SearchResult(plans[chosen], report, table, method, size, space.priced, time.perf_counter() - t0, search_s,
                        found)


def results_table(space: Space, top: list[Scored], plans: list[Plan], confirmed: list[Report], net: Network,
                  arch: ArchConfig) -> pd.DataFrame:
    """One row per plan found (best first), then today's three mappings as the arch runs them."""
    rows = []
    for i, (s, p) in enumerate(zip(top, plans)):
        row = dict(rank=i + 1, plan=p.label(), segments=len(p.segments), energy_j=s.energy_j, latency_s=s.latency_s,
                   edp_js=s.energy_j * s.latency_s, peak_memory_bytes=s.peak_bytes)
        if i < len(confirmed) and confirmed[i].feasible:
            row.update(sim_energy_j=confirmed[i].energy_pj * 1e-12, sim_latency_s=confirmed[i].latency_s)
        rows.append(row)
    for kind, carry in (("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates")):
        r = plan_report(Plan.of_mapping(net, kind, carry), net, arch)
        name = "today: spatial" if kind == "spatial" else f"today: sequential/{carry}"
        rows.append(dict(rank=None, plan=name, segments=1, energy_j=r.energy_pj * 1e-12 if r.feasible else None,
                         latency_s=r.latency_s if r.feasible else None,
                         edp_js=r.energy_pj * 1e-12 * r.latency_s if r.feasible else None,
                         peak_memory_bytes=r.memory_bytes["peak_on_chip"] if r.feasible else None))
    return pd.DataFrame(rows)
