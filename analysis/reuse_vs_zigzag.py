"""Cross-check of neurosim's per-level access counts (cost/reuse.py) against ZigZag on a dense GEMM.

    python analysis/reuse_vs_zigzag.py        # writes analysis/reuse_vs_zigzag.md (needs zigzag-dse)

The layer is BERT-base's FFN up-projection, 128 tokens x 768 inputs x 3072 outputs, fp32. Both tools get
the same memories (a weight and an input register file, an accumulator buffer, a 1 MB SRAM, DRAM), the
same sizes and per-bit energies, one MAC, and the same loop nest; ZigZag allocates the loops to its
memories by capacity, and neurosim's nest is read back from ZigZag's allocation, so both count the same
mapping. Three runs: ZigZag on its own (no register for the partial sum inside the MAC), ZigZag with a
one-element partial-sum register at 0 pJ (what neurosim's datapath assumes), and ZigZag's own search
(LOMA, minimum energy), whose best mapping neurosim then counts too.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neurosim.cost import reuse  # noqa: E402

BITS = 32            # fp32 weights, inputs and partial sums
MAC_PJ = 4.6         # fp32 multiply 3.7 + add 0.9 (Horowitz ISSCC 2014), as arch_configs/energy/horowitz-45nm
DIMS = {"m": 128, "k": 768, "n": 3072}   # BERT-base FFN: 128 tokens, hidden 768, intermediate 3072

# (name, tensors, bytes, read pJ/bit, write pJ/bit), innermost first: the register files and accumulator
# buffer of arch_configs/edge-45nm.yaml (CACTI 7, 45 nm, scaled to Horowitz), a 1 MB SRAM at Horowitz's
# 1 MB point (100 pJ per 64 bits) and DRAM at Horowitz's 20 pJ/bit.
LEVELS = [
    ("weight_rf", ("weights",), 256, 2.10 / 64, 2.67 / 64),
    ("input_rf", ("inputs",), 256, 2.10 / 64, 2.67 / 64),
    ("accumulators", ("outputs",), 1024, 2.66 / 64, 5.40 / 64),
    ("sram", ("weights", "inputs", "outputs"), 1 << 20, 100 / 64, 100 / 64),
    ("dram", ("weights", "inputs", "outputs"), 1 << 34, 20.0, 20.0),
]
PSUM_REGISTER = ("psum_register", ("outputs",), BITS // 8, 0.0, 0.0)   # the MAC's own accumulator

# neurosim's output-stationary nest for these levels, innermost first as ZigZag lists it: within the
# register files 4 inputs x 16 outputs x 16 tokens (the tiles cost/reuse.gemm_tiles picks for 64-element
# RFs and a 256-element accumulator buffer), then the rest of the reduction, 8 x 8 tiles of the 128 x 128
# block that the SRAM holds, and 24 blocks of outputs from DRAM.
ORDER = [("k", 4), ("n", 16), ("m", 16), ("k", 192), ("n", 8), ("m", 8), ("n", 24)]

ZZ_OPERAND = {"weights": ("W", "I2"), "inputs": ("I", "I1"), "outputs": ("O", "O")}
ZZ_DIM = {"m": "M", "k": "K", "n": "N"}


def _memory(name, tensors, size, read, write):
    ops = [ZZ_OPERAND[t][1] for t in tensors]
    alloc = [f"{op}, {d}" for op in ops for d in (("fh", "tl", "fl", "th") if op == "O" else ("fh", "tl"))]
    port = dict(name="rw_port_1", type="read_write", bandwidth_min=BITS, bandwidth_max=BITS, allocation=alloc)
    shared = len(tensors) > 1
    return name, dict(size=size * 8, r_cost=read * BITS, w_cost=write * BITS, area=0, latency=1, operands=ops,
                      ports=[port], served_dimensions=["D1"] if shared else [])


def zigzag_inputs(folder: Path, dims: dict, levels: list, order: list | None) -> tuple[str, str, str]:
    """ZigZag's workload, accelerator and mapping files for the GEMM (one MAC; a 32-bit port per memory,
    so that one ZigZag word is one element and a word access costs the per-bit energy x 32)."""
    acc = dict(name="neurosim_core", memories=dict(_memory(*lv) for lv in levels),
               operational_array=dict(unit_energy=MAC_PJ, unit_area=1, dimensions=["D1"], sizes=[1]))
    work = [dict(id=0, name="gemm", operator_type="Gemm", equation="O[m][n]+=I[m][k]*W[k][n]",
                 loop_dims=["M", "K", "N"], loop_sizes=[dims["m"], dims["k"], dims["n"]],
                 operand_precision=dict(I=BITS, W=BITS, O=BITS, O_final=BITS), operand_source=dict(I=0))]
    mapping = dict(name="default", spatial_mapping=dict(D1=["M, 1"]),
                   memory_operand_links=dict(O="O", W="I2", I="I1"))
    if order is not None:
        mapping["temporal_ordering"] = [[ZZ_DIM[d], size] for d, size in order]
    paths = []
    for stem, data in (("workload", work), ("accelerator", acc), ("mapping", [mapping])):
        path = folder / f"{stem}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))   # memory order is the hierarchy: keep it
        paths.append(str(path))
    return tuple(paths)


def run_zigzag(dims: dict, levels: list, order: list | None = None):
    """ZigZag's cost model evaluation of the GEMM (a fixed `order`, or its own minimum-energy search)."""
    from zigzag.api import get_hardware_performance_zigzag
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        files = zigzag_inputs(Path(tmp), dims, levels, order)
        _, _, cmes = get_hardware_performance_zigzag(*files, opt="energy", dump_folder=f"{tmp}/out",
                                                     loma_show_progress_bar=False)
    return cmes[0][1][0][0]


