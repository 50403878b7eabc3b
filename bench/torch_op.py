#!/usr/bin/env python3
"""spt_torch.sparse_attention timed in PyTorch on the GPU machine, against FlexAttention and
cuDNN SDPA (bench/attention_peers.py's timing and rows), and in a training loop.

Op (default): the enwik8 shape, T 12,288, B 2, 8 heads, D 64, bf16: spt's op on fixed
(l 128, c 32, merged) and strided (l 128), forward and forward + backward, then FlexAttention
with the same mask and dense causal SDPA on cuDNN. CUDA-event medians after warm-up; one
JSON line per row (impl spt-torch / flex / sdpa). spt's own C++ timing of the same case is
bench_attention_cuda's T 12,288 row (B 1 there): run both in one device call to measure the
Python path's overhead.

    PYTHONPATH=build/python python3 bench/torch_op.py [--runs 50] [--batch 2] [--spt-only]

Training (--train): bench/torch_reference.py's model (30 layers, width 512, 8 heads, T 12,288,
B 2, bf16 autocast, per-block checkpointing, torch.compile) with attention through spt's op,
FlexAttention and dense SDPA, each in its own process; one JSON line each (tokens/s).

    PYTHONPATH=build/python python3 bench/torch_op.py --train [--steps 12]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def time_op(args):
    import torch
    import torch._dynamo
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    import spt_torch
    sys.path.insert(0, HERE)
    from attention_peers import allowed_pairs, dense_sdpa, emit, mask_mod_for, time_attention

    T, B, H, D, l, c = args.ctx, args.batch, 8, 64, 128, 32
    case = (T, B, H, D, l, c)
    print(f"torch_op: torch {torch.__version__}, {torch.cuda.get_device_name()}", file=sys.stderr)
    flex = torch.compile(flex_attention, dynamic=False)
    gen = torch.Generator(device="cuda").manual_seed(1234)
    for pattern in ("fixed", "strided"):
        mask_mod = mask_mod_for(pattern, l, c)
        pairs = allowed_pairs(mask_mod, T, "cuda")
        # spt reads (B, T, H, D) memory: the layout a model's projection gives, viewed as (B, H, T, D).
        q, k, v, dout = (torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16, generator=gen).transpose(1, 2)
                         for _ in range(4))
        for t in (q, k, v):
            t.requires_grad_(True)
        path = spt_torch.attention_path(q, k, v, pattern, l, summary=c)
        attend = lambda q, k, v, p=pattern: spt_torch.sparse_attention(q, k, v, p, l, summary=c)  # noqa: E731
        emit("spt-torch", pattern, case, pairs, time_attention(attend, q, k, v, dout, args.runs), path=path,
             torch=torch.__version__)
        if args.spt_only:
            continue
        block_mask = create_block_mask(mask_mod, None, None, T, T, device="cuda")
        qc, kc, vc, doutc = (t.detach().contiguous().requires_grad_(t.requires_grad) for t in (q, k, v, dout))
        attend = lambda q, k, v, m=block_mask: flex(q, k, v, block_mask=m)  # noqa: E731
        emit("flex", pattern, case, pairs, time_attention(attend, qc, kc, vc, doutc, args.runs))
        del block_mask, q, k, v, dout, qc, kc, vc, doutc
        torch.cuda.empty_cache()
    if not args.spt_only:
        dense_sdpa(case, args.runs, 4321)


def time_training(args):
    for attention in ("spt", "flex", "dense"):
        command = [sys.executable, os.path.join(HERE, "torch_reference.py"), "--attention", attention,
                   "--pattern", args.pattern, "--steps", str(args.steps), "--ctx", str(args.ctx),
                   "--batch", str(args.batch)]
        run = subprocess.run(command, capture_output=True, text=True)
        line = (run.stdout.strip().splitlines() or [json.dumps({"impl": attention, "error": run.stderr[-500:]})])[-1]
        print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", action="store_true", help="time the training loop instead of the op")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--spt-only", action="store_true", help="time spt's op only (no FlexAttention or SDPA rows)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=12288)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--pattern", default="fixed", choices=["fixed", "strided"])
    args = ap.parse_args()
    args.runs = max(20, args.runs)
    (time_training if args.train else time_op)(args)


if __name__ == "__main__":
    main()
