"""Where the distilled student's spike mode leaves its rate model: per-sublayer agreement on a few sentences.

    python models/training/distill_spike_gap.py            # ~5 min on the shared 2-core machine

Runs the first N test sentences (--sentences, default 24) in rate mode and in
spike mode at T (--timesteps, default 32) and prints, for every spiking
sublayer, the mean rate in both modes, the correlation over neurons of the
per-neuron mean rates, and the share of equilibrium rates that are exactly 0;
then the two modes' predictions. The card models/spikingbert-minilm-polarity.md
quotes its output.

    python models/training/distill_spike_gap.py --layernorm 24 --sentences 64   # ~35 min on the loaded 2-core machine

--layernorm N measures instead how much each LayerNorm shrinks in spike mode
(at --calibration-t steps, default 16, on the first N training sentences):
kappa = std over dims of the time-mean input x mean over steps of 1 / (the
step's std over dims), the factor by which the mean of the per-step outputs'
deviation falls short of the equilibrium's (1 = no shrinkage). Block by block,
each LayerNorm's gain is divided by its kappa before the next is measured;
then the test accuracy of the rescaled model in rate and spike modes (T =
--timesteps) on the first --sentences test sentences.

    python models/training/distill_spike_gap.py --accuracy --layernorm-mode running_mean --sentences 256

--accuracy prints the test accuracy of the first --sentences test sentences
in rate mode, spike mode at T = 32 and 85 and stochastic mode at T = 85
(seed 1, as distill_student.py's table), the embedding floor on the same
sentences (distill_student.py's linear head on the teacher's mean-pooled
embedding layer, retrained here on the CPU; needs the teacher package), with the time-stepped LayerNorm
given by --layernorm-mode (frontend/encoder.py: `step`, `running_mean`, or
`frozen` with statistics from rate mode on the first --calibration training
sentences, default 1,024, unless the checkpoint holds its own), and the
majority share of those sentences; with
--timesteps T, spike and stochastic mode at T only; --modes runs a subset
(the floor comes with rate mode, unless --no-floor); --device cuda runs
on a GPU.

    python models/training/distill_spike_gap.py --layernorm-mode frozen --write OUT.pt

--write saves the checkpoint with that LayerNorm (config `layernorm`, and
for `frozen` the calibrated statistics beside the unchanged fp16 weights). --layernorm-mode also
applies to the sublayer comparison (without --accuracy).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import distill_data  # noqa: E402

from neurosim.frontend.checkpoint import load_encoder  # noqa: E402
from neurosim.frontend.distill import encode_for_student  # noqa: E402
from neurosim.frontend.encoder import LAYERNORMS  # noqa: E402

MODEL = Path(__file__).resolve().parent.parent / "spikingbert-minilm-polarity.pt"


def layernorm_shrinkage(model, tokens, steps: int) -> list[float]:
    """kappa of ln1 and ln2 of every block, in order, each gain divided by its kappa before the next is measured."""
    from torch import nn

    blocks, kappas = model.blocks, []
    model.timesteps = steps
    for b, blk in enumerate(blocks):
        for ln in (blk.ln1, blk.ln2):
            acc = dict(total=0, inverse=0, steps=0)

            def hook(module, inputs, acc=acc):
                z = inputs[0]
                acc["total"] = acc["total"] + z
                acc["inverse"] = acc["inverse"] + (z.var(-1, unbiased=False) + module.eps).rsqrt()
                acc["steps"] += 1
            handle = ln.register_forward_pre_hook(hook)
            model.blocks = nn.ModuleList(list(blocks)[: b + 1])   # the blocks after b do not change the input
            try:
                with torch.no_grad():
                    model(tokens, mode="spike")
            finally:
                model.blocks = blocks
                handle.remove()
            mean_input = acc["total"] / acc["steps"]
            spread = (mean_input.var(-1, unbiased=False) + ln.eps).sqrt()
            kappa = float((spread * acc["inverse"] / acc["steps"]).mean())
            with torch.no_grad():
                ln.weight /= kappa
            kappas.append(kappa)
            print(f"block{b}.{'ln1' if ln is blk.ln1 else 'ln2'}: kappa {kappa:.3f}", flush=True)
    return kappas


def embedding_floor(task: str, n: int) -> tuple[float, float]:
    """distill_student.py's embedding floor: test accuracy on all test sentences and on the first n."""
    import distill_student as ds
    from neurosim.frontend import distill

    tmodel, tokenizer = ds.teacher_mod.load_teacher(None)
    keep = distill.student_vocabulary(tokenizer, distill_data.rated_sentences()[0])
    data, _ = ds.encode_task(task, tokenizer, keep, "cpu")
    feats = {k: ds.teacher_features(tmodel, v[0], v[1], embedding_only=True) for k, v in data.items()}
    ys = {k: v[2] for k, v in data.items()}
    head, _, full = ds.train_head(feats, ys, distill_data.CLASSES[task], ds.SETTINGS, seed=0)
    with torch.no_grad():
        first = float((head(feats["test"][:n]).argmax(1) == ys["test"][:n]).float().mean())
    return full, first


