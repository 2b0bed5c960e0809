"""Which phases a decoder workload is priced as: prefill chunks and (coarsened) decode steps.

A workload is a prompt of N tokens and M generated tokens at batch B. The
prefill runs the prompt in chunks of C tokens per sequence (C = N when the
chip holds a whole prompt's widest step; a chunk of C after j chunks attends
to a cache of j C keys); decode step i (i = 0 .. M - 1) runs one token per
sequence against a cache of N + i keys, so the cache grows from N to N + M.

Coarsening: a phase's counts and bytes are linear in its cache length, so a
group of consecutive steps is priced once at the group's mean cache length
and counted `repeats` times: exact for every count and byte, and for the
energy of operations, SRAM, DRAM and links, all linear in the cache length.
Latency (a max() of bounds) and the on-chip network's energy follow mapping
decisions that can step with the work (over how many cores a layer spreads):
exact within a group whose steps take the same decisions, close otherwise
(tests/test_llm.py bounds it). The last decode step is priced on its own for
the time per token at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cards import DecoderPhase

DECODE_GROUPS = 8   # decode steps are priced as at most this many groups (and the last step on its own)


@dataclass(frozen=True)
class PhaseRun:
    """One phase priced once and counted `repeats` times (the steps or chunks it stands for)."""

    kind: str              # "prefill" or "decode"
    phase: DecoderPhase
    repeats: int
    head: bool = True      # the last chip runs the final norm and LM head (the phase emits a token)


def groups(first: int, count: int, n_groups: int) -> list[tuple[int, int]]:
    """`count` consecutive indices from `first` in at most `n_groups` runs of near-equal length: (start, size)."""
    n_groups = max(1, min(n_groups, count))
    base, extra = divmod(count, n_groups)
    out, start = [], first
    for g in range(n_groups):
        size = base + (1 if g < extra else 0)
        out.append((start, size))
        start += size
    return out


def prefill_runs(prompt: int, batch: int, chunk: int, n_groups: int = DECODE_GROUPS) -> list[PhaseRun]:
    """The prompt in chunks of `chunk` tokens per sequence: every chunk but the last coarsened like decode
    steps and without the LM head (only the prompt's last token needs logits), the last one on its own."""
    chunks = -(-prompt // chunk)
    runs = [PhaseRun("prefill", DecoderPhase(batch, chunk, chunk * (start + (size - 1) / 2)), size, head=False)
            for start, size in groups(0, chunks - 1, n_groups)] if chunks > 1 else []
    runs.append(PhaseRun("prefill", DecoderPhase(batch, prompt - (chunks - 1) * chunk, float((chunks - 1) * chunk)), 1))
    return runs


def decode_runs(prompt: int, generate: int, batch: int, n_groups: int = DECODE_GROUPS) -> list[PhaseRun]:
    """M decode steps, step i against a cache of N + i keys, in groups priced at their mean cache length."""
    return [PhaseRun("decode", DecoderPhase(batch, 1, prompt + start + (size - 1) / 2), size)
            for start, size in groups(0, generate, n_groups)]


def last_step(prompt: int, generate: int, batch: int) -> PhaseRun:
    return PhaseRun("decode", DecoderPhase(batch, 1, float(prompt + generate - 1)), 1)
