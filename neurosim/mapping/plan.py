"""A mapping as a plan: an ordered list of segments covering the network's layers in order.

Each segment is `spatial` (its layers pinned on their own cores, pipelined over the segment's largest T)
or `sequential` (one pool of cores runs its layers one after another), gets `cores` of the chip (the
segments' cores are disjoint, so what one segment pins stays pinned while the others run), and carries
its layers' outputs as `spikes` (the spike history) or `rates` (spike counts): inside a sequential
segment, and to the next segment at its end. Today's three mappings are the plans of one segment.

A plan is read and written as YAML or JSON and validated like an arch config: unknown keys and bad
values are refused with the file, the key and the fix (`neurosim.schema`); a plan naming layers the
network does not have, out of order or leaving layers out is refused the same way (`Plan.bounds`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

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
    # Cores of the chip this segment may use (spatial: spread over its layers by `cost.layout.SpatialCores`;
    # sequential: the pool is the best size up to this, `cost.closed_form.pool_cores`). None: the cores the
    # other segments leave, shared equally by the segments that give none.
    cores: int | None = Field(None, ge=1, le=MAX_COUNT)
    carry: Literal["spikes", "rates"] = "spikes"   # its outputs: inside a sequential segment, and at its end

    def label(self) -> str:
        what = "spatial" if self.kind == "spatial" else f"sequential/{self.carry}"
        return f"{what} {self.first}..{self.last}" + (f" on {self.cores}" if self.cores else "")


class Plan(Strict):
    segments: list[Segment] = Field(min_length=1)
    # What the free choices inside each segment (spare cores, pool size) are made for; None: the arch's
    # `mapping.objective`.
    objective: Literal["latency", "energy", "edp"] | None = None
    model: str | None = None        # what the plan was made for (a record; `run --plan` takes --model)
    arch: str | None = None
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
            out.append((first, last))
            expected = last + 1
        if expected != len(net.layers):
            raise NeurosimError(self.path, f"segments[{len(self.segments) - 1}].last", f"the plan ends at "
                                f"{net.layers[expected - 1].name!r}; layers from {net.layers[expected].name!r} on "
                                "are in no segment", f"end the last segment at {net.layers[-1].name!r}")
        return out

    def cores(self, chip_cores: int) -> tuple[list[int], str | None]:
        """Each segment's cores (those given; the rest shared equally), and why they do not fit, if not."""
        given = sum(s.cores or 0 for s in self.segments)
        open_ = [k for k, s in enumerate(self.segments) if s.cores is None]
        share = (chip_cores - given) // len(open_) if open_ else 0
        cores = [s.cores if s.cores is not None else share for s in self.segments]
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