def zigzag_counts(cme, levels: list) -> tuple[dict, dict]:
    """Element reads and writes, and energy (pJ), per (level, tensor) from a ZigZag evaluation."""
    from zigzag.hardware.architecture.memory_port import DataDirection as D
    from zigzag.mapping.data_movement import DataMoveAttr
    counts, energy = {}, {}
    for tensor, (layer_op, mem_op) in ZZ_OPERAND.items():
        names = [lv[0] for lv in levels if tensor in lv[1]]
        op = next(o for o in cme.mapping.unit_mem_data_movement if str(o) == layer_op)
        for name, move, pj in zip(names, cme.mapping.unit_mem_data_movement[op], cme.mem_energy_breakdown_further[op]):
            c = move.get_attribute(DataMoveAttr.DATA_ELEM_MOVE_COUNT).data
            counts[(name, tensor)] = (c[D.RD_OUT_TO_LOW] + c[D.RD_OUT_TO_HIGH], c[D.WR_IN_BY_HIGH] + c[D.WR_IN_BY_LOW])
            energy[(name, tensor)] = sum(pj.data.values())
    return counts, energy


def nest_from_zigzag(cme, levels: list) -> reuse.LoopNest:
    """neurosim's LoopNest for ZigZag's temporal mapping: the same loops, each tensor's levels cut where
    ZigZag's allocation cuts them (size-1 loops dropped)."""
    mapping = {str(op): lv for op, lv in cme.temporal_mapping.mapping_dic_stationary.items()}
    any_op = next(iter(mapping.values()))
    inner_first = [(str(dim).lower(), int(size)) for level in any_op for dim, size in level if size > 1]
    loops = [reuse.Loop(d, s) for d, s in reversed(inner_first)]
    nest_levels = []
    for tensor, (layer_op, _) in ZZ_OPERAND.items():
        names = [lv[0] for lv in levels if tensor in lv[1]]
        held = 0
        for name, level in zip(names, mapping[layer_op]):
            held += sum(1 for _, size in level if size > 1)
            position = 0 if name == names[-1] else len(loops) - held
            nest_levels.append(reuse.Level(name, (tensor,), position))
    nest_levels.sort(key=lambda lv: -lv.position)
    return reuse.LoopNest(loops, nest_levels)


