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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--sentences", type=int, default=24)
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--layernorm", type=int, default=0, metavar="N",
                        help="measure LayerNorm shrinkage on N training sentences (see above)")
    parser.add_argument("--calibration-t", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, ckpt = load_encoder(args.model)
    texts, labels = distill_data.splits(ckpt["task"])[2]
    x = encode_for_student(ckpt, texts[: args.sentences], model.seq_len)
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
