"""Multi-round chat (as in the multi-round chat benchmark): U users, each with a long context, over R rounds round-robin.

Each round, every user in turn sends its whole history plus `new_tokens_per_round` new tokens and gets
`output_len` greedy tokens back; the history grows by both. Three arms, each on fresh caches:

* `no_reuse`: every request prefills its whole history;
* `reuse_gpu_only`: a user's finished sequence stays in a device KV budget of `gpu_kv_tokens` (shared with
  the running request); when it is full the least recently used histories are dropped;
* `reuse_host_offload`: the same, but dropped histories move to a host tier of `host_cache_tokens` and come
  back when their user returns (the copy is inside that request's TTFT).

Before the timed rounds each user's context is prefilled once into the reuse arms' caches (untimed and
uncounted), as the multi-round chat benchmark precomputes it; TTFT, E2E and the counters cover the R rounds only.

The PyTorch equivalent is prefix caches kept per user (`prefix_cache.TieredPrefixCache`, shared with
kv_offload), not continuous batching's prefix sharing: transformers' paged pool keeps a finished request's
block hashes only until the blocks are reallocated and has no host tier for them, so past the device budget
it could show only the GPU-only arm; the multi-round chat benchmark reuses each user's previous prompt *and* output. `EQUIVALENCE` says what
matches TensorRT-LLM's `KvCacheConfig(enable_block_reuse, max_tokens, host_cache_size)` and what does not.

The TensorRT-LLM variant (`scenarios.multiround.backends: [..., trtllm_pytorch]`) runs the same requests
through the LLM API with those three KvCacheConfig settings; it runs only where TensorRT-LLM is installed
(the stage preflight refuses otherwise), and its rows exist only when it ran.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inference_study.backends.hf.generate import HfEager, synchronize
from inference_study.scenarios.common import divergence, load_eager
from inference_study.scenarios.multiround.record import MultiroundRecord, MultiroundRow
from inference_study.scenarios.multiround.settings import MULTIROUND_ARMS, MultiroundArm, MultiroundSettings
from inference_study.scenarios.prefix_cache import TieredPrefixCache, timed_lookup
from inference_study.scenarios.records import Divergence, Expectation, agreement
from inference_study.workload import synthetic_input_ids

EXPECTED = (
    "With KV reuse a returning user prefills only its new tokens, so TTFT falls below the no-reuse arm's while "
    "every user's history fits on the device; once U x history exceeds the device budget the GPU-only arm's reuse "
    "hit rate collapses (the cliff) while the host-offload arm keeps reusing histories brought back from host "
    "memory; greedy outputs are identical in every arm (the multi-round chat benchmark: 16k contexts, 10 rounds, 64/64 tokens, "
    "Llama-3.1-70B). Met is judged on the reuse counters and the outputs; the TTFT and E2E columns show whether "
    "time followed."
)
EQUIVALENCE = (
    "PyTorch arms: prefix caches kept per user, the honest equivalent here (transformers' continuous batching "
    "keeps a finished request's blocks reusable only until they are reallocated, and has no host tier for them). "
    "Equivalent to TensorRT-LLM's block reuse with a host cache: reuse of whole blocks of a user's previous prompt "
    "and output (the last prompt token always prefilled), a device budget in tokens (`max_tokens`) shared by the "
    "running request and the cached histories, least recently used eviction to a host tier or for good, and the "
    "host-to-device copy inside the returning request's TTFT. Not equivalent: requests run one at a time at batch "
    "1 (the multi-round chat benchmark enqueues a round's users together), each history is one contiguous DynamicCache moved as a unit "
    "(not paged blocks moved block by block), the tiers and their counters are this study's, and the host copy is "
    "synchronous from pageable memory."
)


@dataclass(frozen=True)
class Workload:
    """Each user's context and the new tokens it adds per round, for the largest user count (a smaller U
    takes the first users, so a user's requests are the same at every U)."""

    contexts: list[list[int]]
    new_tokens: list[list[list[int]]]  # [round][user]


