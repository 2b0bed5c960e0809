"""`neurosim map` (search a plan) and `neurosim run --plan` (run one): neurosim/cli.py adds them."""

from __future__ import annotations

import argparse
import json

from ..errors import NeurosimError
from ..paths import DEFAULT_ARCH, DEFAULT_MODEL, check_output_file


def decoder_phase_network(card, phase: str, prompt: int | None = None, generate: int | None = None,
                          batch: int | None = None):
    """The network a plan maps for a decoder card: its prefill of the prompt, or one decode step at the
    workload's mean cache length, prompt + (generate - 1) / 2 tokens (the card's workload unless given)."""
    from ..cards import DecoderPhase, decoder_network

    w = card.workload
    prompt, generate, batch = prompt or w.prompt, generate or w.generate, batch or w.batch
    if phase == "prefill":
        return decoder_network(card, DecoderPhase(batch, prompt))
    return decoder_network(card, DecoderPhase(batch, 1, prompt + (generate - 1) / 2))


def map_network(model: str, phase: str | None, args=None):
    """The network `neurosim map` or `run --plan` maps: a decoder card's phase (default: a decode step), or
    any other model as `load_model` reads it (no phase)."""
    from ..cards import load_model
    from ..llm.cli import decoder_card

    card = decoder_card(model)
    if card is None:
        if phase is not None:
            raise NeurosimError("--phase", "phase", f"model '{model}' is not a decoder card, so it has no "
                                f"{phase} phase", "drop --phase (it is for decoder cards such as tinyllama-1.1b)")
        return load_model(model)
    flags = {k: getattr(args, k, None) for k in ("prompt", "generate", "batch")}
    return decoder_phase_network(card, phase or "decode", **flags)


def plan_run_report(net, arch, path: str, engine: str, mapping: str | None, carry: str | None, args=None):
    """`neurosim run --plan PLAN`: the plan's report (the closed form or the simulator, segment by segment);
    for a decoder card, of the phase the plan maps."""
    from .plan import load_plan
    from .price import plan_report

    plan = load_plan(path)
    if net.metadata.get("decoder") and args is not None:
        net = map_network(args.model, plan.phase, args)
    if mapping is not None or carry is not None:
        raise NeurosimError("--plan", "--mapping", "a plan names each segment's mapping and carry itself",
                            "drop --mapping and --carry, or drop --plan")
    if engine == "spikes":
        raise NeurosimError("--plan", "--engine", "the spike engine does not run plans",
                            "use --engine sim (default) or --engine analytic")
    return plan_report(plan, net, arch, engine)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a cap is a positive number, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"a seed is an integer in 0..2**63-1, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a positive whole number, got {text}")
    return value


def cmd_map(args) -> None:
    from ..arch import load_arch
    from .search import search
    from .space import decoder_phase

    for flag, path in (("--out", args.out), ("--csv", args.csv)):
        if path:
            check_output_file(path, flag)
    net, arch = map_network(args.model, args.phase), load_arch(args.arch)
    phase = decoder_phase(net)
    result = search(net, arch, args.objective, budget=args.budget, seed=args.seed, max_segments=args.max_segments,
                    max_latency_s=args.max_latency, max_energy_j=args.max_energy, max_memory_bytes=args.max_memory,
                    confirm=args.confirm, progress=not args.no_progress and not args.json)
    if args.out:
        result.best.write(args.out)
    if args.csv:
        result.table.to_csv(args.csv, index=False)
    if args.json:
        print(json.dumps({"best": result.best.model_dump(exclude_none=True), "method": result.method,
                          "space": result.space_size, "priced": result.priced, "seconds": result.seconds,
                          "table": json.loads(result.table.to_json(orient="records"))}, indent=2))
        return
    if phase is not None:
        past = net.metadata["phase"]["past_tokens"]
        print(f"{net.name}: the {phase} " + ("of the prompt" if phase == "prefill" else f"step at a cache of "
              f"{past:g} tokens (the workload's mean)") + (f", on one chip of {arch.chips.count} (splitting a "
              "decoder over chips is neurosim.llm's)" if arch.chips is not None and arch.chips.count > 1 else ""))
    print(f"{net.name} on {arch.name}, objective {args.objective}: {result.method} search, {result.priced:,} of "
          f"{result.space_size:,} plans priced by the closed form in {result.search_seconds:.1f} s; the best "
          f"{min(args.confirm, len(result.table))} confirmed by the simulator ({result.seconds:.1f} s in all)")
    print(result.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nbest plan: {result.best.label()}")
    print(result.report)
    if args.out:
        print(f"plan written to {args.out} (run it: neurosim run --model {args.model} --arch {args.arch} "
              f"--plan {args.out})")


def register(sub) -> None:
    from .search import DEFAULT_BUDGET

    p = sub.add_parser("map", help="search the best mapping plan (segments, cores, carries) for an objective",
                       description="Search plans of the model on the chip: where to cut it into segments, each "
                       "spatial or sequential, carrying spikes or rates, on how many cores. Exhaustive where the "
                       "space is at most --budget plans, else an evolution strategy; the closed form prices, the "
                       "simulator confirms the best few. See docs/mapping-search.md.")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"a shipped model name or a file (default {DEFAULT_MODEL})")
    p.add_argument("--arch", default=DEFAULT_ARCH, help=f"a shipped arch name or a config (default {DEFAULT_ARCH})")
    p.add_argument("--phase", choices=["prefill", "decode"], help="a decoder card's phase to map (default: one "
                   "decode step at the workload's mean cache length; the search maps it on one chip)")
    p.add_argument("--objective", choices=["energy", "latency", "edp"], default="edp",
                   help="what the plan minimises (default edp: energy x latency)")
    p.add_argument("--budget", type=_count, default=DEFAULT_BUDGET, help=f"plans the closed form may price (default "
                   f"{DEFAULT_BUDGET:,}); a larger space is searched by evolution, stopping at the first generation "
                   "past it")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the evolution (default 0)")
    p.add_argument("--max-segments", type=_count, default=3, help="segments a plan may have (default 3)")
    p.add_argument("--max-latency", type=_positive, metavar="SECONDS", help="only plans at most this slow")
    p.add_argument("--max-energy", type=_positive, metavar="JOULES", help="only plans using at most this energy")
    p.add_argument("--max-memory", type=_positive, metavar="BYTES", help="only plans holding at most this on chip")
    p.add_argument("--confirm", type=int, default=3, help="plans the simulator confirms (default 3; 0: none)")
    p.add_argument("--out", metavar="PLAN.yaml", help="write the best plan here (.yaml or .json)")
    p.add_argument("--csv", metavar="CSV", help="write the results table here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_map)
