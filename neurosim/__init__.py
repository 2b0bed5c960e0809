"""neurosim: a neuromorphic hardware simulator and cost model for spiking networks.

Installed as the distribution `neurosim-snn` (pyproject.toml reads the version from here).
"""

__version__ = "0.2.0"

from .arch import ArchConfig, load_arch
from .cards import load_model
from .cost.estimate import estimate
from .errors import NeurosimError
from .ir import Attention, Conv2dShape, EncoderTag, Layer, Linear, Network, Neuron, Norm, Pool2dShape, Recurrent
from .report import Report

__all__ = ["ArchConfig", "Attention", "Conv2dShape", "EncoderTag", "Layer", "Linear", "Network", "NeurosimError",
           "Neuron", "Norm", "Pool2dShape", "Recurrent", "Report", "estimate", "load_arch", "load_model"]


def __getattr__(name):  # front ends, imported on first use so torch and nir load only when needed
    if name in ("from_torch", "from_nir", "to_nir"):
        from . import frontend
        return getattr(frontend, name)
    raise AttributeError(f"module 'neurosim' has no attribute {name!r}")