def workload(settings: MultiroundSettings, vocab_size: int, seed: int) -> Workload:
    most = max(settings.users)
    contexts = synthetic_input_ids(most, settings.context_len, vocab_size, seed)
    flat = synthetic_input_ids(settings.rounds * most, settings.new_tokens_per_round, vocab_size, seed + 1)
    return Workload(contexts, [flat[r * most : (r + 1) * most] for r in range(settings.rounds)])


@dataclass(frozen=True)
class Request:
    """One user's request in one round, as served (counters are null where the backend reports none)."""

    user: int
    round: int
    prompt_len: int
    ttft_s: float
    output_ids: list[int]
    reused_tokens: int | None
    reused_from: str | None
    prefilled_tokens: int | None


@dataclass(frozen=True)
class Served:
    """All R rounds of U users in one arm: the requests in order, and the wall time of the whole."""

    requests: list[Request]
    e2e_s: float
    null_reason: str | None = None


Serve = Callable[[list[int], int, int], Request]  # (prompt, user, round) -> Request


def serve_rounds(serve: Serve, settings: MultiroundSettings, users: int, work: Workload) -> list[Request]:
    """Round-robin: every round, each user sends its history plus its new tokens; the history grows by both."""
    histories = [list(context) for context in work.contexts[:users]]
    requests = []
    for round_ in range(settings.rounds):
        for user in range(users):
            prompt = histories[user] + work.new_tokens[round_][user]
            request = serve(prompt, user, round_)
            requests.append(request)
            histories[user] = prompt + request.output_ids
    return requests


def arm_cache(backend: HfEager, settings: MultiroundSettings, arm: MultiroundArm) -> TieredPrefixCache | None:
    if arm == "no_reuse":
        return None
    host = settings.host_cache_tokens if arm == "reuse_host_offload" else 0
    return TieredPrefixCache(backend, settings.tokens_per_block, settings.gpu_kv_tokens, host)


def serve_hf(
    backend: HfEager, settings: MultiroundSettings, arm: MultiroundArm, users: int, work: Workload
) -> Served:
    """One arm on transformers, on a fresh cache: the lookup (and any host-to-device copy) counts in TTFT."""
    cache = arm_cache(backend, settings, arm)

    def serve(prompt: list[int], user: int, round_: int) -> Request:
        found, lookup_s = timed_lookup(cache, prompt, settings.output_len) if cache else (None, 0.0)
        run = backend.greedy(prompt, settings.output_len, past_key_values=found.cache if found else None)
        if cache:
            cache.keep(prompt + run.output_ids, found.cache)
        return Request(
            user=user,
            round=round_,
            prompt_len=len(prompt),
            ttft_s=lookup_s + run.ttft_s,
            output_ids=run.output_ids,
            reused_tokens=found.reused_tokens if found else 0,
            reused_from=found.reused_from if found else None,
            prefilled_tokens=run.forward_lengths[0],
        )

    if cache:  # the multi-round chat benchmark precomputes each user's context: prefilled here, untimed and uncounted
        for context in work.contexts[:users]:
            found = cache.lookup(context, 1)
            run = backend.greedy(context, 1, past_key_values=found.cache)
            cache.keep(context + run.output_ids, found.cache)
    synchronize(backend.device)
    start = time.perf_counter()
    requests = serve_rounds(serve, settings, users, work)
    synchronize(backend.device)
    return Served(requests, time.perf_counter() - start)


def fits_on_device(settings: MultiroundSettings, users: int) -> bool:
    """Every user's whole final sequence fits the device budget at once (so nothing need ever be evicted)."""
    return users * settings.longest_sequence() <= settings.gpu_kv_tokens


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3


