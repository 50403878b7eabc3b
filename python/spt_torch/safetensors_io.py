"""Reading and writing safetensors files with the standard library, numpy and torch.

Format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor
name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data that
follows the header) plus an optional "__metadata__" of string to string; then the data,
little-endian, row-major, tensors packed without gaps.
"""
import json
import struct

import numpy as np
import torch

# safetensors dtype -> (numpy dtype read from the file, bytes per element)
_DTYPES = {
    "F64": (np.dtype("<f8"), 8), "F32": (np.dtype("<f4"), 4), "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<i2"), 2),  # reinterpreted as torch.bfloat16 after loading
    "I64": (np.dtype("<i8"), 8), "I32": (np.dtype("<i4"), 4), "I16": (np.dtype("<i2"), 2),
    "I8": (np.dtype("i1"), 1), "U8": (np.dtype("u1"), 1), "BOOL": (np.dtype("?"), 1),
}
_TORCH_TO_NAME = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
_MAX_HEADER = 100 * 1024 * 1024


def load_safetensors(path):
    """Returns (dict name -> torch tensor, metadata dict). Raises ValueError on a bad file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes is too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > min(_MAX_HEADER, len(blob) - 8):
        raise ValueError(f"{path}: header length {header_len} does not fit in the file of {len(blob)} bytes")
    try:
        header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: header is not JSON: {e}") from e
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    data = memoryview(blob)[8 + header_len:]
    tensors, spans = {}, []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{path}: tensor '{name}' entry must have exactly dtype, shape, data_offsets")
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {dtype}")
        shape = info["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"{path}: tensor '{name}' has a bad shape {shape}")
        offsets = info["data_offsets"]
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ValueError(f"{path}: tensor '{name}' has bad data_offsets {offsets}")
        begin, end = offsets
        np_dtype, itemsize = _DTYPES[dtype]
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= begin <= end <= len(data)) or end - begin != count * itemsize:
            raise ValueError(f"{path}: tensor '{name}' offsets [{begin}, {end}) do not hold shape {shape} of "
                             f"{dtype} within {len(data)} data bytes")
        spans.append((begin, end, name))
        array = np.frombuffer(data[begin:end], dtype=np_dtype).reshape(shape).copy()
        tensor = torch.from_numpy(array)
        if dtype == "BF16":
            tensor = tensor.view(torch.bfloat16)
        tensors[name] = tensor
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise ValueError(f"{path}: tensor '{name}' starts at {begin}, expected {position} (gap or overlap)")
        position = end
    if position != len(data):
        raise ValueError(f"{path}: tensors cover {position} of {len(data)} data bytes")
    return tensors, metadata


def save_safetensors(path, tensors, metadata=None):
    """Writes dict name -> torch tensor (contiguous, little-endian) with string metadata."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _TORCH_TO_NAME:
            raise ValueError(f"tensor '{name}' has unsupported dtype {t.dtype}")
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().astype(
            _DTYPES[_TORCH_TO_NAME[t.dtype]][0], copy=False).tobytes()
        header[name] = {"dtype": _TORCH_TO_NAME[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # keeps the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for chunk in chunks:
            f.write(chunk)
