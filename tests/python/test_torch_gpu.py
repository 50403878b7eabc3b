#!/usr/bin/python3
"""spt_torch.sparse_attention on CUDA (skipped, saying why, without a GPU or a CUDA build).

For every pattern and mode, bf16 and fp16, head dims 32/64/128: the op's output and
gradients against the CPU oracle (the op on the CPU in fp32, from the same rounded inputs)
and against FlexAttention with the same mask_mod. Tolerances come from the precision: the
op's error against the oracle must be within K times the error of rounding the oracle's
own result to the dtype, or within K times FlexAttention's error, whichever is larger.
At T = 65,536 (where Flex cannot build the mask) the output is checked in query chunks
against fp32 dense attention of those rows. Also: torch.compile (fullgraph) and a captured
CUDA graph replayed on new inputs give the eager results; fp32 runs the reference kernels.

    SPT_TORCH_PACKAGE=build/python python3 tests/python/test_torch_gpu.py --spt build/spt --repo .
"""
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_test_setup import SKIP, setup  # noqa: E402

ARGS = setup(__doc__.splitlines()[0])

import torch  # noqa: E402

if not torch.cuda.is_available():
    print(f"torch {torch.__version__} sees no CUDA device: skipping the GPU tests")
    sys.exit(SKIP)

import spt_torch  # noqa: E402
from model import pattern_mask  # noqa: E402  (the independent reference)

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:
    flex_attention = None

K = 2.0
DTYPES = (torch.bfloat16, torch.float16)
HEAD_DIMS = (32, 64, 128)
# (pattern, stride, summary, summary_blocks, heads) with T = 512; each in every mode it has.
PATTERNS = [("strided", 32, 1, 1, 4), ("fixed", 32, 8, 1, 4), ("fixed", 64, 8, 2, 4), ("dense", 1, 1, 1, 2),
            ("local", 48, 1, 1, 2)]
MODES = ("merged", "interleaved", "heads")
T = 512


