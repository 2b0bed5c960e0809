"""Spike-driven fine-tuning of the frozen-LayerNorm student (issue 16): the time-stepped modes trained on their values.

    python models/training/spike_finetune.py --prepare .devrun/student_data.pt     # CPU, needs the teacher package
    python models/training/spike_finetune.py --data .devrun/student_data.pt --device cuda --out OUT   # ~6 min, H200

The shipped student (models/spikingbert-minilm-polarity.pt) holds frozen
LayerNorm statistics, so every LayerNorm is one per-feature affine map in every
mode and its rate model's Jacobian is the spiking network's too. What is left
between its spike and rate modes (the card: per-step softmax over noisy K,
intermediate neurons firing on early upward excursions of a noisy current,
compounding over six blocks) is bias the rate model does not see. This is
SpikingBERT's training signal (distill.spike_driven_logits: the forward values
are the time-stepped network's per-token ASR, the gradient the rate model's
Jacobian at them; Meng et al.'s DSR), with the statistics kept as shipped (not
re-measured). Each batch (alternately spike and stochastic mode, at --t steps)
is scored against the starting model, frozen, in rate mode:

* the spiking logits: (1 - w) x labels + w x the frozen model's soft labels;
* each block's spiking output rates against the frozen model's (MSE, --layer-weight);
* the student's own rate mode on the same loss (--rate-weight), so that the
  rate model the pruning framework scores does not drift (the earlier stage 5
  lost it within an epoch).

Every --eval-every batches (and before the first) it measures the first
--val-sentences validation sentences in rate, spike and stochastic mode at
--eval-t (85, the seed paper's Table I) and keeps the step with the best mean
of spike and stochastic accuracy whose rate accuracy is within --rate-slack of
the start (step 0, the shipped model, when none is better). Then the test set
(all 1,058) in the three modes, the embedding floor (distill_student.py's head
on the teacher's mean-pooled embedding layer, from features --prepare stored),
and, time permitting (--budget), the starting model on the test set too.

Writes OUT/spikingbert-minilm-polarity.pt (fp16, the checkpoint's format) and
OUT/spike_finetune.json (written after every step, so a run cut short keeps what
it measured). --prepare encodes the splits on a machine with `tokenizers` and the
teacher package, so the GPU run needs neither. --smoke: a few batches, T = 4.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))

MODEL = Path(__file__).resolve().parent.parent / "spikingbert-minilm-polarity.pt"
SPLITS = ("train", "val", "test")
SETTINGS = dict(t=32, eval_t=85, lr=5e-5, warmup=20, batch=128, epochs=4, soft_weight=0.5, layer_weight=1.0,
                rate_weight=1.0, modes=("spike", "stochastic"), clip=1.0, rate_slack=0.02, val_sentences=512,
                eval_every=50, train_seconds=180.0)   # ours


def prepare(model_path: Path, out: Path) -> None:
    """Student token ids and labels of every split, and the teacher's mean-pooled embedding layer (the floor)."""
    import distill_data
    import distill_student as ds

    from neurosim.frontend import distill

    ckpt = torch.load(model_path, map_location="cpu", weights_only=False)
    tmodel, tokenizer = ds.teacher_mod.load_teacher(None)
    keep = distill.student_vocabulary(tokenizer, distill_data.rated_sentences()[0])
    if not torch.equal(keep, ckpt["teacher_ids"]):
        raise SystemExit(f"{model_path}: its vocabulary is not the one distill_student.py builds from the corpus")
    data, student_ids = ds.encode_task(ckpt["task"], tokenizer, keep, "cpu")
    pack = {"task": ckpt["task"], "model": str(model_path)}
    for name in SPLITS:
        ids, mask, labels = data[name]
        pack[name] = dict(tokens=student_ids[name].to(torch.int32), labels=labels,
                          floor_features=ds.teacher_features(tmodel, ids, mask, embedding_only=True))
    torch.save(pack, out)
    print(f"wrote {out}: " + ", ".join(f"{k} {len(pack[k]['labels'])}" for k in SPLITS))


def embedding_floor(pack: dict, classes: int, device, smoke: bool = False) -> float:
    """distill_student.py's embedding floor (its linear head, seed 0) on the test set (smoke: 2 epochs)."""
    import distill_student as ds

    feats = {k: pack[k]["floor_features"].float().to(device) for k in SPLITS}
    ys = {k: pack[k]["labels"].to(device) for k in SPLITS}
    _, _, test = ds.train_head(feats, ys, classes, dict(ds.SETTINGS, **({"head_epochs": 2} if smoke else {})), seed=0)
    return round(test, 4)


