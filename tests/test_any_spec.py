"""Any sweep spec, inside and beyond what the schema accepts, through `neurosim sweep --dry-run`: exit 0 with a
plan, or exit 2 with one error line; never a traceback, a hang, or a grid built to be counted."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurosim.cli import main

AXIS_KEYS = ["cores.count", "cores.sram_bytes", "global_buffer.bytes", "clock_hz", "mapping", "nonsense.key"]
VALUES = st.one_of(st.integers(-3, 5000), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                   st.sampled_from(["spatial", "sequential:rates", "sequential:spikes", None]))
AXES = st.dictionaries(st.sampled_from(AXIS_KEYS), st.one_of(
    st.lists(VALUES, max_size=4),
    st.fixed_dictionaries({"from": VALUES, "to": VALUES, "num": st.integers(-2, 10**7),
                           "scale": st.sampled_from(["log", "linear", "cubic"])})), max_size=4)
SPECS = st.fixed_dictionaries({"name": st.text(min_size=0, max_size=6),
                               "base": st.sampled_from(["edge-45nm", "loihi", "no-such-chip"]),
                               "models": st.lists(st.sampled_from(["tiny-encoder", "spikingbert-4l", "nope"]),
                                                  max_size=2),
                               "engine": st.sampled_from(["analytic", "sim", "quantum"]), "axes": AXES})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(SPECS)
def test_any_sweep_spec_dry_runs_to_a_plan_or_one_error_line(tmp_path, capsys, spec):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code in (0, 2)
    if code == 2:
        assert err.startswith("neurosim: error:") and "\n" not in err and "Traceback" not in err
