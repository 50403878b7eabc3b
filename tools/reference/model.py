#!/usr/bin/python3
"""An independent PyTorch reference of the spt network (docs/MODEL.md).

Written from the definitions in docs/MODEL.md and the pattern definitions of
src/pattern/pattern.h (the paper's section 4.3), not from spt's kernels, so that agreement
between the two means something. Attention is explicit: a dense (H, T, T) boolean mask
and a masked softmax; nothing here is sparse or fast.

    model = SparseTransformer(cfg)          # cfg: dict with the ModelConfig keys
    model.load_state_dict(tensors)          # spt's safetensors names load directly
    loss = model.loss(tokens)               # tokens (B, T) long -> mean nats

Command line: loss (and optionally gradients) of spt weights on a batch,

    /usr/bin/python3 tools/reference/model.py --weights DIR/model.safetensors \
        --batch DIR/batch.safetensors --dtype float64 [--grads-out grads.safetensors]
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from safetensors_io import load_safetensors, save_safetensors  # noqa: E402

VOCAB = 256

# ModelConfig's defaults (src/model/config.h); a cfg dict may leave any of these out.
DEFAULT_CONFIG = dict(layers=4, width=256, heads=4, ctx=1024, ff_ratio=4.0, half_qk=False, pattern="strided",
                      stride=32, summary=8, summary_blocks=1, mode="merged", dropout=0.0, pos_sizes=[32, 32])

PATTERNS = ("dense", "local", "strided", "fixed")
MODES = ("merged", "interleaved", "heads")


def resolve_config(cfg):
    """Fills defaults and checks the values the reference depends on."""
    unknown = set(cfg) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown model config keys {sorted(unknown)}")
    c = dict(DEFAULT_CONFIG)
    c.update(cfg)
    c["pos_sizes"] = [int(s) for s in c["pos_sizes"]]
    if c["pattern"] not in PATTERNS:
        raise ValueError(f"pattern '{c['pattern']}' is not one of {PATTERNS}")
    if c["mode"] not in MODES:
        raise ValueError(f"mode '{c['mode']}' is not one of {MODES}")
    if c["width"] % c["heads"] != 0:
        raise ValueError(f"width {c['width']} is not a multiple of heads {c['heads']}")
    if c["pattern"] != "dense" and c["stride"] < 1:
        raise ValueError(f"stride {c['stride']} must be at least 1")
    if c["pattern"] == "fixed" and not (1 <= c["summary"] and c["summary_blocks"] >= 1
                                        and c["summary"] * c["summary_blocks"] <= c["stride"]):
        raise ValueError(f"fixed needs 1 <= summary * summary_blocks <= stride, got summary {c['summary']}, "
                         f"summary_blocks {c['summary_blocks']}, stride {c['stride']}")
    if math.prod(c["pos_sizes"]) < c["ctx"]:
        raise ValueError(f"pos_sizes {c['pos_sizes']} multiply to less than ctx {c['ctx']}")
    return c


# ----------------------------------------------------------------------------------
# Attention patterns, straight from the set definitions. i is the query, j the key.


def _pattern_parts(c, T, summary_block):
    """Boolean (T, T) masks of A(1) and A(2) (None when the pattern has no A(2))."""
    i = torch.arange(T).view(T, 1)
    j = torch.arange(T).view(1, T)
    causal = j <= i
    kind, l = c["pattern"], c["stride"]
    if kind == "dense":
        return causal, None
    if kind == "local":
        return causal & (i - j < l), None
    if kind == "strided":
        row = causal & (i - j < l)                  # the l most recent positions, i included
        column = causal & ((i - j) % l == 0)        # every l-th position back from i
        return row, column
    # fixed: own block of l, plus the summary sub-block s (length c) counted from the block's end
    cw, s = c["summary"], summary_block
    own_block = causal & (torch.div(j, l, rounding_mode="floor") == torch.div(i, l, rounding_mode="floor"))
    jm = j % l
    summary = causal & (jm >= l - (s + 1) * cw) & (jm < l - s * cw)
    return own_block, summary


def pattern_mask(cfg, layer, T):
    """Allowed (query, key) pairs of every head of `layer`: bool tensor (H, T, T)."""
    c = resolve_config(cfg)
    H = c["heads"]
    v = c["summary_blocks"] if c["pattern"] == "fixed" else 1
    masks = []
    for h in range(H):
        a1, a2 = _pattern_parts(c, T, h % v)
        if a2 is None:          # dense and local have one set, used by every head in every mode
            masks.append(a1)
        elif c["mode"] == "merged":
            masks.append(a1 | a2)
        elif c["mode"] == "interleaved":
            masks.append(a1 if layer % 2 == 0 else a2)
        else:                   # heads
            masks.append(a1 if h % 2 == 0 else a2)
    return torch.stack(masks)


# ----------------------------------------------------------------------------------
# The network.


def gelu(x):
    return x * torch.sigmoid(1.702 * x)


def masked_attention(q, k, v, mask, scale):
    """q, k (B, H, T, Dk), v (B, H, T, D), mask (H, T, T) bool -> (B, H, T, D).

    Softmax over the allowed keys only; a query with no allowed key outputs zeros
    (and passes no gradient), instead of the NaN a plain masked softmax would give.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale               # (B, H, T, T)
    scores = scores.masked_fill(~mask, float("-inf"))
    has_key = mask.any(dim=-1, keepdim=True)                            # (H, T, 1)
    scores = scores.masked_fill(~has_key, 0.0)                          # keep empty rows finite
    probs = torch.softmax(scores, dim=-1) * has_key.to(scores.dtype)    # empty rows -> 0
    return torch.matmul(probs, v)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c["heads"]
        self.head_dim = c["width"] // c["heads"]                                  # D
        self.qk_dim = self.head_dim // 2 if c["half_qk"] else self.head_dim      # Dk
        self.qkv = nn.Linear(c["width"], 2 * self.heads * self.qk_dim + c["width"])
        self.proj = nn.Linear(c["width"], c["width"])

    def forward(self, x, mask):
        B, T, C = x.shape
        H, D, Dk = self.heads, self.head_dim, self.qk_dim
        qkv = self.qkv(x)                                                   # (B, T, 2*H*Dk + C)
        q, k, v = torch.split(qkv, [H * Dk, H * Dk, H * D], dim=-1)
        q = q.reshape(B, T, H, Dk).transpose(1, 2)                          # (B, H, T, Dk)
        k = k.reshape(B, T, H, Dk).transpose(1, 2)
        v = v.reshape(B, T, H, D).transpose(1, 2)                           # (B, H, T, D)
        o = masked_attention(q, k, v, mask, 1.0 / math.sqrt(Dk))
        return self.proj(o.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        ff = int(c["ff_ratio"] * c["width"] + 0.5)                          # F, rounded as ModelConfig does
        self.fc1 = nn.Linear(c["width"], ff)
        self.fc2 = nn.Linear(ff, c["width"])

    def forward(self, x):
        return self.fc2(gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln1 = nn.LayerNorm(c["width"], eps=1e-5)
        self.attn = Attention(c)
        self.ln2 = nn.LayerNorm(c["width"], eps=1e-5)
        self.mlp = MLP(c)
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, h, mask):
        h = h + self.dropout(self.attn(self.ln1(h), mask))
        return h + self.dropout(self.mlp(self.ln2(h)))


class SparseTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = resolve_config(cfg)
        self.config = c
        C = c["width"]
        self.tok_emb = nn.Embedding(VOCAB, C)
        self.pos_emb = nn.ModuleList([nn.Embedding(size, C) for size in c["pos_sizes"]])
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["layers"])])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        self.head = nn.Linear(C, VOCAB)
        self._masks = {}  # (layer, T, device) -> (H, T, T); not parameters, so not in the state dict
        self.reset_parameters()

    def reset_parameters(self):
        """The initialization of docs/MODEL.md (std = sqrt(0.125 / fan_in))."""
        c = self.config
        C, L = c["width"], c["layers"]
        with torch.no_grad():
            nn.init.normal_(self.tok_emb.weight, std=math.sqrt(0.125 / C))
            for table in self.pos_emb:
                nn.init.normal_(table.weight, std=math.sqrt(0.125 / (C * len(self.pos_emb))))
            for block in self.blocks:
                ff = block.mlp.fc1.out_features
                for ln in (block.ln1, block.ln2):
                    nn.init.ones_(ln.weight)
                    nn.init.zeros_(ln.bias)
                nn.init.normal_(block.attn.qkv.weight, std=math.sqrt(0.125 / C))
                nn.init.normal_(block.attn.proj.weight, std=math.sqrt(0.125 / C) / math.sqrt(2 * L))
                nn.init.normal_(block.mlp.fc1.weight, std=math.sqrt(0.125 / C))
                nn.init.normal_(block.mlp.fc2.weight, std=math.sqrt(0.125 / ff) / math.sqrt(2 * L))
                for linear in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2):
                    nn.init.zeros_(linear.bias)
            nn.init.ones_(self.ln_f.weight)
            nn.init.zeros_(self.ln_f.bias)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def mask(self, layer, T, device):
        key = (layer, T, str(device))
        if key not in self._masks:
            self._masks[key] = pattern_mask(self.config, layer, T).to(device)
        return self._masks[key]

    def embed(self, tokens):
        """tokens (B, T) long -> (B, T, C): the previous token's embedding plus position."""
        B, T = tokens.shape
        if T > self.config["ctx"]:
            raise ValueError(f"sequence length {T} exceeds ctx {self.config['ctx']}")
        prev = self.tok_emb(tokens[:, :-1])                                  # (B, T-1, C)
        h = F.pad(prev, (0, 0, 1, 0))                                        # (B, T, C), zero row at t = 0
        t = torch.arange(T, device=tokens.device)
        sizes = self.config["pos_sizes"]
        for k, table in enumerate(self.pos_emb):
            inner = math.prod(sizes[k + 1:])
            h = h + table(torch.div(t, inner, rounding_mode="floor") % sizes[k])  # (T, C) broadcast over B
        return h

    def forward(self, tokens):
        """tokens (B, T) long -> logits (B, T, 256); position t predicts tokens[:, t]."""
        h = self.embed(tokens)
        for r, block in enumerate(self.blocks):
            h = block(h, self.mask(r, tokens.shape[1], tokens.device))
        return self.head(self.ln_f(h))

    def loss(self, tokens):
        """Mean cross-entropy in nats over every token of the batch."""
        logits = self(tokens)
        return F.cross_entropy(logits.reshape(-1, VOCAB), tokens.reshape(-1))


def model_from_safetensors(path, dtype=torch.float32):
    """Builds the reference from an spt weights file; returns (model, metadata)."""
    tensors, metadata = load_safetensors(path)
    if "model_config" not in metadata:
        raise ValueError(f"{path}: metadata has no model_config (keys: {sorted(metadata)})")
    model = SparseTransformer(json.loads(metadata["model_config"]))
    model.load_state_dict(tensors, strict=True)
    return model.to(dtype), metadata


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="spt model.safetensors")
    ap.add_argument("--batch", required=True, help="safetensors with a U8 'tokens' tensor (B, T)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    ap.add_argument("--grads-out", help="write d(mean loss)/d(param) here as F32 safetensors")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    model, _ = model_from_safetensors(args.weights, dtype)
    model.eval()
    batch, _ = load_safetensors(args.batch)
    tokens = batch["tokens"].long()
    loss = model.loss(tokens)
    if args.grads_out:
        loss.backward()
        save_safetensors(args.grads_out, {n: p.grad.float() for n, p in model.named_parameters()},
                         {"format": "spt"})
    print(json.dumps({"loss": loss.item(), "dtype": args.dtype, "tokens": list(tokens.shape)}))


if __name__ == "__main__":
    main()
