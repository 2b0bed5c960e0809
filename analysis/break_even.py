"""The break-even spike rate (issue 20): below which input spike rate does a spiking network cost less
energy (and less time) than the same network with real-valued activations on the same chip?

    python analysis/break_even.py          # writes break_even.{md,png,json} next to this script (minutes)
    python analysis/break_even.py --cached # the .md and .png again from break_even.json

For each shipped chip (arch_configs/) and each workload, the closed form (`cost.estimate`, data movement
counted: SRAM, DRAM/HBM, on-chip network, leakage) prices

* the spiking network with every spiking input at rate r (T = 5 steps, IF neurons), r from 0.001 to 1;
* the same layers MAC-based (no neurons, one step, real inputs at the chip's activation precision);
* the same MAC-based network with 3-bit activations: the "equivalent QNN" of Yan et al. (arXiv
  2409.08290), who compare an SNN of T steps with a QNN of ceil(log2(T + 1)) = 3 bits at T = 5;
* on the 45 nm chips, the layers again with an integer datapath on both sides (`integer_datapath`):
  the shipped tables price every operation in fp32 whatever its operands' width, so a 3-bit x 8-bit
  MAC cost a float multiply; here it costs Horowitz's 8-bit integer multiply and 32-bit integer add.

Workloads: one layer of each kind with weights (a linear layer, a 3 x 3 convolution, a spiking
self-attention block: Q, K, V and the scores), and whole models: SpikingBERT-4L (models/spikingbert-4l.yaml,
every rate set to r; its own T = 85) on every chip where it maps, and the TinyLlama-1.1B decoder's decode step (prompt
128, one token generated, every GIF input rate r) on the one chip with HBM (llm-45nm-hbm3-x4), against
`run_workload(mac_based=True)`. The break-even rate is where the spiking energy (time) crosses the
MAC-based one, interpolated in log r; "never" where spiking costs more at r = 0.001, "always" where it
costs less at r = 1.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHIPS = ("edge-45nm", "loihi", "spatial-45nm-large", "llm-45nm-hbm3-x4")
RATES = np.geomspace(1e-3, 1.0, 13)
STEPS = 5                       # Yan et al.'s headline case: T = 5
QNN_BITS = math.ceil(math.log2(STEPS + 1))   # their equivalent QNN: 3 bits at T = 5
PAPER_RATE = 0.057              # arXiv 2409.08290 v4 abstract: T = 5 needs a rate below 5.7 % (v2: 6.4 %, T 5-10)
WEIGHT_BITS = 8


def layer_networks(rate: float | None):
    """The single-layer workloads, spiking at `rate` (None: MAC-based)."""
    from neurosim.ir import Attention, Conv2dShape, Layer, Network, Neuron

    spiking = rate is not None
    common = dict(timesteps=STEPS if spiking else 1, neuron=Neuron() if spiking else None,
                  compute=None if spiking else "mac", weight_bits=WEIGHT_BITS, rate=rate)

    def net(name, layers, size):
        return Network(name, layers, input_size=size, input_rate=rate if spiking else 1.0, input_spiking=spiking)

    d, seq = 768, 128            # SpikingBERT's width and sequence (models/spikingbert-4l.yaml)
    linear = [Layer("linear", "linear", d, d, seq_len=seq, **common)]
    conv = [Layer("conv", "conv2d", 64 * 32 * 32, 64 * 32 * 32, spec=Conv2dShape(64, 64, 32, 32, 3, 1, 1), **common)]
    attention = [Layer(n, "linear", d, d, seq_len=seq, **common) for n in ("q", "k", "v")]
    attention.append(Layer("scores", "attention", d, d, inputs=["q", "k", "v"], seq_len=seq,
                           spec=Attention(12, 64), **common))
    return {"linear 768x768, 128 tokens": net("linear", linear, d),
            "conv 3x3, 64 ch, 32x32": net("conv", conv, 64 * 32 * 32),
            "self-attention block (Q, K, V, scores)": net("attention", attention, d)}


def bert_network(rate: float | None):
    """SpikingBERT-4L with every rate set to `rate`, or its layers MAC-based (None)."""
    from neurosim.cards import EncoderCard, encoder_network
    from neurosim.schema import load_yaml

    card = load_yaml(REPO / "models" / "spikingbert-4l.yaml", EncoderCard)
    if rate is not None:
        rates = card.rates.model_copy(update={k: rate for k in type(card.rates).model_fields})
        return encoder_network(card.model_copy(update={"input_rate": rate, "rates": rates}))
    net = encoder_network(card)
    layers = [dataclasses.replace(l, neuron=None, timesteps=1, compute="mac", rate=None) for l in net.layers]
    return dataclasses.replace(net, layers=layers, input_rate=1.0, input_spiking=False)


def priced(net, arch) -> tuple[float, float] | None:
    """(energy J, latency s) by the closed form, or None where the network does not map."""
    from neurosim.cost.estimate import estimate
    from neurosim.errors import NeurosimError

    try:
        r = estimate(net, arch)
    except NeurosimError:      # refused on this chip (e.g. a layer's step beyond its global buffer)
        return None
    return (r.energy_pj * 1e-12, r.latency_s) if r.feasible else None


# Horowitz, ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V): integer add 8-bit 0.03 pJ, 32-bit 0.1 pJ; multiply
# 8-bit 0.2 pJ, 32-bit 3.1 pJ (the shipped table's fp32 figures come from the same figure).
INT32_ADD_PJ, INT8_MULT_PJ = 0.1, 0.2
INTEGER_OPS = dict(ac_pj=INT32_ADD_PJ,                         # a spike adds an 8-bit weight into a 32-bit membrane
                   mac_pj=INT8_MULT_PJ + INT32_ADD_PJ,          # <= 8-bit activation x 8-bit weight, 32-bit accumulate
                   neuron_update_pj=INT8_MULT_PJ + 3 * INT32_ADD_PJ,   # leak multiply; bias add, compare, reset
                   shift_add_pj=INT32_ADD_PJ)


def integer_datapath(arch):
    """The chip with Horowitz's integer operations in place of its fp32 ones (AC, MAC, neuron update), as a
    QNN accelerator and an integer SNN both run; softmax/norm element ops stay fp32. 45 nm tables only."""
    energy = arch.energy.model_copy(update=INTEGER_OPS)
    return arch.model_copy(update={"name": arch.name + " (integer datapath)"}).loaded_from(arch.path, energy)


def with_bits(arch, bits: int):
    return arch.model_copy(update={"precision": arch.precision.model_copy(update={"activation_bits": bits})})


def crossing(rates, spiking, reference) -> float | str:
    """The rate where spiking(r) = reference, interpolated in log r; 'never' / 'always' outside the range."""
    diff = np.asarray(spiking) - reference
    if diff[0] >= 0:
        return "never"
    if diff[-1] <= 0:
        return "always"
    i = int(np.argmax(diff > 0))
    f = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(np.exp(np.log(rates[i - 1]) + f * (np.log(rates[i]) - np.log(rates[i - 1]))))


def sweep_encoder(name: str, build, arch, integer: bool = False) -> dict | None:
    """One workload on one chip: spiking energy/latency per rate, the two MAC references, the crossings;
    `integer`: also both sides on the chip's integer datapath against the 3-bit QNN."""
    mac, qnn = priced(build(None), arch), priced(build(None), with_bits(arch, QNN_BITS))
    spikes = [priced(build(r), arch) for r in RATES]
    if mac is None or qnn is None or any(s is None for s in spikes):
        return None
    out = row(name, arch.name, [s[0] for s in spikes], [s[1] for s in spikes], mac, qnn)
    if integer:
        ints = integer_datapath(arch)
        out["int_energy"] = [priced(build(r), ints)[0] for r in RATES]
        out["int_qnn"] = priced(build(None), with_bits(ints, QNN_BITS))
        out["int_qnn_break_even"] = crossing(RATES, out["int_energy"], out["int_qnn"][0])
    return out