def mask_mod_for(pattern, l, c, v, mode, layer):
    """spt's element predicate (src/pattern/pattern.h) for FlexAttention; checked against the
    reference's pattern_mask in test_mask_mod_matches_reference."""
    def parts(h, q, k):
        causal = k <= q
        if pattern == "dense":
            return causal, None
        if pattern == "local":
            return causal & (q - k < l), None
        if pattern == "strided":
            return causal & (q - k < l), causal & ((q - k) % l == 0)
        sub = h % v
        r = k % l
        return causal & (q // l == k // l), causal & (r >= l - (sub + 1) * c) & (r < l - sub * c)

    def mask_mod(b, h, q, k):
        a1, a2 = parts(h, q, k)
        if a2 is None:
            return a1
        if mode == "merged":
            return a1 | a2
        if mode == "interleaved":
            return a1 if layer % 2 == 0 else a2
        return torch.where(h % 2 == 0, a1, a2)

    return mask_mod


def cases():
    for pattern, l, c, v, heads in PATTERNS:
        for mode in MODES if pattern in ("strided", "fixed") else ("merged",):
            for layer in (0, 1) if mode == "interleaved" else (0,):
                yield pattern, l, c, v, heads, mode, layer


def fused(B, H, Tn, D, dtype, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(B, Tn, 3 * H * D, device="cuda", generator=gen).to(dtype).requires_grad_(True)
    q, k, v = (t.view(B, Tn, H, D).transpose(1, 2) for t in x.split(H * D, dim=-1))
    return x, q, k, v


def run_op(x, B, H, Tn, D, case, **kw):
    pattern, l, c, v, _, mode, layer = case
    q, k, vv = (t.view(B, Tn, H, D).transpose(1, 2) for t in x.split(H * D, dim=-1))
    return spt_torch.sparse_attention(q, k, vv, pattern, l, summary=c, summary_blocks=v, mode=mode, layer=layer, **kw)


def out_and_grad(fn, x, dout):
    out = fn(x)
    (grad,) = torch.autograd.grad(out, x, dout)
    return out.detach(), grad


class GpuAgainstOracleAndFlex(unittest.TestCase):
    def test_mask_mod_matches_reference(self):
        for case in cases():
            pattern, l, c, v, heads, mode, layer = case
            cfg = dict(pattern=pattern, stride=l, summary=c, summary_blocks=v, heads=heads, width=heads, ctx=96,
                       mode=mode, pos_sizes=[96])
            ref = pattern_mask(cfg, layer, 96)
            mod = mask_mod_for(pattern, l, c, v, mode, layer)
            q, k = torch.arange(96)[:, None], torch.arange(96)[None, :]
            got = torch.stack([mod(0, torch.tensor(h), q, k) for h in range(heads)])
            self.assertTrue(torch.equal(got, ref), str(case))

    def compare(self, case, dtype, D, B=2):
        heads = case[4]
        x, *_ = fused(B, heads, T, D, dtype, seed=D + heads)
        dout = torch.randn(B, heads, T, D, device="cuda").to(dtype)
        op = lambda x: run_op(x, B, heads, T, D, case)  # noqa: E731
        out, grad = out_and_grad(op, x, dout)
        x32 = x.detach().float().cpu().requires_grad_(True)
        ref_out, ref_grad = out_and_grad(lambda x: run_op(x, B, heads, T, D, case), x32, dout.float().cpu())
        ref_out, ref_grad = ref_out.cuda(), ref_grad.cuda()
        errors = {"out": (out.float() - ref_out).abs().max(), "grad": (grad.float() - ref_grad).abs().max()}
        limits = {"out": (ref_out.to(dtype).float() - ref_out).abs().max(),
                  "grad": (ref_grad.to(dtype).float() - ref_grad).abs().max()}
        if flex_attention is not None:
            mod = mask_mod_for(*case[:4], case[5], case[6])
            block_mask = create_block_mask(mod, None, heads, T, T, device="cuda")

            def flex(x):
                q, k, v = (t.view(B, T, heads, D).transpose(1, 2) for t in x.split(heads * D, dim=-1))
                return flex_attention(q, k, v, block_mask=block_mask)
            flex_out, flex_grad = out_and_grad(flex, x, dout)
            limits["out"] = torch.maximum(limits["out"], (flex_out.float() - ref_out).abs().max())
            limits["grad"] = torch.maximum(limits["grad"], (flex_grad.float() - ref_grad).abs().max())
        for name in ("out", "grad"):
            self.assertTrue(torch.isfinite(errors[name]), f"{case} {dtype} D {D}: non-finite {name}")
            self.assertLessEqual(float(errors[name]), K * float(limits[name]) + 1e-6,
                                 f"{case} {dtype} D {D}: {name} error {float(errors[name]):.3e} against the oracle, "
                                 f"limit {K} x {float(limits[name]):.3e}")

    def test_every_pattern_mode_dtype_head_dim(self):
        for case in cases():
            for dtype in DTYPES:
                for D in HEAD_DIMS:
                    with self.subTest(case=case, dtype=dtype, D=D):
                        self.compare(case, dtype, D)

    def test_fp32_reference_kernels(self):
        self.compare(("fixed", 32, 8, 1, 4, "merged", 0), torch.float32, 64)

    def test_fast_path_is_taken(self):
        _, q, k, v = fused(1, 8, T, 64, torch.bfloat16, 1)
        self.assertEqual(spt_torch.attention_path(q, k, v, "fixed", 32, summary=8), "fast")

    def test_long_context_in_chunks(self):
        Tn, H, D, l, c = 65536, 2, 64, 256, 32
        for case in (("fixed", l, c, 1, H, "merged", 0), ("strided", l, 1, 1, H, "merged", 0)):
            x, q, k, v = fused(1, H, Tn, D, torch.bfloat16, seed=7)
            with torch.no_grad():
                out = run_op(x, 1, H, Tn, D, case)
            mod = mask_mod_for(*case[:4], case[5], case[6])
            keys = torch.arange(Tn, device="cuda")[None, :]
            for start in (0, Tn // 2 - 256, Tn - 512):
                rows = torch.arange(start, start + 512, device="cuda")[:, None]
                for h in range(H):
                    allowed = mod(0, torch.tensor(h, device="cuda"), rows, keys)
                    s = (q[0, h, start:start + 512].float() @ k[0, h].float().T) / math.sqrt(D)
                    p = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1)
                    ref = p @ v[0, h].float()
                    err = float((out[0, h, start:start + 512].float() - ref).abs().max())
                    limit = float((ref.to(torch.bfloat16).float() - ref).abs().max())
                    self.assertLessEqual(err, K * limit + 1e-6, f"{case} rows {start}.. head {h}: {err:.3e}")

    def test_deterministic_backward_repeats(self):
        case = ("fixed", 32, 8, 1, 4, "merged", 0)
        x, *_ = fused(2, 4, T, 64, torch.bfloat16, 3)
        dout = torch.randn(2, 4, T, 64, device="cuda", dtype=torch.bfloat16)
        grads = [out_and_grad(lambda x: run_op(x, 2, 4, T, 64, case, deterministic=True), x, dout)[1]
                 for _ in range(3)]
        self.assertTrue(all(torch.equal(grads[0], g) for g in grads[1:]))


class GpuCompileAndGraphs(unittest.TestCase):
    case = ("strided", 32, 1, 1, 4, "merged", 0)

    def step(self, x, dout):
        out = run_op(x, 2, 4, T, 64, self.case, deterministic=True)  # replay and eager compared bit for bit
        (grad,) = torch.autograd.grad(out, x, dout)
        return out, grad

    @unittest.skipUnless(spt_torch.HAS_LIBRARY_API, "PyTorch < 2.4: no torch.library fake/autograd registration")
    def test_torch_compile_fullgraph(self):
        x, *_ = fused(2, 4, T, 64, torch.bfloat16, 11)
        dout = torch.randn(2, 4, T, 64, device="cuda", dtype=torch.bfloat16)
        f = lambda x: (run_op(x, 2, 4, T, 64, self.case).float() * dout.float()).sum()  # noqa: E731
        compiled = torch.compile(f, fullgraph=True)
        (g_eager,) = torch.autograd.grad(f(x), x)
        (g_compiled,) = torch.autograd.grad(compiled(x), x)
        torch.testing.assert_close(g_compiled, g_eager, rtol=1e-2, atol=1e-2)

    def test_cuda_graph_capture_and_replay(self):
        x, *_ = fused(2, 4, T, 64, torch.bfloat16, 12)
        static_x = x.detach().clone().requires_grad_(True)
        dout = torch.randn(2, 4, T, 64, device="cuda", dtype=torch.bfloat16)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up builds the plan and the allocator's pools outside the capture
                self.step(static_x, dout)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out, static_grad = self.step(static_x, dout)
        fresh, *_ = fused(2, 4, T, 64, torch.bfloat16, 13)
        with torch.no_grad():
            static_x.copy_(fresh)
        graph.replay()
        torch.cuda.synchronize()
        out, grad = self.step(fresh.detach().requires_grad_(True), dout)
        self.assertTrue(torch.equal(static_out, out.detach()))
        self.assertTrue(torch.equal(static_grad, grad))


if __name__ == "__main__":
    unittest.main(verbosity=2)
