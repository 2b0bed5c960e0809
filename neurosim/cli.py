"""The `neurosim` command line: run, compare, ops, list, prune, sweep, pareto, report."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import NoReturn

from . import __version__
from .arch import load_arch
from .cards import load_model
from .cost.analytic import normalized_c, paper_m, structural_counts
from .cost.area import with_area
from .cost.estimate import estimate
from .errors import NeurosimError, clip
from .ir import RATE, Network
from .paths import ARCH_DIR, DEFAULT_ARCH, DEFAULT_MODEL, ENERGY_DIR, MODELS_DIR, REPO_ROOT, check_output_file, resolve
from .llm import cli as decoder_cli
from .report import comparison_table, per_layer_table


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=_json_default))


def _model(args) -> Network:
    net = load_model(args.model)
    return net.with_default_rate(args.rate) if args.rate is not None else net


def _evaluate(net: Network, arch, engine: str, mapping: str | None = None, carry: str | None = None,
              timeline: bool = False):
    """One report: the discrete-event simulator (default) or the closed form."""
    try:
        if engine == "analytic":
            return estimate(net, arch, mapping=mapping, carry=carry)
        from .sim import simulate

        return with_area(simulate(net, arch, mapping=mapping, carry=carry, timeline=timeline), arch)
    except NeurosimError as exc:
        raise with_rate_fix(exc) from None


def with_rate_fix(exc: NeurosimError) -> NeurosimError:
    """A layer without a spiking rate (a NIR graph carries none): on the command line the fix is --rate."""
    if exc.field != "rate" or "no spiking rate" not in exc.problem:
        return exc
    return NeurosimError(exc.where, exc.field, exc.problem,
                         "give one with --rate (e.g. --rate 0.1, assumed for every layer without a rate), "
                         "or measure rates with --engine spikes")


INPUT_FIX = "give a (T, seq_len, input_size) spike array or a (seq_len, input_size) real array saved with numpy.save"
INPUT_KINDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "real numbers"}


def check_input_file(path: str) -> None:
    """Refuse an --input the spike engine cannot take: not a .npy array, values that are not real numbers
    (text, complex, objects, dates), or not 2-D or 3-D. Only the header is read (memory-mapped)."""
    import numpy as np

    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise NeurosimError(path, "--input", f"not a readable .npy array ({clip(str(exc), 200)})", INPUT_FIX) from None
    if not isinstance(array, np.ndarray):   # an .npz archive
        array.close()
        raise NeurosimError(path, "--input", "an .npz archive, not one array", INPUT_FIX)
    if array.dtype.kind not in INPUT_KINDS:
        raise NeurosimError(path, "--input", f"holds values of type {array.dtype}, not real numbers", INPUT_FIX)
    if array.ndim not in (2, 3):
        raise NeurosimError(path, "--input", f"a {array.ndim}-D array of shape {array.shape}", INPUT_FIX)


def cmd_run(args) -> None:
    if args.engine == "spikes" and decoder_cli.decoder_card(args.model) is not None:
        return run_decoder_engine(args)
    if args.plan is None and decoder_cli.handles(args, "run"):   # a decoder card: prefill and decode (neurosim.llm)
        return
    if args.input is not None:
        check_input_file(args.input)   # before the model is built: a bad file is refused at once
    for flag, path in (("--timeline", args.timeline), ("--plot", args.plot)):
        if path:
            check_output_file(path, flag)
    net, arch = _model(args), load_arch(args.arch)
    if args.plan:   # a mapping plan (`neurosim map --out`): its segments one after another
        from .mapping.cli import plan_run_report

        report = plan_run_report(net, arch, args.plan, args.engine, args.mapping, args.carry, args)
    elif args.engine == "spikes":
        from .spikes.measure import engine_report  # numba, only when asked for

        report = with_area(engine_report(net, arch, args.model, mapping=args.mapping, carry=args.carry,
                                         seed=args.seed, input_path=args.input, timeline=bool(args.timeline),
                                         device=args.device), arch)
    else:
        if args.device is not None:
            raise NeurosimError("--device", "engine", "only the spike engine runs on a device",
                                "add --engine spikes, or drop --device")
        report = _evaluate(net, arch, args.engine, args.mapping, args.carry, timeline=bool(args.timeline))
    if args.timeline:
        if report.timeline is None:
            raise NeurosimError("--timeline", "engine", "the closed form has no event timeline",
                                "drop --engine analytic (the simulator draws the timeline)")
        from .plots import timeline_plot

        capacities = {"buffer global_buffer": arch.global_buffer.bytes,
                      "buffer core_sram": arch.cores.count * arch.cores.sram_bytes}
        if report.mapping == "spatial" and report.memory_bytes:   # every stage's double-buffered output step
            capacities["all buffers"] = report.memory_bytes["spike_buffers"]
        timeline_plot(report, args.timeline, capacities=capacities)
    if args.plot:
        from .plots import per_layer_plot

        per_layer_plot(report, args.plot)
    if args.json:
        _print_json(report.to_dict(per_layer=args.per_layer))
    else:
        print(comparison_table([report]))
        if args.per_layer:
            print()
            print(per_layer_table(report))
        if args.timeline:
            print(f"timeline written to {args.timeline}")
        if args.plot:
            print(f"per-layer plot written to {args.plot}")


def run_decoder_engine(args) -> None:
    """A trained decoder's spikes measured by the engine, its prefill and decode priced at those rates."""
    from .llm.report import llm_table
    from .spikes.measure import decoder_engine_report  # numba and torch, only when asked for

    given = [flag for flag, on in (("--mac-based", args.mac_based), ("--tensor-split", args.tensor_split not in
             (None, 1)), ("--device", args.device), ("--input", args.input), ("--timeline", args.timeline),
             ("--plot", args.plot), ("--per-layer", args.per_layer)) if on]
    if given:
        raise NeurosimError(args.model, "/".join(given), "the spike engine runs a trained decoder spiking, on its "
                            "own sample, on one chip's CPU model, and reports its workload", "drop them, or use "
                            "--engine sim")
    report = decoder_engine_report(decoder_cli.decoder_card(args.model), load_arch(args.arch), mapping=args.mapping,
                                   carry=args.carry, prompt=args.prompt, generate=args.generate, batch=args.batch,
                                   seed=args.seed, card_path=resolve(args.model, MODELS_DIR, (".yaml", ".yml"), "model"))
    print(json.dumps(report.to_dict(), indent=2) if args.json else llm_table([report]))


