"""Hardware components of the simpy model. Each one counts its own events.

* `Channel`: a bandwidth-limited first-come-first-served server (a DRAM
  channel, the global buffer's port, the sequential mapping's network). A transfer of b
  bits waits for the transfers booked before it, then takes b / rate cycles.
  Because service is FIFO and never preempted, a transfer's finish time is
  known when it is booked, so a booking costs no simpy event; the process
  that needs the data waits on a timeout to that time.
* `Network`: the spatial mapping's on-chip network, serving the oldest
  timestep first (a transfer is an event that fires when it has arrived).
* `Buffer`: a byte-capacity store with back-pressure: a put that does not fit
  waits (first come, first served) until gets make room. It records its
  peak and, for the timeline, its occupancy over time.
* `Tile`: the cores that run one layer (spatial) or the whole pool
  (sequential): busy cycles, stall cycles by cause, progress, and what it is
  waiting for right now (for deadlock reports).
* `Level`: a running total of bytes over several buffers, and its peak.

The mappings build their processes from these (`sim.spatial.Stage`;
`sim.sequential.WeightLoader`, `CarryBuffers`, `CorePool`), in the style of
simpy's own resources: state in attributes, behaviour in small methods,
processes as generator methods. Only simpy's public API is used.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import simpy

TIMELINE_COLUMNS = ["component", "start", "end", "layer", "timestep", "kind", "steps", "bytes"]
# Buffers compare byte levels in floating point: allow this much rounding slack.
_SLACK = 1e-9


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
    """A FIFO server of `bits_per_cycle`; counts the bits read out of and written into its component."""

    def __init__(self, env: simpy.Environment, name: str, bits_per_cycle: float, rec: Recorder, directional: bool = True):
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

    @property
    def bits(self) -> float:
        return self.read_bits + self.write_bits


class Network:
    """The on-chip network as one server of `bits_per_cycle` (bit-hops) that serves waiting transfers by
    priority, not in the order they were sent: the sender gives the pipeline slot its data is due in (a
    layer's step t at depth d is due in slot t + d), so a layer running ahead does not hold back the
    transfers the pipeline waits for; ties go first to data for another layer, then in the order sent. A
    transfer in progress is never interrupted. `send` returns an event that fires when it has arrived."""

    def __init__(self, env: simpy.Environment, bits_per_cycle: float, rec: Recorder):
        self.env, self.rate, self.rec = env, float(bits_per_cycle), rec
        self.name = "interconnect"
        self.free_at = 0.0
        self.busy = 0.0           # cycles spent transferring
        self.queued = 0.0         # cycles transfers waited for the network
        self.bits = 0.0
        self.transfers = 0
        self._waiting: list[tuple] = []       # heap of (priority, order sent, bits, layer, step, sent at, event)
        self._wake: simpy.Event | None = None
        self._serving = False
        self._idle: simpy.Event | None = None
        env.process(self._serve())

    def send(self, bits: float, priority: tuple, layer: str, step: int) -> simpy.Event:
        arrived = self.env.event()
        if bits <= 0:
            return arrived.succeed(self.env.now)
        heapq.heappush(self._waiting, (priority, self.transfers, bits, layer, step, self.env.now, arrived))
        self.transfers += 1
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()
        return arrived

    def _serve(self):
        env = self.env
        while True:
            if not self._waiting:
                self._wake = env.event()
                yield self._wake
                continue
            _, _, bits, layer, step, sent_at, arrived = heapq.heappop(self._waiting)
            start = env.now
            self.queued += start - sent_at
            self._serving = True
            yield env.timeout(bits / self.rate)
            self._serving = False
            self.busy += env.now - start
            self.bits += bits
            self.free_at = env.now
            self.rec.add(self.name, start, env.now, layer, step, "transfer", 1, bits / 8)
            arrived.succeed(env.now)
            if not self._waiting and self._idle is not None and not self._idle.triggered:
                self._idle.succeed()

    def drain(self, senders: list[simpy.Process]):
        """Process: ends once the senders have ended and every transfer they sent has arrived."""
        yield simpy.AllOf(self.env, senders)
        while self._waiting or self._serving:
            self._idle = self.env.event()
            yield self._idle


class Buffer:
    """Bytes held up to `capacity`; a put that does not fit waits for gets (back-pressure)."""

    def __init__(self, env: simpy.Environment, name: str, capacity: float, rec: Recorder, track=None):
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
    # (component, what it waits for, fix), or a function that makes it (text is built only for a report)
    waiting: tuple[str, str, str] | Callable[[], tuple[str, str, str]] | None = None
    resumes_at: float | None = None   # a wait for data already in flight ends then; the tile is busy after

    @property
    def stalls(self) -> float:
        return self.stall_output + self.stall_memory + self.stall_weights

    def blocked(self, horizon: float) -> tuple[str, str, str] | None:
        """What the tile still waits for at simulated time `horizon` (None: done, or busy by then)."""
        if self.done or self.waiting is None:
            return None
        if self.resumes_at is not None and self.resumes_at <= horizon:
            return None
        return self.waiting() if callable(self.waiting) else self.waiting

    def wait(self, env: simpy.Environment, event: simpy.Event, waiting: tuple[str, str, str], cause: str):
        """Process step: wait for `event`, saying what for, and add the wait to the stall counter `cause`;
        returns when the wait began."""
        self.waiting = waiting
        t0 = env.now
        yield event
        self.waiting = None
        setattr(self, cause, getattr(self, cause) + (env.now - t0))
        return t0


class Level:
    """A running total of bytes held across buffers (pass as a Buffer's `track`), and its peak."""

    def __init__(self, base: float = 0.0):
        self.value = base
        self.peak = base

    def __call__(self, delta: float) -> None:
        self.value += delta
        if self.value > self.peak:
            self.peak = self.value
