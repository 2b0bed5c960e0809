"""The space of plans a search explores, and the closed form over all resource choices of one plan shape at once.

A plan's *shape* is its segments without resources: where the network is cut (`cut.cut_points`), and each
segment's kind and carry (spatial or sequential; spikes or rates; the last segment's carry is moot when it
is spatial). Its *resources* give each segment exactly what it runs on, the segments' cores together at
most the chip's:

* a spatial segment, one of the allocation rule's candidates (cores per layer: the least allocation that
  holds every layer, or, for a stage time on the rule's grid, the cores that bring every layer's time per
  step under it; `layout.allocation_candidates`), each taking the sum of its cores;
* a sequential segment, a pool size on the pool grid (`closed_form.pool_sizes`, round(2^(k/4)) cores).

Those are the candidates the mappings' own rules rank (`layout.SpatialCores`, `closed_form.pool_cores`); the
search ranks them by the whole plan's figures instead of each segment's. A plan of one segment is today's
mapping on the whole chip, the rule picking its resources for the objective from the same candidates by the
same ranking, so today's three mappings are in the space with exactly today's numbers.

`Space.price_shape` prices every resource choice of a shape in one call: each segment's closed form was run
once over all of its options (`SegmentTables`, cached per segment; given resources leave the objective no
choice, so one table serves every objective), and the choices are gathered from it and composed
(`price.compose`) as arrays.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..arch import ArchConfig
from ..cost import layout
from ..cost.chips import Chips
from ..cost.closed_form import pool_sizes
from ..cost.workload import workload
from ..ir import Network
from .cut import cut_points, segment_network
from .plan import Plan, Segment
from .price import PlanCosts, compose
from .segments import Given, SegmentCosts, closed_form_segments, with_objective

KINDS = (("spatial", "spikes"), ("spatial", "rates"), ("sequential", "spikes"), ("sequential", "rates"))
LAST_KINDS = (("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates"))
CARRIES = ("spikes", "rates")
# A coarse look at a shape (the evolution's, `Space.best(shape, coarse=True)`): at most this many of each
# segment's options, spread evenly from the fewest cores to the most, the first and last kept.
COARSE_OPTIONS = 12

Shape = tuple[tuple[int, int, str, str], ...]    # per segment: (first, last, kind, carry)


@dataclass
class Options:
    """A segment's options: the cores each takes, the resources each gives, and (once priced) its figures on
    each, per carry."""

    cores: np.ndarray
    given: Given
    costs: dict[str, SegmentCosts] | None = None

    def resources(self, k: int) -> dict:
        """Option k as a plan segment's fields."""
        if self.given.layer_cores is not None:
            return dict(layer_cores=self.given.layer_cores[k])
        return dict(pool=int(self.given.pools[k]))


def spatial_options(sub: Network, arch: ArchConfig) -> Options:
    """The allocation rule's distinct candidates for the segment network `sub` that fit the chip, fewest
    cores first."""
    chips = Chips.of(arch)
    work = workload(sub, True, bool(chips.zero_skipping[0]))
    rows = np.unique(layout.allocation_candidates(work, chips, arch.energy)[:, 0, :], axis=0)
    rows = rows[rows.sum(axis=1) <= arch.cores.count]
    rows = rows[np.lexsort((*rows.T[::-1], rows.sum(axis=1)))]
    names = [layer.name for layer in sub.layers]
    return Options(rows.sum(axis=1), Given(layer_cores=[dict(zip(names, map(int, r))) for r in rows]))


def sequential_options(arch: ArchConfig) -> Options:
    pools = pool_sizes(arch.cores.count)
    return Options(pools, Given(pools=pools))


