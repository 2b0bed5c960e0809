"""Many chips: a decoder's blocks split over chips as a pipeline, and what crosses the links.

Blocks are split into contiguous stages of near-equal block counts (every
block has the same weights; the first stage also takes the embedding rows,
the last the final norm and LM head). Optionally each stage is `shards`
chips that split every layer's rows (heads, FFN rows, vocabulary) and
all-reduce the partial sums of the out projection and down. One phase of one batch passes the
stages in order, so a phase's time is the sum of its stages' times and the
link transfers between them (one batch in flight: the other chips wait,
and leak). What crosses the link from stage s to s + 1 is the residual
stream of every token of the phase (tokens x hidden values at activation
precision); the sampled token ids (32 bits each) go back from the last chip
to the first over `ChipLinks.hops_back` links.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch import ArchConfig
from ..cards import DecoderCard, DecoderPhase, decoder_network
from ..ir import Network

TOKEN_ID_BITS = 32


def split_blocks(layers: int, chips: int) -> list[range]:
    """`layers` blocks over at most `chips` stages, contiguous, sizes differing by at most one."""
    stages = max(1, min(chips, layers))
    base, extra = divmod(layers, stages)
    out, start = [], 0
    for s in range(stages):
        size = base + (1 if s < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def stage_network(card: DecoderCard, phase: DecoderPhase, blocks: range, last: bool, mac_based: bool,
                  shards: int = 1) -> Network:
    """One chip's share of a phase: its stage's blocks (of one of `shards` chips when rows are split). Its
    blocks are numbered from 0 (block names are local to the stage), so stages with the same number of
    blocks are the same network and are priced once."""
    return decoder_network(card, phase, range(len(blocks)), head=last, mac_based=mac_based, shards=shards)


@dataclass
class LinkTraffic:
    """Bits one phase moves over chip-to-chip links, and the time and energy they take."""

    bits: float
    hop_bits: float      # bits x links crossed (what is priced per bit)
    seconds: float
    energy_pj: float


def link_traffic(card: DecoderCard, phase: DecoderPhase, stages: int, arch: ArchConfig, shards: int = 1,
                 head: bool = True) -> LinkTraffic:
    """What one phase sends between chips: the residual stream into every chip of the next stage; with rows
    split over `shards` chips, a ring all-reduce of each block's two partial sums (after the out projection
    and after down: each chip sends 2 (k - 1) / k of the stream) and each chip's best logit and its index
    (64 bits a sequence) to one chip; the sampled token ids back to the first chip."""
    links = arch.chips
    if links is None or stages * shards == 1:
        return LinkTraffic(0.0, 0.0, 0.0, 0.0)
    stream = phase.batch * phase.query_tokens * card.hidden * arch.precision.activation_bits
    forward = (stages - 1) * shards * stream
    per_chip = 2 * (shards - 1) / shards * stream          # one ring all-reduce, sent by each chip
    allreduce = 2 * card.layers * shards * per_chip
    top1 = (shards - 1) * phase.batch * 64 if head else 0.0
    back = phase.batch * TOKEN_ID_BITS if head else 0.0
    hop_bits = forward + allreduce + top1 + back * links.hops_back()
    # one batch in flight: transfers happen one after another; the chips of a stage send in parallel
    seconds = (forward / shards + 2 * card.layers * per_chip + top1 + back * links.hops_back()) / 8 \
        / links.link_bytes_per_s
    return LinkTraffic(forward + allreduce + top1 + back, hop_bits, seconds, hop_bits * links.link_pj_per_bit)
