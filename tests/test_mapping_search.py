"""Mapping plans (issue 19): today's mappings as plans, composed plans, the search against brute force, plan files."""

import itertools
import json

import numpy as np
import pytest

import neurosim
from neurosim.cli import main
from neurosim.cost.chips import Chips
from neurosim.errors import NeurosimError
from neurosim.ir import Layer, Network
from neurosim.mapping import Plan, Segment, load_plan, plan_report, search
from neurosim.mapping.cut import cut_points
from neurosim.mapping.price import compose, plan_segments
from neurosim.mapping.segments import with_core_count, with_objective
from neurosim.mapping.space import KINDS, LAST_KINDS, Space
from neurosim.sim import simulate

TODAY = [("spatial", "spikes"), ("sequential", "spikes"), ("sequential", "rates")]
FIGURES = ("energy_pj", "latency_s", "latency_cycles", "acs", "macs", "other_ops", "neuron_updates",
           "dram_traffic_bytes")


def mlp() -> Network:
    """Three spiking linear layers: two cut points, small enough to enumerate every plan."""
    layers = [Layer("a", "linear", 16, 32, [], seq_len=4, timesteps=8, rate=0.2),
              Layer("b", "linear", 32, 32, ["a"], seq_len=4, timesteps=8, rate=0.1),
              Layer("c", "linear", 32, 8, ["b"], seq_len=4, timesteps=6, rate=0.3)]
    return Network("mlp3", layers, 16, input_rate=0.5)


def small_chip(cores: int = 4):
    return with_core_count(neurosim.load_arch("edge-45nm"), cores)


def same_report(a, b):
    for key in FIGURES:
        assert getattr(a, key) == getattr(b, key), key
    assert a.energy_breakdown_pj == b.energy_breakdown_pj
    assert a.memory_bytes == b.memory_bytes
    assert a.feasible == b.feasible


@pytest.mark.parametrize("kind, carry", TODAY)
def test_todays_mappings_written_as_plans_give_todays_numbers(kind, carry):
    net, arch = neurosim.load_model("spiking-sentiment-2l"), neurosim.load_arch("spatial-45nm-large")
    today = neurosim.estimate(net, arch, kind, carry)
    plan = Plan.of_mapping(net, kind, carry)
    same_report(plan_report(plan, net, arch), today)
    # the composition the search uses, on a plan of one segment, gives the same numbers bit for bit
    segs, short = plan_segments(plan, net, arch)
    costs = compose(segs, Chips.of(arch), arch.energy)
    assert short is None and costs.feasible[0]
    assert costs.total_energy_pj[0] == today.energy_pj and costs.latency_s[0] == today.latency_s
    assert {k: v[0] for k, v in costs.energy_pj.items()} == today.energy_breakdown_pj
    assert {k: v[0] for k, v in costs.memory_bytes.items()} == today.memory_bytes
    # and the search's space prices the plan of one segment as today (the arch's own objective)
    scored = Space(net, arch, arch.mapping.objective).best(((0, len(net.layers) - 1, kind, carry),))
    assert scored.energy_j == today.energy_pj * 1e-12 and scored.latency_s == today.latency_s


@pytest.mark.parametrize("kind, carry", TODAY)
def test_todays_mappings_as_plans_give_the_simulators_numbers(kind, carry):
    net, arch = neurosim.load_model("tiny-encoder"), neurosim.load_arch("edge-45nm")
    today = simulate(net, arch, kind, carry)
    plan = Plan.of_mapping(net, kind, carry)
    same_report(plan_report(plan, net, arch, "sim"), today)
    segs, _ = plan_segments(plan, net, arch, "sim")    # the simulated segment on the whole chip, composed
    costs = compose(segs, Chips.of(arch), arch.energy)
    assert costs.total_energy_pj[0] == pytest.approx(today.energy_pj, rel=1e-15)
    assert costs.latency_s[0] == pytest.approx(today.latency_s, rel=1e-15)


