#!/usr/bin/python3
"""spt_torch.sparse_attention against masked dense attention in PyTorch.

CPU (CI): for every pattern and mode, the op's fp32 output, log-sum-exp and gradients
against float64 masked dense attention built from the independent reference's masks
(tools/reference/model.py). The CPU path takes float32 only, so no float64 gradcheck: the
tolerance is derived from fp32 instead, as K times the error of the same dense masked
attention computed in fp32 (plus 16 ulps of the largest value), measured per case.
Also: bad inputs refused with the value named, torch.compile where PyTorch has it.
GPU (skipped without CUDA): the op on bf16/fp16 at head dims 32/64/128 against the CPU
oracle and FlexAttention with the same mask_mod, forward and gradients, at T = 65,536 in
query chunks, under torch.compile and inside a captured CUDA graph (test_torch_gpu.py).

    SPT_TORCH_PACKAGE=build/python /usr/bin/python3 tests/python/test_torch_op.py --spt build/spt --repo .
"""
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_test_setup import setup  # noqa: E402

ARGS = setup(__doc__.splitlines()[0])

import torch  # noqa: E402
import spt_torch  # noqa: E402
from model import masked_attention, pattern_mask  # noqa: E402  (the independent reference)

K = 4            # spt's fp32 error may be this many times dense fp32's
ULPS = 16        # floor: this many fp32 ulps of the largest reference value

# (pattern, T, stride, summary, summary_blocks, heads) and the modes each runs in; T not a
# multiple of l (ragged last block), heads > 2 so that h mod 2 and h mod v differ.
SHAPES = [("dense", 37, 1, 1, 1, 2), ("local", 37, 5, 1, 1, 2), ("strided", 50, 7, 1, 1, 3),
          ("fixed", 50, 8, 2, 1, 3), ("fixed", 64, 16, 3, 2, 4)]
MODES = ("merged", "interleaved", "heads")


def fused_inputs(B, H, T, Dk, Dv, seed, dtype=torch.float32, device="cpu"):
    """q, k, v as (B, H, T, D) views of one fused (B, T, 2*H*Dk + H*Dv) leaf, as a model has them."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, 2 * H * Dk + H * Dv, generator=gen).to(device=device, dtype=dtype).requires_grad_(True)
    q, k, v = x.split([H * Dk, H * Dk, H * Dv], dim=-1)
    return x, q.view(B, T, H, Dk).transpose(1, 2), k.view(B, T, H, Dk).transpose(1, 2), v.view(B, T, H, Dv).transpose(1, 2)


def reference_mask(pattern, T, stride, summary, summary_blocks, heads, mode, layer):
    cfg = dict(pattern=pattern, stride=stride, summary=summary, summary_blocks=summary_blocks, heads=heads,
               width=heads, ctx=T, mode=mode, pos_sizes=[T])
    return pattern_mask(cfg, layer, T)


def dense(x, mask, split, dtype, scale=None):
    """Masked dense attention of the fused leaf's values in `dtype`: (out, lse, d out.sum-weighted / dx)."""
    B, T, _ = x.shape
    H = mask.shape[0]
    xd = x.detach().to(dtype).requires_grad_(True)
    q, k, v = (t.reshape(B, T, H, -1).transpose(1, 2) for t in xd.split(split, dim=-1))
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    out = masked_attention(q, k, v, mask, scale)
    scores = (q @ k.transpose(-1, -2) * scale).masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    weights = torch.linspace(-1, 1, out.numel(), dtype=dtype).reshape(out.shape)
    (grad,) = torch.autograd.grad((out * weights).sum(), xd)
    return out.detach(), lse.detach(), grad, weights


def tolerance(ref64, dense32):
    err = float((dense32.double() - ref64).abs().max())
    return K * err + ULPS * torch.finfo(torch.float32).eps * float(ref64.abs().max())


