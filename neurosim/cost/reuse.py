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

import copy
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .analytic import event_rate
from .distinct import distinct, point_fields

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


@lru_cache(maxsize=256)
def _divisors(dim: int) -> np.ndarray:
    return np.array([d for d in range(1, dim + 1) if dim % d == 0])


def largest_divisor(dim: int, at_most) -> np.ndarray:
    """The largest divisor of `dim` that is <= at_most (an array over points; at least 1)."""
    divisors = _divisors(int(dim))
    idx = np.searchsorted(divisors, np.floor(np.asarray(at_most, dtype=float)), side="right") - 1
    return divisors[np.maximum(idx, 0)]


def gemm_tiles(dims: dict, stationary: str, capacity: dict, caps: dict | None = None) -> dict:
    """Tiles (divisors of the dims) for a stationary choice, from the elements each tensor's level can hold
    (`capacity`: tensor -> elements, an array over points; a tensor without a level is absent). The
    stationary tensor's tile is made as large and square as its level allows; the remaining dim is then
    as large as the other held tensors allow (the whole dim when no level bounds it). `caps` (dim -> at
    most, arrays over points; inf: none) bound each tile further (`arch.Dataflow.tile_*`)."""
    caps = caps or {}
    cap_of = lambda d: np.asarray(caps.get(d, np.inf), dtype=float)  # noqa: E731
    target = {"output": "outputs", "weight": "weights", "input": "inputs"}[stationary]
    a, b = RELEVANT[target]
    (c,) = set(DIMS) - {a, b}
    tiles = {}
    if target in capacity:
        cap = np.asarray(capacity[target], dtype=float)
        tiles[a] = largest_divisor(dims[a], np.minimum(np.sqrt(cap), cap_of(a)))
        tiles[b] = largest_divisor(dims[b], np.minimum(np.floor(cap / tiles[a]), cap_of(b)))
        tiles[a] = largest_divisor(dims[a], np.minimum(np.floor(cap / tiles[b]), cap_of(a)))
    else:
        tiles[a], tiles[b] = largest_divisor(dims[a], cap_of(a)), largest_divisor(dims[b], cap_of(b))
    bound = cap_of(c)
    for tensor, cap in capacity.items():
        if tensor != target and c in RELEVANT[tensor]:
            (other,) = set(RELEVANT[tensor]) - {c}
            bound = np.minimum(bound, np.floor(np.asarray(cap, dtype=float) / tiles[other]))
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