def row(name, chip, energy, latency, mac, qnn) -> dict:
    return dict(workload=name, chip=chip, energy=energy, latency=latency, mac=mac, qnn=qnn,
                energy_break_even=crossing(RATES, energy, mac[0]),
                qnn_break_even=crossing(RATES, energy, qnn[0]) if qnn else None,
                latency_break_even=crossing(RATES, latency, mac[1]))


def sweep_decoder(arch) -> dict:
    """TinyLlama-1.1B's decode step (energy per decoded token, time per token) on a chip with HBM."""
    from neurosim.cards import load_decoder_card
    from neurosim.llm import run_workload

    card = load_decoder_card(REPO / "models" / "tinyllama-1.1b.yaml")
    kw = dict(prompt=128, generate=1, batch=1)

    def at(rate):
        c = card
        if rate is not None:
            rates = card.spiking.rates.model_copy(update={k: rate for k in ("attn", "o", "mlp", "down", "head")})
            c = card.model_copy(update={"spiking": card.spiking.model_copy(update={"rates": rates})})
        r = run_workload(c, arch, mac_based=rate is None, tensor_split=1, **kw)   # one split for every rate
        return r.energy_per_token_decode_j, r.tpot_mean_s

    spikes = [at(r) for r in RATES]
    name = f"TinyLlama-1.1B decode step (GIF, T = {card.spiking.timesteps})"
    return row(name, arch.name, [s[0] for s in spikes], [s[1] for s in spikes], at(None), None)


def results() -> tuple[list[dict], list[str]]:
    from neurosim.arch import load_arch

    rows, refused = [], []
    for chip in CHIPS:
        arch = load_arch(chip)
        builds = {**{n: (lambda r, n=n: layer_networks(r)[n]) for n in layer_networks(0.1)},
                  "SpikingBERT-4L (whole model)": bert_network}
        for name, build in builds.items():
            integer = arch.energy_table == "horowitz-45nm" and build is not bert_network
            out = sweep_encoder(name, build, arch, integer)
            (rows.append(out) if out else refused.append(f"{name} on {chip}"))
        if arch.hbm is not None:
            rows.append(sweep_decoder(arch))
    return rows, refused


