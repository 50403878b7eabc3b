"""spt's network (docs/MODEL.md) as an nn.Module over spt's own weights, with spt's sparse
attention op (spt_torch.sparse_attention) in every layer.

    model = SparseTransformer.from_checkpoint("run/checkpoint")   # or a .safetensors file
    nats = model.loss(tokens)                                      # tokens (B, T) integers
    model.save_checkpoint("exported")                              # exported/model.safetensors

Parameter names are spt's safetensors names (tok_emb.weight, blocks.<i>.attn.qkv.weight, ...),
so state_dict() and spt's files map one to one. The config is the model_config JSON that
spt stores in the file's __metadata__; it is kept verbatim and written back on save.
"""
import json
import math
import os
import tempfile

import torch
import torch.utils.checkpoint
import torch.nn as nn
import torch.nn.functional as F

from .ops import sparse_attention
from .safetensors_io import load_safetensors, save_safetensors

VOCAB = 256
MODEL_FILE = "model.safetensors"


def _resolve_weights_path(path):
    """A .safetensors file, or a directory holding model.safetensors (a checkpoint)."""
    if os.path.isdir(path):
        path = os.path.join(path, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"spt_torch: {path} does not exist: pass a checkpoint directory (RUN/checkpoint, "
                                f"RUN/best) or a .safetensors file that spt wrote")
    return path


class _Layer(nn.Module):
    """LayerNorm -> QKV -> sparse attention -> proj, then LayerNorm -> FF, each added back."""

    def __init__(self, cfg, index):
        super().__init__()
        C, H = cfg["width"], cfg["heads"]
        self.index, self.cfg = index, cfg
        self.heads, self.dv = H, C // H
        self.dk = self.dv // 2 if cfg["half_qk"] else self.dv
        ff = int(cfg["ff_ratio"] * C + 0.5)
        self.ln1 = nn.LayerNorm(C, eps=1e-5)
        self.ln2 = nn.LayerNorm(C, eps=1e-5)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(C, 2 * H * self.dk + C)
        self.attn.proj = nn.Linear(C, C)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(C, ff)
        self.mlp.fc2 = nn.Linear(ff, C)

    def attention(self, x):
        B, T, C = x.shape
        qkv = self.attn.qkv(x)  # (B, T, 2*H*Dk + C): q, k, v are views of it, read in place by the op
        qk = self.heads * self.dk
        q = qkv[..., :qk].view(B, T, self.heads, self.dk).transpose(1, 2)
        k = qkv[..., qk:2 * qk].view(B, T, self.heads, self.dk).transpose(1, 2)
        v = qkv[..., 2 * qk:].view(B, T, self.heads, self.dv).transpose(1, 2)
        c = self.cfg
        o = sparse_attention(q, k, v, c["pattern"], c["stride"], summary=c["summary"],
                             summary_blocks=c["summary_blocks"], mode=c["mode"], layer=self.index)
        return self.attn.proj(o.transpose(1, 2).reshape(B, T, C))

    def forward(self, h):
        p = self.cfg["dropout"] if self.training else 0.0
        h = h + F.dropout(self.attention(self.ln1(h)), p, self.training)
        f = self.mlp.fc1(self.ln2(h))
        return h + F.dropout(self.mlp.fc2(f * torch.sigmoid(1.702 * f)), p, self.training)


