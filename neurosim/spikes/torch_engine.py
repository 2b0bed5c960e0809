"""The spike engine on torch: `run(net, ..., device="cuda")`, or device="cpu" (the same code, for tests).

In the lockstep and history handoffs a layer's step t reads only its own
state and its sources' step-t outputs (handoff.py), so the layers can run one
after another, each over all its steps at once (SpikingJelly's multi-step
mode): one product of every step's input with the weights (one large GEMM
instead of T small ones), then the neuron recurrence over the steps: on CUDA
one fused Triton kernel per layer (triton_fire.py), elsewhere a loop of torch
operations. It fills the CPU engine's per-layer states (engine.LayerState:
the same live outputs, weights, low-bit codes and scales, fan-outs and
neurons), so every count is made as there: ACs = input events x live fan-out
per step, effective ACs through the same nonzero fan-outs, MACs, softmax and
LayerNorm ops, and the trace is the same `SpikeTrace`.

Exactness: with integer-valued weights, inputs and biases (and leaks and
thresholds that keep the membranes integers, or dyadic) every sum is exact in
float32 in any order, so spike trains and counts equal the CPU engine's. With
other weights the GEMMs and the attention add in another order than the
event-driven kernels: membranes differ by float32 rounding (about 1e-7 of
the current) and a neuron that close to its threshold can flip. Low-bit
layers multiply their integer codes in bfloat16 on CUDA (codes up to 127 and
spike values up to 255 are exact in bfloat16, sums in float32): exact, at the
tensor cores' speed. TF32 and reduced-precision reductions are switched off
during a run.

Refused in one line: the stochastic handoff and recurrent layers (both step
by step by nature; the CPU engine runs them), and a CUDA device where torch
sees none.
"""

from __future__ import annotations

import math

import numpy as np

from ..cost.analytic import LAYERNORM_OPS_PER_ELEMENT, SOFTMAX_OPS_PER_SCORE
from ..errors import NeurosimError
from ..ir import Network
from . import kernels, lowbit
from .handoff import INPUT


def check_device(net: Network, handoff: str, device: str) -> None:
    """Refuse, in one line, what the torch backend cannot run, before any work."""
    import torch

    where = "spikes.run"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise NeurosimError(where, "device", f"{device!r} is not a torch device ({err})",
                            "give 'cuda', 'cuda:N' or 'cpu', or leave it out for the CPU engine") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NeurosimError(where, "device", f"{device!r} asked for, but torch sees no CUDA GPU here",
                            "run without --device (the CPU engine), or on a machine with a GPU and a CUDA torch")
    if handoff == "stochastic":
        raise NeurosimError(where, "handoff", "the stochastic handoff regenerates spikes step by step; the torch "
                            "backend runs lockstep and history", "run it on the CPU engine (no device)")
    rec = [layer.name for layer in net.layers if layer.recurrent is not None]
    if rec:
        raise NeurosimError(f"layer '{rec[0]}'", "recurrent", "a recurrent layer feeds its own spikes back step by "
                            "step; the torch backend runs layers over all steps at once",
                            "run it on the CPU engine (no device)")


# -- the neuron over all steps ---------------------------------------------------------------------
def _fire_loop(cur, leak, vth, decay, v_reset: float, flags: int, levels: int):
    """cur (T, n, L) float32 (scale and bias applied) -> spike values (T, n, L) uint8: kernels.fire per step."""
    import torch

    hard, first = bool(flags & kernels.HARD_RESET), bool(flags & kernels.RESET_FIRST)
    strict, synaptic = bool(flags & kernels.STRICT), bool(flags & kernels.SYNAPTIC)
    out = torch.empty(cur.shape, dtype=torch.uint8, device=cur.device)
    u = torch.zeros(cur.shape[1:], dtype=torch.float32, device=cur.device)
    s, syn = torch.zeros_like(u), torch.zeros_like(u)
    for t in range(cur.shape[0]):
        x = cur[t]
        if synaptic:
            syn = decay * syn + x
            x = syn
        fired = s != 0
        reset = torch.full_like(u, v_reset) if hard else None
        if first:
            u = torch.where(fired, reset if hard else u - s * vth, u)
            u = leak * u + x
        else:
            u = leak * u + x
            u = torch.where(fired, reset if hard else u - s * vth, u)
        up = u > vth if strict else u >= vth
        if levels > 1:
            q = u / vth
            k = torch.ceil(q) - 1 if strict else torch.floor(q)
            s = torch.where(up, torch.clamp(k, max=levels), torch.zeros_like(u))
        else:
            s = up.to(torch.float32)
        out[t] = s.to(torch.uint8)
    return out


def fire_steps(cur, leak, vth, decay, v_reset: float, flags: int, levels: int):
    """The neuron over all steps: the fused Triton kernel on CUDA (no FMA contraction, so the float32
    operations are kernels.fire's), the loop of torch operations elsewhere."""
    if cur.is_cuda:
        try:
            from .triton_fire import fire_all_steps
        except ImportError:   # a CUDA torch without Triton: the loop below
            pass
        else:
            return fire_all_steps(cur, leak, vth, decay, v_reset, flags, levels)
    return _fire_loop(cur, leak, vth, decay, v_reset, flags, levels)


