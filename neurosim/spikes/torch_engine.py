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
from types import SimpleNamespace

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
def _fire_loop(cur, scale, bias, leak, vth, decay, v_reset: float, flags: int, levels: int):
    """cur (T, n, L) float32 -> spike values (T, n, L) uint8: kernels.fire per step (I = cur * scale + bias)."""
    import torch

    hard, first = bool(flags & kernels.HARD_RESET), bool(flags & kernels.RESET_FIRST)
    strict, synaptic = bool(flags & kernels.STRICT), bool(flags & kernels.SYNAPTIC)
    out = torch.empty(cur.shape, dtype=torch.uint8, device=cur.device)
    u = torch.zeros(cur.shape[1:], dtype=torch.float32, device=cur.device)
    s, syn = torch.zeros_like(u), torch.zeros_like(u)
    for t in range(cur.shape[0]):
        x = cur[t] * scale + bias
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


def fire_steps(cur, scale, bias, leak, vth, decay, v_reset: float, flags: int, levels: int):
    """The neuron over all steps: the fused Triton kernel on CUDA (no FMA contraction, so the float32
    operations are kernels.fire's), the loop of torch operations elsewhere."""
    if cur.is_cuda:
        try:
            from .triton_fire import fire_all_steps
        except ImportError:   # a CUDA torch without Triton: the loop below
            pass
        else:
            return fire_all_steps(cur, scale, bias, leak, vth, decay, v_reset, flags, levels)
    return _fire_loop(cur, scale, bias, leak, vth, decay, v_reset, flags, levels)