def cmd_compare(args) -> None:
    if decoder_cli.handles(args, "compare"):
        return
    if args.plot:
        check_output_file(args.plot, "--plot")
    net, arch = _model(args), load_arch(args.arch)
    reports = [_evaluate(net, arch, args.engine, "spatial"),
               _evaluate(net, arch, args.engine, "sequential", "spikes"),
               _evaluate(net, arch, args.engine, "sequential", "rates")]
    if args.plot:
        from .plots import compare_plot

        compare_plot(reports, args.plot)
    if args.json:
        _print_json([r.to_dict() for r in reports])
    else:
        print(comparison_table(reports))
        if args.plot:
            print(f"plot written to {args.plot}")


def cmd_ops(args) -> None:
    net = _model(args)
    counts = structural_counts(net, activity=True)
    dense = structural_counts(net, activity=False)
    try:
        paper, norm_c = paper_m(net), normalized_c(net)
    except NeurosimError:
        paper, norm_c = None, None  # not an encoder: the paper's form does not apply
    result = {"model": net.name, "acs_paper": paper, "acs_structural": float(counts.acs.sum()),
              "acs_structural_dense": float(dense.acs.sum()), "macs_structural": float(counts.macs.sum()),
              "other_ops": float(counts.other_ops.sum()), "normalized_c": norm_c}
    if args.json:
        _print_json(result)
        return
    print(f"op counts of {net.name} (per inference)")
    print(f"  paper form, Appendix B M(h,n,t):        {paper:.5g} ACs" if paper is not None else
          "  paper form: not an encoder, does not apply")
    print(f"  normalized #C (eq. 14):                 {norm_c:.4f}" if norm_c is not None else "")
    print(f"  structural, dense (every input spikes): {result['acs_structural_dense']:.5g} ACs")
    print(f"  structural, at the model's rates:       {result['acs_structural']:.5g} ACs, "
          f"{result['macs_structural']:.5g} MACs, {result['other_ops']:.5g} other ops")
    if args.per_layer:
        print(counts.to_string(index=False))


