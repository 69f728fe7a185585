"""KV offload to a host cache (the KV host-offload benchmarks): a device KV pool that holds about one request,
block reuse on, prompts A,B,A,B at batch 1, with and without a host tier.

TensorRT-LLM does this inside its KV cache manager (`KvCacheConfig(enable_block_reuse=True, max_tokens,
tokens_per_block, host_cache_size)`): B's allocation evicts A's reusable blocks, to the host when it has
a host cache, else for good; returning A reuses them or recomputes. transformers 5.x has no such tier:
continuous batching's prefix sharing (`allow_block_sharing`) keeps freed blocks' hashes only while the
blocks are not reallocated, and its `OffloadingManager` swaps *running* requests out under memory
pressure, never finished prefixes; `DynamicCache(offloading=True)` streams layers of one request. So the
PyTorch arm is built here from transformers' `DynamicCache` and `generate(past_key_values=...)`: a
`TieredPrefixCache` (prefix_cache.py, shared with multiround) keeps each finished prompt's full blocks,
in a device tier of `gpu_pool_tokens` (which the running request shares) and, in the offload arm, a
host tier of `host_cache_tokens`, both least recently used first out. `EQUIVALENCE` says what matches and what does not. Beside it,
`paged_reference` runs A,B,A,B through transformers' own paged pool of the same size (the `hf_paged`
backend, `allow_block_sharing` on), whose prefix counter shows what transformers alone reuses.

The two hf arms run round-robin, one A,B,A,B sequence of each per iteration, each on a fresh pool, until the
stopping rule is met on each arm's round-1 and round-2 TTFT. The claim is round 2 (returning prompts) with the
host cache against without; the control is round 1, where neither arm has anything to reuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from inference_study.backends.hf.generate import GreedyRun, HfEager
from inference_study.backends.hf.paged import HfPaged
from inference_study.backends.hf.settings import HfPagedSettings
from inference_study.scenarios.common import divergence, load_eager
from inference_study.scenarios.kv_offload.record import (
    KvOffloadRecord,
    KvOffloadRow,
    claims,
    controls,
    expectation,
    headline,
    identical_outputs,
)
from inference_study.scenarios.kv_offload.settings import KvOffloadSettings
from inference_study.scenarios.prefix_cache import Lookup, TieredPrefixCache, timed_lookup
from inference_study.scenarios.records import Divergence
from inference_study.scenarios.timing import Policy, converge, verdict
from inference_study.stopping import Stopping
from inference_study.uncertainty import interval
from inference_study.workload import synthetic_input_ids

EQUIVALENCE = (
    "Equivalent to TensorRT-LLM's host cache: block-granular reuse of a prompt's full blocks (the last "
    "prompt token always prefilled), a device pool sized in tokens that the running request shares with "
    "cached blocks, eviction of the least recently used to a host tier or for good, and the host-to-device "
    "copy inside the returning request's TTFT. Not equivalent: the KV is a contiguous DynamicCache per "
    "prompt under eager generate, not blocks of a paged pool under TensorRT-LLM's kernels; the tiers and "
    "their counters are this study's (transformers has no host tier for reusable blocks), and a prompt's "
    "blocks move as one unit, not block by block; the host copy is synchronous, from pageable memory."
)
SEQUENCE = (("A", 1), ("B", 1), ("A", 2), ("B", 2))


def pool(backend: HfEager, settings: KvOffloadSettings, host_cache: bool) -> TieredPrefixCache:
    """A fresh device pool of `gpu_pool_tokens`, with the host tier in the offload arm."""
    return TieredPrefixCache(
        backend,
        settings.tokens_per_block,
        settings.gpu_pool_tokens,
        settings.host_cache_tokens if host_cache else 0,
    )


@dataclass(frozen=True)
class Request:
    """What a row needs from one served request of the sequence, whichever backend served it."""

    ttft_s: float
    work_s: float  # the whole request's timed seconds (what the stopping rule counts)
    prompt_blocks: int | None
    reused_blocks: int | None
    reused_from: Literal["gpu", "host"] | None
    prefilled_tokens: int | None
    output_ids: list[int]


@dataclass(frozen=True)
class Served:
    """One request of the sequence: the generate run and the cache's counters, differenced around it."""

    run: GreedyRun
    lookup: Lookup
    lookup_s: float  # the cache lookup and any host-to-device copy, before generate: part of TTFT
    reused_blocks: int

    @property
    def ttft_s(self) -> float:
        return self.lookup_s + self.run.ttft_s

    def request(self) -> Request:
        return Request(ttft_s=self.ttft_s, work_s=self.lookup_s + self.run.elapsed_s, prompt_blocks=self.lookup.prompt_blocks, reused_blocks=self.reused_blocks,
                       reused_from=self.lookup.reused_from, prefilled_tokens=self.run.forward_lengths[0],
                       output_ids=self.run.output_ids)