# -- one layer over all its steps --------------------------------------------------------------------
class _Backend:
    """Per run: the device, each layer's arrays there, every layer's output over its steps, and the counts
    still on the device. Everything the layers need is copied over before the first layer runs and every
    count is read back after the last, so the layers queue on the GPU without waiting for each other."""

    def __init__(self, device: str):
        import torch

        self.torch, self.dev = torch, torch.device(device)
        self.outputs: dict[str, object] = {}   # name -> (steps, n, width) uint8 spikes or float32
        self.low_dtype = torch.bfloat16 if self.dev.type == "cuda" else torch.float32
        self.on: dict[str, SimpleNamespace] = {}   # layer name -> its arrays on the device
        self.pending: list = []                    # (numpy array or setter, device tensor): read back at the end

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

    def prepare(self, s) -> None:
        """Copy what the layer's step needs to the device, before any layer runs."""
        torch, f64 = self.torch, self.torch.float64
        d = SimpleNamespace(scale=self.tensor(s.scale), bias=self.tensor(s.bias), fans=[],
                            live=self.tensor(s.live_idx) if len(s.live_idx) < s.layer.out_features else None)
        if s.kind == "linear":
            d.w = self.weight(s, torch.float32)
            d.wl = self.weight(s, self.low_dtype) if s.layer.weight_bits <= lowbit.LOW_BITS else None
            d.fans = [self.tensor(s.nonzero_fan_out, f64)]
        elif s.kind == "attention":
            d.cols = self.tensor((s.heads[:, None] * s.head_dim + np.arange(s.head_dim)).ravel())
        else:
            win = s.windows
            d.fans = [self.tensor(win.fan_out, f64), self.tensor(win.effective, f64)]
            d.channels = self.tensor(win.live_channels)
            if s.kind == "conv2d":
                d.w = self.tensor(np.asarray(s.layer.weights, np.float32)[win.live_channels])
        if s.norm is not None:
            d.norm = (self.tensor(s.norm[0]), self.tensor(s.norm[1]), float(s.norm[2]))
        if s.spiking:
            nr = s.neuron
            d.leak, d.vth, d.decay = self.tensor(nr.leak), self.tensor(nr.vth), self.tensor(nr.decay)
        self.on[s.name] = d

    def later(self, target, tensor) -> None:
        """target[:] = tensor once the run is done (target: a numpy array, or a function of the value)."""
        self.pending.append((target, tensor))

    def read_back(self) -> None:
        """Every pending value in one copy per dtype (each copy from the GPU waits for it: one wait, not
        one per layer and counter)."""
        torch = self.torch
        by_dtype: dict = {}
        for target, tensor in self.pending:
            by_dtype.setdefault(tensor.dtype, []).append((target, tensor))
        for items in by_dtype.values():
            flat = torch.cat([t.reshape(-1) for _, t in items])
            if flat.is_cuda:   # into page-locked memory: a copy at the bus's speed (pageable: 11 ms on an H200)
                flat = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True).copy_(flat)
            flat = flat.cpu().numpy()
            start = 0
            for target, tensor in items:
                value = flat[start:start + tensor.numel()].reshape(tuple(tensor.shape))
                start += tensor.numel()
                if callable(target):
                    target(value)
                else:
                    target[:] = value

    def source(self, name: str, steps: int):
        """A source's outputs for the reader's `steps` steps: its first ones, silence after its last."""
        x = self.outputs[name]
        if x.dim() == 2 or x.shape[0] == steps:   # a held input current, or the same length
            return x
        if x.shape[0] > steps:
            return x[:steps]
        pad = self.torch.zeros((steps - x.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
        return self.torch.cat([x, pad])

    def count_events(self, s, x, acs_per_event=None):
        """Spikes (T, n, in): the input events (per step), and ACs and effective ACs per step through the
        layer's fan-outs, or `acs_per_event` ACs each (events x live fan-out, as the CPU engine)."""
        d = self.on[s.name]
        per_input = (x != 0).sum(dim=1, dtype=self.torch.float64)           # (T, in), exact
        events = per_input.sum(dim=1).round().long()

        def add_events(v, src=s.sources[0]):
            s.input_events[src] += int(v.sum())
        self.later(add_events, events)
        if s.compute != "ac":
            return
        if acs_per_event is not None:
            self.later(s.acs_per_step, events * acs_per_event)
        else:
            self.later(s.acs_per_step, (per_input @ d.fans[0]).round().long())
        self.later(s.effective_acs_per_step, (per_input @ d.fans[-1]).round().long())

    # layer kinds -------------------------------------------------------------------------------
    def linear(self, s, x):
        torch, T, (n, L), d = self.torch, s.steps, s.shape, self.on[s.name]
        if x.dim() == 2:   # the network's input current: one product, held (as the CPU engine)
            s.macs += n * s.live_in * L
            return (x @ d.w).expand(T, n, L)
        if x.dtype == torch.uint8:
            self.count_events(s, x, acs_per_event=L)
            if s.compute != "ac":
                s.macs += T * n * s.live_in * L
            if d.wl is not None:   # integer codes: exact in bfloat16 on CUDA, sums in float32
                return (x.reshape(T * n, -1).to(self.low_dtype) @ d.wl).float().reshape(T, n, L)
            return (x.reshape(T * n, -1).to(torch.float32) @ d.w).reshape(T, n, L)
        if s.compute == "mac":
            s.macs += T * n * s.live_in * L
        return (x.reshape(T * n, -1) @ d.w).reshape(T, n, L)

    def window(self, s, x):
        """conv2d / pool2d over all steps: torch's convolution of the events (padding adds nothing)."""
        torch, T, (n, L), d = self.torch, s.steps, s.shape, self.on[s.name]
        c, conv = s.layer.spec, s.kind == "conv2d"
        shape = (c.in_channels if conv else c.channels, c.in_height, c.in_width)
        held = x.dim() == 2   # the network's input current, the same every step
        if held:
            x = x.expand(T, n, x.shape[1])
        if x.dtype == torch.uint8:
            self.count_events(s, x)
            if s.compute != "ac":
                s.macs += T * s.dense_macs
        else:
            s.macs += s.dense_macs if held else T * s.dense_macs
        img = x.reshape((T * n,) + shape).to(torch.float32)
        if conv:
            y = torch.nn.functional.conv2d(img, d.w, stride=c.stride, padding=c.padding)
        else:
            lc = len(d.channels)
            w = torch.full((lc, 1, c.kernel, c.kernel), float(np.float32(c.scale)), device=self.dev)
            y = torch.nn.functional.conv2d(img[:, d.channels], w, stride=c.stride, padding=c.padding, groups=lc)
        return y.reshape(T, n, L)

    def attention(self, s, q, k, v):
        torch, T, n, cols = self.torch, s.steps, s.n, self.on[s.name].cols
        H, hd = len(s.heads), s.head_dim
        if H == 0:
            return torch.zeros((T, n, 0), device=self.dev)

        def heads(a):  # (T, n, features) -> (T, H, n, hd) of the live heads
            return a[..., cols].to(torch.float32).reshape(T, n, H, hd).transpose(1, 2)
        scores = heads(q) @ (heads(k) * np.float32(1.0 / math.sqrt(hd))).transpose(2, 3)
        out = torch.softmax(scores, dim=-1) @ heads(v)
        v_events = (v[..., cols] != 0).sum(dim=(1, 2))

        def add(value, src):
            s.input_events[src] += int(value.sum())
        self.later(lambda value: add(value, s.sources[1]), (k[..., cols] != 0).sum())
        self.later(lambda value: add(value, s.sources[2]), v_events)
        self.later(s.acs_per_step, v_events * n)
        self.later(s.effective_acs_per_step, v_events * n)   # softmax weights are never 0
        s.macs += T * H * n * n * hd
        s.other_ops += T * H * n * n * SOFTMAX_OPS_PER_SCORE
        return out.transpose(1, 2).reshape(T, n, H * hd)

    def residual_and_norm(self, s, cur, residual):
        """As LayerState._residual_and_norm, over all steps: cur * scale + bias + residual, then LayerNorm."""
        d = self.on[s.name]
        cur = cur * d.scale + d.bias
        if residual is not None:
            if residual.shape[-1] != cur.shape[-1]:
                residual = residual[..., d.live]
            cur = cur + residual.to(self.torch.float32)
        if s.norm is not None:
            w, b, eps = d.norm
            cur = cur - cur.mean(dim=-1, keepdim=True)
            var = (cur * cur).mean(dim=-1, keepdim=True)
            cur = cur / self.torch.sqrt(var + eps) * w + b
        return cur

    # the whole layer ---------------------------------------------------------------------------------
    def layer(self, s, record: bool):
        torch, d = self.torch, self.on[s.name]
        arrays = [self.source(src, s.steps) for src in s.sources]
        if s.seen is not None:
            for src, x in zip(s.sources, arrays):
                if x.dtype == torch.uint8:
                    s.seen[src] = np.zeros(tuple(x.shape), np.uint8)
                    self.later(s.seen[src], x)
        if s.kind == "linear":
            cur = self.linear(s, arrays[0])
        elif s.kind == "attention":
            cur = self.attention(s, *arrays[:3])
        else:
            cur = self.window(s, arrays[0])
        T, (n, L), m = s.steps, s.shape, s.layer.out_features
        scale, bias = d.scale, d.bias   # applied with the neuron's step (kernels.fire), or below
        if s.unit is not None:
            cur = self.residual_and_norm(s, cur, arrays[-1] if s.residual else None)
            scale, bias = torch.ones_like(scale), torch.zeros_like(bias)
        if s.layernorm:
            s.other_ops += T * n * L * LAYERNORM_OPS_PER_ELEMENT
        if not s.spiking:
            cur = cur * scale + bias
            self.outputs[s.name] = cur.contiguous() if d.live is None else \
                torch.zeros((T, n, m), device=self.dev).index_copy_(2, d.live, cur.contiguous())
            return
        nr = s.neuron
        spk = fire_steps(cur.contiguous(), scale, bias, d.leak, d.vth, d.decay, float(nr.v_reset), nr.flags,
                         nr.levels)
        fired = spk != 0
        self.later(s.spikes_per_step, fired.sum(dim=(1, 2)))
        self.later(s.totals, fired.sum(dim=0, dtype=torch.int32))
        if s.levels > 1:
            self.later(s.values, spk.sum(dim=0, dtype=torch.int32))
        s.neuron_updates += T * n * L
        out = spk if d.live is None else \
            torch.zeros((T, n, m), dtype=torch.uint8, device=self.dev).index_copy_(2, d.live, spk)
        self.outputs[s.name] = out
        if record:
            self.later(s.raster, out)


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
        if inp.spikes is not None:   # given spikes: as they are (no copy of each step)
            x = inp.spikes[:in_steps]
        else:
            x = np.stack([inp.step(t).copy() for t in range(in_steps)]) if in_steps else \
                np.zeros((0, inp.n, inp.size), np.uint8)
        raster = x.copy() if record else None
        b.outputs[INPUT] = b.tensor(x)
        b.later(input_events, (b.outputs[INPUT] != 0).sum(dim=(1, 2)))
    last_reader = {src: i for i, s in enumerate(states) for src in s.sources}
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    try:
        with torch.no_grad():
            for s in states:
                b.prepare(s)
            for i, s in enumerate(states):
                b.layer(s, record)
                for src in [k for k, j in last_reader.items() if j == i]:
                    b.outputs.pop(src, None)   # read by no later layer
            b.read_back()
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction) = flags
    return input_events, raster