def measure(model, x, y, t: int) -> dict[str, float]:
    """Accuracy in rate, spike and stochastic (seed 1) mode at t steps, as distill_student.py measures it."""
    from neurosim.pruning.evaluate import accuracy

    torch.backends.cuda.matmul.allow_tf32 = False
    model.timesteps = t
    return {"rate": round(accuracy(model, x, y, "rate"), 4), f"spike_T{t}": round(accuracy(model, x, y, "spike"), 4),
            f"stochastic_T{t}": round(accuracy(model, x, y, "stochastic", seed=1), 4)}


def batch_loss(student, frozen, x, y, mode: str, step: int, s: dict) -> tuple[torch.Tensor, dict]:
    """The spiking logits' and block outputs' loss against the frozen model, plus the rate-mode anchor."""
    from neurosim.frontend import distill

    with torch.no_grad():
        frozen.keep_rates = True
        soft = frozen(x, mode="rate")
        targets = [frozen.last_rates[f"block{b}.output"] for b in range(len(frozen.blocks))]
        frozen.keep_rates, frozen.last_rates = False, {}
    student.timesteps = s["t"]
    logits, outputs = distill.spike_driven_logits(student, x, mode, seed=step)
    task = distill.prediction_loss(logits, y, soft, 1.0, s["soft_weight"])
    layers = sum(F.mse_loss(o, t) for o, t in zip(outputs, targets))
    anchor = distill.prediction_loss(student(x, mode="rate"), y, soft, 1.0, s["soft_weight"])
    loss = task + s["layer_weight"] * layers + s["rate_weight"] * anchor
    return loss, dict(task=round(task.item(), 4), layers=round(layers.item(), 5), rate=round(anchor.item(), 4))


def train(student, xs: dict, ys: dict, s: dict, log) -> dict:
    """Spike-driven epochs until s['epochs'] or s['train_seconds']; returns the best validated state and history."""
    frozen = copy.deepcopy(student).eval()
    opt = torch.optim.AdamW(student.parameters(), lr=s["lr"], weight_decay=0.01)
    n = len(xs["train"])
    total = s["epochs"] * ((n + s["batch"] - 1) // s["batch"])
    # linear warm-up (Adam's first steps move every weight by ~lr), then linear decay
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min((k + 1) / s["warmup"], 1 - k / total))
    val = lambda: measure(student, xs["val"], ys["val"], s["eval_t"])  # noqa: E731
    history = [dict(step=0, seconds=0.0, **val())]
    log(validation=history)
    floor_rate = history[0]["rate"] - s["rate_slack"]
    best = dict(score=_score(history[0], s, floor_rate), step=0, state=copy.deepcopy(student.state_dict()))
    start, step = time.time(), 0
    while step < total and time.time() - start < s["train_seconds"]:
        for idx in torch.randperm(n, device=xs["train"].device).split(s["batch"]):
            torch.backends.cuda.matmul.allow_tf32 = True   # training only; every accuracy runs in fp32
            student.train()
            loss, parts = batch_loss(student, frozen, xs["train"][idx], ys["train"][idx],
                                     s["modes"][step % len(s["modes"])], step, s)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), s["clip"])
            opt.step()
            sched.step()
            step += 1
            out_of_time = time.time() - start >= s["train_seconds"]
            if step % s["eval_every"] == 0 or step == total or out_of_time:
                history.append(dict(step=step, seconds=round(time.time() - start, 1), last_batch=parts, **val()))
                print(f"  step {step}: {history[-1]}", flush=True)
                log(validation=history)
                score = _score(history[-1], s, floor_rate)
                if score is not None and (best["score"] is None or score > best["score"]):
                    best = dict(score=score, step=step, state=copy.deepcopy(student.state_dict()))
            if step == total or out_of_time:
                break
    student.load_state_dict(best["state"])
    return dict(best_step=best["step"], steps=step, train_seconds=round(time.time() - start, 1), validation=history)


def _score(h: dict, s: dict, floor_rate: float):
    """Mean of spike and stochastic validation accuracy; None where rate mode fell below `floor_rate`."""
    if h["rate"] < floor_rate:
        return None
    return (h[f"spike_T{s['eval_t']}"] + h[f"stochastic_T{s['eval_t']}"]) / 2