def rate_text(x) -> str:
    return "n/a" if x is None else (x if isinstance(x, str) else f"{x:.3f}")


def figure(rows: list[dict], path: Path) -> None:
    """Spiking energy over MAC-based energy against the rate, one panel per chip, crossings marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5), sharey=True)
    for ax, chip in zip(axes.flat, CHIPS):
        for i, r in enumerate(x for x in rows if x["chip"] == chip):
            ratio = np.asarray(r["energy"]) / r["mac"][0]
            line, = ax.plot(RATES, ratio, marker="o", ms=3, label=r["workload"], color=f"C{i}",
                            ls="--" if r["workload"].startswith("conv") else "-")   # conv lies on linear
            if not isinstance(r["energy_break_even"], str):
                ax.plot([r["energy_break_even"]], [1.0], marker="X", ms=11, color=line.get_color(), mec="k")
            if "int_energy" in r:       # both sides on the integer datapath, against the 3-bit QNN
                ax.plot(RATES, np.asarray(r["int_energy"]) / r["int_qnn"][0], ls=":", lw=1.2, color=line.get_color())
                if not isinstance(r["int_qnn_break_even"], str):
                    ax.plot([r["int_qnn_break_even"]], [1.0], marker="o", ms=7, color=line.get_color(), mec="k")
        ax.axhline(1.0, color="k", lw=1)
        ax.axvline(PAPER_RATE, color="0.4", ls="--", lw=1)
        ax.text(PAPER_RATE * 1.1, 2e-3, "Yan et al.\n5.7 %", fontsize=7, color="0.3")
        ax.set(xscale="log", yscale="log", xlabel="input spike rate", title=chip, ylim=(1e-3, 1e3))
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes[:, 0]:
        ax.set_ylabel("spiking energy / MAC-based energy (same chip)")
    fig.suptitle("Break-even spike rate: spiking cheaper below the line y = 1 (X: crossing). Dotted, o: integer "
                 "datapath on both sides against the 3-bit QNN", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(rows: list[dict], refused: list[str]) -> str:
    lines = [
        "# Break-even spike rate: spiking against MAC-based on the same chip",
        "",
        f"`python analysis/break_even.py` (closed form; rates {RATES[0]:g} to {RATES[-1]:g}, {len(RATES)} points "
        f"in log steps). Layers: T = {STEPS}, IF neurons, {WEIGHT_BITS}-bit weights. Break-even = the input rate "
        "below which the spiking network costs less; 'always' = spiking cheaper even at rate 1, 'never' = dearer "
        f"even at {RATES[0]:g}. 'vs 3-bit QNN': the MAC-based network with {QNN_BITS}-bit activations, Yan et al.'s "
        f"equivalent of T = {STEPS} (arXiv 2409.08290).",
        "",
        "'integer datapath': both sides priced with Horowitz's 45 nm integer operations (AC = 32-bit add 0.1 pJ; "
        "MAC = 8-bit multiply + 32-bit add 0.3 pJ; neuron update 0.5 pJ) against the 3-bit QNN, on the 45 nm "
        "chips' single layers.",
        "",
        "| chip | workload | energy break-even (vs chip precision) | energy break-even (vs 3-bit QNN) | "
        "energy break-even (vs 3-bit QNN, integer datapath) | latency break-even | MAC-based energy (J) | "
        "spiking energy at 0.1 (J) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    at = int(np.argmin(abs(RATES - 0.1)))
    for r in rows:
        lines.append(f"| {r['chip']} | {r['workload']} | {rate_text(r['energy_break_even'])} | "
                     f"{rate_text(r['qnn_break_even'])} | {rate_text(r.get('int_qnn_break_even'))} | "
                     f"{rate_text(r['latency_break_even'])} | "
                     f"{r['mac'][0]:.3g} | {r['energy'][at]:.3g} |")
    if refused:
        lines += ["", "Does not map (refused or infeasible on that chip): " + "; ".join(refused) + "."]
    lines += ["", "![break-even](break_even.png)", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    saved = HERE / "break_even.json"
    if "--cached" in (sys.argv[1:] if argv is None else argv):   # redraw from the last run (minutes saved)
        data = json.loads(saved.read_text())
        rows, refused = data["rows"], data["refused"]
    else:
        rows, refused = results()
        saved.write_text(json.dumps(dict(rates=RATES.tolist(), rows=rows, refused=refused), indent=1))
    figure(rows, HERE / "break_even.png")
    text = markdown(rows, refused)
    findings = HERE / "break_even.findings.md"
    if findings.is_file():
        text += "\n" + findings.read_text()
    (HERE / "break_even.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
