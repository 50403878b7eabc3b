#!/usr/bin/python3
"""The CPU training-throughput peer of spt: the same network (docs/MODEL.md) in PyTorch
with explicit masked attention, AdamW, on the CPU with a fixed thread count.

    /usr/bin/python3 bench/torch_cpu_train.py --ctx 1024 --batch 4 --stride 32 --threads 2

Prints one JSON line: tokens/s (median step time after warm-up) and the config.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "reference"))

import torch  # noqa: E402

from model import SparseTransformer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--pattern", default="strided")
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--summary", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = dict(layers=args.layers, width=args.width, heads=args.heads, ctx=args.ctx, ff_ratio=4.0, half_qk=False,
               pattern=args.pattern, stride=args.stride, summary=args.summary, summary_blocks=1, mode="merged",
               dropout=0.0, pos_sizes=[(args.ctx + args.stride - 1) // args.stride, args.stride])
    model = SparseTransformer(cfg)
    for p in model.parameters():  # random weights everywhere so nothing is trivially zero
        torch.nn.init.normal_(p, std=0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    times = []
    for step in range(args.steps):
        tokens = torch.randint(0, 256, (args.batch, args.ctx), dtype=torch.long)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model.loss(tokens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - start)
    steady = times[1:] if len(times) > 1 else times
    step_s = statistics.median(steady)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": args.threads,
                      "tokens_per_s": args.batch * args.ctx / step_s, "step_ms": step_s * 1e3, **cfg,
                      "batch": args.batch}))


if __name__ == "__main__":
    main()