def serve_sequence(
    backend: HfEager, settings: KvOffloadSettings, prompts: dict[str, list[int]], host_cache: bool
) -> list[Served]:
    """A fresh pool, then A,B,A,B one at a time; the pool's reuse counter is differenced per request."""
    cache = pool(backend, settings, host_cache)
    served = []
    for name, _ in SEQUENCE:
        before = cache.reused_blocks
        found, lookup_s = timed_lookup(cache, prompts[name], settings.output_len)
        run = backend.greedy(prompts[name], settings.output_len, past_key_values=found.cache)
        cache.keep(prompts[name][: cache.cached_len(prompts[name])], found.cache)
        served.append(Served(run=run, lookup=found, lookup_s=lookup_s, reused_blocks=cache.reused_blocks - before))
    return served


def rows(
    settings: KvOffloadSettings, backend: str, host_cache: bool, sequences: list[list[Request]],
    null_reason: str | None = None,
) -> list[KvOffloadRow]:
    """One row per request of the sequence: its TTFT over the timed sequences, counters of the last."""
    table = []
    for index, (name, round_) in enumerate(SEQUENCE):
        last = sequences[-1][index]
        table.append(
            KvOffloadRow(
                backend=backend,
                host_cache=host_cache,
                round=round_,
                prompt=name,
                prompt_len=settings.prompt_len,
                output_len=settings.output_len,
                ttft_ms=interval([[s[index].ttft_s * 1e3 for s in sequences]]),
                prompt_blocks=last.prompt_blocks,
                reused_blocks=last.reused_blocks,
                hit_rate=last.reused_blocks / last.prompt_blocks if last.prompt_blocks else None,
                reused_from=last.reused_from,
                prefilled_tokens=last.prefilled_tokens,
                output_ids=last.output_ids,
                null_reason=null_reason,
            )
        )
    return table


def prompt_pair(settings: KvOffloadSettings, vocab_size: int, seed: int, index: int) -> dict[str, list[int]]:
    """The `index`-th distinct (A, B) pair: the hf arms repeat the first on fresh pools; an `LLM` keeps its pool,
    so each of its sequences sends a pair it has not seen."""
    a, b = synthetic_input_ids(2, settings.prompt_len, vocab_size, seed + index)
    return {"A": a, "B": b}


def prompts_ab(settings: KvOffloadSettings, vocab_size: int, seed: int) -> dict[str, list[int]]:
    return prompt_pair(settings, vocab_size, seed, 0)


def sequence_work_s(sequence: list[Request]) -> float:
    return sum(r.work_s for r in sequence)


def sequence_rows(settings: KvOffloadSettings, backend: str,
                  runs: dict[bool, list[list[Request]]]) -> list[KvOffloadRow]:
    return [row for host_cache, sequences in runs.items() for row in rows(settings, backend, host_cache, sequences)]