class SegmentTables:
    """Each segment's options (first layer, last layer, kind) priced by the closed form in one vectorised
    call, and the whole network on the whole chip as today's mapping for each objective; run once and kept:
    searches of one network and chip for several objectives share them."""

    def __init__(self, net: Network, arch: ArchConfig, objectives: tuple[str, ...]):
        self.net, self.arch, self.objectives = net, arch, tuple(objectives)
        self._whole: dict[str, dict] = {}
        self._options: dict[tuple, Options] = {}
        self._subs: dict[tuple, Network] = {}
        # each layer's least spatial cores (what it holds does not depend on the segment): a segment whose
        # layers need more than the chip has no spatial option, found without building it
        chips = Chips.of(arch)
        least = layout.least_cores(workload(net, True, bool(chips.zero_skipping[0])), chips)[1][0]
        self._least_before = np.concatenate([[0], np.cumsum(least)])

    def whole(self, kind: str) -> dict:
        """{objective: {carry: SegmentCosts}}: today's `kind` mapping of the network on the whole chip."""
        if kind not in self._whole:
            self._whole[kind] = closed_form_segments(self.net, self.arch, [self.arch.cores.count], kind, CARRIES,
                                                     self.objectives)
        return self._whole[kind]

    def options(self, first: int, last: int, kind: str, priced: bool = True) -> Options:
        """The segment's options (`priced`: with their figures)."""
        key = (first, last, kind)
        if key not in self._options:
            if kind == "sequential":
                self._options[key] = sequential_options(self.arch)
            elif self._least_before[last + 1] - self._least_before[first] > self.arch.cores.count:
                self._options[key] = Options(np.zeros(0, np.int64), Given(layer_cores=[]))
            else:
                self._options[key] = spatial_options(self.segment(first, last), self.arch)
        opts = self._options[key]
        if priced and opts.costs is None and len(opts.cores):
            opts.costs = closed_form_segments(self.segment(first, last), self.arch, opts.cores, kind, CARRIES,
                                              given=opts.given)
        return opts

    def segment(self, first: int, last: int) -> Network:
        """Layers first..last as a network of their own (`cut.segment_network`), built once."""
        if (first, last) not in self._subs:
            self._subs[first, last] = segment_network(self.net, first, last)
        return self._subs[first, last]