def test_segments_together_count_what_the_whole_network_counts_in_all_three_engines():
    from neurosim.spikes import random_weights, run

    net = random_weights(neurosim.load_model("tiny-encoder"), seed=3)
    probabilities = np.full((net.layers[0].seq_len, net.input_size), 0.3)
    trace = run(net, probabilities, handoff="history", seed=3)
    measured = trace.measured_network(net)
    names = [layer.name for layer in net.layers]
    plan = Plan(segments=[Segment(kind="sequential", first=names[0], last="block0.output", cores=8, carry="spikes"),
                          Segment(kind="sequential", first="block1.q", last=names[-1], pool=5, carry="rates")])
    arch = neurosim.load_arch("edge-45nm")
    closed, simulated = plan_report(plan, measured, arch), plan_report(plan, measured, arch, "sim")
    assert closed.feasible and simulated.feasible
    assert closed.acs == pytest.approx(trace.acs, rel=1e-12)
    assert simulated.acs == pytest.approx(trace.acs, rel=1e-12)
    assert closed.macs == pytest.approx(simulated.macs, rel=1e-12)
    assert simulated.energy_pj == pytest.approx(closed.energy_pj, rel=0.05)


def every_allocation(names, most):
    """Every spatial allocation of these layers on at most `most` cores, a core or more each."""
    for cores in itertools.product(range(1, most + 1), repeat=len(names)):
        if sum(cores) <= most:
            yield dict(zip(names, cores))


def brute_force(net, arch, objective, max_segments):
    """Every plan, each priced alone through a plan file's path (`plan_report`): today's mappings, and every
    cut, kind and carry with every resource a segment could be given: any cores per layer of a spatial
    segment (not only the allocation rule's candidates) and any pool size, on at most the chip's cores.
    Returns the best (objective, latency, energy) of each shape ({shape: score})."""
    names, most = [layer.name for layer in net.layers], arch.cores.count
    best = {}
    for segments in range(1, max_segments + 1):
        for cuts in itertools.combinations(cut_points(net), segments - 1):
            firsts, lasts = (0,) + tuple(c + 1 for c in cuts), cuts + (len(names) - 1,)
            for kinds in itertools.product(*([KINDS] * (segments - 1) + [LAST_KINDS])):
                if segments == 1:
                    choices = [[{}]]
                else:
                    choices = [list(every_allocation(names[a:b + 1], most)) if k == "spatial" else
                               [dict(pool=p) for p in range(1, most + 1)] for (k, _), a, b in zip(kinds, firsts, lasts)]
                for given in itertools.product(*choices):
                    if sum(sum(g.values()) for g in given) > most:
                        continue
                    plan = Plan(objective=objective, segments=[
                        Segment(kind=k, carry=c, first=names[a], last=names[b],
                                **({} if not g else dict(pool=g["pool"]) if k == "sequential" else dict(layer_cores=g)))
                        for (k, c), a, b, g in zip(kinds, firsts, lasts, given)])
                    r = plan_report(plan, net, arch)
                    if r.feasible:
                        value = {"energy": r.energy_pj, "latency": r.latency_s,
                                 "edp": r.energy_pj * r.latency_s}[objective]
                        shape = tuple((a, b, k, c) for (k, c), a, b in zip(kinds, firsts, lasts))
                        best[shape] = min(best.get(shape, (np.inf,)), (value, r.latency_s, r.energy_pj))
    return best


