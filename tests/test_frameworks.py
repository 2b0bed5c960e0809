"""Each framework run by itself against the spike engine: identical spike trains, ties included.

Every (construct, route) pair of the README's table "Neuron semantics across frameworks" is one
entry of ROUTES, and its test checks that outcome by running the framework on a seeded, tie-prone
network (tests/framework_runs.py) and the same network through neurosim's spike engine:

* exact: no spike differs, and membranes landed exactly on a threshold at least once;
* ties: equal on float weights (no ties), different on the tie-prone ones (the two sides compare
  u with the threshold differently, see the README);
* differs: spikes differ (the route cannot carry the neuron, and says so with a warning);
* refused: a one-line error naming the construct (neurosim's NeurosimError, or the framework's own).

Frameworks that are not installed skip their entries. tests/test_frameworks.py::test_readme_table
keeps the README table and ROUTES the same.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import framework_runs as runs
from framework_runs import differences, engine_spikes, ir_ties, mlp, record, spikes_in, stack
from neurosim.errors import NeurosimError
from neurosim.frontend import from_nir, from_torch, to_nir
from neurosim.frontend.nir_io import DT
from neurosim.ir import Layer, Network, Neuron

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

README = Path(__file__).resolve().parent.parent / "docs" / "frontends.md"   # the table moved out of README.md
FROM_TORCH, THEIR_NIR = "from_torch", "their NIR export -> from_nir"
TO_SNNTORCH, TO_NORSE, TO_JELLY = "to_nir -> snnTorch", "to_nir -> norse", "to_nir -> SpikingJelly"

ROUTES = {
    ("snnTorch Leaky, subtract reset", FROM_TORCH): "exact",
    ("snnTorch Leaky, subtract reset", THEIR_NIR): "exact (reset='subtract')",
    ("snnTorch Leaky, zero reset", FROM_TORCH): "exact",
    ("snnTorch Leaky, zero reset", THEIR_NIR): "exact",
    ("snnTorch Synaptic, subtract reset", FROM_TORCH): "exact",
    ("snnTorch Synaptic, subtract reset", THEIR_NIR): "exact (reset='subtract')",
    ("snnTorch Synaptic, zero reset", FROM_TORCH): "exact",
    ("snnTorch Synaptic, zero reset", THEIR_NIR): "differs",
    ("snnTorch RLeaky, all-to-all and one-to-one, subtract and zero reset", FROM_TORCH): "exact",
    ("snnTorch RLeaky, all-to-all and one-to-one, subtract and zero reset", THEIR_NIR): "refused",
    ("snnTorch graded spikes, inhibition, reset_delay=False, no reset, conv recurrence", FROM_TORCH): "refused",
    ("SpikingJelly LIFNode, soft reset", FROM_TORCH): "exact",
    ("SpikingJelly LIFNode, soft reset", THEIR_NIR): "refused",
    ("SpikingJelly LIFNode, hard reset", FROM_TORCH): "exact",
    ("SpikingJelly LIFNode, hard reset", THEIR_NIR): "ties",
    ("SpikingJelly IFNode, soft and hard reset", FROM_TORCH): "exact",
    ("SpikingJelly ParametricLIFNode", FROM_TORCH): "exact",
    ("SpikingJelly CUBALIFNode", FROM_TORCH): "exact",
    ("neurosim LIF as NIR defines it", TO_SNNTORCH): "exact",
    ("neurosim LIF as NIR defines it", TO_NORSE): "exact (unit_r=True)",
    ("neurosim LIF as NIR defines it", TO_JELLY): "ties",
    ("neurosim IF as NIR defines it", TO_SNNTORCH): "refused",
    ("neurosim IF as NIR defines it", TO_NORSE): "exact",
    ("neurosim IF as NIR defines it", TO_JELLY): "ties",
    ("neurosim CubaLIF as NIR defines it", TO_SNNTORCH): "exact",
    ("neurosim CubaLIF as NIR defines it", TO_NORSE): "exact",
    ("neurosim default neuron (subtract, leak first, >=)", TO_SNNTORCH): "differs",
    ("neurosim default neuron (subtract, leak first, >=)", TO_NORSE): "differs",
    ("neurosim default neuron (subtract, leak first, >=)", TO_JELLY): "differs",
    ("neurosim CubaLIF as NIR defines it", TO_JELLY): "ties",
    ("neurosim GIF (levels > 1)", TO_SNNTORCH): "refused",
    ("norse LIFBoxCell", THEIR_NIR): "exact (dt=norse's dt squared)",
}


# -- running a framework step by step ---------------------------------------------------------------
def run_stepwise(module: nn.Module, names: dict[str, str], x: torch.Tensor, stateful: bool = False):
    """The spikes of module.<name> (as IR layer names[name]) over x's steps; `stateful` modules take and
    return their state (nirtorch graphs), the others keep it inside."""
    out, state = record(module, names), None
    with torch.no_grad():
        for t in range(x.shape[0]):
            if stateful:
                _, state = module(x[t], state)
            else:
                module(x[t])
    return stack(out)


def reset_snntorch(module: nn.Module) -> None:
    for m in module.modules():
        if hasattr(m, "reset_mem"):
            m.reset_mem()


def reset_jelly(module: nn.Module) -> None:
    from spikingjelly.activation_based import functional
    functional.reset_net(module)


def outcome(ours: dict, theirs: dict, ties: int) -> str:
    diff, spikes = differences(theirs, ours)
    assert spikes > 0, "the network never spiked: a vacuous comparison"
    if diff == 0:
        assert ties > 0, "no membrane landed on a threshold: ties were not put to the test"
        return "exact"
    return "differs"


def float_weights(seq: nn.Sequential, seed: int = 5) -> nn.Sequential:
    """The same network with random float weights, where a membrane on the threshold is (almost) impossible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in seq:
            if isinstance(m, nn.Linear):
                m.weight.copy_((torch.rand(m.weight.shape, generator=g) * 1.3 - 0.45) * 12 / m.in_features)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2)
    return seq


