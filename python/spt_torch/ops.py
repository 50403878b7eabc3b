"""spt's sparse attention as a differentiable PyTorch op.

The kernels are spt's own, registered from C++ as torch.ops.spt.attention_forward /
attention_backward (csrc/ops.cpp): the CPU oracle (spt::cpu) for CPU float32 tensors, the
CUDA entry points (spt::cuda, whose selector picks the kernels) for CUDA tensors. This file
adds the autograd formula (the backward op, that is spt's backward kernels) and, where
PyTorch has the torch.library API (>= 2.4), the fake kernels that let torch.compile trace
the op without graph breaks. On older PyTorch (Debian's 1.13) the same formula runs through
torch.autograd.Function; torch.compile does not exist there.
"""
import math

import torch

PATTERNS = ("dense", "local", "strided", "fixed")
MODES = ("merged", "interleaved", "heads")

# torch.library.register_fake / register_autograd: PyTorch 2.4 and later.
HAS_LIBRARY_API = hasattr(torch.library, "register_fake") and hasattr(torch.library, "register_autograd")


def _packed(t):
    """(B, H, T, D) over packed (B, T, H, D) memory, the layout the backward reads dout in."""
    return t.transpose(1, 2).contiguous().transpose(1, 2)


def _backward(q, k, v, out, lse, args, grad_out):
    return torch.ops.spt.attention_backward(_packed(grad_out), q, k, v, out, lse, *args)


def _check_arguments(q, pattern, mode, scale, **integers):
    if not isinstance(q, torch.Tensor):
        raise TypeError(f"spt_torch: q must be a torch.Tensor, got {type(q).__name__}")
    if not isinstance(pattern, str) or pattern not in PATTERNS:
        raise ValueError(f"spt_torch: unknown pattern {pattern!r}: use one of {', '.join(PATTERNS)}")
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"spt_torch: unknown mode {mode!r}: use one of {', '.join(MODES)}")
    for name, value in integers.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"spt_torch: {name} must be an int, got {value!r}")
    if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"spt_torch: scale {scale!r} must be a positive finite number (or None: 1 / sqrt(D))")


if HAS_LIBRARY_API:
    @torch.library.register_fake("spt::attention_forward")
    def _forward_fake(q, k, v, pattern, stride, summary, summary_blocks, mode, layer, deterministic):
        B, H, T, _ = q.shape
        D = v.shape[-1]
        out = torch.empty_strided((B, H, T, D), (T * H * D, D, H * D, 1), dtype=v.dtype, device=v.device)
        return out, q.new_empty((B, H, T), dtype=torch.float32)

    @torch.library.register_fake("spt::attention_backward")
    def _backward_fake(dout, q, k, v, out, lse, pattern, stride, summary, summary_blocks, mode, layer,
                       deterministic):
        return (torch.empty_strided(q.shape, q.stride(), dtype=q.dtype, device=q.device),
                torch.empty_strided(k.shape, k.stride(), dtype=k.dtype, device=k.device),
                torch.empty_strided(v.shape, v.stride(), dtype=v.dtype, device=v.device))

    def _setup_context(ctx, inputs, output):
        q, k, v = inputs[:3]
        ctx.args = tuple(inputs[3:])
        ctx.save_for_backward(q, k, v, output[0], output[1])

    def _autograd_backward(ctx, grad_out, grad_lse):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, out, lse, ctx.args, grad_out)
        return (dq, dk, dv) + (None,) * len(ctx.args)

    torch.library.register_autograd("spt::attention_forward", _autograd_backward, setup_context=_setup_context)

    def _attention(q, k, v, args):
        return torch.ops.spt.attention_forward(q, k, v, *args)
else:
    class _Attention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, *args):
            out, lse = torch.ops.spt.attention_forward(q, k, v, *args)
            ctx.args = args
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.mark_non_differentiable(lse)
            return out, lse

        @staticmethod
        def backward(ctx, grad_out, grad_lse):
            q, k, v, out, lse = ctx.saved_tensors
            dq, dk, dv = _backward(q, k, v, out, lse, ctx.args, grad_out)
            return (dq, dk, dv) + (None,) * len(ctx.args)

    def _attention(q, k, v, args):
        return _Attention.apply(q, k, v, *args)


def sparse_attention(q, k, v, pattern, stride, summary=32, summary_blocks=1, mode="merged", layer=0, scale=None,
                     return_lse=False, deterministic=False):
    """Causal attention over one of spt's factorized patterns (Child et al. 2019).

    q, k: (B, H, T, Dk); v: (B, H, T, Dv), as torch.nn.functional.scaled_dot_product_attention
    takes them, over (B, T, H, D) memory: what x.view(B, T, H, D).transpose(1, 2) gives, also
    for slices of a fused (B, T, 3C) projection. Other layouts are refused, not copied.
    pattern: dense | local | strided | fixed; stride l; summary c and summary_blocks v (fixed);
    mode: merged | interleaved | heads, with `layer` choosing the part in interleaved mode.
    scale: score scale, default 1 / sqrt(Dk) (another value scales q before the op).
    Returns out (B, H, T, Dv), and with return_lse the log-sum-exp (B, H, T) float32 of each
    query's scaled scores (natural log; -inf for a query with no allowed key), detached.
    deterministic: on CUDA, a backward that repeats bit for bit (spt's deterministic dQ).
    CPU: float32. CUDA: bfloat16 / float16 (fast kernels at Dk = Dv in 32, 64, 128), float32.
    """
    _check_arguments(q, pattern, mode, scale, stride=stride, summary=summary, summary_blocks=summary_blocks,
                     layer=layer)
    if scale is not None and q.dim() == 4:
        q = q * (scale * math.sqrt(q.shape[-1]))
    args = (pattern, stride, summary, summary_blocks, mode, layer, bool(deterministic))
    out, lse = _attention(q, k, v, args)
    return (out, lse.detach()) if return_lse else out


def attention_path(q, k, v, pattern, stride, summary=32, summary_blocks=1, mode="merged", layer=0):
    """Which of spt's kernels a call with these arguments runs on: "cpu", or on CUDA "fast"
    (pattern-specific tensor-core kernels), "tensor-core" (block layout) or "simt"."""
    _check_arguments(q, pattern, mode, None, stride=stride, summary=summary, summary_blocks=summary_blocks,
                     layer=layer)
    return torch.ops.spt.attention_path(q, k, v, pattern, stride, summary, summary_blocks, mode, layer)