def _sum(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(values)


def row(
    backend: str, arm: MultiroundArm, users: int, settings: MultiroundSettings, timed: list[Served],
    reference: list[Request] | None,
) -> MultiroundRow:
    """TTFT percentiles over every timed request (per round: over that round's users); counters of the last."""
    last = timed[-1].requests
    ttfts = [r.ttft_s for served in timed for r in served.requests]
    per_round = [[r.ttft_s for served in timed for r in served.requests if r.round == n] for n in range(settings.rounds)]
    prompt_tokens = sum(r.prompt_len for r in last)
    reused = _sum([r.reused_tokens for r in last])
    from_host = None if reused is None else sum(r.reused_tokens for r in last if r.reused_from == "host")
    return MultiroundRow(
        backend=backend,
        arm=arm,
        users=users,
        rounds=settings.rounds,
        requests=len(last),
        fits_on_device=fits_on_device(settings, users),
        ttft_p50_ms=_percentile(ttfts, 50),
        ttft_p99_ms=_percentile(ttfts, 99),
        round_ttft_p50_ms=[_percentile(values, 50) for values in per_round],
        round_ttft_p99_ms=[_percentile(values, 99) for values in per_round],
        e2e_s=statistics.median(served.e2e_s for served in timed),
        prompt_tokens=prompt_tokens,
        reused_tokens=reused,
        reused_from_host_tokens=from_host,
        hit_rate=None if reused is None else reused / prompt_tokens,
        prefilled_tokens=_sum([r.prefilled_tokens for r in last]),
        output_tokens=sum(len(r.output_ids) for r in last),
        identical_to_no_reuse=None if reference is None else [r.output_ids for r in last] == [
            r.output_ids for r in reference
        ],
        null_reason=timed[-1].null_reason,
    )


ArmServer = Callable[[MultiroundArm, int], Served]


Diverged = Callable[[str, int, int, list[int], list[int]], None]  # (what, user, round, reference, candidate)


def sweep(
    backend: str, serve_arm: ArmServer, settings: MultiroundSettings, diverged: Diverged | None = None
) -> tuple[list[MultiroundRow], bool]:
    """Every user count, every arm on it in turn (`iterations` times each); and whether every request of a
    user and round got the same tokens in every arm and at every user count. `diverged` hears of each
    user's first differing request per arm and user count (its prompt is still the reference's)."""
    rows, outputs, identical = [], {}, True
    for users in settings.users:
        reference = None
        for arm in MULTIROUND_ARMS:
            timed = [serve_arm(arm, users) for _ in range(settings.iterations)]
            if arm == "no_reuse":
                reference = timed[-1].requests
            rows.append(row(backend, arm, users, settings, timed, reference))
            first_differing: dict[int, Request] = {}
            for served in timed:
                for r in served.requests:
                    expected = outputs.setdefault((r.user, r.round), r.output_ids)
                    if expected != r.output_ids:
                        identical = False
                        first_differing.setdefault(r.user, r)
            for r in first_differing.values():
                if diverged:
                    diverged(f"{arm}, U={users}, user {r.user} round {r.round} against its first request",
                             r.user, r.round, outputs[(r.user, r.round)], r.output_ids)
    return rows, identical


def _rate(rows: list[MultiroundRow], arm: str, users: int) -> float | None:
    return next((r.hit_rate for r in rows if r.arm == arm and r.users == users), None)


def _shown(rate: float | None) -> str:
    return "not reported" if rate is None else f"{rate:.0%}"


def _ttft_ratio(rows: list[MultiroundRow], slow: str, fast: str, users: int) -> str:
    p50 = {r.arm: r.ttft_p50_ms for r in rows if r.users == users}
    return f"{p50[slow] / p50[fast]:.2f}x"


def expectation(
    settings: MultiroundSettings, rows: list[MultiroundRow], identical: bool, divergences: list[Divergence] = ()
) -> Expectation:
    """Judged on the hf rows (the TensorRT-LLM rows, when measured, are reported beside them), or on the
    TensorRT-LLM rows when they are the only ones; a counter the backend does not report fails the check."""
    hf = [r for r in rows if r.backend == "hf"] or rows
    fitting = [u for u in settings.users if fits_on_device(settings, u)]
    beyond = [u for u in settings.users if not fits_on_device(settings, u)]
    no_reuse_zero = all(r.hit_rate == 0 for r in hf if r.arm == "no_reuse")
    reuse_while_fitting = all(
        r.hit_rate is not None and r.hit_rate > 0 for r in hf if r.arm != "no_reuse" and r.users in fitting
    )
    agree, outputs = agreement(identical, list(divergences))
    parts = [f"outputs {outputs} across arms and user counts"]
    if fitting:
        u = max(fitting)
        parts.append(
            f"at U={u} (fits) hit rate {_shown(_rate(hf, 'reuse_gpu_only', u))} GPU-only, "
            f"{_shown(_rate(hf, 'reuse_host_offload', u))} host offload; TTFT P50 no reuse / GPU-only reuse "
            f"{_ttft_ratio(hf, 'no_reuse', 'reuse_gpu_only', u)}"
        )
    if beyond:
        u = max(beyond)
        gpu, host = _rate(hf, "reuse_gpu_only", u), _rate(hf, "reuse_host_offload", u)
        parts.append(
            f"at U={u} (exceeds the {settings.gpu_kv_tokens}-token device budget) hit rate {_shown(gpu)} "
            f"GPU-only, {_shown(host)} host offload; TTFT P50 GPU-only / host offload "
            f"{_ttft_ratio(hf, 'reuse_gpu_only', 'reuse_host_offload', u)}"
        )
        cliff = gpu is not None and host is not None and host > gpu
    else:
        parts.append("no user count exceeds the device budget, so the cliff is not shown")
        cliff = False
    met = agree and no_reuse_zero and reuse_while_fitting and cliff
    return Expectation(expected=EXPECTED, met=met, observed="; ".join(parts))


def reference_prompt(work: Workload, outputs: dict[tuple[int, int], list[int]], user: int, round_: int) -> list[int]:
    """The prompt of `user` in `round_` when every earlier round produced the reference outputs."""
    prompt = list(work.contexts[user])
    for earlier in range(round_):
        prompt += work.new_tokens[earlier][user] + outputs[(user, earlier)]
    return prompt + work.new_tokens[round_][user]


@torch.inference_mode()
def measure_hf(
    backend: HfEager, settings: MultiroundSettings, work: Workload
) -> tuple[list[MultiroundRow], bool, list[Divergence]]:
    """The transformers arms on one loaded model, after `warmup_iterations` untimed requests; and the first
    divergence of each request that differs from its reference."""
    first = work.contexts[0] + work.new_tokens[0][0]
    for _ in range(settings.warmup_iterations):
        backend.greedy(first, settings.output_len)
    references: dict[tuple[int, int], list[int]] = {}
    pending: list[tuple[str, int, int, list[int], list[int]]] = []

    def serve_arm(arm: MultiroundArm, users: int) -> Served:
        served = serve_hf(backend, settings, arm, users, work)
        for r in served.requests:
            references.setdefault((r.user, r.round), r.output_ids)
        return served

    rows, identical = sweep("hf", serve_arm, settings, lambda *found: pending.append(found))
    divergences = [
        found for what, user, round_, reference, candidate in pending
        if (found := divergence(backend, what, reference_prompt(work, references, user, round_), reference, candidate))
    ]
    return rows, identical, divergences


def record(
    settings: MultiroundSettings, rows: list[MultiroundRow], identical: bool, divergences: list[Divergence] = ()
) -> MultiroundRecord:
    return MultiroundRecord(
        context_len=settings.context_len,
        rounds=settings.rounds,
        new_tokens_per_round=settings.new_tokens_per_round,
        output_len=settings.output_len,
        tokens_per_block=settings.tokens_per_block,
        gpu_kv_tokens=settings.gpu_kv_tokens,
        host_cache_tokens=settings.host_cache_tokens,
        rows=rows,
        identical_outputs=identical,
        divergences=list(divergences),
        equivalence=EQUIVALENCE,
        expectation=expectation(settings, rows, identical, divergences),
    )


def run_multiround(
    settings: MultiroundSettings, model_dir: Path, dtype: str, device: str, vocab_size: int, seed: int,
    trtllm: Callable[[Workload], tuple[list[MultiroundRow], bool]] | None = None,
) -> MultiroundRecord:
    """The hf arms (when `hf` is among the backends), then the TensorRT-LLM arms when `trtllm` is given."""
    work = workload(settings, vocab_size, seed)
    rows, identical, divergences = [], True, []
    if "hf" in settings.backends:
        backend = load_eager(model_dir, dtype, device)
        try:
            rows, identical, divergences = measure_hf(backend, settings, work)
        finally:
            backend.release()
    if trtllm is not None:
        trt_rows, trt_identical = trtllm(work)
        rows, identical = rows + trt_rows, identical and trt_identical
    return record(settings, rows, identical, divergences)
