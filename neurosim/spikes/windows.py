"""Conv2d and pool2d layers in the spike engine: event-driven, with exact AC counts.

An input event at (channel c, row y, column x) reaches ir.Conv2dShape.input_fan_out()[y, x]
output positions (fewer at a padded border), each in every live output channel (conv2d) or in its
own channel (pool2d): that many ACs, and, counting only nonzero weights, that many effective ACs.
A real-valued input is multiplied densely: MACs = tokens x the layer's live connections per step
(the network's constant input current: once, held, as cost.analytic counts it).
"""

from __future__ import annotations

import numpy as np

from ..ir import Layer
from . import kernels


def _events_of(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every element of a real (n, m) input as an event (the dense product's operands)."""
    n, m = x.shape
    ptr = np.arange(n + 1, dtype=np.int64) * m
    idx = np.tile(np.arange(m, dtype=np.int32), n)
    return ptr, idx, np.ascontiguousarray(x, dtype=np.float32).ravel()


class Windows:
    """A conv2d or pool2d layer's synapses for the live outputs (channel-major, as the IR orders them)."""

    def __init__(self, layer: Layer, live_idx: np.ndarray):
        c = self.spec = layer.spec
        self.positions = c.out_height * c.out_width
        self.live_channels = np.unique(live_idx // self.positions)
        lc = len(self.live_channels)
        fan = c.input_fan_out().ravel()                           # per input position
        self.conv = layer.kind == "conv2d"
        if self.conv:
            w = np.asarray(layer.weights, dtype=np.float32)[self.live_channels]        # (lc, ic, k, k)
            self.wk = np.ascontiguousarray(w.transpose(1, 2, 3, 0).reshape(c.in_channels, -1, lc))  # (ic, k*k, lc)
            in_ch = c.in_channels
            self.fan_out = np.tile(fan * lc, in_ch)                                    # ACs per input index
            self.effective = self._effective_fan_out(w)
        else:
            in_ch = c.channels
            slot = np.full(in_ch, -1, np.int64)
            slot[self.live_channels] = np.arange(lc)
            self.slot = slot
            self.fan_out = np.concatenate([fan * (s >= 0) for s in slot])
            self.effective = self.fan_out
        self.synapses = int(self.fan_out.sum())   # every input once: the dense product's MACs per token
        self.cp = None

    def _effective_fan_out(self, w: np.ndarray) -> np.ndarray:
        """Per input index, the output synapses with a nonzero weight (nonzero input x nonzero weight)."""
        c = self.spec
        nonzero = (w != 0).sum(axis=0)                                                 # (ic, k, k)
        pos_y = np.arange(c.in_height)[:, None] + c.padding - np.arange(c.kernel)[None, :]
        pos_x = np.arange(c.in_width)[:, None] + c.padding - np.arange(c.kernel)[None, :]
        ok_y = (pos_y >= 0) & (pos_y % c.stride == 0) & (pos_y // c.stride < c.out_height)   # (H, k)
        ok_x = (pos_x >= 0) & (pos_x % c.stride == 0) & (pos_x // c.stride < c.out_width)    # (W, k)
        eff = np.einsum("yk,xl,ckl->cyx", ok_y.astype(np.int64), ok_x.astype(np.int64), nonzero)
        return eff.ravel()

    def bias(self, layer: Layer) -> np.ndarray:
        if layer.bias is None:
            return np.zeros(len(self.live_channels) * self.positions, np.float32)
        return np.repeat(np.asarray(layer.bias)[self.live_channels], self.positions).astype(np.float32)

    def accumulate(self, events: tuple, cur: np.ndarray) -> None:
        """cur (n, live outputs) <- the window sums of the events, one step."""
        ptr, idx, val = events
        n, lc, c = cur.shape[0], len(self.live_channels), self.spec
        if self.cp is None or self.cp.shape[0] != n:
            self.cp = np.zeros((n, self.positions, lc), np.float32)
        work = int(self.fan_out[idx].sum()) if len(idx) else 0
        if self.conv:
            kernels.conv_accumulate(work, ptr, idx, val, self.wk, c.in_height, c.in_width, c.out_width, c.kernel,
                                    c.stride, c.padding, self.cp)
        else:
            kernels.pool_accumulate(work, ptr, idx, val, self.slot, c.in_height, c.in_width, c.out_width, c.kernel,
                                    c.stride, c.padding, np.float32(c.scale), self.cp)
        cur[:] = self.cp.transpose(0, 2, 1).reshape(n, lc * self.positions)   # channel-major, as the IR

    def spikes(self, events: tuple, cur: np.ndarray) -> tuple[int, int]:
        """Accumulate one step of input events; returns (ACs, effective ACs) exactly."""
        self.accumulate(events, cur)
        idx = events[1]
        return int(self.fan_out[idx].sum()), int(self.effective[idx].sum())

    def dense(self, x: np.ndarray, cur: np.ndarray) -> int:
        """A real-valued input, multiplied densely; returns the MACs."""
        self.accumulate(_events_of(x), cur)
        return x.shape[0] * self.synapses