class CpuAgainstDense(unittest.TestCase):
    def check_case(self, pattern, T, stride, summary, summary_blocks, heads, mode, layer, Dk=8, Dv=8, scale=None):
        B = 2
        mask = reference_mask(pattern, T, stride, summary, summary_blocks, heads, mode, layer)
        x, q, k, v = fused_inputs(B, heads, T, Dk, Dv, seed=T * 31 + heads + layer)
        out, lse = spt_torch.sparse_attention(q, k, v, pattern, stride, summary=summary,
                                              summary_blocks=summary_blocks, mode=mode, layer=layer, scale=scale,
                                              return_lse=True)
        split = [heads * Dk, heads * Dk, heads * Dv]
        ref_out, ref_lse, ref_grad, weights = dense(x, mask, split, torch.float64, scale)
        d32_out, _, d32_grad, _ = dense(x, mask, split, torch.float32, scale)
        (grad,) = torch.autograd.grad((out * weights.float()).sum(), x)
        name = f"{pattern} {mode} layer {layer} T {T} l {stride} c {summary} v {summary_blocks} H {heads}"
        self.assertEqual(out.shape, (B, heads, T, Dv), name)
        out_tol, grad_tol = tolerance(ref_out, d32_out), tolerance(ref_grad, d32_grad)
        out_err = float((out.double() - ref_out).abs().max())
        grad_err = float((grad.double() - ref_grad).abs().max())
        self.assertLessEqual(out_err, out_tol, f"{name}: output error {out_err:.3e} > {out_tol:.3e}")
        self.assertLessEqual(grad_err, grad_tol, f"{name}: gradient error {grad_err:.3e} > {grad_tol:.3e}")
        empty = torch.isinf(ref_lse)
        self.assertTrue(torch.equal(torch.isinf(lse), empty), f"{name}: -inf lse where no key is allowed")
        lse_err = float((lse.double() - ref_lse).masked_fill(empty, 0).abs().max())
        self.assertLessEqual(lse_err, 1e-5 * max(1.0, float(ref_lse.masked_fill(empty, 0).abs().max())), name)
        return out_err / out_tol, grad_err / grad_tol

    def test_every_pattern_and_mode(self):
        worst = 0.0
        for pattern, T, stride, summary, summary_blocks, heads in SHAPES:
            for mode in MODES:
                if pattern in ("dense", "local") and mode != "merged":
                    continue
                for layer in ((0, 1) if mode == "interleaved" else (0,)):
                    with self.subTest(pattern=pattern, mode=mode, layer=layer):
                        worst = max(worst, *self.check_case(pattern, T, stride, summary, summary_blocks, heads,
                                                            mode, layer))
        print(f"every pattern and mode: worst error at {worst:.2f} of the tolerance")

    def test_half_width_qk_and_scale(self):
        self.check_case("fixed", 40, 8, 2, 1, 2, "merged", 0, Dk=4, Dv=8)
        self.check_case("strided", 40, 8, 1, 1, 2, "merged", 0, scale=0.3)

    def test_packed_layout_and_deterministic_flag(self):
        B, H, T, D = 1, 2, 24, 8
        q, k, v = (torch.randn(B, T, H, D).transpose(1, 2).requires_grad_(True) for _ in range(3))
        a = spt_torch.sparse_attention(q, k, v, "strided", 4)
        b = spt_torch.sparse_attention(q, k, v, "strided", 4, deterministic=True)
        self.assertTrue(torch.equal(a, b))
        a.sum().backward()
        self.assertEqual(q.grad.shape, q.shape)
        self.assertEqual(spt_torch.attention_path(q, k, v, "strided", 4), "cpu")

    @unittest.skipUnless(hasattr(torch, "compile") and spt_torch.HAS_LIBRARY_API,
                         f"torch {torch.__version__} has no torch.compile / torch.library custom op API")
    def test_torch_compile(self):
        x, q, k, v = fused_inputs(2, 2, 48, 8, 8, seed=5)

        def f(x):
            q, k, v = (t.view(2, 48, 2, 8).transpose(1, 2) for t in x.split(16, dim=-1))
            return spt_torch.sparse_attention(q, k, v, "fixed", 8, summary=2).square().sum()

        compiled = torch.compile(f, fullgraph=True)
        (g_eager,) = torch.autograd.grad(f(x), x)
        (g_compiled,) = torch.autograd.grad(compiled(x), x)
        torch.testing.assert_close(g_compiled, g_eager)


class BadInputs(unittest.TestCase):
    def setUp(self):
        _, self.q, self.k, self.v = fused_inputs(2, 2, 16, 8, 8, seed=1)

    def refuses(self, error, words, *args, **kwargs):
        with self.assertRaises(error) as caught:
            spt_torch.sparse_attention(*args, **kwargs)
        for word in words:
            self.assertIn(word, str(caught.exception))

    def test_refused(self):
        q, k, v = self.q, self.k, self.v
        self.refuses(TypeError, ["Double", "float32"], q.double(), k.double(), v.double(), "fixed", 8, summary=2)
        self.refuses(TypeError, ["Half"], q.half(), k.half(), v.half(), "fixed", 8, summary=2)
        self.refuses(ValueError, ["'sliding'", "strided"], q, k, v, "sliding", 8)
        self.refuses(ValueError, ["'rows'", "interleaved"], q, k, v, "strided", 8, mode="rows")
        self.refuses(ValueError, ["strides", "transpose(1, 2).contiguous()"], torch.randn(2, 2, 16, 8), k, v,
                     "strided", 8)
        self.refuses(ValueError, ["head dim 8", "has 4"], q, torch.randn(2, 16, 2, 4).transpose(1, 2), v, "strided", 8)
        self.refuses(ValueError, ["must agree in B, H and T"], q, torch.randn(2, 8, 2, 8).transpose(1, 2), v, "strided", 8)
        self.refuses(ValueError, ["3 dimensions"], q[0], k[0], v[0], "strided", 8)
        self.refuses(ValueError, ["stride 0"], q, k, v, "strided", 0)
        self.refuses(ValueError, ["summary width c = 9"], q, k, v, "fixed", 8, summary=9)
        self.refuses(ValueError, ["summary blocks v = 3"], q, k, v, "fixed", 8, summary=2, summary_blocks=3)
        self.refuses(ValueError, ["needs at least 2 heads"], q[:, :1], k[:, :1], v[:, :1], "strided", 8, mode="heads")
        self.refuses(TypeError, ["stride must be an int"], q, k, v, "strided", 8.5)
        self.refuses(ValueError, ["scale"], q, k, v, "strided", 8, scale=-1.0)


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
