"""Where the distilled student's spike mode leaves its rate model: per-sublayer agreement on a few sentences.

    python models/training/distill_spike_gap.py            # ~5 min on the shared 2-core machine

Runs the first N test sentences (--sentences, default 24) in rate mode and in
spike mode at T (--timesteps, default 32) and prints, for every spiking
sublayer, the mean rate in both modes, the correlation over neurons of the
per-neuron mean rates, and the share of equilibrium rates that are exactly 0;
then the two modes' predictions. The card models/spikingbert-minilm-polarity.md
quotes its output.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--sentences", type=int, default=24)
    parser.add_argument("--timesteps", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, ckpt = load_encoder(args.model)
    texts, labels = distill_data.splits(ckpt["task"])[2]
    x = encode_for_student(ckpt, texts[: args.sentences], model.seq_len)
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
