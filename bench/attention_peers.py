#!/usr/bin/env python3
"""PyTorch's attention kernels on the cases of bench_attention_cuda (GPU machine, PyTorch >= 2.5).

FlexAttention (torch.compile'd flex_attention with a BlockMask built from the same element
predicate as spt's fixed / strided / dense patterns) and dense causal SDPA on cuDNN (falling
back to FlashAttention, and saying so, where cuDNN attention is unavailable). bf16 inputs
of shape (B, H, T, D), unit normals drawn afresh per case; times are CUDA-event medians
after warm-up, as in bench_attention_cuda. Effective TFLOP/s count attended pairs only:
forward 4 D pairs B (pairs summed over heads), forward + backward 3.5 times that.
Prints one JSON line per (impl, case, pattern).
    python3 bench/attention_peers.py [--runs 20] [--max-T 65536]
"""
import argparse
import json
import statistics
import sys

import torch
import torch._dynamo
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

# (T, B, H, D, l, c), as in bench/bench_attention_cuda.cpp.
CASES = [(4096, 4, 8, 64, 64, 16), (12288, 1, 8, 64, 128, 32), (16384, 1, 8, 64, 128, 32),
         (65536, 1, 8, 64, 256, 32), (3072, 4, 2, 128, 96, 32)]


def mask_mod_for(pattern, l, c):
    """spt's merged patterns (every head alike): fixed keeps the own l-block and the last c
    columns of every l-block; strided the last l positions and every l-th one before."""
    if pattern == "fixed":
        def fixed(b, h, q, kv):
            return (kv <= q) & ((kv // l == q // l) | (kv % l >= l - c))
        return fixed
    if pattern == "strided":
        def strided(b, h, q, kv):
            return (kv <= q) & ((q - kv < l) | ((q - kv) % l == 0))
        return strided

    def causal(b, h, q, kv):
        return kv <= q
    return causal


def allowed_pairs(mask_mod, T, device):
    """Allowed (query, key) pairs of one head, counted on the device in row chunks."""
    total = 0
    keys = torch.arange(T, device=device)
    chunk = max(1, (1 << 26) // T)
    for start in range(0, T, chunk):
        q = torch.arange(start, min(T, start + chunk), device=device)[:, None]
        total += int(mask_mod(None, None, q, keys[None, :]).sum().item())
    return total


def median_ms(fn, runs):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def stream_ms(fn, runs):
    """Mean time of `runs` calls queued back to back (the host runs ahead, as in a model): the
    GPU time per call without the host's launch latency that median_ms exposes."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(runs):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / runs


def inputs(B, H, T, D, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    make = lambda: torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, generator=gen)
    q, k, v, dout = make(), make(), make(), make()
    for t in (q, k, v):
        t.requires_grad_(True)
    return q, k, v, dout


def time_attention(attend, q, k, v, dout, runs):
    def forward():
        with torch.no_grad():
            attend(q, k, v)

    def forward_backward():
        out = attend(q, k, v)
        torch.autograd.grad(out, (q, k, v), dout)

    return {"fwd_ms": median_ms(forward, runs), "fwdbwd_ms": median_ms(forward_backward, runs),
            "fwd_stream_ms": stream_ms(forward, runs), "fwdbwd_stream_ms": stream_ms(forward_backward, runs)}


def emit(impl, pattern, case, pairs, times, **extra):
    """One JSON row; times from time_attention (per call with the host's latency, and back to back)."""
    T, B, H, D, l, c = case
    fwd_ms, fwdbwd_ms = times["fwd_ms"], times["fwdbwd_ms"]
    flops = 4.0 * D * pairs * H * B
    row = {"impl": impl, "pattern": pattern, "T": T, "B": B, "H": H, "D": D, "l": l, "c": c, "dtype": "bf16",
           "density": pairs / (T * (T + 1) / 2), "fwd_ms": round(fwd_ms, 4), "fwdbwd_ms": round(fwdbwd_ms, 4),
           "fwd_tflops": round(flops / (fwd_ms * 1e-3) * 1e-12, 2),
           "fwdbwd_tflops": round(3.5 * flops / (fwdbwd_ms * 1e-3) * 1e-12, 2),
           "fwd_stream_ms": round(times["fwd_stream_ms"], 4), "fwdbwd_stream_ms": round(times["fwdbwd_stream_ms"], 4)}
    row.update(extra)
    print(json.dumps(row), flush=True)


def dense_sdpa(case, runs, seed):
    """Dense causal SDPA on cuDNN, or on FlashAttention when cuDNN attention cannot run."""
    T, B, H, D, _, _ = case
    q, k, v, dout = inputs(B, H, T, D, seed)
    for backend, name in ((SDPBackend.CUDNN_ATTENTION, "cudnn"), (SDPBackend.FLASH_ATTENTION, "flash")):
        def attend(q, k, v, backend=backend):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        try:
            times = time_attention(attend, q, k, v, dout, runs)
        except RuntimeError as error:
            print(f"attention_peers: SDPA backend {name} unavailable for T={T} D={D}: {error}".splitlines()[0],
                  file=sys.stderr)
            continue
        emit("sdpa", "dense", case, T * (T + 1) // 2, times, backend=name,
             fallback=name != "cudnn")
        return


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--max-T", type=int, default=1 << 30)
    args = parser.parse_args()
    runs = max(20, args.runs)
    print(f"attention_peers: torch {torch.__version__}, {torch.cuda.get_device_name()}", file=sys.stderr)
    # Every case is a new shape and mask: allow a compilation per case instead of falling back
    # to the eager (materializing, T x T) path once the default recompilation limit is hit.
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 1024)
    flex = torch.compile(flex_attention, dynamic=False)
    seed = 9000
    for case in CASES:
        T, B, H, D, l, c = case
        if T > args.max_T:
            continue
        for pattern in ("fixed", "strided", "dense"):
            seed += 1
            mask_mod = mask_mod_for(pattern, l, c)
            block_mask = create_block_mask(mask_mod, None, None, T, T, device="cuda")
            pairs = allowed_pairs(mask_mod, T, "cuda")
            q, k, v, dout = inputs(B, H, T, D, seed)
            attend = lambda q, k, v, block_mask=block_mask: flex(q, k, v, block_mask=block_mask)
            emit("flex", pattern, case, pairs, time_attention(attend, q, k, v, dout, runs))
            del q, k, v, dout, block_mask
        seed += 1
        dense_sdpa(case, runs, seed)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
