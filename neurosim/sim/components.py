"""Hardware components of the simpy model. Each one counts its own events.

* `Channel`: a bandwidth-limited first-come-first-served server (a DRAM
  channel, the global buffer's port, the on-chip network). A transfer of b
  bits waits for the transfers booked before it, then takes b / rate cycles.
  Because service is FIFO and never preempted, a transfer's finish time is
  known when it is booked, so a booking costs no simpy event; the process
  that needs the data waits on a timeout to that time.
* `Buffer`: a byte-capacity store with back-pressure: a put that does not fit
  waits (first come, first served) until gets make room. It records its
  peak and, for the timeline, its occupancy over time.
* `Tile`: the cores that run one layer (spatial) or the whole pool
  (sequential): busy cycles, stall cycles by cause, progress, and what it is
  waiting for right now (for deadlock reports).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pandas as pd
import simpy

TIMELINE_COLUMNS = ["component", "start", "end", "layer", "timestep", "kind", "steps", "bytes"]
# Buffers compare byte levels in floating point: allow this much rounding slack.
_SLACK = 1e-9


class Environment(simpy.Environment):
    """A simpy environment that counts processed events and refuses to run past a time limit."""

    def __init__(self, limit: float):
        super().__init__()
        self.events = 0
        self.limit = limit

    def step(self) -> None:
        if self._queue and self._queue[0][0] > self.limit:
            raise TimeLimit(self._queue[0][0])
        self.events += 1
        super().step()


class TimeLimit(Exception):
    """The next event lies beyond the simulated-time limit."""


class Recorder:
    """Timeline rows, kept only when asked for."""

    def __init__(self, on: bool):
        self.on = on
        self.rows: list[tuple] = []

    def add(self, component: str, start: float, end: float, layer: str | None, step: int | None,
            kind: str, steps: int = 1, nbytes: float = 0.0) -> None:
        if self.on and end > start:
            self.rows.append((component, start, end, layer, step, kind, steps, nbytes))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=TIMELINE_COLUMNS)


class Channel:
    def __init__(self, env: Environment, name: str, bits_per_cycle: float, rec: Recorder, directional: bool = True):
        self.env, self.name, self.rate, self.rec = env, name, float(bits_per_cycle), rec
        self.directional = directional   # a network link has no read/write side
        self.free_at = 0.0
        self.busy = 0.0          # cycles spent transferring
        self.queued = 0.0        # cycles transfers waited behind earlier ones
        self.read_bits = 0.0     # direction as seen from the component: read out of it
        self.write_bits = 0.0    # written into it
        self.transfers = 0

    def book(self, bits: float, *, write: bool = False, layer: str | None = None, step: int | None = None,
             steps: int = 1) -> float:
        """Book a transfer now; return the cycle at which it completes."""
        now = self.env.now
        if bits <= 0:
            return now
        start = self.free_at if self.free_at > now else now
        end = start + bits / self.rate
        self.queued += start - now
        self.busy += end - start
        self.free_at = end
        self.transfers += 1
        if write:
            self.write_bits += bits
        else:
            self.read_bits += bits
        kind = ("write" if write else "read") if self.directional else "transfer"
        self.rec.add(self.name, start, end, layer, step, kind, steps, bits / 8)
        return end


class Buffer:
    def __init__(self, env: Environment, name: str, capacity: float, rec: Recorder, track=None):
        self.env, self.name, self.capacity, self.rec = env, name, float(capacity), rec
        self.level = 0.0
        self.peak = 0.0
        self._since = 0.0
        self._waiting: deque[tuple[float, simpy.Event]] = deque()
        self._track = track      # called with every change in bytes (e.g. to follow an on-chip total)

    def fits(self, nbytes: float) -> bool:
        return self.level + nbytes <= self.capacity * (1 + _SLACK) + _SLACK

    def room(self) -> float:
        return max(0.0, self.capacity - self.level)

    def _change(self, delta: float) -> None:
        now = self.env.now
        if self.rec.on and now > self._since:
            self.rec.add(f"buffer {self.name}", self._since, now, None, None, "occupancy", 0, self.level)
        self._since = now
        self.level += delta
        if abs(self.level) <= _SLACK * max(1.0, self.capacity):  # rounding residue of equal puts and gets
            self.level = 0.0
        if self.level > self.peak:
            self.peak = self.level
        if self._track is not None:
            self._track(delta)

    def try_put(self, nbytes: float) -> bool:
        """Take `nbytes` now if they fit and nobody waits before us."""
        if not self._waiting and self.fits(nbytes):
            self._change(nbytes)
            return True
        return False

    def put(self, nbytes: float) -> simpy.Event:
        """An event that fires once `nbytes` have been taken (waits while the buffer is full)."""
        ev = self.env.event()
        if self.try_put(nbytes):
            ev.succeed()
        else:
            self._waiting.append((nbytes, ev))
        return ev

    def get(self, nbytes: float) -> None:
        """Free `nbytes`; wake waiting puts that now fit, in order."""
        if nbytes > 0:
            self._change(-nbytes)
        while self._waiting and self.fits(self._waiting[0][0]):
            amount, ev = self._waiting.popleft()
            self._change(amount)
            ev.succeed()

    @property
    def waiting_bytes(self) -> float:
        return self._waiting[0][0] if self._waiting else 0.0

    def close(self) -> None:
        """Record the last occupancy interval."""
        self._change(0.0)


@dataclass
class Tile:
    """Cores running one layer (spatial) or the whole pool running layer after layer (sequential)."""

    name: str
    cores: int
    busy: float = 0.0             # cycles computing
    stall_output: float = 0.0     # waiting for room in a full buffer (back-pressure)
    stall_memory: float = 0.0     # compute done, waiting for DRAM / global buffer / network transfers
    stall_weights: float = 0.0    # waiting for weights to arrive from DRAM
    idle_input: float = 0.0       # after its first step, waiting for input (pipeline bubbles)
    start: float | None = None
    end: float | None = None
    passes_done: int = 0
    steps_done: int = 0
    done: bool = False
    waiting: tuple[str, str, str] | None = None   # (component, what it waits for, fix)
    layer_spans: dict = field(default_factory=dict)

    @property
    def stalls(self) -> float:
        return self.stall_output + self.stall_memory + self.stall_weights


class Level:
    """A running total of bytes held across buffers (pass as a Buffer's `track`), and its peak."""

    def __init__(self, base: float = 0.0):
        self.value = base
        self.peak = base

    def __call__(self, delta: float) -> None:
        self.value += delta
        if self.value > self.peak:
            self.peak = self.value