SWEEPS_DIR = REPO_ROOT / "sweeps"


def first_sentence(path: Path) -> str:
    """What a shipped file is: the first sentence of its leading comment (YAML) or of its card (.md next to a .pt)."""
    if path.suffix == ".pt":
        card = path.with_suffix(".md")
        lines = card.read_text().splitlines() if card.is_file() else []
        text = " ".join(line for line in lines if line.strip() and not line.startswith("#"))
        text = text.split(". ")[0] if text else "a SpikingEncoder checkpoint"
    else:
        comment = []
        for line in path.read_text().splitlines():
            if not line.startswith("#") or line.strip() == "#":
                break
            comment.append(line.lstrip("#").strip())
        text = re.split(r"(?<=[.?])\s+(?=[A-Z])", " ".join(comment))[0] if comment else "(no description)"
    return clip(text.rstrip("."), 110)


def shipped() -> dict[str, list[tuple[str, str]]]:
    """The shipped models, arch configs, energy tables and sweep specs: (name to pass, one line on it)."""
    def files(folder: Path, suffixes: tuple[str, ...], name=lambda p: p.stem):
        return [(name(p), first_sentence(p)) for p in sorted(folder.iterdir()) if p.suffix in suffixes]

    return {"models (--model)": files(MODELS_DIR, (".yaml", ".pt")),
            "arch configs (--arch)": files(ARCH_DIR, (".yaml",)),
            "energy tables (energy_table: in an arch config)": files(ENERGY_DIR, (".yaml",)),
            "sweep specs (neurosim sweep SPEC)": files(SWEEPS_DIR, (".yaml",),
                                                       lambda p: str(p.relative_to(REPO_ROOT)))}


