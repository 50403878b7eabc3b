#!/usr/bin/env python3
"""The spt network (docs/MODEL.md) in PyTorch on one GPU: the peer for spt's GPU
training throughput. Same config as spt's enwik8 preset by default; attention through
FlexAttention with the pattern's block mask, spt's own kernels through the spt_torch op
(PYTHONPATH=<build>/python), or dense causal SDPA (cuDNN); bf16
autocast, per-block activation checkpointing, fused AdamW, torch.compile.

    python3 bench/torch_reference.py --attention flex --steps 12
    python3 bench/torch_reference.py --attention dense
    PYTHONPATH=build/python python3 bench/torch_reference.py --attention spt

Prints one JSON line: median step time after warm-up, tokens/s, peak GPU memory (or, when
the model does not run, the error and the memory reached).
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, flex_attention
from torch.utils.checkpoint import checkpoint


def pattern_mask_mod(pattern, l, c, v):
    """The element predicate of spt's patterns (merged mode), for FlexAttention."""
    def strided(b, h, q, k):
        return (k <= q) & (((q - k) < l) | (((q - k) % l) == 0))

    def fixed(b, h, q, k):
        sub = h % v
        r = k % l
        summary = (r >= l - (sub + 1) * c) & (r < l - sub * c)
        return (k <= q) & (((q // l) == (k // l)) | summary)

    def dense(b, h, q, k):
        return k <= q

    return {"strided": strided, "fixed": fixed, "dense": dense}[pattern]


class Block(nn.Module):
    def __init__(self, C, H, F_, dropout, attend):
        super().__init__()
        self.H, self.attend, self.dropout = H, attend, dropout
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc1, self.fc2 = nn.Linear(C, F_), nn.Linear(F_, C)

    def forward(self, h):
        B, T, C = h.shape
        q, k, v = self.qkv(self.ln1(h)).split(C, dim=-1)
        q, k, v = (t.reshape(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        o = self.attend(q, k, v).transpose(1, 2).reshape(B, T, C)
        h = h + F.dropout(self.proj(o), self.dropout, self.training)
        f = self.fc1(self.ln2(h))
        f = f * torch.sigmoid(1.702 * f)
        return h + F.dropout(self.fc2(f), self.dropout, self.training)


class Model(nn.Module):
    def __init__(self, a, attend):
        super().__init__()
        C = a.width
        self.tok_emb = nn.Embedding(256, C)
        self.pos_sizes = [math.ceil(a.ctx / a.stride), a.stride]
        self.pos_emb = nn.ModuleList(nn.Embedding(n, C) for n in self.pos_sizes)
        self.blocks = nn.ModuleList(Block(C, a.heads, 4 * C, a.dropout, attend) for _ in range(a.layers))
        self.ln_f, self.head = nn.LayerNorm(C), nn.Linear(C, 256)

    def forward(self, x):
        B, T = x.shape
        t = torch.arange(T, device=x.device)
        h = F.pad(self.tok_emb(x[:, :-1]), (0, 0, 1, 0))
        h = h + self.pos_emb[0](t // self.pos_sizes[1]) + self.pos_emb[1](t % self.pos_sizes[1])
        for block in self.blocks:
            h = checkpoint(block, h, use_reentrant=False)
        logits = self.head(self.ln_f(h)).float()
        return F.cross_entropy(logits.reshape(-1, 256), x.reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attention", choices=["flex", "spt", "dense"], default="flex")
    ap.add_argument("--pattern", default="fixed")
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=12288)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--summary", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=0.4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--compile", type=int, default=1)
    a = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    if a.attention == "flex":
        mask = create_block_mask(pattern_mask_mod(a.pattern, a.stride, a.summary, 1), None, a.heads, a.ctx, a.ctx,
                                 device=dev)
        flex = torch.compile(flex_attention)

        def attend(q, k, v):
            return flex(q, k, v, block_mask=mask)
    elif a.attention == "spt":
        import spt_torch

        def attend(q, k, v):  # q, k, v: views of the fused projection, read in place
            return spt_torch.sparse_attention(q, k, v, a.pattern, a.stride, summary=a.summary)
    else:
        def attend(q, k, v):
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION]):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    model = Model(a, attend).to(dev)
    step_model = torch.compile(model) if a.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    times = []
    for step in range(a.steps):
        x = torch.randint(0, 256, (a.batch, a.ctx), device=dev)
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_model(x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times[3:] if len(times) > 5 else times)
    print(json.dumps({"impl": f"pytorch-{a.attention}", "torch": torch.__version__, "step_ms": step_s * 1e3,
                      "tokens_per_s": a.batch * a.ctx / step_s,
                      "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "loss": loss.item(),
                      "config": vars(a)}), flush=True)


if __name__ == "__main__":
    try:
        main()
    except (torch.OutOfMemoryError, RuntimeError) as error:
        # Record what happened (at long contexts the block mask or the activations may not fit).
        print(json.dumps({"impl": "pytorch", "error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}",
                          "peak_gib": torch.cuda.max_memory_allocated() / 2**30}), flush=True)
        raise SystemExit(1)
