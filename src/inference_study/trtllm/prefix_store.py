"""KV cache blocks on disk, named by the hash of the whole prefix they end (the connector's own logic).

TensorRT-LLM's paged KV cache holds `tokens_per_block` tokens per block. Block i of a prompt is named
by a chained hash: sha256 of block i-1's name and block i's token ids, seeded with the fingerprint of
the model and configuration. A name therefore stands for the full prefix up to the end of its block
under one configuration, so a block is never matched after a different earlier token or from another
model, dtype or block size. This module knows nothing of TensorRT-LLM, so its save and load round-trip
is tested on CPU with plain tensors; trtllm/kv_connector.py moves blocks between it and the GPU.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from inference_study.tensor_files import CacheRefused, read_tensor_file, write_tensor_file

BLOCK_FORMAT = "inference-study-trtllm-kv-block-v1"
BLOCK_TENSOR = "block"


class PrefixBlockStore:
    """Save and load KV blocks by prefix hash under `root`, for one model configuration."""

    def __init__(self, root: Path, tokens_per_block: int, config_fingerprint: str):
        self.root = root
        self.tokens_per_block = tokens_per_block
        self.seed = hashlib.sha256(f"{config_fingerprint}|{tokens_per_block}".encode()).hexdigest()

    def block_hashes(self, tokens: list[int]) -> list[str]:
        """The name of every full block of `tokens` (a trailing partial block has none)."""
        names, previous = [], self.seed
        for end in range(self.tokens_per_block, len(tokens) + 1, self.tokens_per_block):
            block = tokens[end - self.tokens_per_block:end]
            previous = hashlib.sha256(f"{previous}|{block}".encode()).hexdigest()
            names.append(previous)
        return names

    def path(self, block_hash: str) -> Path:
        return self.root / f"{block_hash}.safetensors"

    def matched_blocks(self, tokens: list[int]) -> list[str]:
        """The leading blocks of `tokens` saved here, keeping at least the last token uncached: the model
        must compute one position to produce the first output token."""
        matched = []
        for block_hash in self.block_hashes(tokens[:-1]):
            if not self.path(block_hash).is_file():
                break
            matched.append(block_hash)
        return matched

    def save(self, block_hash: str, block: torch.Tensor) -> int:
        """Write one block (any shape) atomically unless it is already there; returns the bytes on disk."""
        path = self.path(block_hash)
        if path.is_file():
            return path.stat().st_size
        metadata = {"format": BLOCK_FORMAT, "seed": self.seed, "block_hash": block_hash}
        return write_tensor_file(path, {BLOCK_TENSOR: block.detach().to("cpu").contiguous()}, metadata)

    def load(self, block_hash: str) -> torch.Tensor:
        """The block saved under `block_hash`, or CacheRefused when the file is damaged or is not that block
        of this configuration (a renamed or copied-over file)."""
        path = self.path(block_hash)
        metadata, tensors = read_tensor_file(path)
        expected = {"format": BLOCK_FORMAT, "seed": self.seed, "block_hash": block_hash}
        mismatched = sorted(key for key, value in expected.items() if metadata.get(key) != value)
        if mismatched or set(tensors) != {BLOCK_TENSOR}:
            raise CacheRefused(f"{path}: not block {block_hash[:12]}… of this configuration "
                               f"(differs in {mismatched or 'its tensors'})")
        return tensors[BLOCK_TENSOR]


# TensorRT-LLM builds the connector from class names alone, so the directory and the configuration
# fingerprint reach it through the environment of the process that creates the `LLM`.
BLOCKS_DIR_ENV = "INFERENCE_STUDY_KV_BLOCKS_DIR"
FINGERPRINT_ENV = "INFERENCE_STUDY_KV_FINGERPRINT"


def store_from_environment(environ: dict[str, str], tokens_per_block: int) -> PrefixBlockStore:
    """The store the scenario named in the environment, or an error naming the missing variable."""
    missing = [name for name in (BLOCKS_DIR_ENV, FINGERPRINT_ENV) if not environ.get(name)]
    if missing:
        raise RuntimeError(f"the KV cache connector needs {', '.join(missing)} set by the kv_persist scenario")
    return PrefixBlockStore(Path(environ[BLOCKS_DIR_ENV]), tokens_per_block, environ[FINGERPRINT_ENV])