# -- framework -> neurosim ---------------------------------------------------------------------------
def snntorch_leaky(reset: str, synaptic: bool = False):
    snn = pytest.importorskip("snntorch")

    def make(size: int):   # per-neuron decays and thresholds, as trained networks have them
        beta = torch.where(torch.arange(size) % 2 == 0, 0.5, 0.75)
        thr = torch.where(torch.arange(size) % 3 == 0, 0.5, 1.0)
        if synaptic:
            return snn.Synaptic(alpha=torch.full((size,), 0.5), beta=beta, threshold=thr, reset_mechanism=reset,
                                init_hidden=True)
        return snn.Leaky(beta=beta, threshold=thr, reset_mechanism=reset, init_hidden=True)
    return make


def snntorch_rleaky(reset: str, one_to_one: bool):
    snn = pytest.importorskip("snntorch")

    def make(size: int):   # quarter-step recurrent weights (and bias), or one-to-one V of one per neuron
        g = torch.Generator().manual_seed(size)
        if one_to_one:
            v = torch.randint(-4, 3, (size,), generator=g) / 4
            return snn.RLeaky(beta=0.5, V=v, all_to_all=False, reset_mechanism=reset, init_hidden=True)
        m = snn.RLeaky(beta=0.5, linear_features=size, reset_mechanism=reset, init_hidden=True)
        with torch.no_grad():
            m.recurrent.weight.copy_(torch.randint(-3, 3, (size, size), generator=g) / 8)
            m.recurrent.bias.copy_(torch.randint(-1, 2, (size,), generator=g) / 8)
        return m
    return make


def through_from_torch(seq: nn.Sequential, reset) -> str:
    x = spikes_in()
    reset(seq)
    theirs = run_stepwise(seq, {"1": "0", "3": "2"}, x)
    net = from_torch(seq, x, time_major=True)
    ours = engine_spikes(net, x)
    for name in ours:   # the measured rates are the framework's, spike for spike
        assert net[name].rate == pytest.approx(theirs[name].mean(), abs=1e-12)
    return outcome(ours, theirs, ir_ties(net, x))


