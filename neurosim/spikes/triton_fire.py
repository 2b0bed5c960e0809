"""The neuron over all steps as one Triton kernel per layer (CUDA): torch_engine.fire_steps on a GPU.

One program holds BLOCK (token, output) neurons in registers and runs them
through every step: reads the step's current, writes the step's spike value,
and nothing else, where the torch loop launches several kernels per step.
The float32 operations are kernels.fire's, in its order, compiled without FMA
contraction (enable_fp_fusion=False), so a membrane is rounded as there.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import kernels

BLOCK = 512


@triton.jit
def _fire_kernel(cur, scale, bias, leak, vth, decay, out, N, L, T, v_reset, HARD: tl.constexpr, FIRST: tl.constexpr,
                 STRICT: tl.constexpr, SYNAPTIC: tl.constexpr, LEVELS: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    o = offs % L
    sc = tl.load(scale + o, mask=mask, other=1.0)
    bi = tl.load(bias + o, mask=mask, other=0.0)
    lk = tl.load(leak + o, mask=mask, other=1.0)
    th = tl.load(vth + o, mask=mask, other=1.0)
    if SYNAPTIC:   # decay holds one value per output only for a synaptic neuron
        dc = tl.load(decay + o, mask=mask, other=0.0)
    else:
        dc = tl.zeros([BLOCK], tl.float32)
    u = tl.zeros([BLOCK], tl.float32)
    s = tl.zeros([BLOCK], tl.float32)
    syn = tl.zeros([BLOCK], tl.float32)
    for t in range(T):
        x = tl.load(cur + t * N + offs, mask=mask, other=0.0) * sc + bi
        if SYNAPTIC:
            syn = dc * syn + x
            x = syn
        if FIRST:
            if HARD:
                u = tl.where(s != 0, v_reset, u)
            else:
                u = tl.where(s != 0, u - s * th, u)
            u = lk * u + x
        else:
            u = lk * u + x
            if HARD:
                u = tl.where(s != 0, v_reset, u)
            else:
                u = tl.where(s != 0, u - s * th, u)
        if STRICT:
            up = u > th
        else:
            up = u >= th
        if LEVELS > 1:
            q = u / th
            if STRICT:
                k = tl.math.ceil(q) - 1.0
            else:
                k = tl.math.floor(q)
            s = tl.where(up, tl.minimum(k, LEVELS * 1.0), 0.0)
        else:
            s = tl.where(up, 1.0, 0.0)
        tl.store(out + t * N + offs, s.to(tl.uint8), mask=mask)


def fire_all_steps(cur, scale, bias, leak, vth, decay, v_reset: float, flags: int, levels: int):
    """cur (T, n, L) float32 on the GPU -> spike values (T, n, L) uint8, I = cur * scale + bias per output."""
    T, n, L = cur.shape
    out = torch.empty(cur.shape, dtype=torch.uint8, device=cur.device)
    N = n * L
    if N == 0 or T == 0:
        return out
    _fire_kernel[(triton.cdiv(N, BLOCK),)](
        cur.contiguous(), scale.contiguous(), bias.contiguous(), leak.contiguous(), vth.contiguous(),
        decay.contiguous(), out, N, L, T, float(v_reset),
        HARD=bool(flags & kernels.HARD_RESET), FIRST=bool(flags & kernels.RESET_FIRST),
        STRICT=bool(flags & kernels.STRICT), SYNAPTIC=bool(flags & kernels.SYNAPTIC), LEVELS=int(levels),
        BLOCK=BLOCK, enable_fp_fusion=False)
    return out
