"""Cores that skip zero weights (issue 15, the cost-model half): effective ACs, sparse weight storage and its
index reads, by hand, in both engines and in sweeps; a dense chip is charged as before."""

import numpy as np
import pytest

from neurosim import spikes
from neurosim.arch import load_arch
from neurosim.cost.estimate import estimate
from neurosim.dse.evaluate import evaluate_batch
from neurosim.ir import Layer, Network
from neurosim.sim import simulate


@pytest.fixture(scope="module")
def edge():
    return load_arch("edge-45nm")


def _skipping(arch, on=True):
    return arch.model_copy(update={"cores": arch.cores.model_copy(update={"zero_skipping": on})}) \
        .loaded_from(arch.path, arch.energy)


def _half_zero():
    """8 inputs -> 4 LIF neurons, 2 steps, rate 0.5; inputs 4-7 have only zero weights."""
    w = np.zeros((4, 8))
    w[:, :4] = 1.0
    return Network("half", [Layer("a", "linear", 8, 4, timesteps=2, rate=0.5, weights=w)], input_size=8,
                   input_rate=0.5)


def test_a_chip_that_skips_zero_weights_is_charged_the_effective_acs_and_sparse_storage(edge):
    # dense: 8 inputs x 0.5 x 2 steps = 8 events x 4 outputs = 32 ACs; half the synapses are zero: 16.
    # CSC: 16 nonzeros x (32-bit value + 2-bit row of 4) + 9 column pointers x ceil(log2 17) = 5 bits
    sparse_bytes = (16 * (32 + 2) + 9 * 5) / 8
    for run in (estimate, simulate):
        dense, skip = run(_half_zero(), edge, "spatial"), run(_half_zero(), _skipping(edge), "spatial")
        assert (dense.acs, skip.acs) == (32, 16)
        assert (dense.memory_bytes["weights"], skip.memory_bytes["weights"]) == (32 * 4, sparse_bytes)
        assert "16 effective ACs of 32 dense" in " ".join(skip.notes)
        assert skip.per_layer.dense_acs.tolist() == [32]


def test_each_effective_ac_reads_its_weight_with_its_row_index(edge):
    # spatial, one layer (a network output: no destination queue), no memory levels inside the cores (no
    # reuse): core SRAM reads are a weight per AC plus a membrane per neuron update (4 neurons x 2 steps,
    # 32 bits), writes the membranes
    edge = edge.model_copy(update={"cores": edge.cores.model_copy(update={"levels": None, "dataflow": None})}) \
        .loaded_from(edge.path, edge.energy)
    t, core = edge.energy, edge.cores.sram_bytes
    read, write = t.sram_pj_per_bit(core, "read"), t.sram_pj_per_bit(core, "write")
    membranes = 4 * 2 * 32
    for arch, weight_reads in ((edge, 32 * 32), (_skipping(edge), 16 * (32 + 2))):
        expected = (weight_reads + membranes) * read + membranes * write
        for run in (estimate, simulate):
            assert run(_half_zero(), arch, "spatial").energy_breakdown_pj["sram"] == pytest.approx(expected)


def test_a_trace_gives_the_exact_effective_acs(edge):
    net = spikes.random_weights(_half_zero(), seed=1)
    w = np.array(net.layers[0].weights)
    w[:, 4:] = 0.0
    net.layers[0].weights = w
    trace = spikes.run(net, np.full((1, 8), 0.5), seed=0)
    r = simulate(net, _skipping(edge), "sequential", "rates", trace=trace)
    assert r.acs == trace["a"].effective_acs_per_step.sum() < trace["a"].acs
    assert r.per_layer.dense_acs.tolist() == [trace["a"].acs]


def test_a_sweep_prices_skipping_and_dense_points_of_one_batch_each_as_estimate_does(tmp_path, edge):
    from neurosim.dse.spec import load_spec, plan

    path = tmp_path / "model.json"
    _half_zero().to_json(path)
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: zs\nbase: edge-45nm\nmodels: ['{path}']\nengine: analytic\n"
                    "axes:\n  cores.zero_skipping: [false, true]\n  mapping: [spatial]\n")
    rows = evaluate_batch(plan(load_spec(spec)))
    assert [r["acs"] for r in rows] == [32, 16]
    assert [r["memory_weights_bytes"] for r in rows] == [estimate(_half_zero(), a, "spatial").memory_bytes["weights"]
                                                         for a in (edge, _skipping(edge))]
