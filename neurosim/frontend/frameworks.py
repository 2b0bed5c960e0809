"""snnTorch and SpikingJelly neuron modules, read into `ir.Neuron` by each framework's own rules.

The rules, as the installed sources run them (snntorch 1.0: `_neurons/leaky.py`,
`synaptic.py`, `neurons.py`; spikingjelly 2.0: `_ops/lif/cpu.py`, `_ops/if_/cpu.py`,
`_ops/plif/reference.py`, `_ops/reset.py`, `neuron/base_node.py`):

* snnTorch fires on u > threshold (every surrogate's forward is `input_ > 0`).
  `Leaky`: u = beta*u + I - reset*threshold, the reset being the last step's
  spike (leak_first, subtract); with reset_mechanism="zero" the membrane is
  zeroed *before* the leak, u = beta*(1 - reset)*u + I (reset_first, hard to 0).
  `Synaptic`: syn = alpha*syn + I, u = beta*u + syn - reset*threshold; its "zero"
  zeroes the *new* membrane, u = (1 - reset)*(beta*u + syn) (leak_first, hard:
  the step's input is lost), unlike Leaky's. beta and alpha are clamped to
  [0, 1] when used, and may be one per neuron, as may the threshold.
* SpikingJelly fires on v >= v_threshold and resets right after the spike
  (reset_first): v - v_threshold (v_reset=None, soft) or v_reset (hard), from
  which the next step charges. `LIFNode` charges v + (x - (v - v_reset))/tau
  (decay_input) or v - (v - v_reset)/tau + x: leak = 1 - 1/tau, the input
  scaled by 1/tau with decay_input (moved into the weights). `IFNode` charges
  v + x; `ParametricLIFNode` as LIFNode with 1/tau = sigmoid(w); `CUBALIFNode`
  c = c*c_decay + x, v*v_decay + c (a synaptic current). A hard-reset
  neuron starts at v_reset and leaks toward it: read with the membrane shifted
  by v_reset (threshold v_threshold - v_reset, reset to 0), which gives the
  same spikes.

* snnTorch `RLeaky` adds its own last spikes through `recurrent` (a Linear, with
  its bias, or one-to-one V): u = beta*u + I + W_rec s_{t-1} + b_rec - reset*threshold,
  its "zero" zeroing the new membrane like Synaptic's: an ir.Recurrent.

What a rule cannot say (snnTorch graded spikes, inhibition, state
quantization, reset_delay=False, no reset, a convolutional recurrent
connection) is refused in one line naming the module and its field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import NeurosimError
from ..ir import Neuron


@dataclass
class ReadNeuron:
    """A framework's neuron as the IR has it, and the factor on its input current (moved into the weights)."""

    neuron: Neuron
    input_scale: float = 1.0
    recurrent: np.ndarray | None = None        # (out, out) weights of the neuron's own spikes, one step late
    recurrent_bias: np.ndarray | None = None   # added every step with them


FRAMEWORK_NEURONS = {"snntorch": ("snntorch", ("Leaky", "Synaptic", "RLeaky")),
                     "spikingjelly": ("spikingjelly.activation_based.neuron",
                                      ("LIFNode", "IFNode", "ParametricLIFNode", "CUBALIFNode"))}


def known_neurons() -> dict[type, str]:
    """snnTorch / SpikingJelly neuron types, by their names here; only those that import."""
    found: dict[type, str] = {}
    for label, (path, names) in FRAMEWORK_NEURONS.items():
        try:
            mod = __import__(path, fromlist=list(names))
        except ImportError:
            continue
        for name in names:
            cls = getattr(mod, name, None)
            if cls is not None:
                found[cls] = f"snntorch.{name}" if label == "snntorch" else f"spikingjelly {name}"
    return found


def _values(value, where: str, fld: str, clamp: bool = False) -> float | np.ndarray:
    """One value for the layer, or one per neuron (flattened: conv parameters are per channel)."""
    t = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    if clamp:
        t = t.clamp(0, 1)
    if t.numel() == 1:
        return float(t.flatten()[0])
    if bool((t == t.flatten()[0]).all()):
        return float(t.flatten()[0])
    if t.dim() > 1 and any(d != 1 for d in t.shape[1:]):
        raise NeurosimError(where, fld, f"varies over a {tuple(t.shape)} grid; the IR holds one value per layer or "
                            "per unit (output neuron, or conv output channel)", "give one value per neuron or channel")
    return t.flatten().numpy().copy()


def _refuse(where: str, fld: str, problem: str, fix: str) -> None:
    raise NeurosimError(where, fld, problem, fix)


def _snntorch_common(m, where: str) -> None:
    if float(torch.as_tensor(getattr(m, "graded_spikes_factor", 1.0)).flatten()[0]) != 1.0 or \
            torch.as_tensor(getattr(m, "graded_spikes_factor", 1.0)).numel() != 1:
        _refuse(where, "graded_spikes_factor", "graded spikes: the IR's spikes are 0/1 (or k-level GIF)",
                "use graded_spikes_factor=1")
    if getattr(m, "inhibition", False):
        _refuse(where, "inhibition", "winner-take-all inhibition has no IR neuron", "build it with inhibition=False")
    if getattr(m, "state_quant", False):
        _refuse(where, "state_quant", "a quantized membrane has no IR neuron", "build it with state_quant=False")
    if not getattr(m, "reset_delay", True):
        _refuse(where, "reset_delay", "reset_delay=False (an immediate reset that can undo itself) is not read",
                "use the default reset_delay=True")
    if m.reset_mechanism not in ("subtract", "zero"):
        _refuse(where, "reset_mechanism", f"reset_mechanism={m.reset_mechanism!r} (no reset) has no IR neuron",
                "use 'subtract' or 'zero'")


