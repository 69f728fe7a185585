"""Prefix KV kept between requests in a device tier and an optional host tier (kv_offload and multiround).

transformers 5.x has no reusable-block tiers of its own (kv_offload.py says why), so the scenarios build
them from its `DynamicCache` and `generate(past_key_values=...)`: a finished request's full blocks stay
on the device, keyed by their tokens; a later prompt that starts with them reuses the longest cached
prefix (always leaving its last token to prefill, as block reuse does) and prefills only the rest. The
device tier is sized in tokens and shared with the running request; when it is full, the least recently
used entries move to the host tier (when there is one, also least recently used first out) or are dropped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from transformers import DynamicCache

from inference_study.backends.hf.generate import HfEager, synchronize

Key = tuple[int, ...]


def moved(cache: DynamicCache, device: str, config) -> DynamicCache:
    """The cache's layers on `device` (the same tensors when already there: generate appends by concatenation)."""
    layers = [(layer.keys.to(device), layer.values.to(device)) for layer in cache.layers]
    return DynamicCache(layers, config=config)


@dataclass
class Lookup:
    """What the cache found for one prompt: a cache to generate from (fresh when nothing), and counters."""

    cache: DynamicCache
    prompt_blocks: int = 0
    reused_blocks: int = 0
    reused_tokens: int = 0
    reused_from: str | None = None


class TieredPrefixCache:
    """Prompt-prefix KV in a device tier that the running request shares, and an optional host tier."""

    def __init__(self, backend: HfEager, tokens_per_block: int, gpu_tokens: int, host_tokens: int) -> None:
        self.backend, self.block = backend, tokens_per_block
        self.capacity = {"gpu": gpu_tokens, "host": host_tokens}
        self.tiers: dict[str, OrderedDict[Key, DynamicCache]] = {"gpu": OrderedDict(), "host": OrderedDict()}
        self.reused_blocks = 0

    def cached_len(self, prompt: list[int]) -> int:
        """Full blocks of the prompt, keeping at least its last token to prefill (as block reuse does)."""
        return (len(prompt) - 1) // self.block * self.block

    def used(self, tier: str) -> int:
        return sum(len(key) for key in self.tiers[tier])

    def _make_room(self, tier: str, tokens: int, keep: Key | None = None) -> None:
        """Evict least recently used entries (never `keep`) until `tokens` fit; device ones go to host."""
        entries = self.tiers[tier]
        for key in [k for k in entries if k != keep]:
            if self.used(tier) + tokens <= self.capacity[tier]:
                return
            evicted = entries.pop(key)
            if tier == "gpu" and len(key) <= self.capacity["host"]:
                self._make_room("host", len(key))
                self.tiers["host"][key] = moved(evicted, "cpu", self.backend.model_config)

    def match(self, prompt: list[int]) -> tuple[str, Key] | None:
        """(tier, key) of the longest cached prefix of `prompt` that leaves its last token uncached."""
        limit = self.cached_len(prompt)
        best: tuple[str, Key] | None = None
        for tier in ("gpu", "host"):
            for key in self.tiers[tier]:
                longer = best is None or len(key) > len(best[1])
                if longer and len(key) <= limit and tuple(prompt[: len(key)]) == key:
                    best = (tier, key)
        return best

    def lookup(self, prompt: list[int], output_len: int) -> Lookup:
        """Reserve the request's room on the device and hand back the reusable prefix (a copy), if any."""
        config = self.backend.model_config
        found = self.match(prompt)
        source, key = found if found else (None, None)
        if source == "host":
            self._make_room("gpu", len(key))
            self.tiers["gpu"][key] = moved(self.tiers["host"].pop(key), self.backend.device, config)
        if key is not None:
            self.tiers["gpu"].move_to_end(key)
        shared = len(key) if key else 0  # the running request's prefix is the reused entry itself
        self._make_room("gpu", len(prompt) + output_len - shared, keep=key)
        reused = shared // self.block
        self.reused_blocks += reused
        cache = moved(self.tiers["gpu"][key], self.backend.device, config) if key else DynamicCache(config=config)
        return Lookup(
            cache=cache,
            prompt_blocks=self.cached_len(prompt) // self.block,
            reused_blocks=reused,
            reused_tokens=shared,
            reused_from=source,
        )

    def keep(self, tokens: list[int], cache: DynamicCache) -> None:
        """After the request: the full blocks of `tokens` that `cache` holds stay on the device, cropped from
        it; a cached entry that is a shorter prefix of them is superseded (its blocks are the same)."""
        length = min(len(tokens), cache.get_seq_length()) // self.block * self.block
        key = tuple(tokens[:length])
        if not key or key in self.tiers["gpu"]:
            return
        for entries in self.tiers.values():
            for old in [k for k in entries if len(k) < length and key[: len(k)] == k]:
                del entries[old]
        if length < cache.get_seq_length():
            cache.crop(length - cache.get_seq_length())  # negative: drops the tokens after the kept blocks
        self.tiers["gpu"][key] = cache


def timed_lookup(cache: TieredPrefixCache, prompt: list[int], output_len: int) -> tuple[Lookup, float]:
    """`cache.lookup` and its seconds, device work included: a host-to-device copy belongs to the request's TTFT."""
    device = cache.backend.device
    synchronize(device)
    start = time.perf_counter()
    found = cache.lookup(prompt, output_len)
    synchronize(device)
    return found, time.perf_counter() - start
