"""The space of plans a search explores, and the closed form over all core splits of one plan shape at once.

A plan's *shape* is its segments without cores: where the network is cut (`cut.cut_points`), and each
segment's kind and carry (spatial or sequential; spikes or rates; the last segment's carry is moot when
it is spatial). Its *core splits* give each segment a budget from a grid, round(2^(k/2)) cores and the
chip's count, summing to at most the chip's cores; a plan of one segment gets the whole chip, so today's
three mappings are in the space with exactly today's numbers. Inside its budget a segment makes its own
free choices for the search's objective (spare spatial cores, the pool size on a finer grid).

`Space.price_shape` prices every core split of a shape in one call: each segment's closed form was run
once over the whole grid of budgets (`segments.closed_form_segments`, cached per segment), and the
splits are gathered from it and composed (`price.compose`) as arrays.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..arch import ArchConfig
from ..cost import layout
from ..cost.chips import Chips
from ..ir import Network
from .cut import cut_points, segment_network
from .plan import Plan, Segment
from .price import PlanCosts, compose
from .segments import SegmentCosts, closed_form_segments, with_objective

STEPS_PER_OCTAVE = 2     # core budgets of a segment: round(2^(k/2)): 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, ...
KINDS = (("spatial", "spikes"), ("spatial", "rates"), ("sequential", "spikes"), ("sequential", "rates"))
LAST_KINDS = (("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates"))

Shape = tuple[tuple[int, int, str, str], ...]    # per segment: (first, last, kind, carry)


def budget_grid(cores: int) -> np.ndarray:
    k = np.arange(int(math.floor(math.log2(max(cores, 1)) * STEPS_PER_OCTAVE)) + 1)
    return np.union1d(np.round(2 ** (k / STEPS_PER_OCTAVE)).astype(np.int64), [cores])


class SegmentTables:
    """Each segment's closed form (first layer, last layer, kind) over every core budget of the grid, for each
    objective at once (one vectorised call), run once and kept: searches of one network and chip for several
    objectives share them."""

    def __init__(self, net: Network, arch: ArchConfig, objectives: tuple[str, ...]):
        self.net, self.arch, self.objectives = net, arch, tuple(objectives)
        self._tables: dict[tuple, dict] = {}

    def get(self, first: int, last: int, kind: str, whole: bool, grid: np.ndarray) -> dict:
        """{objective: {carry: SegmentCosts}} on the grid's budgets, or on the whole chip (`whole`)."""
        key = (first, last, kind, whole)
        if key not in self._tables:
            points = np.array([self.arch.cores.count]) if whole else grid
            self._tables[key] = closed_form_segments(segment_network(self.net, first, last), self.arch, points,
                                                     kind, ("spikes", "rates"), self.objectives)
        return self._tables[key]


@dataclass
class Scored:
    """The best core split of one shape: its score (objective, latency, energy), cores and figures."""

    score: tuple[float, float, float]
    shape: Shape
    cores: tuple[int, ...]
    energy_j: float
    latency_s: float
    peak_bytes: float


