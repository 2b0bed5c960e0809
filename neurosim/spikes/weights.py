"""Seeded random weights for a weightless network (timing runs and the CLI, not a trained model).

Each linear layer's weights are drawn so that its neurons fire near the
layer's `rate` (the model card's assumed rate), given its input's rate: an IF
neuron driven by a mean current I per step fires at about I / vth, and the
mean current is live inputs x input rate x mean weight, so the mean weight is
rate x vth / (live inputs x input rate). The weights spread widely around
that mean (standard deviation SPREAD x the mean), so that neurons differ and
the first spikes come within a few steps; with a narrow spread, activity
needs about 1 / rate steps per layer to build up and fades out of deep stacks
at T = 85. An attention layer has no weights and fires at about its V's
rate, which is the input rate the layer after it is scaled for. A leak < 1,
the spread and the per-step softmax move the measured rates away from the
targets: the engine measures them, and that is what is reported.

The real-valued Query gets zero-mean weights that give it unit variance.
Weights are drawn in the engine's (in, out) layout and stored as its
transposed view, so the engine uses them without a copy.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..cost.analytic import live_inputs
from ..ir import Network

FALLBACK_RATE = 0.1  # for layers without an assumed rate
SPREAD = 20.0        # std of a weight / its mean
Q_GAIN = 1.0         # std of a Query output


def random_weights(net: Network, seed: int = 0, rate: float | None = None) -> Network:
    """A copy of `net` in which every linear layer without weights gets seeded random ones.

    `rate` replaces every layer's target rate (and the input rate) when given.
    """
    rng = np.random.default_rng(seed)
    in_rate = rate if rate is not None else net.input_rate
    target = {layer.name: (rate if rate is not None else layer.rate if layer.rate is not None else FALLBACK_RATE)
              for layer in net.layers}
    expected: dict[str, float] = {}  # the rate each layer should reach: its target, or for attention V's
    layers = []
    for layer in net.layers:
        expected[layer.name] = expected[layer.inputs[2]] if layer.kind == "attention" else target[layer.name]
        if layer.kind != "linear" or layer.weights is not None:
            layers.append(layer)
            continue
        r_in = in_rate if not layer.inputs else expected[layer.inputs[0]]
        drive = max(live_inputs(net, layer) * r_in, 1e-6)  # mean input events per step
        shape = (layer.in_features, layer.out_features)
        if layer.spiking:
            mean = target[layer.name] * layer.neuron.vth / drive
            if layer.weight_bits == 1:  # +-2*mean with P(+) = 3/4: mean `mean`
                wt = np.where(rng.random(shape, dtype=np.float32) < 0.75, 2 * mean, -2 * mean).astype(np.float32)
            else:
                wt = rng.standard_normal(shape, dtype=np.float32)
                wt *= np.float32(SPREAD * mean)
                wt += np.float32(mean)
        else:
            wt = rng.standard_normal(shape, dtype=np.float32)
            wt *= np.float32(Q_GAIN / np.sqrt(drive))
        layers.append(replace(layer, weights=wt.T))
    meta = dict(net.metadata, weights=f"seeded random (seed {seed}), scaled toward "
                + (f"rate {rate}" if rate is not None else "the assumed rates") + "; not a trained model")
    return Network(net.name, layers, net.input_size, in_rate, net.input_spiking, meta)