def _snntorch_leaky(m, where: str) -> ReadNeuron:
    _snntorch_common(m, where)
    leak = _values(m.beta, where, "beta", clamp=True)
    hard = m.reset_mechanism == "zero"   # Leaky zeroes the membrane before the leak
    return ReadNeuron(Neuron("lif", _values(m.threshold, where, "threshold"), leak,
                             reset="hard" if hard else "subtract", reset_order="reset_first" if hard else "leak_first",
                             fire=">"))


def _snntorch_synaptic(m, where: str) -> ReadNeuron:
    _snntorch_common(m, where)
    hard = m.reset_mechanism == "zero"   # Synaptic zeroes the new membrane: after the leak and the input
    return ReadNeuron(Neuron("cubalif", _values(m.threshold, where, "threshold"), _values(m.beta, where, "beta", True),
                             reset="hard" if hard else "subtract", fire=">",
                             syn_decay=_values(m.alpha, where, "alpha", clamp=True)))


def _snntorch_rleaky(m, where: str) -> ReadNeuron:
    """RLeaky: u = beta*u + I + W_rec s_{t-1} + b_rec - reset*threshold (zero: the new membrane zeroed)."""
    _snntorch_common(m, where)
    rec = m.recurrent
    if isinstance(rec, torch.nn.Linear):
        weights = rec.weight.detach().double().numpy().copy()
        bias = None if rec.bias is None else rec.bias.detach().double().numpy().copy()
    elif isinstance(rec, torch.nn.Conv2d):
        _refuse(where, "recurrent", "a convolutional recurrent connection (conv2d_channels) is not read",
                "use an all-to-all linear (linear_features) or one-to-one (V) connection")
    else:   # one-to-one: each neuron its own spikes times V (a scalar or one per neuron)
        v = torch.as_tensor(m.V, dtype=torch.float64).detach().flatten()
        size = len(v) if len(v) > 1 else getattr(m, "linear_features", None)
        if size is None:
            _refuse(where, "V", "a scalar V without linear_features leaves the layer size unknown here",
                    "give V one value per neuron")
        weights, bias = np.diag(np.broadcast_to(v.numpy(), (size,))).copy(), None
    read = ReadNeuron(Neuron("lif", _values(m.threshold, where, "threshold"), _values(m.beta, where, "beta", True),
                             reset="hard" if m.reset_mechanism == "zero" else "subtract", fire=">"))
    read.recurrent, read.recurrent_bias = weights, bias
    return read


def _jelly(m, where: str, leak: float, input_scale: float) -> ReadNeuron:
    """SpikingJelly's reset and firing rule around the charge the node type gives."""
    if getattr(m, "_neuron_precision", None) is not None:
        _refuse(where, "neuron precision", "a reduced-precision neuron state is not read", "run the node in fp32")
    vth = float(m.v_threshold)
    if m.v_reset is None:
        neuron = Neuron("lif", vth, leak, reset="subtract", reset_order="reset_first", fire=">=")
    else:
        v_reset = float(m.v_reset)   # the membrane rests at v_reset: read it shifted by v_reset
        if not vth - v_reset > 0:
            _refuse(where, "v_reset", f"v_reset = {v_reset:g} is not below v_threshold = {vth:g}",
                    "use a reset potential below the threshold")
        neuron = Neuron("lif", vth - v_reset, leak, reset="hard", v_reset=0.0, reset_order="reset_first", fire=">=")
    if leak == 1.0:
        neuron.model = "if"
    return ReadNeuron(neuron, input_scale)


def _jelly_lif(m, where: str) -> ReadNeuron:
    tau = float(m.tau)
    return _jelly(m, where, 1.0 - 1.0 / tau, 1.0 / tau if m.decay_input else 1.0)


def _jelly_if(m, where: str) -> ReadNeuron:
    return _jelly(m, where, 1.0, 1.0)


def _jelly_plif(m, where: str) -> ReadNeuron:
    q = float(torch.as_tensor(m.w).detach().float().sigmoid())   # 1/tau as the node computes it (float32)
    return _jelly(m, where, 1.0 - q, q if m.decay_input else 1.0)


def _jelly_cuba(m, where: str) -> ReadNeuron:
    # c = c*c_decay + x; v = v*v_decay + c: the membrane decays toward 0, not v_reset, so no shift helps
    if m.v_reset is not None and float(m.v_reset) != 0.0:
        _refuse(where, "v_reset", "a CUBALIFNode resetting to a non-zero v_reset decays toward 0 from it, which the "
                "IR neuron (reset and rest at one potential) cannot hold", "use v_reset=0.0 or None")
    read = _jelly(m, where, float(m.v_decay), 1.0)
    read.neuron.model, read.neuron.syn_decay = "cubalif", float(m.c_decay)
    return read


READERS = {"snntorch.Leaky": _snntorch_leaky, "snntorch.Synaptic": _snntorch_synaptic,
           "snntorch.RLeaky": _snntorch_rleaky, "spikingjelly LIFNode": _jelly_lif,
           "spikingjelly IFNode": _jelly_if, "spikingjelly ParametricLIFNode": _jelly_plif,
           "spikingjelly CUBALIFNode": _jelly_cuba}


def read_neuron(m: torch.nn.Module, where: str) -> ReadNeuron | None:
    """The IR neuron of a snnTorch / SpikingJelly neuron module, or None if `m` is not one."""
    kind = known_neurons().get(type(m))
    return None if kind is None else READERS[kind](m, where)