def cmd_list(args) -> None:
    groups = shipped()
    if args.json:
        _print_json({group: dict(items) for group, items in groups.items()})
        return
    for group, items in groups.items():
        print(group)
        width = max((len(n) for n, _ in items), default=0)
        for name, text in items:
            print(f"  {name:<{width}}  {text}")


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**63:   # the engine's counter-based draws key on a 64-bit integer
        raise argparse.ArgumentTypeError(f"a seed is an integer in 0..2**63-1, got {text}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not RATE.holds(value):
        raise argparse.ArgumentTypeError(f"{RATE.problem}, got {text}. Fix: {RATE.fix}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse, refusing a bad argument in the one line every other error takes (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"neurosim: error: {self.prog}: {clip(message, 1000)}. Fix: see `{self.prog} --help`", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="neurosim", description="Energy, latency, memory and area of spiking networks on "
                    "neuromorphic chips, per mapping. Start with `neurosim compare` and `neurosim list`; "
                    "`neurosim COMMAND --help` for each command.")
    parser.add_argument("--version", action="version", version=f"neurosim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p, arch=True):
        p.add_argument("--model", default=DEFAULT_MODEL, help="a shipped model name (see `neurosim list`), a "
                       "model card (.yaml), an IR network (.json), a SpikingEncoder checkpoint (.pt) or a NIR "
                       f"graph (.nir, with --rate) (default {DEFAULT_MODEL})")
        p.add_argument("--rate", type=_rate, help="spiking rate to assume for layers without a known one "
                       "(e.g. a NIR graph); rates in model cards and checkpoints are kept")
        if arch:
            p.add_argument("--arch", default=DEFAULT_ARCH, help="a shipped arch name (see `neurosim list`) or an "
                           f"arch config (.yaml) (default {DEFAULT_ARCH})")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    run = sub.add_parser("run", help="one configuration's energy, latency and memory",
                         description="Energy, latency, memory and area of one model on one chip with one mapping "
                         "(the arch config's, unless --mapping/--carry), from the discrete-event simulator, the "
                         "closed form or the spike engine.")
    common(run)
    run.add_argument("--mapping", choices=["spatial", "sequential"], help="override the config's mapping")
    run.add_argument("--carry", choices=["spikes", "rates"], help="override what passes between layers (sequential)")
    run.add_argument("--per-layer", action="store_true", help="also print each layer's energy by kind, cycles, "
                     "stalls and memory (with --json: per-layer rows in the JSON)")
    run.add_argument("--plot", metavar="PNG", help="draw each layer's energy (by kind) and time (computing, "
                     "stalled) to this file")
    run.add_argument("--engine", choices=["sim", "analytic", "spikes"], default="sim",
                     help="sim: the discrete-event simulator, work from the model's rates (default); analytic: "
                     "the closed form; spikes: run the spike engine and simulate exactly the work it counted")
    run.add_argument("--timeline", metavar="PNG", help="draw a Gantt chart of cores and buffers to this file")
    run.add_argument("--seed", type=_seed, default=0, help="seed of the spike engine's random draws (and of "
                     "random weights for a weightless model card)")
    run.add_argument("--input", help="spike engine input (.npy): (T, seq_len, input_size) spikes or a "
                     "(seq_len, input_size) real array; default: a checkpoint's sample, else seeded random spikes")
    run.add_argument("--plan", metavar="PLAN.yaml", help="run a mapping plan (segments, cores, carries; written "
                     "by `neurosim map --out`) instead of the config's mapping")
    run.add_argument("--device", help="run the spike engine on this torch device (cuda, cuda:N) instead of the "
                     "CPU engine: the same counts (neurosim/spikes/torch_engine.py)")
    decoder_cli.add_workload_flags(run)
    run.set_defaults(func=cmd_run)

    compare = sub.add_parser("compare", help="spatial vs sequential (spikes, rates) side by side",
                             description="One model on one chip under the three mappings, spatial, sequential "
                             "carrying spikes and sequential carrying rates, in one table (or a plot).")
    common(compare)
    compare.add_argument("--engine", choices=["sim", "analytic"], default="sim",
                         help="the discrete-event simulator (default) or the closed form")
    compare.add_argument("--plot", metavar="PNG", help="draw energy breakdown and latency side by side to this file")
    decoder_cli.add_workload_flags(compare, mac_flag=False)
    compare.set_defaults(func=cmd_compare)

    ops = sub.add_parser("ops", help="op counts: paper form, structural form, normalized #C",
                         description="A model's operation counts, independent of any chip: the seed paper's "
                         "Appendix B form M(h, n, t), the structural count of ACs, MACs and other ops from the "
                         "real layer sizes and rates, and the normalized #C (eq. 14).")
    common(ops, arch=False)
    ops.add_argument("--per-layer", action="store_true", help="print the per-layer structural counts")
    ops.set_defaults(func=cmd_ops)

    listing = sub.add_parser("list", help="the shipped models, arch configs, energy tables and sweep specs",
                             description="Every shipped model, arch config, energy table and sweep spec, with one "
                             "line on each; pass the names to --model, --arch and neurosim sweep.")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a list")
    listing.set_defaults(func=cmd_list)

    from .dse.cli import register as register_dse        # sweep, pareto, report
    from .pruning.cli import register as register_prune  # prune
    from .mapping.cli import register as register_map    # map
    register_prune(sub)
    register_dse(sub)
    register_map(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except NeurosimError as exc:
        print(f"neurosim: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