def ours(nest: reuse.LoopNest, levels: list) -> tuple[dict, dict]:
    """neurosim's element reads and writes, and energy (pJ), per (level, tensor)."""
    acc = reuse.nest_accesses(nest)
    price = {lv[0]: (lv[3], lv[4]) for lv in levels}
    counts, energy = {}, {}
    for name, tensors, *_ in levels:
        for tensor in tensors:
            reads, writes = acc.at(name, tensor)
            counts[(name, tensor)] = (int(reads), int(writes))
            energy[(name, tensor)] = (reads * price[name][0] + writes * price[name][1]) * BITS
    return counts, energy


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def side_by_side(title: str, mine: tuple, theirs: tuple, levels: list, note: str) -> list[str]:
    (mc, me), (zc, ze) = mine, theirs
    lines = [f"### {title}", "", note, "",
             "| level | tensor | reads: neurosim | reads: ZigZag | writes: neurosim | writes: ZigZag "
             "| energy (uJ): neurosim | energy (uJ): ZigZag |", "|---|---|--:|--:|--:|--:|--:|--:|"]
    for name, tensors, *_ in levels:
        for t in tensors:
            (mr, mw), (zr, zw) = mc[(name, t)], zc.get((name, t), (0, 0))
            mark = "" if (mr, mw) == (zr, zw) else " **"
            lines.append(f"| {name} | {t}{mark} | {_fmt(mr)} | {_fmt(zr)} | {_fmt(mw)} | {_fmt(zw)} "
                         f"| {me[(name, t)] / 1e6:,.1f} | {ze.get((name, t), 0) / 1e6:,.1f} |")
    macs = DIMS["m"] * DIMS["k"] * DIMS["n"]
    lines.append(f"| MACs | | {_fmt(macs)} | | | | {macs * MAC_PJ / 1e6:,.1f} | {macs * MAC_PJ / 1e6:,.1f} |")
    total_m, total_z = sum(me.values()) + macs * MAC_PJ, sum(ze.values()) + macs * MAC_PJ
    lines += [f"| **total** | | | | | | **{total_m / 1e6:,.1f}** | **{total_z / 1e6:,.1f}** |", "",
              "(** marks a row where the counts differ.)", ""]
    return lines


def compare(dims: dict, levels: list, order: list | None):
    """(ZigZag's evaluation, neurosim's counts and energy on ZigZag's nest, ZigZag's counts and energy)."""
    cme = run_zigzag(dims, levels, order)
    return cme, ours(nest_from_zigzag(cme, levels), levels), zigzag_counts(cme, levels)


def setup(levels: list) -> list[str]:
    """The layer and the memories both tools were given."""
    lines = ["## Setup", "",
             f"GEMM {DIMS['m']} tokens x {DIMS['k']} inputs x {DIMS['n']} outputs (BERT-base's FFN), "
             f"{BITS}-bit weights, inputs and partial sums, one MAC at {MAC_PJ} pJ. Memories, innermost "
             "first (ZigZag: one 32-bit port each, so one word is one element; a word access costs the "
             "per-bit energy x 32):", "",
             "| memory | holds | bytes | read pJ/bit | write pJ/bit |", "|---|---|--:|--:|--:|"]
    for name, tensors, size, read, write in levels:
        lines.append(f"| {name} | {', '.join(tensors)} | {size:,} | {read:.4g} | {write:.4g} |")
    order = ", ".join(f"{d} {s}" for d, s in ORDER)
    return lines + ["", "psum_register (runs 2 and 3 only) stands for a register inside the MAC. The nest "
                    f"of runs 1 and 2, innermost loop first: {order}.", ""]


def no_reuse_energy(levels: list) -> dict:
    """Today's model on the same layer (cost/reuse.no_reuse_nest): every MAC reads its weight from the SRAM,
    each output is read and written there once; pJ per tensor, SRAM-priced."""
    acc = reuse.nest_accesses(reuse.no_reuse_nest(DIMS["m"], DIMS["k"], DIMS["n"]), read_first=True)
    sram = next(lv for lv in levels if lv[0] == "sram")
    return {t: (acc.at("core_sram", t)[0] * sram[3] + acc.at("core_sram", t)[1] * sram[4]) * BITS
            for t in ("weights", "outputs")}


