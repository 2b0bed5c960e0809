"""Data reuse inside a core: reads and writes of each tensor at each memory level (issue 22).

Two workloads, one vocabulary (`arch.MemoryLevel`, `arch.Dataflow`):

* **Real-valued layers** (a GEMM of M tokens x K inputs x N outputs, per
  step) run as a loop nest: loops over the dims m, k, n, outermost first, and
  memory levels that sit between them. A level at position p holds the tile
  of a tensor that the loops below it (loops[p:]) index. A tile enters the
  level once per iteration of the loops above it, except that irrelevant loops
  (ones that do not index the tensor) nested inside the innermost relevant
  loop above leave it in place: that is the reuse, and the "stationary"
  tensor is the one whose irrelevant loop is innermost. So the elements that
  enter a level over the run are |X| x the product of the irrelevant loops
  above it that enclose a relevant one (`visits`). The datapath is a level
  of one element below all loops: an operand that stays the same from one
  iteration to the next is not read again (as ZigZag assumes).
* **Spiking layers** are event-driven: a weight row is fetched from SRAM per
  spike, or once per (input neuron, step, token tile, output tile) and
  applied to every token of the tile that spiked on that neuron; membranes
  are held in a level while the tile's inputs are processed, or
  read-modify-written in SRAM per event. Expected counts come from rates (a
  neuron spikes in at least one of N independent tokens with chance
  1 - (1 - r)^N), exact ones from a spike raster [T, tokens, inputs].

Counts are in elements (multiply by the tensor's bits for bits). Numbers may
be numpy arrays over design points: tiles differ per point, the loop order
does not (one nest per stationary choice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DIMS = ("m", "k", "n")   # tokens, inputs (the reduction), outputs
RELEVANT = {"weights": "kn", "inputs": "mk", "outputs": "mn"}
DATAPATH = "datapath"


@dataclass(frozen=True)
class Loop:
    dim: str
    bound: object   # an int, or an array over design points


@dataclass(frozen=True)
class Level:
    """A memory at `position` in the nest: it holds the tiles that loops[position:] index."""

    name: str
    holds: tuple[str, ...]
    position: int


@dataclass
class LoopNest:
    """Loops outermost first; levels innermost first (the outermost holds whole tensors: position 0)."""

    loops: list[Loop]
    levels: list[Level]

    def chain(self, tensor: str) -> list[Level]:
        """The levels a tensor passes through on its way to the datapath, innermost first."""
        inner = Level(DATAPATH, tuple(RELEVANT), len(self.loops))
        return [inner] + [lv for lv in self.levels if tensor in lv.holds]

    def size(self, tensor: str):
        return _product(lp.bound for lp in self.loops if lp.dim in RELEVANT[tensor])


def _product(values):
    out = 1
    for v in values:
        out = out * v
    return out


def visits(nest: LoopNest, tensor: str, position: int):
    """Elements of `tensor` that enter the level at `position` over the run (see the module doc)."""
    above = nest.loops[:position]
    relevant = [i for i, lp in enumerate(above) if lp.dim in RELEVANT[tensor]]
    refetch = _product(lp.bound for lp in above[:relevant[-1]] if lp.dim not in RELEVANT[tensor]) if relevant else 1
    return nest.size(tensor) * refetch


@dataclass
class Accesses:
    """Element reads and writes per (level, tensor); the datapath is not a memory and has none."""

    reads: dict[tuple[str, str], object] = field(default_factory=dict)
    writes: dict[tuple[str, str], object] = field(default_factory=dict)

    def add(self, kind: str, level: str, tensor: str, count) -> None:
        book = self.reads if kind == "read" else self.writes
        book[(level, tensor)] = book.get((level, tensor), 0) + count

    def at(self, level: str, tensor: str) -> tuple:
        return self.reads.get((level, tensor), 0), self.writes.get((level, tensor), 0)


def nest_accesses(nest: LoopNest, read_first: bool = False, tensors=RELEVANT) -> Accesses:
    """Reads and writes of every tensor at every level of the nest.

    Weights and inputs flow down: each element entering a level is read from the next level up and
    written into this one. Outputs (partial sums) flow both ways: each visit of a tile ends with a write
    back up, and each visit but an element's first brings its partial sum down (a read above, a write
    here). `read_first`: the first visit reads too (a membrane kept from the last step, a preloaded bias).
    """
    acc = Accesses()
    for tensor in tensors:
        chain = nest.chain(tensor)
        first = 0 if read_first else nest.size(tensor)
        for child, parent in zip(chain, chain[1:]):
            v = visits(nest, tensor, child.position)
            down = v if tensor != "outputs" else v - first
            acc.add("read", parent.name, tensor, down)
            if child.name != DATAPATH:
                acc.add("write", child.name, tensor, down)
            if tensor == "outputs":
                acc.add("write", parent.name, tensor, v)
                if child.name != DATAPATH:
                    acc.add("read", child.name, tensor, v)
    return acc


# -- The GEMM nest of a stationary choice ----------------------------------------------------------------
# Outer loops step over tiles, inner loops within a tile; the levels below the core SRAM sit between them.
# The stationary tensor's irrelevant dim is innermost in both, so its tile stays while the others stream.
ORDERS = {"output": ("mnk", "mnk"), "weight": ("nkm", "knm"), "input": ("mkn", "mkn")}


def gemm_nest(dims: dict, tiles: dict, stationary: str, inner: list[tuple[str, tuple]], top: tuple[str, tuple]) -> LoopNest:
    """A two-tier tiled GEMM: `dims` and `tiles` map m, k, n to sizes (tiles divide dims); `inner` lists the
    levels below the top as (name, holds), innermost first; `top` (name, holds) holds whole tensors."""
    outer, within = ORDERS[stationary]
    loops = [Loop(d, dims[d] // tiles[d]) for d in outer] + [Loop(d, tiles[d]) for d in within]
    levels = [Level(name, tuple(holds), 3) for name, holds in inner] + [Level(top[0], tuple(top[1]), 0)]
    return LoopNest(loops, levels)


def no_reuse_nest(tokens: int, inputs: int, outputs: int, steps: int = 1) -> LoopNest:
    """Today's model as a loop nest: no level below the core SRAM, which holds weights and outputs
    (inputs arrive from outside the core); steps, tokens and outputs outside the reduction, so every MAC
    reads its weight from SRAM and each output is read and written once per token and step."""
    loops = [Loop("t", steps), Loop("m", tokens), Loop("n", outputs), Loop("k", inputs)]
    return LoopNest(loops, [Level("core_sram", ("weights", "outputs"), 0)])


def largest_divisor(dim: int, at_most) -> np.ndarray:
    """The largest divisor of `dim` that is <= at_most (an array over points; at least 1)."""
    divisors = np.array([d for d in range(1, dim + 1) if dim % d == 0])
    idx = np.searchsorted(divisors, np.floor(np.asarray(at_most, dtype=float)), side="right") - 1
    return divisors[np.maximum(idx, 0)]


def gemm_tiles(dims: dict, stationary: str, capacity: dict) -> dict:
    """Tiles (divisors of the dims) for a stationary choice, from the elements each tensor's level can hold
    (`capacity`: tensor -> elements, an array over points; a tensor without a level is absent). The
    stationary tensor's tile is made as large and square as its level allows; the remaining dim is then
    as large as the other held tensors allow (the whole dim when no level bounds it)."""
    target = {"output": "outputs", "weight": "weights", "input": "inputs"}[stationary]
    a, b = RELEVANT[target]
    (c,) = set(DIMS) - {a, b}
    tiles = {}
    if target in capacity:
        cap = np.asarray(capacity[target], dtype=float)
        tiles[a] = largest_divisor(dims[a], np.sqrt(cap))
        tiles[b] = largest_divisor(dims[b], cap // tiles[a])
        tiles[a] = largest_divisor(dims[a], cap // tiles[b])
    else:
        tiles[a], tiles[b] = np.asarray(dims[a]), np.asarray(dims[b])
    bound = np.inf
    for tensor, cap in capacity.items():
        if tensor != target and c in RELEVANT[tensor]:
            (other,) = set(RELEVANT[tensor]) - {c}
            bound = np.minimum(bound, np.asarray(cap, dtype=float) // tiles[other])
    tiles[c] = largest_divisor(dims[c], np.minimum(bound, dims[c]))
    return tiles


# -- Spiking layers: event-driven reuse -------------------------------------------------------------------
def token_tiles(tokens: int, token_tile) -> tuple:
    """(full tiles, size of the last partial tile or 0) when `tokens` are split into tiles of `token_tile`."""
    token_tile = np.minimum(np.asarray(token_tile), tokens)
    return tokens // token_tile, tokens % token_tile


def active_inputs_expected(rate, tokens: int, token_tile, inputs: int, steps: int, grouping: str):
    """Expected weight-row fetches per output tile: per event, one per spike; per input, one per (input
    neuron, step, token tile) in which at least one token spiked, 1 - (1 - r)^size for independent spikes."""
    if grouping == "per_event":
        return np.asarray(rate * tokens * inputs * steps, dtype=float)
    full, last = token_tiles(tokens, token_tile)
    size = np.minimum(np.asarray(token_tile), tokens)
    hit = full * (1 - (1 - rate) ** size) + np.where(last > 0, 1 - (1 - rate) ** last, 0.0)
    return inputs * steps * hit


def active_inputs_exact(raster: np.ndarray, token_tile: int, grouping: str) -> int:
    """Weight-row fetches per output tile counted on a spike raster [T, tokens, inputs] (nonzero = spike)."""
    spikes = np.asarray(raster) != 0
    if grouping == "per_event":
        return int(spikes.sum())
    steps, tokens, inputs = spikes.shape
    full, last = token_tiles(tokens, token_tile)
    bounds = [min(i * token_tile, tokens) for i in range(int(full) + 1)] + ([tokens] if last else [])
    return int(sum(spikes[:, lo:hi, :].any(axis=1).sum() for lo, hi in zip(bounds, bounds[1:])))


@dataclass
class EventLayer:
    """A spiking layer's sizes as the core sees them: tokens, input neurons, live outputs, steps, and the
    membrane-precision words a neuron keeps (membrane, synaptic current, per-neuron parameters)."""

    tokens: int
    inputs: int
    outputs: int
    steps: int
    state_words: int = 1


def event_accesses(layer: EventLayer, active, acs, grouping: str, membranes: str,
                   weight_level: str | None, output_level: str | None, sram: str = "core_sram") -> Accesses:
    """Element reads and writes of a spiking layer's weights and membranes (in state words).

    `active`: row fetches per output tile (`active_inputs_expected` or `_exact`); `acs`: the layer's ACs.
    A row fetched per input goes through `weight_level` (written once, read by each AC); per event it is
    read from SRAM by each AC. Held membranes cost one SRAM read and write per neuron update, and, where
    `output_level` holds them, a read and write there per AC (the accumulation) and per load/store.
    Per-event membranes are read-modify-written in SRAM by every AC, and once more by the neuron update.
    """
    acc = Accesses()
    updates = layer.tokens * layer.outputs * layer.steps * layer.state_words
    if grouping == "per_input":
        fetched = active * layer.outputs
        acc.add("read", sram, "weights", fetched)
        acc.add("write", weight_level, "weights", fetched)
        acc.add("read", weight_level, "weights", acs)
    else:
        acc.add("read", sram, "weights", acs)
    if membranes == "per_event":
        acc.add("read", sram, "outputs", acs + updates)
        acc.add("write", sram, "outputs", acs + updates)
        return acc
    acc.add("read", sram, "outputs", updates)
    acc.add("write", sram, "outputs", updates)
    if output_level is not None:
        acc.add("write", output_level, "outputs", acs + updates)   # each accumulation, and the load from SRAM
        acc.add("read", output_level, "outputs", acs + updates)    # each accumulation, and the store to SRAM
    return acc


def event_tiles(layer: EventLayer, weight_elems, membrane_elems) -> tuple:
    """(output tile, token tile) of an event-driven layer: a weight row tile fills the weights' level
    (all outputs without one); the membranes of that many outputs for as many tokens as fit fill the
    outputs' level (all tokens without one)."""
    out_tile = np.asarray(layer.outputs) if weight_elems is None else \
        np.clip(np.asarray(weight_elems) // 1, 1, layer.outputs)
    if membrane_elems is None:
        return out_tile, np.asarray(layer.tokens)
    per_token = out_tile * layer.state_words
    return out_tile, np.clip(np.asarray(membrane_elems) // per_token, 1, layer.tokens)
