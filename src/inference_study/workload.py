"""Synthetic fixed-length inputs (the TensorRT-LLM paged-KV benchmark): no tokenizer or dataset variance in the timings."""

from __future__ import annotations

import hashlib

import numpy as np

# Ids below this are the tokenizer's special tokens (<pad>, <s>, </s>, <unk>); prompts never use them.
FIRST_ORDINARY_TOKEN = 4


def synthetic_input_ids(batch_size: int, input_len: int, vocab_size: int, seed: int) -> list[list[int]]:
    """A seeded batch of ordinary token ids, identical for every backend measured on the same cell."""
    rng = np.random.default_rng([seed, batch_size, input_len])
    ids = rng.integers(FIRST_ORDINARY_TOKEN, vocab_size, size=(batch_size, input_len), dtype=np.int64)
    return ids.tolist()


def token_hash(input_ids: list[list[int]]) -> str:
    """Content hash of a token batch, stored with each result so inputs can be compared across runs."""
    array = np.asarray(input_ids, dtype=np.int64)
    digest = hashlib.sha256(str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()[:16]
