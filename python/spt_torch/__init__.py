"""spt_torch: spt's sparse attention as a PyTorch op, and spt checkpoints as nn.Modules.

    import spt_torch
    out = spt_torch.sparse_attention(q, k, v, "fixed", 128, summary=32)
    model = spt_torch.SparseTransformer.from_checkpoint("run/checkpoint")

Built with spt (cmake -DSPT_TORCH=ON, see the README's PyTorch section) into
<build>/python/spt_torch; put <build>/python on PYTHONPATH.
"""
import os

import torch

_LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_spt_ops.so")
if not os.path.exists(_LIBRARY):
    raise ImportError(f"spt_torch: {_LIBRARY} is missing: import spt_torch from the build tree (PYTHONPATH="
                      "<build>/python) of an spt build configured with -DSPT_TORCH=ON")
torch.ops.load_library(_LIBRARY)

from .ops import HAS_LIBRARY_API, MODES, PATTERNS, attention_path, sparse_attention  # noqa: E402
from .model import SparseTransformer  # noqa: E402

__all__ = ["sparse_attention", "attention_path", "SparseTransformer", "PATTERNS", "MODES", "HAS_LIBRARY_API"]
