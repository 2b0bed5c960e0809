"""Each IR rule is written once (neurosim.ir), and the IR, model cards and the command line refuse the same values.

A card's refusal names the file and the card key, a command line's the flag,
and both carry the IR rule's own fix.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from neurosim.cards import load_card
from neurosim.cli import main
from neurosim.errors import NeurosimError
from neurosim.ir import NEURON_MODELS, NEURON_RULES, RATE, Layer, Network, Neuron, check_mask
from neurosim.paths import MODELS_DIR

BAD_RATES = [1.5, -0.1, float("nan")]


def tiny_card(tmp_path, change) -> str:
    """tiny-encoder.yaml with one change made by `change(dict)`, written to a file."""
    data = yaml.safe_load((MODELS_DIR / "tiny-encoder.yaml").read_text())
    change(data)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def card_refusal(path: str) -> NeurosimError:
    with pytest.raises(NeurosimError) as info:
        load_card(path)
    assert info.value.where == path and "Fix:" in str(info.value)
    return info.value


# -- the rules themselves --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate, ok", [(0.0, True), (1.0, True), (0.3, True), (np.float64(0.5), True),
                                      (1.5, False), (-0.1, False), (float("nan"), False), ("0.5", False)])
def test_a_rate_is_a_number_in_the_unit_interval(rate, ok):
    assert bool(RATE.holds(rate)) is ok


def test_the_neuron_rules_cover_every_neuron_field_and_name_the_models_in_their_fix():
    assert set(NEURON_RULES) == {"model", "vth", "leak", "levels", "reset", "v_reset", "reset_order", "fire",
                                 "syn_decay"} == set(Neuron.__dataclass_fields__)
    assert all(model in NEURON_RULES["model"].fix for model in NEURON_MODELS)
    assert NEURON_RULES["leak"].holds(1.0) and not NEURON_RULES["leak"].holds(0.0)
    assert NEURON_RULES["levels"].holds(3) and not NEURON_RULES["levels"].holds(True)
    assert NEURON_RULES["vth"].holds([0.5, 2.0]) and not NEURON_RULES["vth"].holds([0.5, 0.0])  # per neuron
    assert NEURON_RULES["syn_decay"].holds(None) and NEURON_RULES["syn_decay"].holds(0.0)


def test_check_mask_returns_booleans_and_names_the_field_it_was_given():
    assert check_mask([1, 0, 1], 3, "heads", "here", "m").tolist() == [True, False, True]
    assert check_mask(None, 3, "heads", "here", "m") is None
    with pytest.raises(NeurosimError) as info:
        check_mask([1, 0], 3, "heads", "here", "spec.head_mask")
    assert (info.value.where, info.value.field) == ("here", "spec.head_mask") and "length 3" in info.value.fix


# -- the same values refused by the IR, a model card and the command line --------------------------------------------
@pytest.mark.parametrize("rate", BAD_RATES)
def test_a_bad_rate_is_refused_alike_by_the_ir_a_card_and_the_command_line(rate, tmp_path, capsys):
    with pytest.raises(NeurosimError) as info:
        Network("n", [Layer("a", "linear", 4, 4, rate=rate)], input_size=4)
    assert (info.value.field, info.value.fix) == ("rate", RATE.fix)

    exc = card_refusal(tiny_card(tmp_path, lambda d: d["rates"].update(k=rate)))
    # the card schema refuses NaN before any rule (no number in a card may be NaN); other values by the IR's rule
    assert exc.field == "rates.k" and (exc.fix == RATE.fix and RATE.problem in exc.problem or "finite" in exc.problem)
    exc = card_refusal(tiny_card(tmp_path, lambda d: d.update(input_rate=rate)))
    assert exc.field == "input_rate" and (exc.fix == RATE.fix or math.isnan(rate))

    with pytest.raises(SystemExit) as ended:
        main(["ops", "--model", "tiny-encoder", "--rate", str(rate)])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert "--rate" in err and RATE.problem in err and RATE.fix in err


@pytest.mark.parametrize("field, value", [("model", "izhikevich"), ("vth", 0.0), ("leak", 1.5), ("levels", 0),
                                          ("reset", "zero"), ("reset_order", "never"), ("fire", "=>"),
                                          ("syn_decay", 1.5)])
def test_a_bad_neuron_is_refused_alike_by_the_ir_and_a_card(field, value, tmp_path):
    rule = NEURON_RULES[field]
    with pytest.raises(NeurosimError) as info:
        Network("n", [Layer("a", "linear", 4, 4, neuron=Neuron(**{field: value}))], input_size=4)
    assert (info.value.field, info.value.fix) == (f"neuron.{field}", rule.fix)

    exc = card_refusal(tiny_card(tmp_path, lambda d: d["neuron"].update({field: value})))
    assert exc.field == f"neuron.{field}" and exc.fix == rule.fix and rule.problem in exc.problem


@pytest.mark.parametrize("key, masks, words, in_fix", [
    ("head_masks", [[1, 1, 1], [1, 1]], "mask 0 has shape (3,), but the layer has 2 heads", "1-D mask of length 2"),
    ("neuron_masks", [[1] * 16, [1, 2] * 8], "mask 1 holds values other than 0 and 1", "1 for a kept unit"),
    ("head_masks", [[1, 1]], "lists 1 masks for 2 layers", "one mask per encoder layer"),
])
def test_a_card_mask_is_refused_by_the_irs_mask_rule_naming_the_card_key(key, masks, words, in_fix, tmp_path):
    exc = card_refusal(tiny_card(tmp_path, lambda d: d.update({key: masks})))
    assert exc.field == key and words in exc.problem and in_fix in exc.fix


def test_a_good_card_still_builds_with_its_masks(tmp_path):
    net = load_card(tiny_card(tmp_path, lambda d: d.update(head_masks=[[1, 0], [1, 1]])))
    assert net["block0.attention"].spec.head_mask.tolist() == [True, False]
    assert net["block0.k"].neuron == Neuron("lif", 1.0, 0.5, 1) and net["block0.k"].rate == 0.5


@pytest.mark.parametrize("rate", [1.5, -0.1])   # NaN is refused by the schema before any rule runs
def test_a_sweep_specs_assumed_model_rate_is_refused_with_the_ir_rules_fix(tmp_path, rate):
    from neurosim.dse.spec import load_spec

    spec = {"name": "s", "base": "edge-45nm", "models": [{"name": "m", "model": "tiny-encoder", "rate": rate}],
            "axes": {"cores.count": [4]}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(NeurosimError) as info:
        load_spec(path)
    assert str(path) in info.value.where and "rate" in info.value.field and RATE.fix in str(info.value)