def explain(plain, registered, searched, with_register) -> list[str]:
    """The findings, with the numbers of this run."""
    macs = DIMS["m"] * DIMS["k"] * DIMS["n"]
    acc_n, acc_z = plain[1][0][("accumulators", "outputs")], plain[2][0][("accumulators", "outputs")]
    e_n, e_z = plain[1][1][("accumulators", "outputs")], plain[2][1][("accumulators", "outputs")]
    tot = [sum(r[i][1].values()) / 1e6 + macs * MAC_PJ / 1e6 for r in (plain, registered, searched) for i in (1, 2)]
    reg_n, reg_z = registered[1][0][("psum_register", "outputs")], registered[2][0][("psum_register", "outputs")]
    same3 = all(searched[1][0][k] == searched[2][0][k] for k in searched[1][0])
    flat = no_reuse_energy(LEVELS)
    mine_sram = sum(v for (lv, _), v in registered[1][1].items() if lv == "sram")
    size_o = DIMS["m"] * DIMS["n"]
    return [
        "## Findings", "",
        f"* **Same nest (1):** every count agrees but the partial sums at the accumulators: ZigZag reads and "
        f"writes them once per MAC ({acc_z[0]:,} each), neurosim once per 4 MACs ({acc_n[0]:,}). ZigZag's MAC "
        "holds nothing: each accumulate reads and writes the lowest memory that holds outputs. neurosim's "
        "datapath keeps an operand that does not change from one iteration to the next; ZigZag does the same "
        "for weights and inputs (its `access_same_data_considered_as_no_access`) but not for partial sums, so "
        f"in neurosim the 4 innermost reduction steps accumulate inside the MAC. {e_n / 1e6:,.1f} against "
        f"{e_z / 1e6:,.1f} uJ at the accumulators, {tot[0]:,.1f} against {tot[1]:,.1f} uJ in all.",
        f"* **With a one-element partial-sum register in ZigZag (2)**, at 0 pJ, the accumulators agree too "
        f"and the totals meet ({tot[2]:,.1f} against {tot[3]:,.1f} uJ). What is left: ZigZag prices "
        f"{size_o:,} more partial-sum reads at the accumulators than its own element count has (its word "
        "accesses are counted per transfer period, the first period included, where no partial sum exists "
        f"yet to read), {size_o * 2.66 / 2 / 1e6:,.2f} uJ; and the register's own counts differ "
        f"({reg_n[0]:,} against {reg_z[0]:,} reads) because neurosim's datapath already is that register "
        "(ZigZag's MAC reads and writes it on every MAC; neurosim counts only the loads and stores around "
        "it). Neither costs energy. So a neurosim core whose lowest output level is an accumulator "
        "buffer is priced as ZigZag prices the same core with a register in the MAC.",
        f"* **ZigZag's own search (3)** (LOMA, minimum energy, `lpf_limit` 6) picks the mapping above; "
        f"neurosim counts it {'identically, row for row' if same3 else 'differently (see the marked rows)'}: "
        f"{tot[4]:,.1f} against {tot[5]:,.1f} uJ, apart by the same first-period reads. Its pick costs more "
        f"than the hand nest of (2), {tot[3]:,.1f} uJ in ZigZag's own pricing: LOMA orders at most "
        "`lpf_limit` groups of prime factors of the loop bounds, and 6 groups cannot form that 7-loop nest. "
        "With `lpf_limit` 8 (a 700 s search on this project's 2-core machine, so not rerun here) LOMA "
        "finds 6,252.7 uJ, the hand nest's energy, with the same register-file and accumulator tiles "
        "(K 4 in the register; N 16, M 16 and the rest of K in the accumulators): for these memories "
        "the output-stationary nest that `cost/reuse.gemm_tiles` builds is ZigZag's optimum.",
        f"* **Against today's 'no reuse' model** (one SRAM weight read per MAC, each output read and written "
        f"once): the weights alone would read {macs:,} x 32 bits from the 1 MB SRAM, "
        f"{flat['weights'] / 1e6:,.0f} uJ, where the nest of (2) spends {mine_sram / 1e6:,.0f} uJ at the "
        "SRAM for all three tensors (plus the register files and DRAM in the tables). That is the size of "
        "what issue 22 changes.", ""]


def main() -> None:
    with_register = [*LEVELS[:2], PSUM_REGISTER, *LEVELS[2:]]
    plain = compare(DIMS, LEVELS, ORDER)
    registered = compare(DIMS, with_register, ORDER)
    searched = compare(DIMS, with_register, None)
    lines = ["# Per-level accesses: neurosim (cost/reuse.py) against ZigZag", "",
             "Generated by `python analysis/reuse_vs_zigzag.py` (zigzag-dse "
             f"{_version()}); see the script's docstring for the setup.", ""]
    lines += setup(with_register)
    lines += explain(plain, registered, searched, with_register)
    lines += side_by_side("1. The same nest, ZigZag's memories as given", plain[1], plain[2], LEVELS,
                          f"ZigZag's allocation: `{plain[0].temporal_mapping.mapping_dic_stationary}`")
    lines += side_by_side("2. The same nest, with a one-element partial-sum register in ZigZag",
                          registered[1], registered[2], with_register,
                          f"ZigZag's allocation: `{registered[0].temporal_mapping.mapping_dic_stationary}`")
    lines += side_by_side("3. ZigZag's own minimum-energy mapping (LOMA), counted by both", searched[1],
                          searched[2], with_register,
                          f"ZigZag's allocation: `{searched[0].temporal_mapping.mapping_dic_stationary}`")
    out = Path(__file__).with_suffix(".md")
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def _version() -> str:
    from importlib.metadata import version
    return version("zigzag-dse")


if __name__ == "__main__":
    main()