@pytest.mark.parametrize("objective", ["energy", "latency", "edp"])
def test_the_search_returns_the_brute_force_optimum(objective):
    net, arch = mlp(), small_chip(4)
    result = search(net, arch, objective, budget=10**6, max_segments=3, confirm=0)
    assert result.method == "exhaustive" and result.priced == result.space_size
    found = plan_report(result.best, net, arch)
    value = {"energy": found.energy_pj, "latency": found.latency_s, "edp": found.energy_pj * found.latency_s}
    best = brute_force(net, arch, objective, 3)
    assert value[objective] == pytest.approx(min(best.values())[0], rel=1e-12)
    # and shape by shape: the allocation rule's candidates and the pool grid hold the best of every cores per
    # layer and every pool size (the spatial candidates are few: 2 of the 4 allocations of a..c on 4 cores)
    found = {s.shape: s.score for s in result.found}
    assert found.keys() == best.keys()
    for shape, score in best.items():
        assert found[shape][0] == pytest.approx(score[0], rel=1e-12), shape


def test_the_evolution_is_seeded_and_never_worse_than_todays_mappings():
    net, arch = neurosim.load_model("tiny-encoder"), small_chip(16)
    runs = [search(net, arch, "energy", budget=500, seed=7, max_segments=3, confirm=0) for _ in range(2)]
    assert runs[0].method == "evolution" and runs[0].priced < runs[0].space_size
    assert runs[0].best == runs[1].best
    best = plan_report(runs[0].best, net, arch).energy_pj
    today = [neurosim.estimate(net, with_objective(arch, "energy"), k, c) for k, c in TODAY]
    assert best <= min(r.energy_pj for r in today if r.feasible) * (1 + 1e-12)


def test_caps_are_kept():
    net, arch = mlp(), small_chip(4)
    free = search(net, arch, "energy", confirm=0)
    cheapest = plan_report(free.best, net, arch)
    cap = cheapest.memory_bytes["peak_on_chip"] - 1          # the cheapest plan no longer fits the cap
    assert free.table["peak_memory_bytes"].min() <= cap      # but others do
    capped = plan_report(search(net, arch, "energy", confirm=0, max_memory_bytes=cap).best, net, arch)
    assert capped.memory_bytes["peak_on_chip"] <= cap and capped.energy_pj > cheapest.energy_pj
    with pytest.raises(NeurosimError, match="caps"):
        search(net, arch, "energy", confirm=0, max_latency_s=cheapest.latency_s * 0.5)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_found_plan_rerun_from_its_file_gives_the_same_report(tmp_path, suffix):
    net, arch = neurosim.load_model("tiny-encoder"), neurosim.load_arch("edge-45nm")
    result = search(net, arch, "energy", max_segments=2, confirm=1)
    path = tmp_path / f"plan{suffix}"
    result.best.write(path)
    again = load_plan(path)
    assert again.model_dump() == result.best.model_dump()
    same_report(plan_report(again, net, arch, "sim"), result.report)


def a_pinned_plan(net) -> Plan:
    """tiny-encoder's first block pinned with cores per layer, its second block on a pool of 3."""
    names = [layer.name for layer in net.layers]
    first = names[:names.index("block0.output") + 1]
    return Plan(segments=[Segment(kind="spatial", first=first[0], last=first[-1], carry="rates",
                                  layer_cores={n: 1 + i % 2 for i, n in enumerate(first)}),
                          Segment(kind="sequential", first="block1.q", last=names[-1], pool=3)])


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_plan_with_cores_per_layer_and_a_pool_round_trips_through_its_file(tmp_path, suffix):
    net, arch = neurosim.load_model("tiny-encoder"), neurosim.load_arch("edge-45nm")
    plan = a_pinned_plan(net)
    path = tmp_path / f"plan{suffix}"
    plan.write(path)
    again = load_plan(path)
    assert again.model_dump() == plan.model_dump() and again.cores(16) == ([sum(plan.segments[0].layer_cores.values()),
                                                                            3], None)
    for engine in ("analytic", "sim"):
        same_report(plan_report(again, net, arch, engine), plan_report(plan, net, arch, engine))
    # both engines ran what the plan gives: each layer's cores, and the pool
    for engine in ("analytic", "sim"):
        r = plan_report(plan, net, arch, engine)
        cores = r.per_layer.set_index("layer")["cores"]
        assert all(cores[n] == c for n, c in plan.segments[0].layer_cores.items())
        assert any("pool of 3 of 3 cores" in note for note in r.notes)