# -- one layer over all its steps --------------------------------------------------------------------
class _Backend:
    """Per run: the device, the states' tensors there, and every layer's output over its steps."""

    def __init__(self, device: str):
        import torch

        self.torch, self.dev = torch, torch.device(device)
        self.outputs: dict[str, object] = {}   # name -> (steps, n, width) uint8 spikes or float32
        self.low_dtype = torch.bfloat16 if self.dev.type == "cuda" else torch.float32

    def tensor(self, a, dtype=None):
        t = self.torch.from_numpy(np.ascontiguousarray(a)).to(self.dev)
        return t if dtype is None else t.to(dtype)

    def weight(self, s, dtype):
        """The layer's (in, L) weights or codes on the device; kept there between runs while the IR's
        weights array lives (a model loaded once), when every output is live."""
        if len(s.live_idx) != s.layer.out_features:
            return self.tensor(s.wt, dtype)
        key = ("device", str(dtype), str(self.dev), s.layer.weight_bits)
        return lowbit.once_per_array(s.layer.weights, key, lambda: self.tensor(s.wt, dtype))

    def source(self, name: str, steps: int):
        """A source's outputs for the reader's `steps` steps: its first ones, silence after its last."""
        x = self.outputs[name]
        if x.dim() == 2 or x.shape[0] == steps:   # a held input current, or the same length
            return x
        if x.shape[0] > steps:
            return x[:steps]
        pad = self.torch.zeros((steps - x.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
        return self.torch.cat([x, pad])

    def events(self, x, fan_outs):
        """Spikes (T, n, in) -> events per step and, per fan-out vector (in,), the sum over events, per step."""
        per_input = (x != 0).sum(dim=1, dtype=self.torch.float64)           # (T, in), exact
        sums = [(per_input @ self.tensor(f, self.torch.float64)).round().long().cpu().numpy() for f in fan_outs]
        return per_input.sum(dim=1).round().long().cpu().numpy(), sums

    # layer kinds -------------------------------------------------------------------------------
    def linear(self, s, x):
        torch, T, (n, L) = self.torch, s.steps, s.shape
        w = self.weight(s, torch.float32)
        if x.dim() == 2:   # the network's input current: one product, held (as the CPU engine)
            s.macs += n * s.live_in * L
            return (x @ w).expand(T, n, L)
        if x.dtype == torch.uint8:
            events, (eff,) = self.events(x, [s.nonzero_fan_out])
            s.input_events[s.sources[0]] += int(events.sum())
            if s.compute == "ac":
                s.acs_per_step[:] = events * L
                s.effective_acs_per_step[:] = eff
            else:
                s.macs += T * n * s.live_in * L
            if s.layer.weight_bits <= 8:   # integer codes: exact in bfloat16 on CUDA, sums in float32
                wl = self.weight(s, self.low_dtype)
                return (x.reshape(T * n, -1).to(self.low_dtype) @ wl).float().reshape(T, n, L)
            return (x.reshape(T * n, -1).to(torch.float32) @ w).reshape(T, n, L)
        if s.compute == "mac":
            s.macs += T * n * s.live_in * L
        return (x.reshape(T * n, -1) @ w).reshape(T, n, L)

    def window(self, s, x):
        """conv2d / pool2d over all steps: torch's convolution of the events (padding adds nothing)."""
        torch, T, (n, L) = self.torch, s.steps, s.shape
        F = torch.nn.functional
        c, win = s.layer.spec, s.windows
        conv = s.layer.kind == "conv2d"
        shape = (c.in_channels if conv else c.channels, c.in_height, c.in_width)
        if x.dim() == 2:
            x = x.expand(T, n, x.shape[1])
            held = True
        else:
            held = False
        if x.dtype == torch.uint8:
            events, (acs, eff) = self.events(x, [win.fan_out, win.effective])
            s.input_events[s.sources[0]] += int(events.sum())
            if s.compute == "ac":
                s.acs_per_step[:], s.effective_acs_per_step[:] = acs, eff
            else:
                s.macs += T * s.dense_macs
        else:
            s.macs += s.dense_macs if held else T * s.dense_macs
        img = x.reshape((T * n,) + shape).to(torch.float32)
        lc = torch.as_tensor(win.live_channels, device=self.dev)
        if conv:
            w = self.tensor(np.asarray(s.layer.weights, np.float32)[win.live_channels])
            y = F.conv2d(img, w, stride=c.stride, padding=c.padding)
        else:
            img = img[:, lc]
            w = torch.full((len(win.live_channels), 1, c.kernel, c.kernel), float(np.float32(c.scale)),
                           device=self.dev)
            y = F.conv2d(img, w, stride=c.stride, padding=c.padding, groups=len(win.live_channels))
        return y.reshape(T, n, L)

    def attention(self, s, q, k, v):
        torch, T, n = self.torch, s.steps, s.n
        H, hd = len(s.heads), s.head_dim
        if H == 0:
            return torch.zeros((T, n, 0), device=self.dev)
        cols = torch.as_tensor((s.heads[:, None] * hd + np.arange(hd)).ravel(), device=self.dev)

        def heads(a):  # (T, n, features) -> (T, H, n, hd) of the live heads
            return a[..., cols].to(torch.float32).reshape(T, n, H, hd).transpose(1, 2)
        scores = heads(q) @ (heads(k) * np.float32(1.0 / math.sqrt(hd))).transpose(2, 3)
        out = torch.softmax(scores, dim=-1) @ heads(v)
        v_events = (v[..., cols] != 0).sum(dim=(1, 2)).cpu().numpy().astype(np.int64)
        s.input_events[s.sources[1]] += int((k[..., cols] != 0).sum())
        s.input_events[s.sources[2]] += int(v_events.sum())
        s.acs_per_step[:] = v_events * n
        s.effective_acs_per_step[:] = v_events * n
        s.macs += T * H * n * n * hd
        s.other_ops += T * H * n * n * SOFTMAX_OPS_PER_SCORE
        return out.transpose(1, 2).reshape(T, n, H * hd)

    def residual_and_norm(self, s, cur, residual):
        """As LayerState._residual_and_norm, over all steps: cur * scale + bias + residual, then LayerNorm."""
        torch = self.torch
        cur = cur * self.tensor(s.scale) + self.tensor(s.bias)
        if residual is not None:
            if residual.shape[-1] != cur.shape[-1]:
                residual = residual[..., torch.as_tensor(s.live_idx, device=self.dev)]
            cur = cur + residual.to(torch.float32)
        if s.norm is not None:
            w, b, eps = s.norm
            cur = cur - cur.mean(dim=-1, keepdim=True)
            var = (cur * cur).mean(dim=-1, keepdim=True)
            cur = cur / torch.sqrt(var + float(eps)) * self.tensor(w) + self.tensor(b)
        return cur

    # the whole layer ---------------------------------------------------------------------------------
    def layer(self, s, record: bool):
        torch = self.torch
        arrays = [self.source(src, s.steps) for src in s.sources]
        if s.seen is not None:
            for src, x in zip(s.sources, arrays):
                if x.dtype == torch.uint8:
                    s.seen[src] = x.cpu().numpy()
        if s.kind == "linear":
            cur = self.linear(s, arrays[0])
        elif s.kind == "attention":
            cur = self.attention(s, *arrays[:3])
        else:
            cur = self.window(s, arrays[0])
        T, (n, L) = s.steps, s.shape
        if s.unit is not None:
            cur = self.residual_and_norm(s, cur, arrays[-1] if s.residual else None)
        else:
            cur = cur * self.tensor(s.scale) + self.tensor(s.bias)
        if s.layernorm:
            s.other_ops += T * n * L * LAYERNORM_OPS_PER_ELEMENT
        m = s.layer.out_features
        live = torch.as_tensor(s.live_idx, device=self.dev) if L < m else None
        if not s.spiking:
            out = cur.contiguous() if live is None else \
                torch.zeros((T, n, m), device=self.dev).index_copy_(2, live, cur.contiguous())
            self.outputs[s.name] = out
            return
        nr = s.neuron
        spk = fire_steps(cur.contiguous(), self.tensor(nr.leak), self.tensor(nr.vth), self.tensor(nr.decay),
                         float(nr.v_reset), nr.flags, nr.levels)
        fired = spk != 0
        s.spikes_per_step[:] = fired.sum(dim=(1, 2)).cpu().numpy()
        s.totals[:] = fired.sum(dim=0, dtype=torch.int32).cpu().numpy()
        if s.levels > 1:
            s.values[:] = spk.sum(dim=0, dtype=torch.int32).cpu().numpy()
        s.neuron_updates += T * n * L
        out = spk if live is None else torch.zeros((T, n, m), dtype=torch.uint8, device=self.dev).index_copy_(
            2, live, spk)
        self.outputs[s.name] = out
        if record:
            s.raster[:] = out.cpu().numpy()


def run_multistep(states: list, inp, in_steps: int, device: str, record: bool):
    """Run the prepared layer states (engine.LayerState) on `device`, layer after layer, each over its steps.

    Fills each state's counters as the CPU engine does; returns (input events per step, input raster or None).
    """
    import torch

    b = _Backend(device)
    input_events = np.zeros(in_steps, np.int64)
    raster = None
    if inp.current is not None:
        b.outputs[INPUT] = b.tensor(inp.current, torch.float32)
    else:
        x = np.stack([inp.step(t).copy() for t in range(in_steps)]) if in_steps else \
            np.zeros((0, inp.n, inp.size), np.uint8)
        input_events[:] = np.count_nonzero(x.reshape(in_steps, -1), axis=1)
        raster = x if record else None
        b.outputs[INPUT] = b.tensor(x)
    last_reader = {src: i for i, s in enumerate(states) for src in s.sources}
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    try:
        with torch.no_grad():
            for i, s in enumerate(states):
                b.layer(s, record)
                for src in [k for k, j in last_reader.items() if j == i]:
                    b.outputs.pop(src, None)   # read by no later layer
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction) = flags
    return input_events, raster
