"""neurosim: a neuromorphic hardware simulator and cost model for spiking networks."""

from .arch import ArchConfig, load_arch
from .cards import load_model
from .cost.estimate import estimate
from .errors import NeurosimError
from .ir import Conv2dShape, Layer, Network, Neuron
from .report import Report

__all__ = ["ArchConfig", "Conv2dShape", "Layer", "Network", "NeurosimError", "Neuron", "Report",
           "estimate", "load_arch", "load_model"]


def __getattr__(name):  # neurosim.from_torch, imported on first use so torch loads only when needed
    if name == "from_torch":
        from .frontend.extract import from_torch
        return from_torch
    raise AttributeError(f"module 'neurosim' has no attribute {name!r}")