@pytest.mark.parametrize("engine", ["analytic", "sim"])
def test_given_cores_per_layer_equal_to_the_rules_give_todays_spatial_numbers(engine):
    net, arch = neurosim.load_model("tiny-encoder"), neurosim.load_arch("edge-45nm")
    today = neurosim.estimate(net, arch, "spatial") if engine == "analytic" else simulate(net, arch, "spatial")
    rule = neurosim.estimate(net, arch, "spatial").per_layer.set_index("layer")["cores"]
    names = [layer.name for layer in net.layers]
    plan = Plan(segments=[Segment(kind="spatial", first=names[0], last=names[-1], cores=arch.cores.count,
                                  layer_cores={n: int(rule[n]) for n in names})])
    given = plan_report(plan, net, arch, engine)     # composed from its one segment, not today's path
    assert given.mapping == "plan" and given.feasible
    for key in ("energy_pj", "latency_s", "acs", "macs"):
        assert getattr(given, key) == pytest.approx(getattr(today, key), rel=1e-12), key


def test_a_given_pool_is_run_at_its_size_not_the_rules():
    from neurosim.cost.closed_form import sequential_on_pool
    from neurosim.cost.workload import workload

    net, arch = neurosim.load_model("tiny-encoder"), neurosim.load_arch("edge-45nm")
    rule = neurosim.estimate(net, arch, "sequential", "rates")
    names = [layer.name for layer in net.layers]
    for pool in (2, 5):
        assert f"pool of {pool} of" not in rule.notes[0]
        plan = Plan(segments=[Segment(kind="sequential", first=names[0], last=names[-1], carry="rates",
                                      cores=16, pool=pool)])
        r = plan_report(plan, net, arch)
        direct = sequential_on_pool(workload(net, False), Chips.of(arch), arch.energy, "rates", pool)
        assert r.energy_pj == pytest.approx(direct.total_energy_pj[0], rel=1e-12)
        assert r.latency_s == pytest.approx(direct.latency_s[0], rel=1e-12)
        assert any(f"pool of {pool} of 16 cores" in note for note in plan_report(plan, net, arch, "sim").notes)


def test_a_layer_given_fewer_cores_than_its_sram_needs_is_infeasible_with_its_shortfall():
    net = mlp()
    arch = small_chip(4).model_copy(update={"cores": small_chip(4).cores.model_copy(update={"sram_bytes": 4096})})
    plan = Plan(segments=[Segment(kind="spatial", first="a", last="c", layer_cores={"a": 1, "b": 1, "c": 1})])
    for engine in ("analytic", "sim"):
        r = plan_report(plan, net, arch, engine)
        assert not r.feasible and any("layer 'b' is given 1 cores" in n and "need 2" in n for n in r.notes), r.notes
    plan.segments[0].layer_cores["b"] = 2
    assert plan_report(plan, net, arch).feasible


