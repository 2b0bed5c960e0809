"""Helpers for tests/test_frameworks.py: seeded tie-prone networks, run by a framework and by neurosim.

Weights are multiples of 1/4 and biases of 1/8, inputs 0/1 spikes, leaks 1/2 or 3/4: every
membrane is then an exact binary fraction in float32, so a framework and the spike engine agree
bit for bit however they order their sums, and membranes land exactly on thresholds (ties).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from neurosim.frontend.neurons import RecurrentNeuron, neuron_module
from neurosim.ir import Network
from neurosim.spikes import run

T, BATCH, SIZES = 30, 4, (12, 16, 8)   # benchmarks/framework_spikes.py runs the same checks larger
LOG: list[tuple[int, int]] = []         # (spikes that differ, spikes) of every comparison, in order


def quarter_linear(n_in: int, n_out: int, rng: np.random.Generator) -> nn.Linear:
    lin = nn.Linear(n_in, n_out)
    scale = 4 * 2.0 ** round(np.log2(max(n_in / 12, 1)))   # a power of two: keeps every sum exact
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(rng.integers(-4, 5, size=(n_out, n_in)) / scale))
        lin.bias.copy_(torch.from_numpy(rng.integers(-1, 3, size=n_out) / 8))
    return lin


def mlp(neuron, seed: int = 0) -> nn.Sequential:
    """Linear -> neuron -> Linear -> neuron, quarter-step weights; `neuron(size)` builds each neuron module."""
    rng = np.random.default_rng(seed)
    a, b, c = SIZES
    return nn.Sequential(quarter_linear(a, b, rng), neuron(b), quarter_linear(b, c, rng), neuron(c))


def spikes_in(seed: int = 1, p: float = 0.35) -> torch.Tensor:
    """(T, batch, features) 0/1 input spikes."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((T, BATCH, SIZES[0]), generator=g) < p).float()


def as_tokens(net: Network, tokens: int, steps: int) -> Network:
    """The network run for `steps` steps with the batch as its tokens (the engine runs tokens side by side)."""
    layers = [dataclasses.replace(layer, seq_len=tokens, timesteps=steps) for layer in net.layers]
    return Network(net.name, layers, net.input_size, net.input_rate, net.input_spiking, net.metadata)


def engine_spikes(net: Network, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Each spiking layer's (T, batch, out) spikes as the spike engine runs the IR."""
    trace = run(as_tokens(net, x.shape[1], x.shape[0]), x.numpy().astype(np.uint8), record_rasters=True)
    return {name: lt.raster for name, lt in trace.layers.items() if lt.spiking}


def ir_ties(net: Network, x: torch.Tensor) -> int:
    """Membranes exactly at the threshold in a run of the IR (linear layers, torch neuron modules)."""
    ties, state = 0, {}
    modules = {layer.name: neuron_module(layer.neuron) for layer in net.layers}
    for layer in net.layers:
        if layer.recurrent is not None:
            modules[layer.name] = RecurrentNeuron(modules[layer.name], torch.from_numpy(layer.recurrent.weights))
    for t in range(x.shape[0]):
        h = x[t]
        for layer in net.layers:
            h = h @ torch.from_numpy(layer.weights.T).float()
            if layer.bias is not None:
                h = h + torch.from_numpy(layer.bias).float()
            h, state[layer.name] = modules[layer.name](h, state.get(layer.name))
            mem = state[layer.name]
            if layer.recurrent is not None:
                mem = mem[0]
            mem = mem[1] if isinstance(mem, tuple) else mem
            ties += int((mem == torch.as_tensor(layer.neuron.vth, dtype=torch.float32)).sum())
    return ties


def record(module: nn.Module, names: dict[str, str]):
    """Forward hooks that collect the output of module.<name> as IR layer names[name], one entry per call."""
    out: dict[str, list] = {layer: [] for layer in names.values()}
    subs = dict(module.named_modules())
    for name, layer in names.items():
        def hook(mod, args, result, layer=layer):
            spk = result[0] if isinstance(result, tuple) else result
            out[layer].append(spk.detach().numpy().copy())
        subs[name].register_forward_hook(hook)
    return out


def stack(out: dict[str, list]) -> dict[str, np.ndarray]:
    return {k: np.stack(v).astype(np.uint8) for k, v in out.items()}


def differences(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[int, int]:
    """(spikes that differ, spikes in a) over the layers both have."""
    assert set(a) == set(b), (set(a), set(b))
    found = sum(int((a[k] != b[k]).sum()) for k in a), sum(int(a[k].sum()) for k in a)
    LOG.append(found)
    return found