def through_their_nir(seq: nn.Sequential, reset_state, export, **read) -> str:
    x = spikes_in()
    reset_state(seq)
    theirs = run_stepwise(seq, {"1": "0", "3": "2"}, x)
    reset_state(seq)
    net = from_nir(export(seq), inputs=x.numpy(), **read)
    names = [layer.name for layer in net.layers]
    ours = engine_spikes(net, x)
    ours = {new: ours[old] for old, new in zip(names, ("0", "2"))}
    return outcome(ours, theirs, ir_ties(net, x))


def snntorch_export(seq):
    from snntorch.export_nir import export_to_nir
    return export_to_nir(seq, torch.zeros(1, runs.SIZES[0]), ignore_dims=[0])


def jelly_export(seq):
    from spikingjelly.activation_based.nir_exchange.to_nir import export_to_nir
    return export_to_nir(seq, torch.zeros(1, runs.SIZES[0]))


def jelly_node(kind: str, **kw):
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron
    return lambda size: getattr(neuron, kind)(**kw)


def ties_or_not(check) -> str:
    """'ties' when the route is exact on float weights and differs on the tie-prone ones."""
    if check(False) == "exact":
        return "exact"
    assert check(True) == "exact-float"
    return "ties"


def jelly_nir_check(make):
    def check(use_float: bool) -> str:
        seq = float_weights(mlp(make)) if use_float else mlp(make)
        x = spikes_in()
        reset_jelly(seq)
        theirs = run_stepwise(seq, {"1": "0", "3": "2"}, x)
        net = from_nir(jelly_export(seq), inputs=x.numpy())
        ours = engine_spikes(net, x)
        ours = {new: ours[old] for old, new in zip([lay.name for lay in net.layers], ("0", "2"))}
        diff, spikes = differences(theirs, ours)
        assert spikes > 0
        return ("exact-float" if use_float else "exact") if diff == 0 else "differs"
    return check


def same(*outcomes: str) -> str:
    """The one outcome several variants of a construct share."""
    assert len(set(outcomes)) == 1, outcomes
    return outcomes[0]


def refused(build) -> str:
    with pytest.raises(Exception) as info:   # neurosim's NeurosimError, or the framework's own error
        build()
    message = str(info.value)
    assert message and "\n" not in message.strip(), message   # one line
    return "refused"


def snntorch_refusals() -> str:
    snn = pytest.importorskip("snntorch")
    for module, field in ((snn.Leaky(beta=0.5, graded_spikes_factor=2.0), "graded_spikes_factor"),
                          (snn.Leaky(beta=0.5, inhibition=True), "inhibition"),
                          (snn.Leaky(beta=0.5, reset_delay=False), "reset_delay"),
                          (snn.Leaky(beta=0.5, reset_mechanism="none"), "reset_mechanism"),
                          (snn.RLeaky(beta=0.5, conv2d_channels=4, kernel_size=3), "recurrent")):
        seq = nn.Sequential(nn.Linear(3, 4), module)
        with pytest.raises(NeurosimError) as info:
            from_torch(seq, torch.ones(2, 3))
        assert info.value.field == field and type(module).__name__ in info.value.where
    return "refused"


def snntorch_rleaky_nir() -> str:
    snn = pytest.importorskip("snntorch")
    seq = nn.Sequential(nn.Linear(3, 4), snn.RLeaky(beta=torch.full((4,), 0.5), linear_features=4, init_hidden=True))
    from snntorch.export_nir import export_to_nir
    graph = export_to_nir(seq, torch.zeros(1, 3), ignore_dims=[0])
    with pytest.raises(NeurosimError) as info:
        from_nir(graph, timesteps=3)
    assert info.value.field in ("type", "edges")
    return "refused"


# -- neurosim -> NIR -> framework --------------------------------------------------------------------
NIR_LIF = dict(reset="hard", reset_order="reset_first", fire=">")