def test_map_and_run_plan_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "plan.yaml"
    argv = ["--model", "tiny-encoder", "--arch", "edge-45nm"]
    assert main(["map", *argv, "--objective", "energy", "--max-segments", "2", "--confirm", "1", "--no-progress",
                 "--out", str(path), "--csv", str(tmp_path / "t.csv")]) == 0
    found = capsys.readouterr().out
    assert "best plan:" in found and path.is_file() and (tmp_path / "t.csv").is_file()
    assert main(["run", *argv, "--plan", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = plan_report(load_plan(path), neurosim.load_model("tiny-encoder"), neurosim.load_arch("edge-45nm"),
                           "sim")
    assert report["energy_pj"] == expected.energy_pj


def test_a_composed_plan_adds_its_segments_and_handoff():
    net, arch = mlp(), small_chip(4)
    plan = Plan(segments=[Segment(kind="spatial", first="a", last="b", cores=3, carry="rates"),
                          Segment(kind="sequential", first="c", last="c", cores=1)])
    r = plan_report(plan, net, arch)
    assert r.feasible and r.mapping == "plan"
    whole = neurosim.estimate(net, arch)
    assert r.acs == whole.acs and r.macs == whole.macs
    # handoff: b's spike counts (32 neurons x 4 tokens x ceil(log2(8 + 1)) = 4 bits) written once, read once
    assert any("handoff after 'b' as rates: 64 B" in note for note in r.notes)
    assert r.energy_pj == pytest.approx(sum(r.energy_breakdown_pj.values()), rel=1e-12)


def test_a_plan_that_does_not_fit_is_infeasible_with_its_shortfall():
    net, arch = mlp(), small_chip(4)
    plan = Plan(segments=[Segment(kind="spatial", first="a", last="b", cores=3),
                          Segment(kind="sequential", first="c", last="c", cores=2)])
    r = plan_report(plan, net, arch)
    assert not r.feasible and any("short by 1" in note for note in r.notes)
    # a segment that does not fit its cores: three spatial layers need a core each at least
    plan = Plan(segments=[Segment(kind="sequential", first="a", last="a", cores=2),
                          Segment(kind="spatial", first="b", last="c", cores=1)])
    r = plan_report(plan, net, arch)
    assert not r.feasible and any("segment spatial b..c on 1" in note and "short by 1" in note for note in r.notes)


@pytest.mark.parametrize("segments, field, fix", [
    ([dict(kind="spatial", first="a", last="x")], "segments[0].last", "name one of its layers"),
    ([dict(kind="spatial", first="b", last="c")], "segments[0].first", "start this segment at 'a'"),
    ([dict(kind="spatial", first="a", last="b")], "segments[0].last", "end the last segment at 'c'"),
    ([dict(kind="spatial", first="a", last="a"), dict(kind="spatial", first="c", last="c")], "segments[1].first",
     "start this segment at 'b'"),
    ([dict(kind="spatial", first="b", last="a")], "segments[0].first", "start this segment at 'a'"),
    ([dict(kind="sequential", first="a", last="c", layer_cores=dict(a=1, b=1, c=1))], "segments[0].layer_cores",
     "give pool"),
    ([dict(kind="spatial", first="a", last="c", pool=2)], "segments[0].pool", "give layer_cores"),
    ([dict(kind="spatial", first="a", last="c", layer_cores=dict(a=1, c=1))], "segments[0].layer_cores",
     "give every layer of the segment, in order"),
    ([dict(kind="spatial", first="a", last="c", layer_cores=dict(a=1, b=1, c=1, d=1))], "segments[0].layer_cores",
     "give every layer of the segment, in order"),
    ([dict(kind="sequential", first="a", last="c", cores=2, pool=3)], "segments[0].cores", "give it cores: 3"),
])
def test_a_plan_naming_unknown_layers_out_of_order_or_not_covering_is_refused(segments, field, fix):
    plan = Plan(segments=[Segment(**s) for s in segments])
    with pytest.raises(NeurosimError) as err:
        plan_report(plan, mlp(), small_chip(4))
    assert err.value.field == field and fix in err.value.fix


def test_a_plan_file_with_a_bad_key_or_value_is_refused_with_file_field_and_fix(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("segments:\n- kind: spatial\n  first: a\n  last: c\n  corse: 4\n")
    with pytest.raises(NeurosimError) as err:
        load_plan(path)
    assert err.value.where == str(path) and err.value.field == "segments.0.corse" and "cores" in err.value.fix
    path.write_text("segments:\n- kind: pipelined\n  first: a\n  last: c\n")
    with pytest.raises(NeurosimError) as err:
        load_plan(path)
    assert err.value.field == "segments.0.kind"


def test_a_cut_where_more_than_one_layer_crosses_is_refused():
    net = neurosim.load_model("tiny-encoder")
    assert "block0.q" not in [net.layers[i].name for i in cut_points(net)]
    plan = Plan(segments=[Segment(kind="spatial", first="block0.q", last="block0.q", cores=4),
                          Segment(kind="sequential", first="block0.k", last="block1.output", cores=4)])
    with pytest.raises(NeurosimError) as err:
        plan_report(plan, net, neurosim.load_arch("edge-45nm"))
    assert err.value.field == "segments" and "cannot cut after 'block0.q'" in err.value.problem


def test_a_decoder_step_is_cut_at_its_residuals_and_its_segments_count_the_whole_step():
    from neurosim.mapping.cli import map_network

    net = map_network("spikellm-decoder-2l", None)             # one decode step of the trained 2-block decoder
    assert net.metadata["phase"]["query_tokens"] == 1
    cuts = [net.layers[i].name for i in cut_points(net)]
    assert cuts == ["input", "block0.attn_residual", "block0.mlp_residual", "block1.attn_residual",
                    "block1.mlp_residual", "final_norm"]
    names = [layer.name for layer in net.layers]
    plan = Plan(segments=[Segment(kind="sequential", first="input", last="block0.attn_residual", pool=4),
                          Segment(kind="sequential", first="block0.mlp_norm", last="block1.mlp_residual", pool=8,
                                  carry="rates"),
                          Segment(kind="sequential", first="final_norm", last=names[-1], pool=2)])
    arch = neurosim.load_arch("llm-45nm-hbm3-x4")
    whole, split = neurosim.estimate(net, arch), plan_report(plan, net, arch)
    assert split.feasible
    for key in ("acs", "macs", "other_ops", "neuron_updates"):
        assert getattr(split, key) == pytest.approx(getattr(whole, key), rel=1e-12), key


def test_map_searches_a_decoder_step_and_run_reruns_its_plan(tmp_path, capsys):
    path = tmp_path / "plan.yaml"
    argv = ["--model", "spikellm-decoder-2l", "--arch", "llm-45nm-hbm3-x4"]
    assert main(["map", *argv, "--objective", "energy", "--max-segments", "2", "--confirm", "0", "--no-progress",
                 "--out", str(path)]) == 0
    out = capsys.readouterr().out
    assert "the decode step at a cache of 47.5 tokens" in out and "on one chip of 4" in out
    plan = load_plan(path)
    assert plan.phase == "decode" and len(plan.segments) == 2
    assert main(["run", *argv, "--plan", str(path), "--engine", "analytic", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    from neurosim.mapping.cli import map_network

    expected = plan_report(plan, map_network("spikellm-decoder-2l", "decode"), neurosim.load_arch("llm-45nm-hbm3-x4"))
    assert report["energy_pj"] == expected.energy_pj and report["mapping"] == "plan"
    assert main(["map", "--model", "tiny-encoder", "--phase", "decode", "--no-progress"]) != 0
    assert "'tiny-encoder' is not a decoder card, so it has no decode phase" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["analytic", "sim"])
def test_a_plans_layers_and_the_energy_of_no_layer_add_up_to_its_totals(engine):
    net, arch = neurosim.load_model("tiny-encoder"), neurosim.load_arch("edge-45nm")
    names = [layer.name for layer in net.layers]
    plan = Plan(segments=[Segment(kind="sequential", first=names[0], last="block0.output", cores=8, carry="spikes"),
                          Segment(kind="sequential", first="block1.q", last=names[-1], pool=5, carry="rates")])
    report = plan_report(plan, net, arch, engine)
    outside = report.energy_outside_layers_pj
    for kind, total in report.energy_breakdown_pj.items():
        rows = report.per_layer[f"energy_{kind}_pj"].sum()
        assert rows + outside[kind] == pytest.approx(total, rel=1e-12)
        assert outside[kind] >= -1e-9 * total     # rows never hold more than the plan's energy
    # the second segment's pool leaves 11 of 16 cores idle while it runs: their leakage is no layer's
    assert outside["leakage"] > 0
