#!/usr/bin/python3
"""spt's loss and gradients against the independent PyTorch reference (tools/reference).

For every pattern and combination mode on tiny configs, `spt gradients` writes random
weights, a batch, its fp32 gradients and loss; the reference loads the same weights in
float64, computes the loss and autograd gradients, and the two must agree:
  loss:      |spt - ref| <= 1e-5 * |ref|
  gradients: max |spt - ref| <= 1e-5 * max |ref| + 1e-7, per tensor
fp32 rounding in these small networks (sums of at most a few hundred terms) stays
orders of magnitude below that; a wrong mask, index or scale does not.

    /usr/bin/python3 tests/python/test_reference.py --spt build/spt --repo .

Exit 0 pass, 1 fail, 77 when torch cannot be imported.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("torch is not importable: skipping")
    sys.exit(77)

LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-5
GRAD_ATOL = 1e-7
BATCH = 2


def text_config(pattern, mode="merged", *, layers=2, width=32, heads=2, ctx=32, stride=8, summary=2,
                summary_blocks=1, ff_ratio=4.0, half_qk=False):
    return dict(layers=layers, width=width, heads=heads, ctx=ctx, ff_ratio=ff_ratio, half_qk=half_qk,
                pattern=pattern, stride=stride, summary=summary, summary_blocks=summary_blocks, mode=mode,
                dropout=0.0, pos_sizes=[-(-ctx // stride), stride])


def cases():
    yield "dense", text_config("dense")
    yield "local", text_config("local")
    for mode in ("merged", "interleaved", "heads"):
        yield f"strided {mode}", text_config("strided", mode)
    for mode in ("merged", "interleaved", "heads"):
        yield f"fixed v=1 {mode}", text_config("fixed", mode)
    for mode in ("merged", "interleaved", "heads"):
        yield f"fixed v=2 {mode}", text_config("fixed", mode, heads=4, ctx=48, summary_blocks=2)
    yield "fixed half_qk ff_ratio 2", text_config("fixed", "merged", half_qk=True, ff_ratio=2.0, layers=3)
    image = text_config("strided", "merged", ctx=48, stride=12)
    image["pos_sizes"] = [4, 4, 3]  # rows, cols, channels: T = 4 * 4 * 3, stride = one row
    yield "image strided pos [4,4,3]", image


def run_spt(spt, cfg, directory):
    config_path = os.path.join(directory, "cfg.json")
    with open(config_path, "w") as f:
        json.dump({"model": cfg}, f)
    out = os.path.join(directory, "out")
    command = [spt, "gradients", "--config", config_path, "--out", out, "--batch", str(BATCH), "--seed", "1"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` exited {run.returncode}: {run.stderr.strip()[-2000:]}")
    return out


def compare_case(name, cfg, spt, load_safetensors, SparseTransformer):
    """Returns a list of failure messages (empty when the case passes) and prints one line."""
    with tempfile.TemporaryDirectory() as tmp:
        out = run_spt(spt, cfg, tmp)
        weights, metadata = load_safetensors(os.path.join(out, "model.safetensors"))
        batch, _ = load_safetensors(os.path.join(out, "batch.safetensors"))
        grads, _ = load_safetensors(os.path.join(out, "grads.safetensors"))
        with open(os.path.join(out, "loss.json")) as f:
            spt_loss = float(json.load(f)["loss"])
    problems = []
    resolved = json.loads(metadata["model_config"])
    for key, value in cfg.items():
        if resolved.get(key) != value:
            problems.append(f"model_config {key} is {resolved.get(key)!r}, asked for {value!r}")
    tokens = batch["tokens"]
    if tokens.dtype != torch.uint8 or list(tokens.shape) != [BATCH, cfg["ctx"]]:
        problems.append(f"tokens are {tokens.dtype} {list(tokens.shape)}, expected uint8 [{BATCH}, {cfg['ctx']}]")
    for pname, w in weights.items():
        if w.numel() > 1 and float(w.float().std()) == 0.0:
            problems.append(f"weight {pname} is constant, so its gradient check would be weak")
    if problems:
        return problems

    model = SparseTransformer(resolved)
    model.load_state_dict(weights, strict=True)
    model = model.double().eval()
    loss = model.loss(tokens.long())
    loss.backward()
    ref_loss = loss.item()
    loss_err = abs(spt_loss - ref_loss) / abs(ref_loss)
    if not loss_err <= LOSS_RTOL:
        problems.append(f"loss spt {spt_loss:.9g} vs reference {ref_loss:.9g}: relative error {loss_err:.2e}")

    params = dict(model.named_parameters())
    if set(grads) != set(params):
        problems.append(f"gradient names differ: missing {sorted(set(params) - set(grads))}, "
                        f"extra {sorted(set(grads) - set(params))}")
        return problems
    worst_name, worst_ratio = None, -1.0
    for pname, p in params.items():
        ref = p.grad.detach()
        got = grads[pname].double()
        if got.shape != ref.shape:
            problems.append(f"gradient {pname} has shape {list(got.shape)}, expected {list(ref.shape)}")
            continue
        scale = float(ref.abs().max())
        if scale == 0.0:
            problems.append(f"reference gradient of {pname} is all zero: the case does not test it")
            continue
        diff = float((got - ref).abs().max()) if torch.isfinite(got).all() else math.inf
        tolerance = GRAD_RTOL * scale + GRAD_ATOL
        ratio = diff / tolerance
        if ratio > worst_ratio:
            worst_name, worst_ratio = pname, ratio
        if not diff <= tolerance:
            problems.append(f"gradient {pname}: max abs diff {diff:.3e} > tolerance {tolerance:.3e} "
                            f"(max abs reference {scale:.3e})")
    status = "ok  " if not problems else "FAIL"
    print(f"{status} {name}: loss {spt_loss:.8f} vs {ref_loss:.8f} (rel {loss_err:.1e}); "
          f"worst gradient {worst_name} at {worst_ratio:.3f} of tolerance", flush=True)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spt", required=True, help="the spt binary")
    ap.add_argument("--repo", required=True, help="the repository root")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.repo, "tools", "reference"))
    from model import SparseTransformer
    from safetensors_io import load_safetensors

    torch.set_num_threads(1)  # tiny tensors: more threads only add synchronization
    failed = []
    total = 0
    for name, cfg in cases():
        total += 1
        try:
            problems = compare_case(name, cfg, args.spt, load_safetensors, SparseTransformer)
        except (RuntimeError, ValueError, KeyError, OSError, subprocess.TimeoutExpired) as e:
            problems = [f"{type(e).__name__}: {e}"]
        for problem in problems:
            print(f"FAIL {name}: {problem}", flush=True)
        if problems:
            failed.append(name)
    print(f"{total - len(failed)} of {total} cases agree with the reference"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
