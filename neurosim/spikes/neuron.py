"""A layer's neurons as the `fire` kernel takes them: per-output arrays of the live outputs and flags."""

from __future__ import annotations

import numpy as np

from ..ir import Layer
from . import kernels


class NeuronArrays:
    """ir.Neuron of one layer, for its live outputs: float32 leak, vth, synaptic decay (and state), flags."""

    def __init__(self, layer: Layer, live_idx: np.ndarray, n: int):
        nr = layer.neuron
        self.levels = int(nr.levels)
        self.leak = np.ascontiguousarray(layer.neuron_values("leak")[live_idx], dtype=np.float32)
        self.vth = np.ascontiguousarray(layer.neuron_values("vth")[live_idx], dtype=np.float32)
        self.v_reset = np.float32(nr.v_reset)
        self.flags = ((kernels.HARD_RESET if nr.reset == "hard" else 0)
                      | (kernels.RESET_FIRST if nr.reset_order == "reset_first" else 0)
                      | (kernels.STRICT if nr.fire == ">" else 0)
                      | (kernels.SYNAPTIC if nr.synaptic else 0))
        if nr.synaptic:
            self.decay = np.ascontiguousarray(layer.neuron_values("syn_decay")[live_idx], dtype=np.float32)
            self.syn = np.zeros((n, len(live_idx)), np.float32)
        else:  # never read: the kernel only touches them with SYNAPTIC set
            self.decay = np.zeros(1, np.float32)
            self.syn = np.zeros((1, 1), np.float32)