def load(args, s: dict):
    """The student (frozen LayerNorm) on the device and the splits {name: tokens}, {name: labels}."""
    from neurosim.frontend.checkpoint import load_encoder

    student, ckpt = load_encoder(args.model)
    if student.layernorm != "frozen":
        raise SystemExit(f"{args.model}: layernorm is {student.layernorm!r}; this fine-tuning keeps frozen statistics")
    pack = torch.load(args.data, map_location="cpu", weights_only=False)
    xs = {k: pack[k]["tokens"].long().to(args.device) for k in SPLITS}
    ys = {k: pack[k]["labels"].to(args.device) for k in SPLITS}
    if not torch.equal(xs["test"][: len(ckpt["sample_tokens"])].cpu(), ckpt["sample_tokens"]):
        raise SystemExit(f"{args.data} does not hold {args.model}'s test sentences (its sample tokens differ)")
    return student.to(args.device), ckpt, pack, xs, ys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--data", type=Path, default=Path(".devrun/student_data.pt"))
    parser.add_argument("--prepare", type=Path, default=None, metavar="DATA.pt", help="write the encoded splits")
    parser.add_argument("--out", type=Path, default=None, help="folder for the checkpoint and the results (required)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget", type=float, default=380.0, help="seconds; the baseline's test run only within it")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override SETTINGS (JSON values)")
    parser.add_argument("--smoke", action="store_true", help="32 sentences a split, T = 4, a few batches")
    args = parser.parse_args()
    if args.prepare:
        return prepare(args.model, args.prepare)
    if args.out is None:
        parser.error("--out OUTDIR is required (or --prepare DATA.pt)")
    begin = time.time()
    s = dict(SETTINGS)
    if args.smoke:
        s.update(t=4, eval_t=4, batch=8, epochs=1, warmup=2, eval_every=2, val_sentences=16, train_seconds=20.0)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in SETTINGS:
            parser.error(f"--set {item}: {key!r} is not one of {', '.join(SETTINGS)}")
        s[key] = json.loads(value)
    from neurosim.frontend.checkpoint import load_encoder

    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    student, ckpt, pack, xs, ys = load(args, s)
    if args.smoke:
        xs, ys = {k: v[:32] for k, v in xs.items()}, {k: v[:32] for k, v in ys.items()}
    xs["val"], ys["val"] = xs["val"][: s["val_sentences"]], ys["val"][: s["val_sentences"]]
    gpu = args.device.startswith("cuda")
    machine = (torch.cuda.get_device_name() if gpu else "cpu") + f", torch {torch.__version__}"
    rec = dict(model=str(args.model), settings=s, machine=machine, test_sentences=len(ys["test"]),
               majority_class_test=round(float(torch.bincount(ys["test"]).max()) / len(ys["test"]), 4))
    results = args.out / "spike_finetune.json"

    def log(**kw):
        rec.update(kw, seconds=round(time.time() - begin, 1))
        results.write_text(json.dumps(rec, indent=2) + "\n")
    log()
    log(training=train(student, xs, ys, s, log))
    state = {k: (v.half() if v.is_floating_point() and k != "layernorm_stats" else v).cpu()
             for k, v in student.state_dict().items()}
    out = args.out / args.model.name
    torch.save(dict(ckpt, state_dict=dict(state, layernorm_stats=ckpt["state_dict"]["layernorm_stats"])), out)
    log(checkpoint=str(out), checkpoint_mib=round(out.stat().st_size / 2**20, 1))
    start = time.time()
    shipped = load_encoder(out)[0].to(args.device)     # what ships: the fp16 weights as loaded
    log(candidate_test=measure(shipped, xs["test"], ys["test"], s["eval_t"]))
    print("candidate, test:", rec["candidate_test"], flush=True)
    log(embedding_floor_test=embedding_floor(pack, ckpt["config"]["classes"], args.device, args.smoke))
    print("embedding floor, test:", rec["embedding_floor_test"], flush=True)
    if time.time() - begin + (time.time() - start) < args.budget:
        base = load(args, s)[0]
        log(start_test=measure(base, xs["test"], ys["test"], s["eval_t"]))
        print("starting model, test:", rec["start_test"], flush=True)
    print(f"wrote {out} and {results} ({rec['seconds']} s)", flush=True)


if __name__ == "__main__":
    main()
