"""NIR neuron nodes <-> `ir.Neuron`: NIR's own definitions, read exactly, written exactly where NIR can say it.

NIR 1.0 (`nir/ir/neuron.py`) defines its neurons in continuous time,

    IF:       dv/dt = R I
    LIF:      tau dv/dt = (v_leak - v) + R I
    CubaLIF:  tau_syn dI/dt = -I + w_in S,   tau_mem dv/dt = (v_leak - v) + R I

and for all three: z = 1 when v > v_threshold, and then v = v_reset. Read with
one forward-Euler step of dt (the exporter's step: snnTorch, SpikingJelly and
nirtorch use 1e-4, norse 1e-3):

    IF:       v <- v + (R dt) I                                   leak 1, gain R dt
    LIF:      v <- (1 - dt/tau) v + (dt/tau) v_leak + (R dt/tau) I
    CubaLIF:  I <- (1 - dt/tau_syn) I + (w_in dt/tau_syn) S,  v <- (1 - dt/tau_mem) v + (R dt/tau_mem) I

(the membrane integrating the updated current, as snnTorch, norse and
SpikingJelly run it). So a node is an ir.Neuron with reset "hard" to v_reset,
reset_order "reset_first" and fire ">"; its gains move into the layer's weights
and bias, and LIF's (dt/tau) v_leak into the bias (a constant current).

NIR 1.0 has no subtract reset, no reset after the leak and no ">=" rule, and
snnTorch writes its subtract-reset Leaky and Synaptic as the same nodes as its
reset-to-zero ones. So: reading a graph warns that its neurons reset to
v_reset (pass `reset="subtract"` to read every neuron node as snnTorch's
subtract reset, `u <- beta u + I - s vth`, fire on u > vth); writing a neuron NIR
cannot say warns, writes the nearest node (reset to v_reset), and records the
neuron's own conventions in the graph's metadata (`neurosim.neurons`), from
which `from_nir` restores them.

Gains as written: LIF R = tau/dt (gain 1, snnTorch's convention), CubaLIF R =
tau_mem/dt and w_in = tau_syn/dt; IF R = 1/dt (gain 1). With `unit_r` the
nodes get R = w_in = 1 and the weights carry the gain instead (norse reads
LIF and CubaLIF ignoring R).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import nir
import numpy as np

from ..errors import NeurosimError
from ..ir import NEURON_RULES, Layer, Neuron

NIR_CONVENTIONS = dict(reset="hard", reset_order="reset_first", fire=">")
SNNTORCH_SUBTRACT = dict(reset="subtract", reset_order="leak_first", fire=">", v_reset=0.0)
METADATA_KEY = "neurosim"


class NIRConventionWarning(UserWarning):
    """A neuron whose conventions NIR 1.0 cannot state, or a node read by NIR's (see nir_neurons)."""


def _fail(where: str, field: str, problem: str, fix: str) -> None:
    raise NeurosimError(where, field, problem, fix)


def per_unit(values, layer: Layer, where: str, field: str) -> float | np.ndarray:
    """A NIR per-neuron array as the IR holds it: one value, or one per unit (neuron; conv: channel)."""
    a = np.asarray(values, dtype=float).ravel()
    if a.size == 0:
        _fail(where, field, "is empty", f"give the node's {field}")
    if (a == a[0]).all():
        return float(a[0])
    units, unit = layer.spec.units(layer)
    if a.size == layer.out_features:
        per = a.reshape(units, -1)
        if (per == per[:, :1]).all():
            return per[:, 0].copy()
    _fail(where, field, f"differs within one of the layer's {unit} ({a.min():g} to {a.max():g}); the IR holds one "
          f"{field} per layer or per unit", f"give one {field} per {unit[:-1]}")


def _uniform(values, where: str, field: str) -> float:
    a = np.asarray(values, dtype=float).ravel()
    if a.size == 0 or (a != a[0]).any():
        _fail(where, field, "differs between neurons, but an IR layer has one reset potential",
              f"give every neuron of this node the same {field}")
    return float(a[0])


