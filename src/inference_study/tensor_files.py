"""Self-checking tensor files: safetensors written atomically with a checksum, read back or refused.

Both persistent KV caches use them, the PyTorch prefix file (scenarios/kv_persist.py) and the
TensorRT-LLM connector's blocks (trtllm/prefix_store.py): a file that is truncated, corrupt or from
another configuration is refused with the reason, so the caller recomputes instead of using it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file


class CacheRefused(ValueError):
    """A cache file that must not be used here; the message says why."""


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_tensor_file(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> int:
    """Write `tensors` with `metadata` and their checksum atomically (a reader never sees half a file);
    returns the file's size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={**metadata, "checksum": tensor_checksum(tensors)})
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path.stat().st_size


def read_tensor_file(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a file `write_tensor_file` wrote, or CacheRefused when it is unreadable or
    its tensors do not match their checksum."""
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CacheRefused(f"{path}: unreadable (truncated or corrupt): {error}") from None
    if tensor_checksum(tensors) != metadata.get("checksum"):
        raise CacheRefused(f"{path}: tensor checksum does not match its metadata (corrupt)")
    return metadata, tensors