def accuracies(model, x, y, steps: list[int], modes: list[str]) -> None:
    """Print each mode's accuracy on (x, y) as it is measured (the slow modes take minutes a sentence batch)."""
    import time

    from neurosim.pruning.evaluate import accuracy

    print(f"{len(y)} test sentences, layernorm {model.layernorm}: majority "
          f"{float(torch.bincount(y).max()) / len(y):.4f}", flush=True)
    runs = [("rate", None)] + [("spike", t) for t in steps] + [("stochastic", max(steps))]
    for mode, t in [(mode, t) for mode, t in runs if mode in modes]:
        start = time.time()
        if t is not None:
            model.timesteps = t
        acc = accuracy(model, x, y, mode, seed=1)
        label = mode if t is None else f"{mode} T = {t}"
        print(f"{label}: {acc:.4f} ({time.time() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--sentences", type=int, default=24)
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--layernorm", type=int, default=0, metavar="N",
                        help="measure LayerNorm shrinkage on N training sentences (see above)")
    parser.add_argument("--calibration-t", type=int, default=16)
    parser.add_argument("--accuracy", action="store_true", help="test accuracy of every mode (see above)")
    parser.add_argument("--layernorm-mode", choices=LAYERNORMS, default=None,
                        help="the time-stepped LayerNorm (default: the checkpoint's)")
    parser.add_argument("--calibration", type=int, default=1024, help="training sentences for frozen statistics")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-floor", action="store_true", help="with --accuracy: skip the embedding floor")
    parser.add_argument("--write", type=Path, default=None, metavar="OUT.pt",
                        help="save the checkpoint with --layernorm-mode (see above)")
    parser.add_argument("--modes", nargs="+", choices=("rate", "spike", "stochastic"),
                        default=["rate", "spike", "stochastic"], help="with --accuracy: the modes to measure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, ckpt = load_encoder(args.model)
    model = model.to(args.device)
    if args.layernorm_mode and args.layernorm_mode != model.layernorm:
        model.set_layernorm(args.layernorm_mode)
        if args.layernorm_mode == "frozen":
            train = distill_data.splits(ckpt["task"])[0][0][: args.calibration]
            model.calibrate_layernorm(encode_for_student(ckpt, train, model.seq_len))
    if args.write:
        extra = {"layernorm_stats": model.layernorm_stats.cpu()} if model.layernorm == "frozen" else {}
        state = {k: v for k, v in ckpt["state_dict"].items() if k != "layernorm_stats"}
        torch.save(dict(ckpt, config=dict(ckpt["config"], layernorm=model.layernorm), state_dict={**state, **extra}),
                   args.write)
        print(f"wrote {args.write} (layernorm {model.layernorm})")
        return
    texts, labels = distill_data.splits(ckpt["task"])[2]
    x = encode_for_student(ckpt, texts[: args.sentences], model.seq_len)
    if args.accuracy:
        if "rate" in args.modes and not args.no_floor:
            full, first = embedding_floor(ckpt["task"], args.sentences)
            print(f"embedding floor: {first:.4f} on these sentences, {full:.4f} on the whole test set", flush=True)
        given = "--timesteps" in sys.argv
        accuracies(model, x, torch.from_numpy(labels[: args.sentences]), [args.timesteps] if given else [32, 85],
                   args.modes)
        return
    if args.layernorm:
        from neurosim.pruning.evaluate import accuracy

        calib = encode_for_student(ckpt, distill_data.splits(ckpt["task"])[0][0][: args.layernorm], model.seq_len)
        y = torch.from_numpy(labels[: args.sentences])
        print(f"test, {args.sentences} sentences: rate {accuracy(model, x, y, 'rate'):.4f} before", flush=True)
        layernorm_shrinkage(model, calib, args.calibration_t)
        model.timesteps = args.timesteps
        print(f"after dividing the gains: rate {accuracy(model, x, y, 'rate'):.4f}, spike (T = {args.timesteps}) "
              f"{accuracy(model, x, y, 'spike'):.4f}", flush=True)
        return
    model.timesteps = args.timesteps
    with torch.no_grad():
        model.keep_rates = True
        rate_logits = model(x, mode="rate")
        rate_mean, rates = dict(model.last_asr), {k: v.clone() for k, v in model.last_rates.items()}
        model.keep_rates = False
        spike_logits = model(x, mode="spike")
        spike_mean = dict(model.last_asr)
    print(f"{'sublayer':22s} {'rate':>6s} {'spike':>6s} {'corr':>6s} {'zero':>6s}")
    for name, r in rate_mean.items():
        s = spike_mean[name]
        corr = float(torch.corrcoef(torch.stack([r, s]))[0, 1])
        print(f"{name:22s} {float(r.mean()):6.3f} {float(s.mean()):6.3f} {corr:6.3f} "
              f"{float((rates[name] <= 0).float().mean()):6.3f}")
    print("labels:      ", labels[: args.sentences].tolist())
    print("rate mode:   ", rate_logits.argmax(1).tolist())
    print(f"spike T={args.timesteps}: ", spike_logits.argmax(1).tolist())


if __name__ == "__main__":
    main()