def ir_mlp(neuron: Neuron, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    a, b, c = runs.SIZES
    fc1, fc2 = runs.quarter_linear(a, b, rng), runs.quarter_linear(b, c, rng)
    w = lambda lin: (lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy())  # noqa: E731
    return Network("mlp", [
        Layer("fc1", "linear", a, b, neuron=neuron, weights=w(fc1)[0], bias=w(fc1)[1]),
        Layer("fc2", "linear", b, c, inputs=["fc1"], neuron=neuron, weights=w(fc2)[0], bias=w(fc2)[1])],
        input_size=a)


def ir_float(net: Network, seed: int = 5) -> Network:
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        layer.weights = (rng.random(layer.weights.shape) * 1.3 - 0.45) * 12 / layer.in_features
        layer.bias = rng.random(layer.bias.shape) * 0.2
    return net


def import_into(framework: str, graph):
    """The framework's module for a NIR graph, and whether it takes and returns its state."""
    if framework == "snntorch":
        pytest.importorskip("snntorch")
        from snntorch.import_nir import import_from_nir
        return import_from_nir(graph), False
    if framework == "norse":
        norse = pytest.importorskip("norse.torch")
        return norse.from_nir(graph, dt=DT), True
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based.nir_exchange.from_nir import import_from_nir
    return import_from_nir(graph, dt=DT), True


def run_imported(module, stateful: bool, framework: str, x: torch.Tensor) -> dict:
    if framework == "norse":   # norse's graph executor keeps each node's output in its state's cache
        out, state = {"fc1": [], "fc2": []}, None
        with torch.no_grad():
            for t in range(x.shape[0]):
                _, state = module(x[t], state)
                for name in out:
                    out[name].append(state.cache[f"{name}_neuron"].numpy().copy())
        return stack(out)
    if framework == "snntorch":
        reset_snntorch(module)
    return run_stepwise(module, {"fc1_neuron": "fc1", "fc2_neuron": "fc2"}, x, stateful=stateful)


def to_framework(neuron: Neuron, framework: str, float_weights: bool = False, **export) -> str:
    net = ir_mlp(neuron)
    if float_weights:
        net = ir_float(net)
    module, stateful = import_into(framework, to_nir(net, **export))
    x = spikes_in()
    theirs = run_imported(module, stateful, framework, x)
    ours = engine_spikes(net, x)
    if float_weights:
        diff, spikes = differences(theirs, ours)
        assert spikes > 0
        return "exact-float" if diff == 0 else "differs"
    return outcome(ours, theirs, ir_ties(net, x))


def to_framework_ties(neuron: Neuron, framework: str) -> str:
    return ties_or_not(lambda use_float: to_framework(neuron, framework, use_float))


def norse_their_nir() -> str:
    norse = pytest.importorskip("norse.torch")
    dt = 1e-3   # norse's own step: tau_mem_inv = 500 gives dt/tau = 1/2
    params = lambda size: norse.LIFBoxParameters(tau_mem_inv=torch.full((size,), 500.0),  # noqa: E731
                                                 v_leak=torch.zeros(size), v_th=torch.full((size,), 0.5))
    plain = mlp(lambda size: norse.LIFBoxCell(params(size), dt=dt))
    seq = norse.SequentialState(*plain)
    graph = norse.to_nir(seq, torch.zeros(1, runs.SIZES[0]), dt=dt)
    x, theirs, state = spikes_in(), {"0": [], "2": []}, None
    with torch.no_grad():
        for t in range(x.shape[0]):
            s1, st1 = plain[1](plain[0](x[t]), None if state is None else state[0])
            s2, st2 = plain[3](plain[2](s1), None if state is None else state[1])
            state = (st1, st2)
            theirs["0"].append(s1.numpy().copy())
            theirs["2"].append(s2.numpy().copy())
    # norse writes tau = dt / tau_mem_inv (norse/torch/utils/export_nir.py), i.e. dt * tau: NIR's
    # equations give norse's own step back with a step of dt**2
    net = from_nir(graph, inputs=x.numpy(), dt=dt * dt)
    ours = engine_spikes(net, x)
    ours = {new: ours[old] for old, new in zip([lay.name for lay in net.layers if lay.spiking], ("0", "2"))}
    return outcome(ours, stack(theirs), ir_ties(net, x))


CHECKS = {
    ("snnTorch Leaky, subtract reset", FROM_TORCH): lambda: through_from_torch(mlp(snntorch_leaky("subtract")),
                                                                               reset_snntorch),
    ("snnTorch Leaky, subtract reset", THEIR_NIR): lambda: through_their_nir(
        mlp(snntorch_leaky("subtract")), reset_snntorch, snntorch_export, reset="subtract") + " (reset='subtract')",
    ("snnTorch Leaky, zero reset", FROM_TORCH): lambda: through_from_torch(mlp(snntorch_leaky("zero")),
                                                                           reset_snntorch),
    ("snnTorch Leaky, zero reset", THEIR_NIR): lambda: through_their_nir(mlp(snntorch_leaky("zero")), reset_snntorch,
                                                                         snntorch_export),
    ("snnTorch Synaptic, subtract reset", FROM_TORCH): lambda: through_from_torch(
        mlp(snntorch_leaky("subtract", True)), reset_snntorch),
    ("snnTorch Synaptic, subtract reset", THEIR_NIR): lambda: through_their_nir(
        mlp(snntorch_leaky("subtract", True)), reset_snntorch, snntorch_export, reset="subtract") +
    " (reset='subtract')",
    ("snnTorch Synaptic, zero reset", FROM_TORCH): lambda: through_from_torch(mlp(snntorch_leaky("zero", True)),
                                                                              reset_snntorch),
    ("snnTorch Synaptic, zero reset", THEIR_NIR): lambda: through_their_nir(
        mlp(snntorch_leaky("zero", True)), reset_snntorch, snntorch_export),
    ("snnTorch RLeaky, all-to-all and one-to-one, subtract and zero reset", FROM_TORCH): lambda: same(*(
        through_from_torch(mlp(snntorch_rleaky(reset, one_to_one)), reset_snntorch)
        for reset in ("subtract", "zero") for one_to_one in (False, True))),
    ("snnTorch RLeaky, all-to-all and one-to-one, subtract and zero reset", THEIR_NIR): snntorch_rleaky_nir,
    ("snnTorch graded spikes, inhibition, reset_delay=False, no reset, conv recurrence", FROM_TORCH):
        snntorch_refusals,
    ("SpikingJelly LIFNode, soft reset", FROM_TORCH): lambda: same(
        through_from_torch(mlp(jelly_node("LIFNode", tau=2.0, v_reset=None)), reset_jelly),
        through_from_torch(mlp(jelly_node("LIFNode", tau=2.0, v_reset=None, decay_input=False)), reset_jelly)),
    ("SpikingJelly LIFNode, soft reset", THEIR_NIR): lambda: refused(
        lambda: jelly_export(mlp(jelly_node("LIFNode", tau=2.0, v_reset=None)))),
    ("SpikingJelly LIFNode, hard reset", FROM_TORCH): lambda: through_from_torch(
        mlp(jelly_node("LIFNode", tau=4.0, v_reset=-0.5, decay_input=False)), reset_jelly),
    ("SpikingJelly LIFNode, hard reset", THEIR_NIR): lambda: ties_or_not(
        jelly_nir_check(jelly_node("LIFNode", tau=2.0, decay_input=False))),
    ("SpikingJelly IFNode, soft and hard reset", FROM_TORCH): lambda: same(
        through_from_torch(mlp(jelly_node("IFNode", v_reset=None)), reset_jelly),
        through_from_torch(mlp(jelly_node("IFNode", v_threshold=1.5, v_reset=0.0)), reset_jelly)),
    ("SpikingJelly ParametricLIFNode", FROM_TORCH): lambda: through_from_torch(
        mlp(jelly_node("ParametricLIFNode", init_tau=2.0, v_reset=None)), reset_jelly),
    ("SpikingJelly CUBALIFNode", FROM_TORCH): lambda: through_from_torch(
        mlp(jelly_node("CUBALIFNode", c_decay=0.5, v_decay=0.75, v_threshold=1.0)), reset_jelly),
    ("neurosim LIF as NIR defines it", TO_SNNTORCH): lambda: to_framework(Neuron("lif", 1.0, 0.5, **NIR_LIF),
                                                                           "snntorch"),
    ("neurosim LIF as NIR defines it", TO_NORSE): lambda: to_framework(Neuron("lif", 1.0, 0.5, **NIR_LIF), "norse",
                                                                        unit_r=True) + " (unit_r=True)",
    ("neurosim LIF as NIR defines it", TO_JELLY): lambda: to_framework_ties(Neuron("lif", 1.0, 0.5, **NIR_LIF),
                                                                             "spikingjelly"),
    ("neurosim IF as NIR defines it", TO_SNNTORCH): lambda: refused(
        lambda: import_into("snntorch", to_nir(ir_mlp(Neuron("if", 1.0, 1.0, **NIR_LIF))))),
    ("neurosim IF as NIR defines it", TO_NORSE): lambda: to_framework(Neuron("if", 1.0, 1.0, **NIR_LIF), "norse"),
    ("neurosim IF as NIR defines it", TO_JELLY): lambda: to_framework_ties(Neuron("if", 1.0, 1.0, **NIR_LIF),
                                                                            "spikingjelly"),
    ("neurosim CubaLIF as NIR defines it", TO_SNNTORCH): lambda: to_framework(
        Neuron("cubalif", 1.0, 0.5, syn_decay=0.5, **NIR_LIF), "snntorch"),
    ("neurosim CubaLIF as NIR defines it", TO_NORSE): lambda: to_framework(
        Neuron("cubalif", 1.0, 0.5, syn_decay=0.5, **NIR_LIF), "norse"),
    ("neurosim default neuron (subtract, leak first, >=)", TO_SNNTORCH): lambda: to_framework(
        Neuron("lif", 1.0, 0.5), "snntorch"),
    ("neurosim default neuron (subtract, leak first, >=)", TO_NORSE): lambda: to_framework(
        Neuron("lif", 1.0, 0.5), "norse", unit_r=True),
    ("neurosim default neuron (subtract, leak first, >=)", TO_JELLY): lambda: to_framework(
        Neuron("lif", 1.0, 0.5), "spikingjelly"),
    ("neurosim CubaLIF as NIR defines it", TO_JELLY): lambda: to_framework_ties(
        Neuron("cubalif", 1.0, 0.5, syn_decay=0.5, **NIR_LIF), "spikingjelly"),
    ("neurosim GIF (levels > 1)", TO_SNNTORCH): lambda: refused(lambda: to_nir(ir_mlp(Neuron("gif", levels=3)))),
    ("norse LIFBoxCell", THEIR_NIR): lambda: norse_their_nir() + " (dt=norse's dt squared)",
}


@pytest.mark.parametrize("construct, route", list(ROUTES), ids=[f"{c} | {r}" for c, r in ROUTES])
def test_route_gives_what_the_readme_table_says(construct, route):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert CHECKS[(construct, route)]() == ROUTES[(construct, route)]


def readme_table() -> dict[tuple[str, str], str]:
    """The README's construct x route table, as {(construct, route): outcome} (empty cells left out)."""
    text = README.read_text()
    start = text.index("| construct |")
    rows = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        rows.append(line)
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    table = {}
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for route, cell in zip(header[1:], cells[1:]):
            if cell and cell != "-":
                table[(cells[0], route)] = re.sub(r"\s+", " ", cell)
    return table


def test_readme_table_is_the_tested_one():
    assert readme_table() == ROUTES
    assert set(CHECKS) == set(ROUTES)
