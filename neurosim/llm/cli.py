"""The command line for decoder cards: `neurosim run` and `neurosim compare` with --prompt/--generate/--batch.

A decoder model (`kind: spiking_decoder`) is priced as a workload (prefill,
then decode with a KV cache) instead of one inference: `run` prices the
arch's mapping (spiking, or `--mac-based`), `compare` puts the spiking model
under both mappings beside the same model MAC-based.
"""

from __future__ import annotations

import argparse
import json

from ..arch import load_arch
from ..cards import DecoderCard, load_decoder_card
from ..errors import NeurosimError
from ..paths import MODELS_DIR, resolve
from ..schema import read_yaml
from .report import llm_table
from .workload import run_workload


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text}")
    return value


def add_workload_flags(parser: argparse.ArgumentParser, mac_flag: bool = True) -> None:
    group = parser.add_argument_group("decoder workload (models of kind spiking_decoder; default: the card's)")
    group.add_argument("--prompt", type=_positive, help="prompt tokens N per sequence (prefill)")
    group.add_argument("--generate", type=_positive, help="tokens M generated per sequence (decode steps)")
    group.add_argument("--batch", type=_positive, help="sequences B decoded together (they share weight reads)")
    group.add_argument("--tensor-split", type=_positive, metavar="K", help="split every layer's rows over K chips of "
                       "each pipeline stage (K divides kv_heads); default: searched, the best K by the arch's "
                       "mapping.objective (or, where none maps, the fewest chips)")
    if mac_flag:
        group.add_argument("--mac-based", action="store_true", help="price the same model with real-valued "
                           "activations (MACs, no timesteps)")


def decoder_card(model: str) -> DecoderCard | None:
    """The decoder card `model` names, or None when it is not one (an encoder card, JSON, checkpoint...)."""
    try:
        path = resolve(model, MODELS_DIR, (".yaml", ".yml"), "model")
    except NeurosimError:
        return None            # not a card: the model loader gives its own message
    if path.suffix not in (".yaml", ".yml") or read_yaml(path)[0].get("kind") != "spiking_decoder":
        return None
    return load_decoder_card(path)


def _workload_given(args) -> bool:
    return any(getattr(args, k, None) for k in ("prompt", "generate", "batch", "mac_based", "tensor_split"))


def handles(args, command: str) -> bool:
    """Run `command` for a decoder model and return True; False for any other model (the caller runs it).
    Workload flags on a model that is not a decoder are refused."""
    card = decoder_card(args.model)
    if card is None:
        if _workload_given(args):
            raise NeurosimError(args.model, "--prompt/--generate/--batch/--mac-based", "workload flags apply to "
                                "decoder models (kind: spiking_decoder) only", "drop them, or give a decoder "
                                "card such as llama2-7b")
        return False
    engine = getattr(args, "engine", "analytic")
    if engine not in ("analytic", "sim"):
        raise NeurosimError(args.model, "--engine", f"a decoder workload is priced by the closed form or the "
                            f"simulator, not '{engine}'", "use --engine analytic or --engine sim")
    arch = load_arch(args.arch)
    flags = dict(prompt=args.prompt, generate=args.generate, batch=args.batch, engine=engine,
                 tensor_split=args.tensor_split)
    if command == "run":
        reports = [run_workload(card, arch, mapping=args.mapping, carry=args.carry, mac_based=args.mac_based,
                                **flags)]
    else:
        reports = [run_workload(card, arch, mapping=m, mac_based=mac, **flags)
                   for mac in (False, True) for m in ("sequential", "spatial")]
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        print(llm_table(reports))
    return True
