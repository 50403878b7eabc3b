"""The safetensors reader and writer of spt_torch (python/spt_torch/safetensors_io.py),
importable here without building or importing the spt_torch package: it is plain Python
(the standard library, numpy and torch), so the reference and its tests share one copy."""
import importlib.util
import os

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python", "spt_torch",
                     "safetensors_io.py")
_spec = importlib.util.spec_from_file_location("spt_safetensors_io", _PATH)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

load_safetensors = _module.load_safetensors
save_safetensors = _module.save_safetensors
