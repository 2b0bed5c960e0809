"""The command line a newcomer meets: version, the list of shipped files, help on every command, the --rate fix."""

from __future__ import annotations

import json
import warnings

import pytest

import neurosim
from neurosim.cli import build_parser, main
from neurosim.paths import ARCH_DIR, ENERGY_DIR, MODELS_DIR


def run_cli(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version_is_the_package_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"neurosim {neurosim.__version__}"
    assert neurosim.__version__.count(".") == 2


def test_list_names_every_shipped_file_with_a_line_on_it(capsys):
    code, out, _ = run_cli(["list", "--json"], capsys)
    assert code == 0
    listed = json.loads(out)
    models, archs, tables = (listed[k] for k in ("models (--model)", "arch configs (--arch)",
                                                  "energy tables (energy_table: in an arch config)"))
    assert set(models) == {p.stem for p in MODELS_DIR.iterdir() if p.suffix in (".yaml", ".pt")}
    assert set(archs) == {p.stem for p in ARCH_DIR.glob("*.yaml")}
    assert set(tables) == {p.stem for p in ENERGY_DIR.glob("*.yaml")}
    assert models["tiny-encoder"].startswith("A tiny SpikingBERT-style encoder for tests")
    assert archs["loihi"] == "Modelled on one Intel Loihi chip"
    assert all(0 < len(text) <= 110 for group in listed.values() for text in group.values())


def test_every_command_has_a_description():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"run", "compare", "ops", "list", "prune", "sweep", "pareto", "report"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description and len(sub.description) > 40, name


def test_model_help_names_every_accepted_form(capsys):
    _, out, _ = run_cli(["run", "--help"], capsys)
    flat = " ".join(out.split())
    for form in ("shipped model name", ".yaml", ".json", ".pt", ".nir"):
        assert form in flat


def test_a_nir_graph_without_rates_is_told_to_use_rate(tmp_path, capsys):
    nir = pytest.importorskip("nir")
    torch = pytest.importorskip("torch")
    from neurosim.frontend import LIF

    mlp = torch.nn.Sequential(torch.nn.Linear(6, 5), LIF(), torch.nn.Linear(5, 3), LIF())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nir.write(tmp_path / "mlp.nir", neurosim.to_nir(neurosim.from_torch(mlp, torch.rand(4, 6), timesteps=8)))
        code, _, err = run_cli(["run", "--engine", "analytic", "--arch", "edge-45nm",
                                "--model", str(tmp_path / "mlp.nir")], capsys)
        assert code == 2 and err.startswith("neurosim: error:") and "--rate" in err.split("Fix:")[1]
        code, out, _ = run_cli(["run", "--engine", "analytic", "--arch", "edge-45nm", "--rate", "0.1",
                                "--model", str(tmp_path / "mlp.nir")], capsys)
    assert code == 0 and "energy / inference" in out


def test_print_report_is_the_cli_table(capsys):
    from neurosim.report import comparison_table

    report = neurosim.estimate(neurosim.load_model("tiny-encoder"), neurosim.load_arch("edge-45nm"))
    assert str(report) == comparison_table([report])
    code, out, _ = run_cli(["run", "--engine", "analytic", "--model", "tiny-encoder", "--arch", "edge-45nm"], capsys)
    assert out.strip() == str(report)
