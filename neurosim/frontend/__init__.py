"""PyTorch and NIR front ends: build an `ir.Network` from a model or a graph file."""

# PyTorch front end (neurons, the spiking encoder, extraction into the IR).
from .encoder import SpikingEncoder
from .extract import from_torch
from .neurons import GIF, LIF, CubaLIF, RecurrentNeuron, neuron_module, rate, spike_fn
from .nir_io import from_nir, to_nir