class Space:
    """Plans of `net` on `arch` of at most `max_segments` segments, scored for `objective` under caps."""

    def __init__(self, net: Network, arch: ArchConfig, objective: str, max_segments: int = 3,
                 caps: dict[str, float | None] | None = None, tables: "SegmentTables | None" = None):
        self.net, self.objective = net, objective
        self.arch = with_objective(arch, objective)
        self.chips = Chips.of(self.arch)
        self.cuts = cut_points(net)
        self.max_segments = max(1, min(max_segments, len(self.cuts) + 1))
        self.grid = budget_grid(arch.cores.count)
        self.caps = {k: v for k, v in (caps or {}).items() if v is not None}
        self.tables = tables if tables is not None else SegmentTables(net, arch, (objective,))
        self._splits: dict[int, np.ndarray] = {}
        self.priced = 0                               # plans (shape x core split) priced so far

    # -- the space -------------------------------------------------------------------------------------------
    def shapes(self, segments: int):
        """Every shape of `segments` segments."""
        L = len(self.net.layers)
        for cuts in itertools.combinations(self.cuts, segments - 1):
            bounds = list(zip((0,) + tuple(c + 1 for c in cuts), cuts + (L - 1,)))
            for kinds in itertools.product(*([KINDS] * (segments - 1) + [LAST_KINDS])):
                yield tuple((a, b, kind, carry) for (a, b), (kind, carry) in zip(bounds, kinds))

    def shape_count(self, segments: int) -> int:
        return math.comb(len(self.cuts), segments - 1) * len(KINDS) ** (segments - 1) * len(LAST_KINDS)

    def splits(self, segments: int) -> np.ndarray:
        """(m, segments) core budgets: the whole chip for one segment, else grid budgets within the chip."""
        if segments not in self._splits:
            if segments == 1:
                self._splits[1] = np.array([[self.arch.cores.count]])
            else:
                grids = np.meshgrid(*([self.grid] * segments), indexing="ij")
                combos = np.stack([g.ravel() for g in grids], axis=1)
                self._splits[segments] = combos[combos.sum(axis=1) <= self.arch.cores.count]
        return self._splits[segments]

    def size(self) -> int:
        """Plans in the space."""
        return sum(self.shape_count(s) * len(self.splits(s)) for s in range(1, self.max_segments + 1))

    # -- pricing ---------------------------------------------------------------------------------------------
    def segment(self, first: int, last: int, kind: str, carry: str, budgets: np.ndarray) -> SegmentCosts:
        """A segment on budgets (all from the grid, or the whole chip), from its table."""
        whole = len(budgets) == 1 and budgets[0] == self.arch.cores.count and first == 0
        table = self.tables.get(first, last, kind, whole, self.grid)[self.objective][carry]
        return table if whole else table.point(np.searchsorted(self.grid, budgets))

    def price_shape(self, shape: Shape) -> tuple[PlanCosts, np.ndarray]:
        """Every core split of a shape: its figures and the splits ((m, segments) cores)."""
        splits = self.splits(len(shape))
        segs = [self.segment(a, b, kind, carry, splits[:, k]) for k, (a, b, kind, carry) in enumerate(shape)]
        self.priced += len(splits)
        return compose(segs, self.chips, self.arch.energy), splits

    def best(self, shape: Shape) -> Scored | None:
        """The best core split of a shape under the caps (None: no split fits)."""
        costs, splits = self.price_shape(shape)
        ok = costs.feasible.copy()
        for key, figure in (("latency_s", costs.latency_s), ("energy_j", costs.total_energy_pj * 1e-12),
                            ("memory_bytes", costs.memory_bytes["peak_on_chip"])):
            if key in self.caps:
                ok &= figure <= self.caps[key]
        if not ok.any():
            return None
        value, latency, energy = layout.ranking(np.full(len(ok), self.objective), costs.latency_s,
                                                costs.total_energy_pj)
        order = np.lexsort((energy, latency, np.where(ok, value, np.inf)))
        j = order[0]
        return Scored((float(value[j]), float(latency[j]), float(energy[j])), shape, tuple(int(c) for c in splits[j]),
                      float(energy[j]) * 1e-12, float(latency[j]), float(costs.memory_bytes["peak_on_chip"][j]))

    def plan(self, scored: Scored) -> Plan:
        """A scored shape and split as a plan file's plan."""
        names = [layer.name for layer in self.net.layers]
        whole = len(scored.shape) == 1
        segments = [Segment(kind=kind, first=names[a], last=names[b], carry=carry, cores=None if whole else int(c))
                    for (a, b, kind, carry), c in zip(scored.shape, scored.cores)]
        return Plan(segments=segments, objective=self.objective, model=self.net.name, arch=self.arch.name)