@torch.inference_mode()
def measure(
    backend: HfEager, settings: KvOffloadSettings, vocab_size: int, seed: int, policy: Policy
) -> tuple[list[KvOffloadRow], list[Divergence], Stopping]:
    """Both arms on one loaded model, one sequence of each per iteration (round-robin), every sequence on a fresh
    pool, until the stopping rule is met on each arm's round-1 and round-2 TTFT; and where an output differs
    from its prompt's first, whether that is a near-tie."""
    prompts = prompts_ab(settings, vocab_size, seed)
    arms = {host_cache: (lambda h=host_cache: [s.request() for s in serve_sequence(backend, settings, prompts, h)])
            for host_cache in (False, True)}
    measured = converge(arms, warmup=settings.warmup_iterations, rule=policy.rule, work_s=sequence_work_s,
                        requests=len, headline=lambda runs: headline(sequence_rows(settings, "hf", runs)))
    table = sequence_rows(settings, "hf", measured.runs)
    first = {r.prompt: r for r in reversed(table)}  # round 1 without a host cache: a full prefill
    divergences = [
        found for r in table
        if (found := divergence(backend, f"{r.prompt} round {r.round}, host cache {'on' if r.host_cache else 'off'}, "
                                f"against its first request", prompts[r.prompt], first[r.prompt].output_ids, r.output_ids))
    ]
    return table, divergences, measured.stopping


def record(settings: KvOffloadSettings, measured: list[KvOffloadRow], divergences: list[Divergence],
           stopping: dict[str, Stopping], policy: Policy, **paged: object) -> KvOffloadRecord:
    identical = identical_outputs(measured)
    checks = controls(measured)
    return KvOffloadRecord(
        gpu_pool_tokens=settings.gpu_pool_tokens,
        tokens_per_block=settings.tokens_per_block,
        host_cache_tokens=settings.host_cache_tokens,
        rows=measured,
        identical_outputs=identical,
        divergences=divergences,
        equivalence=EQUIVALENCE,
        expectation=expectation(measured, identical, divergences),
        verdict=verdict(warmup_iterations=settings.warmup_iterations, stopping=stopping,
                        intervals=headline(measured), max_cv=policy.max_cv, controls=checks),
        stopping=stopping,
        claims=claims(measured),
        controls=checks,
        **paged,
    )


def paged_reference(
    settings: KvOffloadSettings, model_dir: Path, dtype: str, device: str, prompts: dict[str, list[int]]
) -> tuple[list[int], list[list[int]]]:
    """Prompt tokens transformers' continuous batching reuses per request of A,B,A,B (the prompt less what the
    paged backend counts it prefilled), and the outputs, over a pool of the same size with block sharing on:
    the no-host-cache arm on paged KV."""
    paged = HfPaged(
        HfPagedSettings(
            block_size=settings.tokens_per_block,
            num_blocks=-(-settings.gpu_pool_tokens // settings.tokens_per_block),
            max_batch_tokens=settings.prompt_len,
            allow_block_sharing=True,
        ),
        model_dir,
        dtype,
        device,
    )
    paged.load()
    reused, outputs = [], []
    try:
        for name, _ in SEQUENCE:
            generation = paged.generate([prompts[name]], settings.output_len)
            outputs.append(generation.output_ids[0])
            reused.append(len(prompts[name]) - generation.prefilled_tokens[0])
    finally:
        paged.release()
    return reused, outputs


TrtllmArms = Callable[[int, int], tuple[list[KvOffloadRow], dict[str, Stopping]]]


def run_kv_offload(
    settings: KvOffloadSettings, model_dir: Path, dtype: str, device: str, vocab_size: int, seed: int,
    policy: Policy, trtllm: TrtllmArms | None = None,
) -> KvOffloadRecord:
    """The hf arms and transformers' paged reference (when `hf` is among the backends), then the
    TensorRT-LLM arms when `trtllm` is given."""
    measured, divergences, paged, stopping = [], [], {}, {}
    if "hf" in settings.backends:
        backend = load_eager(model_dir, dtype, device)
        try:
            measured, divergences, stopping["hf, both arms"] = measure(backend, settings, vocab_size, seed, policy)
        finally:
            backend.release()
        reused, outputs = paged_reference(settings, model_dir, dtype, device, prompts_ab(settings, vocab_size, seed))
        eager = {r.prompt: r.output_ids for r in measured}
        paged = {"paged_reused_tokens": reused,
                 "paged_identical_outputs": all(o == eager[n] for o, (n, _) in zip(outputs, SEQUENCE))}
    if trtllm is not None:
        trt_rows, trt_stopping = trtllm(vocab_size, seed)
        measured, stopping = measured + trt_rows, stopping | trt_stopping
    return record(settings, measured, divergences, stopping, policy, **paged)