def _leak(tau, dt: float, where: str, field: str):
    leak = 1.0 - dt / np.asarray(tau, dtype=float) if isinstance(tau, np.ndarray) else 1.0 - dt / tau
    if not NEURON_RULES["leak"].holds(leak):
        shown = f"{np.min(tau):g}" if isinstance(tau, np.ndarray) else f"{tau:g}"
        _fail(where, field, f"{field} = {shown} with dt = {dt:g} gives a leak 1 - dt/{field} outside (0, 1]",
              "pass from_nir(..., dt=...) the time step the exporter used (snnTorch, SpikingJelly, nirtorch: "
              f"1e-4; norse: 1e-3); {field} must exceed dt")
    return leak


@dataclass
class ReadNode:
    """A neuron node in IR terms: the neuron, the gain on its input (per unit) and a constant current."""

    neuron: Neuron
    gain: float | np.ndarray
    current: float | np.ndarray = 0.0


def read_node(node, layer: Layer, where: str, dt: float) -> ReadNode:
    """One IF / LIF / CubaLIF node by NIR's definition (see the module docstring)."""
    vth = per_unit(node.v_threshold, layer, where, "v_threshold")
    conventions = dict(NIR_CONVENTIONS, v_reset=_uniform(node.v_reset, where, "v_reset"))
    r = per_unit(node.r, layer, where, "r")
    if isinstance(node, nir.IF):
        return ReadNode(Neuron("if", vth, 1.0, **conventions), r * dt)
    if isinstance(node, nir.LIF):
        tau = per_unit(node.tau, layer, where, "tau")
        leak = _leak(tau, dt, where, "tau")
        v_leak = per_unit(node.v_leak, layer, where, "v_leak")
        return ReadNode(Neuron("lif", vth, leak, **conventions), r * dt / tau, (1.0 - leak) * v_leak)
    if np.any(np.asarray(node.v_leak) != 0):
        _fail(where, "v_leak", "a CubaLIF's v_leak feeds its membrane, not its synaptic current, which the "
              "IR neuron cannot hold apart", "export the CubaLIF with v_leak = 0")
    tau_mem, tau_syn = per_unit(node.tau_mem, layer, where, "tau_mem"), per_unit(node.tau_syn, layer, where, "tau_syn")
    leak = _leak(tau_mem, dt, where, "tau_mem")
    syn_decay = 1.0 - dt / tau_syn
    if not NEURON_RULES["syn_decay"].holds(syn_decay):
        _fail(where, "tau_syn", "tau_syn shorter than dt gives a negative synaptic decay",
              "pass from_nir(..., dt=...) the exporter's time step")
    w_in = per_unit(node.w_in, layer, where, "w_in")
    return ReadNode(Neuron("cubalif", vth, leak, syn_decay=syn_decay, **conventions),
                    (r * dt / tau_mem) * (w_in * dt / tau_syn))


def restore(neuron: Neuron, record: dict | None, reset: str | None) -> list[str]:
    """Apply what the graph's metadata recorded for this node (neurosim's own export), or the caller's
    `reset="subtract"` reading; returns what was changed, for the notes."""
    if isinstance(record, dict):
        for name in ("reset", "reset_order", "fire", "v_reset"):
            if name in record:
                setattr(neuron, name, record[name])
        return ["conventions restored from the graph's neurosim metadata"]
    if reset == "subtract":
        for name, value in SNNTORCH_SUBTRACT.items():
            setattr(neuron, name, value)
        return ["read as snnTorch's subtract reset (reset='subtract')"]
    return []


# -- export ----------------------------------------------------------------------------------------
def _spread(layer: Layer, name: str, shape: tuple) -> np.ndarray:
    return layer.neuron_values(name).reshape(shape)