@dataclass
class Scored:
    """The best resource choice of one shape: its score (objective, latency, energy), cores, choice and figures."""

    score: tuple[float, float, float]
    shape: Shape
    cores: tuple[int, ...]
    choice: tuple[int, ...]          # each segment's option (empty: one segment, today's mapping)
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
        self.caps = {k: v for k, v in (caps or {}).items() if v is not None}
        self.tables = tables if tables is not None else SegmentTables(net, arch, (objective,))
        self.priced = 0                               # plans (shape x resource choice) priced so far

    # -- the space -------------------------------------------------------------------------------------------
    def shapes(self, segments: int):
        """Every shape of `segments` segments."""
        for bounds in self.bounds(segments):
            for kinds in itertools.product(*([KINDS] * (segments - 1) + [LAST_KINDS])):
                yield tuple((a, b, kind, carry) for (a, b), (kind, carry) in zip(bounds, kinds))

    def bounds(self, segments: int):
        """Every (first, last) layer list of `segments` segments."""
        L = len(self.net.layers)
        for cuts in itertools.combinations(self.cuts, segments - 1):
            yield list(zip((0,) + tuple(c + 1 for c in cuts), cuts + (L - 1,)))

    def options(self, shape: Shape, priced: bool = True) -> list[Options]:
        return [self.tables.options(a, b, kind, priced) for a, b, kind, _ in shape]

    def choices(self, opts: list[Options], coarse: bool = False) -> np.ndarray:
        """(m, segments) option indices whose cores add up to at most the chip's, built segment by segment
        (`coarse`: of at most COARSE_OPTIONS options of each segment)."""
        most = self.arch.cores.count
        idx, total = np.zeros((1, 0), np.int64), np.zeros(1, np.int64)
        for o in opts:
            pick = np.arange(len(o.cores))
            if coarse and len(pick) > COARSE_OPTIONS:
                pick = np.unique(np.round(np.linspace(0, len(pick) - 1, COARSE_OPTIONS)).astype(np.int64))
            k = len(pick)
            idx = np.concatenate([np.repeat(idx, k, axis=0), np.tile(pick, len(idx))[:, None]], axis=1)
            total = np.repeat(total, k) + np.tile(o.cores[pick], len(total))
            idx, total = idx[total <= most], total[total <= most]
        return idx

    def count(self, opts: list[Options]) -> int:
        """How many choices `choices` makes, by convolving the options' core counts (nothing enumerated)."""
        most = self.arch.cores.count
        ways = np.zeros(most + 1)
        ways[0] = 1
        for o in opts:
            ways = np.convolve(ways, np.bincount(o.cores, minlength=most + 1)[:most + 1])[:most + 1]
        return int(round(ways.sum()))

    def shape_count(self, segments: int) -> int:
        if segments == 1:
            return len(LAST_KINDS)
        return math.comb(len(self.cuts), segments - 1) * len(KINDS) ** (segments - 1) * len(LAST_KINDS)

    def size(self) -> int:
        """Plans in the space (the options of every segment are made, not priced)."""
        total = self.shape_count(1)
        for segments in range(2, self.max_segments + 1):
            for bounds in self.bounds(segments):
                for kinds in itertools.product(("spatial", "sequential"), repeat=segments):
                    opts = [self.tables.options(a, b, kind, priced=False) for (a, b), kind in zip(bounds, kinds)]
                    # carries: 2 per segment but the last (whose 2 are spatial's 1 and sequential's 2)
                    carries = 2 ** (segments - 1) * (1 if kinds[-1] == "spatial" else 2)
                    total += carries * self.count(opts)
        return total

    # -- pricing ---------------------------------------------------------------------------------------------
    def price_shape(self, shape: Shape, coarse: bool = False) -> tuple[PlanCosts, np.ndarray, np.ndarray]:
        """Every resource choice of a shape (`coarse`: see `choices`): its figures, the choices ((m, segments)
        option indices; (1, 0) for a plan of one segment) and the cores each segment takes ((m, segments))."""
        if len(shape) == 1:
            (_, _, kind, carry), = shape
            whole = self.tables.whole(kind)[self.objective][carry]
            self.priced += 1
            return compose([whole], self.chips, self.arch.energy), np.zeros((1, 0), np.int64), \
                np.array([[self.arch.cores.count]])
        opts = self.options(shape)
        idx = self.choices(opts, coarse)
        segs = [o.costs[carry].point(idx[:, k]) for k, (o, (_, _, _, carry)) in enumerate(zip(opts, shape))]
        self.priced += len(idx)
        cores = np.stack([o.cores[idx[:, k]] for k, o in enumerate(opts)], axis=1)
        return compose(segs, self.chips, self.arch.energy), idx, cores

    def best(self, shape: Shape, coarse: bool = False) -> Scored | None:
        """The best resource choice of a shape under the caps (None: no choice fits)."""
        if len(shape) > 1 and not all(len(o.cores) for o in self.options(shape, priced=False)):
            return None                               # a segment that fits no allocation of the chip
        costs, idx, cores = self.price_shape(shape, coarse)
        ok = costs.feasible.copy()
        for key, figure in (("latency_s", costs.latency_s), ("energy_j", costs.total_energy_pj * 1e-12),
                            ("memory_bytes", costs.memory_bytes["peak_on_chip"])):
            if key in self.caps:
                ok &= figure <= self.caps[key]
        if not ok.any():
            return None
        value, latency, energy = layout.ranking(np.full(len(ok), self.objective), costs.latency_s,
                                                costs.total_energy_pj)
        j = np.lexsort((energy, latency, np.where(ok, value, np.inf)))[0]
        return Scored((float(value[j]), float(latency[j]), float(energy[j])), shape, tuple(map(int, cores[j])),
                      tuple(map(int, idx[j])), float(energy[j]) * 1e-12, float(latency[j]),
                      float(costs.memory_bytes["peak_on_chip"][j]))

    def plan(self, scored: Scored) -> Plan:
        """A scored shape and choice as a plan file's plan: each segment's resources given exactly."""
        names = [layer.name for layer in self.net.layers]
        if not scored.choice:
            (a, b, kind, carry), = scored.shape
            segments = [Segment(kind=kind, first=names[a], last=names[b], carry=carry)]
        else:
            opts = self.options(scored.shape, priced=False)
            segments = [Segment(kind=kind, first=names[a], last=names[b], carry=carry, **o.resources(k))
                        for (a, b, kind, carry), o, k in zip(scored.shape, opts, scored.choice)]
        return Plan(segments=segments, objective=self.objective, model=self.net.name, arch=self.arch.name,
                    phase=decoder_phase(self.net))


def decoder_phase(net: Network) -> str | None:
    """'prefill' or 'decode' for a decoder card's phase (`mapping.cli.decoder_phase_network`), else None."""
    phase = net.metadata.get("phase") if net.metadata.get("decoder") else None
    return None if phase is None else "prefill" if phase["query_tokens"] > 1 else "decode"
