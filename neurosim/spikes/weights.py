"""Seeded random weights for a weightless network (timing runs and the CLI, not a trained model).

Each spiking linear layer gets a bias of rate x vth, which alone makes an IF
neuron fire at its `rate` (the model card's assumed rate), and zero-mean
Gaussian weights whose summed input varies by NOISE x vth per step at the
expected input rate. The input so adds fluctuations but no mean drive, so
rates do not compound from layer to layer: the benchmark's layers all fire
near the input rate, at any depth (weights that carried the mean drive gave
rates that faded out or grew along the 24 spiking layers of SpikingBERT-4L).
An attention layer has no weights and fires at about its V's rate. A leak
< 1 loses charge; the bias adds vth x (1 - leak) for it, a rough allowance.
The engine measures the rates, and that is what is reported.

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
NOISE = 0.2          # std of a neuron's input current per step, in units of vth
Q_GAIN = 1.0         # std of a Query output


def random_weights(net: Network, seed: int = 0, rate: float | None = None) -> Network:
    """A copy of `net` in which every linear layer without weights gets seeded random ones.

    `rate` replaces every layer's target rate (and the input rate) when given.
    """
    rng = np.random.default_rng(seed)
    in_rate = rate if rate is not None else net.input_rate
    target = {layer.name: (rate if rate is not None else layer.rate if layer.rate is not None else FALLBACK_RATE)
              for layer in net.layers}
    expected: dict[str, float] = {}  # the rate a layer should fire at: its target, or for attention its V's
    layers = []
    for layer in net.layers:
        expected[layer.name] = expected[layer.inputs[2]] if layer.kind == "attention" else target[layer.name]
        if layer.kind != "linear" or layer.weights is not None:
            layers.append(layer)
            continue
        r_in = in_rate if not layer.inputs else expected[layer.inputs[0]]
        drive = max(live_inputs(net, layer) * r_in, 1e-6)  # mean input events per step
        shape = (layer.in_features, layer.out_features)
        bias = None
        if layer.spiking:  # zero-mean weights (fluctuations), the rate set by the bias
            vth = layer.neuron.vth
            if layer.weight_bits == 1:
                wt = np.where(rng.random(shape, dtype=np.float32) < 0.5, 1.0, -1.0).astype(np.float32)
            else:
                wt = rng.standard_normal(shape, dtype=np.float32)
            wt *= np.float32(NOISE * vth / np.sqrt(drive))
            leak_loss = 1.0 - layer.neuron.leak  # a first-order allowance for what a leak < 1 loses
            bias = np.full(layer.out_features, (target[layer.name] + leak_loss) * vth, np.float32)
        else:
            wt = rng.standard_normal(shape, dtype=np.float32)
            wt *= np.float32(Q_GAIN / np.sqrt(drive))
        layers.append(replace(layer, weights=wt.T, bias=bias if layer.bias is None else layer.bias))
    meta = dict(net.metadata, weights=f"seeded random (seed {seed}), scaled toward "
                + (f"rate {rate}" if rate is not None else "the assumed rates") + "; not a trained model")
    return Network(net.name, layers, net.input_size, in_rate, net.input_spiking, meta)
