"""A mapping as a plan: an ordered list of segments covering the network's layers in order.

Each segment is `spatial` (its layers pinned on their own cores, pipelined over the segment's largest T)
or `sequential` (one pool of cores runs its layers one after another), gets `cores` of the chip (the
segments' cores are disjoint, so what one segment pins stays pinned while the others run), and carries
its layers' outputs as `spikes` (the spike history) or `rates` (spike counts): inside a sequential
segment, and to the next segment at its end. A segment may give its resources exactly, as the search's
plans do: a spatial segment its cores per layer (`layer_cores`), a sequential one its pool's size
(`pool`); else the mapping's own rule picks them inside `cores`. Today's three mappings are the plans of
one segment.

A plan is read and written as YAML or JSON and validated like an arch config: unknown keys and bad
values are refused with the file, the key and the fix (`neurosim.schema`); a plan naming layers the
network does not have, out of order or leaving layers out is refused the same way (`Plan.bounds`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, PrivateAttr

from ..arch import MAX_COUNT
from ..errors import NeurosimError
from ..ir import Network
from ..schema import Strict, read_yaml, validate


class Segment(Strict):
    kind: Literal["spatial", "sequential"]
    first: str                      # the segment's first layer
    last: str                       # and its last: it runs every layer between them, in network order
    # Cores of the chip this segment may use (where `layer_cores` or `pool` below are not given: spatial,
    # spread over its layers by `cost.layout.SpatialCores`; sequential, the pool is the best size up to this,
    # `cost.closed_form.pool_cores`). None: what its given resources take, else the cores the other segments
    # leave, shared equally by the segments that give none.
    cores: int | None = Field(None, ge=1, le=MAX_COUNT)
    carry: Literal["spikes", "rates"] = "spikes"   # its outputs: inside a sequential segment, and at its end
    # Given exactly (a found plan gives them), instead of picked by the rule inside `cores`; left out, `cores`
    # defaults to what they take. Spatial: every layer of the segment and its cores. Sequential: the pool.
    layer_cores: dict[str, Annotated[int, Field(ge=1, le=MAX_COUNT)]] | None = None
    pool: int | None = Field(None, ge=1, le=MAX_COUNT)

    def takes(self) -> int | None:
        """The cores of the chip this segment takes: `cores`, else what its given resources need."""
        if self.cores is not None:
            return self.cores
        if self.layer_cores is not None:
            return sum(self.layer_cores.values())
        return self.pool

    def label(self) -> str:
        what = "spatial" if self.kind == "spatial" else f"sequential/{self.carry}"
        out = f"{what} {self.first}..{self.last}"
        if self.layer_cores is not None:
            per = list(self.layer_cores.values())
            shown = "/".join(map(str, per)) if len(per) <= 6 else "/".join(map(str, per[:5])) + "/..."
            return out + f" on {sum(per)} ({shown} per layer)"
        if self.pool is not None:
            return out + f" on a pool of {self.pool}"
        return out + (f" on {self.cores}" if self.cores else "")


class Plan(Strict):
    segments: list[Segment] = Field(min_length=1)
    # What the free choices inside each segment (spare cores, pool size) are made for; None: the arch's
    # `mapping.objective`.
    objective: Literal["latency", "energy", "edp"] | None = None
    model: str | None = None        # what the plan was made for (a record; `run --plan` takes --model)
    arch: str | None = None
    # A decoder card's phase the plan maps (`mapping.cli.decoder_phase_network`); None: not a decoder
    phase: Literal["prefill", "decode"] | None = None
    _path: str = PrivateAttr("(plan in memory)")

    @property
    def path(self) -> str:
        return self._path

    def label(self) -> str:
        return " | ".join(s.label() for s in self.segments)

    @classmethod
    def of_mapping(cls, net: Network, kind: str, carry: str = "spikes", objective: str | None = None) -> "Plan":
        """Today's mapping (spatial, or sequential carrying spikes or rates) as a plan of one segment."""
        seg = Segment(kind=kind, first=net.layers[0].name, last=net.layers[-1].name, carry=carry)
        return cls(segments=[seg], objective=objective)

    def bounds(self, net: Network) -> list[tuple[int, int]]:
        """(first, last) layer index of each segment; refuses a plan that does not cover `net` in order."""
        index = {layer.name: i for i, layer in enumerate(net.layers)}
        out, expected = [], 0
        for k, seg in enumerate(self.segments):
            for key in ("first", "last"):
                name = getattr(seg, key)
                if name not in index:
                    raise NeurosimError(self.path, f"segments[{k}].{key}", f"network '{net.name}' has no layer "
                                        f"{name!r}", f"name one of its layers: {', '.join(list(index)[:6])}, ...")
            first, last = index[seg.first], index[seg.last]
            if first != expected:
                want = net.layers[expected].name if expected < len(net.layers) else "(none: the network ended)"
                raise NeurosimError(self.path, f"segments[{k}].first", f"{seg.first!r} leaves layers out or runs "
                                    "them twice: segments cover the layers in network order",
                                    f"start this segment at {want!r}, the layer after the previous segment's last")
            if last < first:
                raise NeurosimError(self.path, f"segments[{k}].last", f"{seg.last!r} comes before {seg.first!r}",
                                    "give the segment's first layer, then its last, in network order")
            self._check_resources(k, seg, [layer.name for layer in net.layers[first:last + 1]])
            out.append((first, last))
            expected = last + 1
        if expected != len(net.layers):
            raise NeurosimError(self.path, f"segments[{len(self.segments) - 1}].last", f"the plan ends at "
                                f"{net.layers[expected - 1].name!r}; layers from {net.layers[expected].name!r} on "
                                "are in no segment", f"end the last segment at {net.layers[-1].name!r}")
        return out

    def _check_resources(self, k: int, seg: Segment, names: list[str]) -> None:
        """A segment's given resources match its kind and its layers, and fit inside its `cores`."""
        wrong = "layer_cores" if seg.kind == "sequential" and seg.layer_cores is not None else \
            "pool" if seg.kind == "spatial" and seg.pool is not None else None
        if wrong is not None:
            other = "pool" if wrong == "layer_cores" else "layer_cores"
            raise NeurosimError(self.path, f"segments[{k}].{wrong}", f"a {seg.kind} segment has no {wrong}",
                                f"drop it, or give {other} (a {'sequential' if other == 'pool' else 'spatial'} "
                                f"segment's)")
        if seg.layer_cores is not None and list(seg.layer_cores) != names:
            missing = [n for n in names if n not in seg.layer_cores]
            extra = [n for n in seg.layer_cores if n not in names]
            problem = (f"names {extra[0]!r}, not a layer of {seg.first}..{seg.last}" if extra else
                       f"leaves out layer {missing[0]!r}" if missing else "lists the layers out of network order")
            raise NeurosimError(self.path, f"segments[{k}].layer_cores", problem,
                                f"give every layer of the segment, in order, and its cores: {', '.join(names[:4])}"
                                + (", ..." if len(names) > 4 else ""))
        need = sum(seg.layer_cores.values()) if seg.layer_cores is not None else seg.pool
        if need is not None and seg.cores is not None and need > seg.cores:
            what = "its layers' cores add up to" if seg.layer_cores is not None else "its pool is"
            raise NeurosimError(self.path, f"segments[{k}].cores", f"{what} {need}, more than the {seg.cores} "
                                "cores it is given", f"give it cores: {need} or more, or leave cores out")

    def cores(self, chip_cores: int) -> tuple[list[int], str | None]:
        """Each segment's cores (given, or what its resources take; the rest shared equally), and why they
        do not fit, if not."""
        given = sum(s.takes() or 0 for s in self.segments)
        open_ = [k for k, s in enumerate(self.segments) if s.takes() is None]
        share = (chip_cores - given) // len(open_) if open_ else 0
        cores = [s.takes() if s.takes() is not None else share for s in self.segments]
        if given > chip_cores or (open_ and share < 1):
            need = given + len(open_)
            return cores, (f"the plan's segments need {need} cores (at least one each); the chip has {chip_cores} "
                           f"(short by {need - chip_cores})")
        return cores, None

    def write(self, path: str | Path) -> None:
        """To YAML (or JSON, for a .json path)."""
        data = self.model_dump(exclude_none=True)
        text = json.dumps(data, indent=2) if str(path).endswith(".json") else yaml.safe_dump(data, sort_keys=False)
        Path(path).write_text(text)


def load_plan(path: str | Path) -> Plan:
    """A plan from a YAML or JSON file (JSON is YAML), refused in one paragraph if it is not one."""
    data, _ = read_yaml(path)
    plan = validate(data, Plan, str(path))
    plan._path = str(path)
    return plan