class SparseTransformer(nn.Module):
    def __init__(self, config, checkpoint_layers=False):
        """config: spt's model_config (a dict or its JSON text). checkpoint_layers recomputes
        each layer in the backward (torch.utils.checkpoint) to save activation memory."""
        super().__init__()
        self.config_json = config if isinstance(config, str) else json.dumps(config)
        cfg = json.loads(self.config_json)
        missing = {"layers", "width", "heads", "ctx", "ff_ratio", "half_qk", "pattern", "stride", "summary",
                   "summary_blocks", "mode", "dropout", "pos_sizes"} - set(cfg)
        if missing:
            raise ValueError(f"spt_torch: model_config lacks {sorted(missing)}")
        if cfg["width"] % cfg["heads"] != 0:
            raise ValueError(f"spt_torch: width {cfg['width']} is not a multiple of heads {cfg['heads']}")
        self.cfg = cfg
        self.checkpoint_layers = checkpoint_layers
        C = cfg["width"]
        self.tok_emb = nn.Embedding(VOCAB, C)
        self.pos_emb = nn.ModuleList(nn.Embedding(int(n), C) for n in cfg["pos_sizes"])
        self.blocks = nn.ModuleList(_Layer(cfg, r) for r in range(cfg["layers"]))
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        self.head = nn.Linear(C, VOCAB)

    @classmethod
    def from_checkpoint(cls, path, checkpoint_layers=False):
        """Loads spt weights: a checkpoint directory's model.safetensors, or a .safetensors file
        (model_ema.safetensors holds the weight average that `spt eval` prefers)."""
        path = _resolve_weights_path(path)
        tensors, metadata = load_safetensors(path)
        if "model_config" not in metadata:
            raise ValueError(f"spt_torch: {path} has no model_config in its __metadata__ (keys: "
                             f"{sorted(metadata)}): it is not a file spt wrote")
        model = cls(metadata["model_config"], checkpoint_layers)
        model.load_state_dict({name: t.float() for name, t in tensors.items()}, strict=True)
        return model

    def save_checkpoint(self, directory):
        """Writes directory/model.safetensors: float32 weights under spt's names with the model
        config, which `spt eval` and `spt sample` load (--checkpoint DIR; give --data to eval,
        since a weights-only checkpoint names no data set). It holds no optimizer state or
        step, so `spt train --resume` does not take it."""
        os.makedirs(directory, exist_ok=True)
        tensors = {name: t.detach().float() for name, t in self.state_dict().items()}
        metadata = {"format": "spt", "model_config": self.config_json}
        fd, temporary = tempfile.mkstemp(prefix=".model.safetensors.", dir=directory)
        os.close(fd)
        try:
            save_safetensors(temporary, tensors, metadata)
            with open(temporary, "rb") as f:
                os.fsync(f.fileno())
            os.replace(temporary, os.path.join(directory, MODEL_FILE))
        except BaseException:
            os.unlink(temporary)
            raise

    def embed(self, tokens):
        """(B, T) -> (B, T, C): the previous token's embedding (zeros at t = 0) plus the sum of
        the factorized position embeddings (position t = mixed-radix digits over pos_sizes)."""
        B, T = tokens.shape
        if T > self.cfg["ctx"]:
            raise ValueError(f"spt_torch: {T} tokens exceed the model's context {self.cfg['ctx']}")
        h = torch.zeros(B, T, self.cfg["width"], device=tokens.device, dtype=self.tok_emb.weight.dtype)
        h[:, 1:] = self.tok_emb(tokens[:, :-1])
        remaining = torch.arange(T, device=tokens.device)
        for table in reversed(self.pos_emb):
            h = h + table(remaining % table.num_embeddings)
            remaining = torch.div(remaining, table.num_embeddings, rounding_mode="floor")
        return h

    def forward(self, tokens):
        """tokens (B, T) integers in [0, 256) -> logits (B, T, 256); position t predicts tokens[:, t]."""
        h = self.embed(tokens.long())
        for layer in self.blocks:
            if self.checkpoint_layers and self.training:
                h = torch.utils.checkpoint.checkpoint(layer, h, use_reentrant=False)
            else:
                h = layer(h)
        return self.head(self.ln_f(h))

    def loss(self, tokens):
        """Mean cross-entropy in nats per token (divide by ln 2 for spt's bits per byte/dim)."""
        logits = self(tokens)
        return F.cross_entropy(logits.reshape(-1, VOCAB).float(), tokens.reshape(-1).long())

    def bits_per_dim(self, tokens):
        return self.loss(tokens) / math.log(2.0)