def not_sayable(neuron: Neuron) -> list[str]:
    """What NIR 1.0 cannot say about this neuron (empty: the node is exact)."""
    out = []
    if neuron.reset != "hard":
        out.append("subtract reset")
    if neuron.reset_order != "reset_first":
        out.append("reset after the leak")
    if neuron.fire != ">":
        out.append(f"fires on u {neuron.fire} vth")
    return out


def write_node(layer: Layer, shape: tuple, dt: float, unit_r: bool) -> tuple[object, np.ndarray | None]:
    """The NIR node of a layer's neuron, and the per-output factor its weights must take (None: none)."""
    nr, where = layer.neuron, f"layer '{layer.name}'"
    if nr.levels != 1:
        _fail(where, "neuron.levels", f"multi-level spikes (levels = {nr.levels}) have no NIR neuron",
              "export a binary-spike neuron (levels = 1)")
    leak = _spread(layer, "leak", shape)
    vth, v_reset = _spread(layer, "vth", shape), np.full(shape, float(nr.v_reset))
    if nr.synaptic:
        decay = _spread(layer, "syn_decay", shape)
        if (leak == 1).any() or (decay == 1).any():
            _fail(where, "neuron", "a CubaLIF with leak 1 or syn_decay 1 has an infinite NIR time constant",
                  "use leak and syn_decay below 1")
        tau_mem, tau_syn = dt / (1 - leak), dt / (1 - decay)
        if unit_r:
            ones = np.ones(shape)
            node = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=ones, v_leak=np.zeros(shape), v_threshold=vth,
                               v_reset=v_reset, w_in=ones)
            return node, (tau_mem / dt * tau_syn / dt).ravel()
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=np.zeros(shape), v_threshold=vth,
                           v_reset=v_reset, w_in=tau_syn / dt), None
    if (leak == 1).all():
        return nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=vth, v_reset=v_reset), None
    if (leak == 1).any():
        _fail(where, "neuron.leak", "some neurons leak and some do not; NIR's LIF needs a finite tau",
              "give every neuron of the layer a leak below 1, or all of them 1 (IF)")
    tau = dt / (1 - leak)
    if unit_r:
        return nir.LIF(tau=tau, r=np.ones(shape), v_leak=np.zeros(shape), v_threshold=vth, v_reset=v_reset), \
            (tau / dt).ravel()
    return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(shape), v_threshold=vth, v_reset=v_reset), None


def warn_export(problems: dict[str, list[str]]) -> None:
    if problems:
        shown = "; ".join(f"layer '{k}' ({', '.join(v)})" for k, v in list(problems.items())[:3])
        more = f" (and {len(problems) - 3} more layers)" if len(problems) > 3 else ""
        warnings.warn(f"NIR 1.0 cannot state the neurons of {shown}{more}: written as NIR's nearest node (reset to "
                      "v_reset when v > v_threshold), which other tools run so; their own conventions are in "
                      f"metadata['{METADATA_KEY}']['neurons'], which neurosim.from_nir reads back",
                      NIRConventionWarning, stacklevel=3)


def warn_import(read_as_spec: list[str], unit_if: list[str]) -> None:
    if read_as_spec:
        warnings.warn(f"NIR neuron nodes {read_as_spec[:3]}{' ...' if len(read_as_spec) > 3 else ''} read as NIR "
                      "defines them: reset to v_reset when v > v_threshold (NIR 1.0 has no subtract reset). snnTorch "
                      "writes its subtract-reset Leaky and Synaptic as the same nodes: read such a graph with "
                      "from_nir(..., reset='subtract')", NIRConventionWarning, stacklevel=3)
    if unit_if:
        warnings.warn(f"IF nodes {unit_if[:3]} have r = 1, read as a gain of r*dt (NIR's dv/dt = R I); norse and "
                      "sinabs write r = 1 for a gain of 1: for such a graph pass dt=1 (it has no other time "
                      "constants) or scale r", NIRConventionWarning, stacklevel=3)