def event_tiles(layer: EventLayer, weight_elems, membrane_elems, max_outputs=np.inf, max_tokens=np.inf) -> tuple:
    """(output tile, token tile) of an event-driven layer: a weight row tile fills the weights' level
    (all outputs without one); the membranes of that many outputs for as many tokens as fit fill the
    outputs' level (all tokens without one); neither above its cap (`arch.Dataflow.tile_*`)."""
    out_tile = np.asarray(layer.outputs) if weight_elems is None else np.asarray(weight_elems) // 1
    out_tile = np.clip(np.minimum(out_tile, max_outputs), 1, layer.outputs)
    if membrane_elems is None:
        return out_tile, np.clip(np.minimum(layer.tokens, max_tokens), 1, layer.tokens)
    per_token = out_tile * layer.state_words
    with np.errstate(divide="ignore"):   # a layer without state words (a real output): no level bounds its tokens
        return out_tile, np.clip(np.minimum(np.asarray(membrane_elems) // per_token, max_tokens), 1, layer.tokens)


# -- A network on n design points (the closed form's view) -------------------------------------------------
ROLES = ("weights", "inputs", "outputs")
STATIONARY = ("weight", "output", "input")


class CoreLevels:
    """The memory levels and dataflow of n design points (arch dicts, as `cost.chips.Chips` takes them), as
    arrays: per tensor, whether a level holds it, its capacity in bits, its pJ per bit read and written."""

    def __init__(self, archs: list[dict]):
        self.n = len(archs)
        levels = [a["cores"].get("levels") or [] for a in archs]
        flows = [a["cores"].get("dataflow") or {} for a in archs]
        self.any = np.array([bool(lv) for lv in levels])
        self.name = {t: [next((lv["name"] for lv in lvs if t in lv["holds"]), None) for lvs in levels] for t in ROLES}
        self.has, self.bits, self.read_pj, self.write_pj = {}, {}, {}, {}
        for t in ROLES:
            held = [next((lv for lv in lvs if t in lv["holds"]), None) for lvs in levels]
            self.has[t] = np.array([lv is not None for lv in held])
            # a level shared by several tensors gives each an equal share of its bytes
            self.bits[t] = np.array([8.0 * lv["bytes"] / len(lv["holds"]) if lv else np.inf for lv in held])
            self.read_pj[t] = np.array([lv["read_pj"] / lv["width_bits"] if lv else 0.0 for lv in held])
            self.write_pj[t] = np.array([lv["write_pj"] / lv["width_bits"] if lv else 0.0 for lv in held])
        self.stationary = np.array([STATIONARY.index(f.get("stationary", "output")) for f in flows])
        self.per_input = np.array([f.get("events", "per_event") == "per_input" for f in flows])
        self.per_event_membranes = np.array([f.get("membranes", "held") == "per_event" for f in flows])
        # tile caps per GEMM dim (inf: none), and ports: bits per cycle per core (inf: not a bound)
        cap = lambda f, key: float(f.get(key) or np.inf)  # noqa: E731
        self.caps = {d: np.array([cap(f, f"tile_{key}") for f in flows])
                     for d, key in (("m", "tokens"), ("k", "inputs"), ("n", "outputs"))}
        self.port_width = {t: np.array([float(lv.get("bits_per_cycle") or np.inf) if lv else np.inf
                                        for lv in (next((lv for lv in lvs if t in lv["holds"]), None)
                                                   for lvs in levels)]) for t in ROLES}
        self.sram_port = np.array([float(a["cores"].get("sram_bits_per_cycle") or np.inf) for a in archs])
        self.ports = np.isfinite(self.sram_port) | np.any([np.isfinite(w) for w in self.port_width.values()], axis=0)
        self.serial = np.array([f.get("ports", "overlapped") == "serial" for f in flows])

    def take(self, rows: np.ndarray) -> "CoreLevels":
        """These levels on the points `rows`, in that order (a field is an array or list with one entry per
        point, or a dict of them)."""
        pick = lambda v: v[rows] if isinstance(v, np.ndarray) else [v[i] for i in rows]  # noqa: E731
        out = copy.copy(self)
        for name, value in vars(self).items():
            setattr(out, name, len(rows) if name == "n" else
                    {k: pick(v) for k, v in value.items()} if isinstance(value, dict) else pick(value))
        return out

    def port_names(self) -> list[list[str]]:
        """Per point, the name of each port slot of `port_cycles`: the level of each role (slots that exist only
        where some point has levels), then the core SRAM."""
        roles = ROLES if self.any.any() else ()
        return [[self.name[t][j] or t for t in roles] + [SRAM_PORT] for j in range(self.n)]


SRAM_PORT = "core SRAM"   # the name of the core SRAM's port in reports (`layout.pace`)


@dataclass
class LevelBits:
    """Bits read and written over a run at the core SRAM and at the level of each role: (n,) arrays for one
    layer, (n, L) for a network (`stack`)."""

    sram_read: np.ndarray
    sram_write: np.ndarray
    read: dict = field(default_factory=dict)    # role -> bits read at the level that holds it
    write: dict = field(default_factory=dict)

    def add(self, role: str, read_bits, write_bits) -> None:
        self.read[role] = self.read.get(role, 0.0) + read_bits
        self.write[role] = self.write.get(role, 0.0) + write_bits

    @classmethod
    def stack(cls, layers: list["LevelBits"], n: int) -> "LevelBits":
        """Per-layer results (n,) as one (n, L) result."""
        col = lambda xs: np.stack([np.broadcast_to(x, (n,)) for x in xs], axis=1)  # noqa: E731
        out = cls(col([lb.sram_read for lb in layers]), col([lb.sram_write for lb in layers]))
        for t in ROLES:
            out.read[t] = col([lb.read.get(t, 0.0) for lb in layers])
            out.write[t] = col([lb.write.get(t, 0.0) for lb in layers])
        return out

    def level_pj(self, levels: CoreLevels) -> np.ndarray:
        """Energy of the accesses at the levels (pJ, shaped like the bits)."""
        shape = np.shape(self.sram_read)
        per = lambda a: a.reshape((levels.n,) + (1,) * (len(shape) - 1))  # noqa: E731
        return sum(self.read.get(t, 0.0) * per(levels.read_pj[t]) + self.write.get(t, 0.0) * per(levels.write_pj[t])
                   for t in ROLES) + np.zeros(shape)

    def note(self, levels: CoreLevels, j: int) -> str:
        """Point j's accesses per level and at the SRAM, in bytes, with the levels' energy (a report note)."""
        per_level: dict[str, list] = {}
        for t in ROLES:
            name = levels.name[t][j]
            if name is None:
                continue
            r, w = (float(np.sum(np.asarray(x.get(t, 0.0)), axis=-1)[j] if np.ndim(x.get(t, 0.0)) == 2
                          else np.broadcast_to(x.get(t, 0.0), (levels.n,))[j]) / 8 for x in (self.read, self.write))
            pj = (r * levels.read_pj[t][j] + w * levels.write_pj[t][j]) * 8
            acc = per_level.setdefault(name, [0.0, 0.0, 0.0])
            acc[0], acc[1], acc[2] = acc[0] + r, acc[1] + w, acc[2] + pj
        parts = [f"{name} {_bytes(r)} read, {_bytes(w)} written, {pj / 1e6:.3g} uJ"
                 for name, (r, w, pj) in per_level.items()]
        sram_r, sram_w = (float(np.sum(x, axis=-1)[j] if np.ndim(x) == 2 else x[j]) for x in (self.sram_read, self.sram_write))
        return (f"memory levels (cost.reuse): {'; '.join(parts)}; core SRAM {_bytes(sram_r / 8)} read, "
                f"{_bytes(sram_w / 8)} written")


def _bytes(b: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.3g} B"


def _gemm_elements(dims: dict, levels: CoreLevels, elem_bits: dict) -> dict:
    """Per tensor: (SRAM reads, SRAM writes, level reads, level writes) in elements for one GEMM, per point,
    each point with its own stationary choice, tiles and levels (a tensor without a level is read from
    SRAM by the datapath). Outputs count partial sums (an element's first visit reads nothing)."""
    capacity = {t: levels.bits[t] / elem_bits[t] for t in ROLES}
    out = {t: [np.zeros(levels.n) for _ in range(4)] for t in ROLES}
    inner = [(f"level_{t}", (t,)) for t in ROLES]
    top = ("sram", ROLES)
    for s, stationary in enumerate(STATIONARY):
        pick = levels.stationary == s
        if not pick.any():
            continue
        tiles = gemm_tiles(dims, stationary, capacity, levels.caps)
        with_levels = nest_accesses(gemm_nest(dims, tiles, stationary, inner, top))
        without = nest_accesses(gemm_nest(dims, tiles, stationary, [], top))
        for t in ROLES:
            lv = levels.has[t]
            sram_r = np.where(lv, with_levels.at("sram", t)[0], without.at("sram", t)[0])
            sram_w = np.where(lv, with_levels.at("sram", t)[1], without.at("sram", t)[1])
            lv_r, lv_w = (np.where(lv, x, 0.0) for x in with_levels.at(f"level_{t}", t))
            for acc, x in zip(out[t], (sram_r, sram_w, lv_r, lv_w)):
                acc[pick] = np.broadcast_to(x, (levels.n,))[pick]
    return out


def _per_point(x, n: int) -> np.ndarray:
    """Column i of a per-layer array ((L,) shared by all points, or (n, L)) as an (n,) array."""
    return np.broadcast_to(np.asarray(x, dtype=float), (n,))


def _reduction(work, i: int) -> int:
    """K of layer i's GEMM: its live inputs (linear), or its stored weights per output (other kinds)."""
    from .analytic import live_inputs
    layer = work.net.layers[i]
    if layer.kind == "linear":
        return max(1, live_inputs(work.net, layer))
    return max(1, round(work.weight_bytes[i] * 8 / work.weight_bits[i] / max(work.live[i], 1)))


def _operand_bits(work, name: str, activation_bits: np.ndarray) -> np.ndarray:
    """Bits of one element of a layer's output as another layer reads it: a spike's bits, or a real value."""
    layer = work.net[name]
    return np.full(len(activation_bits), layer.neuron.spike_bits) if layer.spiking else activation_bits


def _attention_shape(work, i: int) -> tuple[int, int, int]:
    """(live heads, head dim, tokens) of an attention layer."""
    spec = work.net.layers[i].spec
    return int(spec.live_heads().sum()), int(spec.head_dim), int(work.seq_len[i])


def _mac_gemm(work, i: int, activation_bits: np.ndarray) -> tuple:
    """(dims, element bits per tensor, whether the outputs go to SRAM) of layer i's real-valued GEMM.

    Attention's MACs are Q.K^T, per head and step: queries x head dim (the reduction) x keys, with real Q
    as the streamed input, K (spikes where its layer spikes) as the weights, and the scores as outputs,
    written to SRAM for softmax and the weighted sum (the ACs). Other layers: tokens x live inputs x live
    outputs, their weights at the layer's precision, their sums into membranes where the layer spikes."""
    ab = activation_bits
    if work.attention[i]:
        _, head_dim, tokens = _attention_shape(work, i)
        keys = work.net.layers[i].inputs[1]
        return (dict(m=tokens, k=head_dim, n=tokens), dict(weights=_operand_bits(work, keys, ab), inputs=ab,
                                                          outputs=ab), True)
    dims = dict(m=int(work.seq_len[i]), k=_reduction(work, i), n=int(work.live[i]))
    return dims, dict(weights=np.full(len(ab), work.weight_bits[i]), inputs=ab, outputs=ab), not work.spiking[i]


def level_bits(work, levels: CoreLevels, membrane_bits, activation_bits, ac_includes_memory: bool,
               acs, macs_done, neuron_updates) -> LevelBits:
    """`counted_level_bits` on each distinct point only (`distinct_points`), copied to the others."""
    first, inverse, args = distinct_points(work, levels, membrane_bits, activation_bits, acs, macs_done,
                                           neuron_updates)
    bits = counted_level_bits(work, args[0], args[1], args[2], ac_includes_memory, *args[3:])
    if len(first) == levels.n:
        return bits
    out = LevelBits(bits.sram_read[inverse], bits.sram_write[inverse])
    out.read, out.write = ({t: x[t][inverse] for t in ROLES} for x in (bits.read, bits.write))
    return out


def distinct_points(work, levels: CoreLevels, membrane_bits, activation_bits, acs, macs_done,
                    neuron_updates) -> tuple:
    """(first, inverse, the arguments of `counted_level_bits` after `work` on the first points): the points
    that differ in something the levels' counts read (their levels, dataflow, precisions, per-layer work),
    as `distinct.distinct` gives them. A sweep's points mostly differ in numbers the loop nests do not see
    (core counts, SRAM sizes, the global buffer), so the counts are made once for many points."""
    n = levels.n
    mb, ab = (np.broadcast_to(np.asarray(x, float), (n,)) for x in (membrane_bits, activation_bits))
    work_rows = [np.asarray(x, float) for x in (acs, macs_done, neuron_updates)]   # (L,): every point's
    per_point = [x for x in work_rows if x.ndim == 2]
    first, inverse = distinct(point_fields(levels) + [mb, ab] + per_point, n)
    if len(first) == n:   # all distinct: the points as they are, in their order
        return np.arange(n), np.arange(n), (levels, mb, ab, *work_rows)
    return first, inverse, (levels.take(first), mb[first], ab[first],
                            *(x[first] if x.ndim == 2 else x for x in work_rows))


def counted_level_bits(work, levels: CoreLevels, membrane_bits, activation_bits, ac_includes_memory: bool,
                       acs, macs_done, neuron_updates) -> LevelBits:
    """Core-SRAM and level bits of a network's work ((L,) or (n, L) per-layer counts) on n points, every
    point priced as if it had levels (its levels, where it has none: the datapath reads the SRAM).

    MACs: each step's GEMM through the point's nest (`_gemm_elements`); a real layer's outputs are its
    partial sums, a spiking layer's go into its membranes. ACs: event-driven rows and membranes
    (`event_accesses`' rules); where the energy table's AC includes the weight read and the accumulation
    (`ac_includes_memory`), neither is counted again. Membranes: one read and write of every state word
    per neuron update at SRAM, as without levels. A decoder's causal attention: its two products
    (`_causal_products`).
    """
    n = levels.n
    mb, ab = np.asarray(membrane_bits, float), np.asarray(activation_bits, float)
    layers = []
    for i in range(work.L):
        out = LevelBits(np.zeros(n), np.zeros(n))
        layers.append(out)
        col = lambda x: _per_point(np.asarray(x, dtype=float)[..., i], n)  # noqa: E731
        macs, acs_i, updates = col(macs_done), col(acs), col(neuron_updates)
        causal = work.net.layers[i].kind == "causal_attention"
        if causal:
            _causal_products(out, work, i, levels, mb, ab, ac_includes_memory, acs_i, macs)
        elif macs.any() and work.live[i] > 0:
            dims, elem_bits, sums_to_sram = _mac_gemm(work, i, ab)
            runs = _add_gemm(out, levels, dims, elem_bits, macs, sums_to_sram)
            if work.attention[i]:   # the softmax reads each score and writes its probability back
                _add_softmax(out, runs * dims["m"] * dims["n"] * elem_bits["outputs"])
        held = levels.has["outputs"] & ~levels.per_event_membranes
        state = updates * mb * work.state_words[i]
        if work.spiking[i]:
            out.sram_read, out.sram_write = out.sram_read + state, out.sram_write + state
            out.add("outputs", np.where(held, state, 0.0), np.where(held, state, 0.0))
        if causal or not acs_i.any() or ac_includes_memory:
            continue
        w_bits = ab if work.attention[i] else np.full(n, work.weight_bits[i])   # an AC's weight (a score)
        fetched = _ac_weight_reads(work, i, levels, acs_i, mb, w_bits)
        _add_events(out, levels, acs_i, fetched, w_bits, mb, _groups_rows(work, i))
    return LevelBits.stack(layers, n)


def _add_gemm(out: LevelBits, levels: CoreLevels, dims: dict, elem_bits: dict, macs, sums_to_sram) -> np.ndarray:
    """Add `macs` MACs of one GEMM shape, run as many times as they fill (returned), to `out`: each tensor's
    SRAM and level bits from the point's nest; the outputs' SRAM bits only where `sums_to_sram`."""
    runs = macs / (dims["m"] * dims["k"] * dims["n"])      # GEMMs run (heads x steps; 1 held input)
    e = _gemm_elements(dims, levels, elem_bits)
    for t in ROLES:
        sram_r, sram_w, lv_r, lv_w = (x * runs * elem_bits[t] for x in e[t])
        if t != "outputs" or sums_to_sram:                 # a spiking layer's sums go to membranes
            out.sram_read, out.sram_write = out.sram_read + sram_r, out.sram_write + sram_w
        out.add(t, lv_r, lv_w)
    return runs


def _add_softmax(out: LevelBits, score_bits) -> None:
    """The softmax reads each score from SRAM and writes its probability back."""
    out.sram_read, out.sram_write = out.sram_read + score_bits, out.sram_write + score_bits


def _add_events(out: LevelBits, levels: CoreLevels, acs, fetched, w_bits, sum_bits, grouped) -> None:
    """Add an event-driven product to `out` (`event_accesses`' rules): `fetched` weights (or scores, or Q
    values) of `w_bits` read from SRAM, through the weights' level where rows are `grouped` per input there;
    each of the `acs` accumulations of `sum_bits` read-modify-written in SRAM (per-event membranes) or in
    the outputs' level (held)."""
    held = levels.has["outputs"] & ~levels.per_event_membranes
    rmw = np.where(levels.per_event_membranes, acs * sum_bits, 0.0)
    out.sram_read, out.sram_write = out.sram_read + rmw, out.sram_write + rmw
    out.add("outputs", np.where(held, acs * sum_bits, 0.0), np.where(held, acs * sum_bits, 0.0))
    out.sram_read = out.sram_read + fetched * w_bits
    rows = levels.per_input & levels.has["weights"] & grouped   # rows kept in the level
    out.add("weights", np.where(rows, acs * w_bits, 0.0), np.where(rows, fetched * w_bits, 0.0))


def with_levels(work, levels: CoreLevels, membrane_bits, activation_bits, ac_includes_memory: bool, acs,
                macs_done, neuron_updates, reads: np.ndarray, writes: np.ndarray) -> tuple:
    """(core-SRAM bits read, written, pJ at the levels), each (n, L): the no-reuse bits `reads` and `writes`
    ((n, L), `layout.core_access_bits_by_layer`) where a point's cores have no levels; where they have,
    what its dataflow reads and writes (`level_bits`)."""
    if not levels.any.any():
        return reads, writes, np.zeros(np.shape(reads))
    bits = level_bits(work, levels, membrane_bits, activation_bits, ac_includes_memory, acs, macs_done,
                      neuron_updates)
    on = levels.any[:, None]
    return (np.where(on, bits.sram_read, reads), np.where(on, bits.sram_write, writes),
            np.where(on, bits.level_pj(levels), 0.0))


def port_cycles(work, levels: CoreLevels, membrane_bits, activation_bits, ac_includes_memory: bool, acs,
                macs_done, neuron_updates, reads: np.ndarray, writes: np.ndarray) -> np.ndarray:
    """(ports, n, L): cycles each layer's accesses keep each memory port of one core busy over the run,
    bits read plus written over the port's bits per cycle (0 where a point gives that port no width).
    Ports: the level of each role (a level holding several roles counts once, in its first role's
    slot), then the core SRAM. The bits are those the energy is priced from (`with_levels`)."""
    sram, slots = reads + writes, []
    if levels.any.any():
        bits = level_bits(work, levels, membrane_bits, activation_bits, ac_includes_memory, acs, macs_done,
                          neuron_updates)
        sram = np.where(levels.any[:, None], bits.sram_read + bits.sram_write, sram)   # as `with_levels`
        names = {t: np.array(levels.name[t], dtype=object) for t in ROLES}
        for k, t in enumerate(ROLES):
            owner = levels.has[t] & ~np.any([names[u] == names[t] for u in ROLES[:k]] + [np.zeros(levels.n, bool)],
                                            axis=0)
            moved = sum(np.where((names[u] == names[t])[:, None], bits.read[u] + bits.write[u], 0.0) for u in ROLES)
            slots.append(np.where((owner & levels.any)[:, None], moved / levels.port_width[t][:, None], 0.0))
    slots.append(sram / levels.sram_port[:, None])
    return np.stack(slots)


def _groups_rows(work, i: int) -> bool:
    """Whether a layer's events can share a weight row: a linear layer without recurrent weights, or
    attention (a V event on key j adds the scores of key j to every query)."""
    layer = work.net.layers[i]
    return (layer.kind == "linear" and layer.recurrent is None) or bool(work.attention[i])


def _event_layer(work, i: int) -> tuple[EventLayer, int]:
    """(the event-driven shape of layer i's ACs, how many such layers). Linear: tokens x live inputs ->
    live outputs. Attention's weighted sum, per live head: an event is V's spike at (key j, feature d), its
    row the scores of key j over the queries, its outputs the queries' feature d; so the head dim plays
    the tokens, the keys the inputs and the queries the outputs."""
    from .analytic import live_inputs
    steps, words = int(work.timesteps[i]), int(work.state_words[i])
    if work.attention[i]:
        heads, head_dim, tokens = _attention_shape(work, i)
        return EventLayer(head_dim, tokens, tokens, steps, words), heads
    inputs = max(1, live_inputs(work.net, work.net.layers[i]))
    return EventLayer(int(work.seq_len[i]), inputs, int(work.live[i]), steps, words), 1


def _ac_weight_reads(work, i: int, levels: CoreLevels, acs, membrane_bits, weight_bits) -> np.ndarray:
    """Weights read from SRAM by layer i's ACs, per point: one per AC, or, where rows are grouped per
    input, one row of the layer's outputs per (input, step, token tile) with a spike, in expectation."""
    if not _groups_rows(work, i):
        return acs
    layer, copies = _event_layer(work, i)
    return _row_fetches(layer, copies, acs, levels, membrane_bits, weight_bits)


def _row_fetches(layer: EventLayer, copies, acs, levels: CoreLevels, sum_bits, weight_bits) -> np.ndarray:
    """Elements read from SRAM by `acs` ACs of `copies` event layers of one shape (heads; a fraction where a
    causal mask leaves part of the shape out): one per AC, or, where rows are grouped per input (and the
    weights have a level), a row of the outputs per (input, step, token tile) with a spike, in expectation
    at the rate the ACs imply. Token tiles: as many tokens' sums (`sum_bits` each) as the outputs' level holds."""
    tokens, inputs, outputs, steps = layer.tokens, layer.inputs, layer.outputs, layer.steps
    rate = np.clip(acs / (copies * tokens * steps * inputs * outputs), 0.0, 1.0)
    has_w, has_o = levels.has["weights"], levels.has["outputs"] & ~levels.per_event_membranes
    weight_elems = np.where(has_w, levels.bits["weights"] / weight_bits, outputs)
    membrane_elems = np.where(has_o, levels.bits["outputs"] / sum_bits, np.inf)
    _, token_tile = event_tiles(layer, weight_elems, np.where(np.isinf(membrane_elems), 1e30, membrane_elems),
                                levels.caps["n"], levels.caps["m"])
    active = active_inputs_expected(rate, tokens, token_tile, inputs, steps, "per_input")
    return np.where(levels.per_input & has_w, copies * active * outputs, acs)


def _causal_operands(work, i: int, acs, macs) -> tuple[tuple, tuple]:
    """((ACs, MACs) of Q.K^T, (ACs, MACs) of the scores x V) of causal attention layer i: each product's
    work is ACs where its operand (K, V) spikes, MACs where it is real (`analytic.causal_attention_counts`);
    where both spike, the layer's ACs split in proportion to their rates."""
    net = work.net
    sources = [net[s] for s in net.layers[i].inputs[1:]]
    rates = [event_rate(s) if s.spiking else 0.0 for s in sources]
    real = [not s.spiking for s in sources]
    spiking_rate = sum(rates)
    return tuple((acs * (r / spiking_rate if spiking_rate > 0 else 0.0), macs * (m / max(sum(real), 1)))
                 for r, m in zip(rates, real))


def _causal_products(out: LevelBits, work, i: int, levels: CoreLevels, mb, ab, ac_includes_memory: bool, acs,
                     macs) -> None:
    """A decoder's causal attention as its two products, as encoder attention's (`level_bits`), per query
    head and sequence: Q.K^T over queries x head dim x keys (the cached ones and the new ones), then the
    scores x V over queries x keys x head dim. A product is a GEMM through the nest where its operand (K or
    V) is real; event-driven where it spikes: a K spike at (key j, feature d) adds Q's feature d of the
    queries that see key j into their scores for j (the row: Q's feature d over the queries), a V spike
    at (key j, feature d) adds key j's scores into those queries' feature d. The scores are written to
    SRAM once (Q.K^T's sums; in place where each AC read-modify-writes them there) and passed once through
    the softmax; the weighted sum reads them. The causal mask: query i sees keys up to its own position, so
    a head's live (query, key) pairs (`CausalAttention.score_pairs`, triangular in a prefill) are a share of
    the queries x keys rectangle, and each product is priced as that share of the rectangle's accesses: exact
    for every count made per score or per AC, an expectation for tiles and rows that straddle the diagonal."""
    layer = work.net.layers[i]
    spec = layer.spec
    queries, head_dim = spec.queries_per_sequence(layer), spec.head_dim
    keys = max(1, round(spec.past_tokens + queries))
    scores = float(work.scores[i])                       # live pairs of every head, at every step
    spikes = any(work.net[s].spiking for s in layer.inputs[1:])
    steps = int(work.timesteps[i]) if spikes else 1      # an operand spikes: every step; both real: once
    copies = scores / (steps * queries * keys)           # rectangles of one head and sequence, their live share
    (k_acs, k_macs), (v_acs, v_macs) = _causal_operands(work, i, acs, macs)
    keys_bits, values_bits = (_operand_bits(work, s, ab) for s in layer.inputs[1:])
    if k_macs.any():
        _add_gemm(out, levels, dict(m=queries, k=head_dim, n=keys), dict(weights=keys_bits, inputs=ab, outputs=ab),
                  k_macs, True)
    if k_acs.any():
        if not ac_includes_memory:
            fetched = _row_fetches(EventLayer(keys, head_dim, queries, steps), copies, k_acs, levels, ab, ab)
            _add_events(out, levels, k_acs, fetched, ab, ab, True)
        in_place = levels.per_event_membranes & (not ac_includes_memory)   # each AC left its score in SRAM
        out.sram_write = out.sram_write + np.where(in_place, 0.0, scores * ab)
    _add_softmax(out, scores * ab)
    if v_macs.any():
        _add_gemm(out, levels, dict(m=queries, k=keys, n=head_dim), dict(weights=values_bits, inputs=ab, outputs=ab),
                  v_macs, not work.spiking[i])
    if v_acs.any() and not ac_includes_memory:
        event = EventLayer(head_dim, keys, queries, steps, max(1, int(work.state_words[i])))
        fetched = _row_fetches(event, copies, v_acs, levels, mb, ab)
        _add_events(out, levels, v_acs, fetched, ab, mb, True)


def level_notes(work, chips, ac_includes_memory: bool, macs_done) -> list[list[str]]:
    """Per point, a report note with its accesses at each memory level inside the cores and at the core SRAM
    (none for a point without levels); the levels' bits are counted, and the note written, once for each
    distinct point (`distinct_points`)."""
    if not np.any(chips.levels.any):
        return [[] for _ in range(chips.n)]
    first, inverse, args = distinct_points(work, chips.levels, chips.membrane_bits, chips.activation_bits,
                                           work.acs, macs_done, work.neuron_updates)
    levels = args[0]
    bits = counted_level_bits(work, levels, args[1], args[2], ac_includes_memory, *args[3:])
    notes = [[bits.note(levels, u)] if levels.any[u] else [] for u in range(levels.n)]
    return [list(notes[u]) for u in inverse]
