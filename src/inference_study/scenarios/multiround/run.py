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
At each user count the three arms run round-robin, one pass of each per iteration (fresh caches every pass),
until the stopping rule is met on every arm's TTFT P50 and E2E.

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

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inference_study.backends.hf.generate import HfEager, synchronize
from inference_study.scenarios.common import divergence, load_eager
from inference_study.scenarios.multiround.record import (
    MultiroundRecord,
    MultiroundRow,
    claims,
    controls,
    expectation,
)
from inference_study.scenarios.multiround.settings import MULTIROUND_ARMS, MultiroundArm, MultiroundSettings
from inference_study.scenarios.prefix_cache import TieredPrefixCache, timed_lookup
from inference_study.scenarios.records import Divergence
from inference_study.scenarios.timing import Policy, converge, verdict
from inference_study.stopping import Stopping, StoppingRule
from inference_study.uncertainty import Interval, interval
from inference_study.workload import synthetic_input_ids

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


def _percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3


def _per_iteration(timed: list[Served], q: float, round_: int | None = None) -> Interval:
    """One value per timed iteration: the q-th percentile of its requests' TTFT (of one round's, when given), ms."""
    return interval([[_percentile_ms([r.ttft_s for r in served.requests if round_ is None or r.round == round_], q)
                      for served in timed]])


def _sum(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(values)


def row(
    backend: str, arm: MultiroundArm, users: int, settings: MultiroundSettings, timed: list[Served],
    reference: list[Request] | None,
) -> MultiroundRow:
    """Each timing over the timed iterations (per iteration, the percentile over its requests, or over one round's
    users); counters of the last iteration."""
    last = timed[-1].requests
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
        ttft_p50_ms=_per_iteration(timed, 50),
        ttft_p99_ms=_per_iteration(timed, 99),
        round_ttft_p50_ms=[_per_iteration(timed, 50, n) for n in range(settings.rounds)],
        round_ttft_p99_ms=[_per_iteration(timed, 99, n) for n in range(settings.rounds)],
        e2e_s=interval([[served.e2e_s for served in timed]]),
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


def _headline(runs: dict[MultiroundArm, list[Served]]) -> dict[str, Interval]:
    return {f"{arm} {name}": value for arm, timed in runs.items()
            for name, value in (("TTFT P50", _per_iteration(timed, 50)),
                                ("E2E", interval([[s.e2e_s for s in timed]])))}


def sweep(
    backend: str, serve_arm: ArmServer, settings: MultiroundSettings, rule: StoppingRule,
    diverged: Diverged | None = None,
) -> tuple[list[MultiroundRow], bool, dict[str, Stopping]]:
    """Every user count, its three arms round-robin (one pass of each per iteration, each on fresh caches) until
    the stopping rule is met on every arm's TTFT P50 and E2E; whether every request of a user and round got the
    same tokens in every arm and at every user count; and each user count's loop. `diverged` hears of each
    user's first differing request per arm and user count (its prompt is still the reference's)."""
    rows, outputs, identical, stopping = [], {}, True, {}
    for users in settings.users:
        arms = {arm: (lambda a=arm, u=users: serve_arm(a, u)) for arm in MULTIROUND_ARMS}
        measured = converge(arms, warmup=0, rule=rule, work_s=lambda s: s.e2e_s, requests=lambda s: len(s.requests),
                            headline=_headline)
        stopping[f"{backend}, U={users}"] = measured.stopping
        reference = measured.runs["no_reuse"][-1].requests
        for arm, timed in measured.runs.items():
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
    return rows, identical, stopping


def reference_prompt(work: Workload, outputs: dict[tuple[int, int], list[int]], user: int, round_: int) -> list[int]:
    """The prompt of `user` in `round_` when every earlier round produced the reference outputs."""
    prompt = list(work.contexts[user])
    for earlier in range(round_):
        prompt += work.new_tokens[earlier][user] + outputs[(user, earlier)]
    return prompt + work.new_tokens[round_][user]


@torch.inference_mode()
def measure_hf(
    backend: HfEager, settings: MultiroundSettings, work: Workload, rule: StoppingRule
) -> tuple[list[MultiroundRow], bool, list[Divergence], dict[str, Stopping]]:
    """The transformers arms on one loaded model, after `warmup_iterations` untimed requests; the first
    divergence of each request that differs from its reference; and each user count's loop."""
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

    rows, identical, stopping = sweep("hf", serve_arm, settings, rule, lambda *found: pending.append(found))
    divergences = [
        found for what, user, round_, reference, candidate in pending
        if (found := divergence(backend, what, reference_prompt(work, references, user, round_), reference, candidate))
    ]
    return rows, identical, divergences, stopping


def record(
    settings: MultiroundSettings, rows: list[MultiroundRow], identical: bool, divergences: list[Divergence],
    stopping: dict[str, Stopping], policy: Policy,
) -> MultiroundRecord:
    checks = controls(rows)
    timings = {f"{r.backend} {r.arm} U={r.users} {name}": value for r in rows
               for name, value in (("TTFT P50", r.ttft_p50_ms), ("E2E", r.e2e_s))}
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
        expectation=expectation(rows, identical, list(divergences),
                                [u for u in settings.users if fits_on_device(settings, u)],
                                [u for u in settings.users if not fits_on_device(settings, u)], settings.gpu_kv_tokens),
        verdict=verdict(warmup_iterations=settings.warmup_iterations, stopping=stopping, intervals=timings,
                        max_cv=policy.max_cv, controls=checks),
        stopping=stopping,
        claims=claims(rows),
        controls=checks,
    )


TrtllmArms = Callable[[Workload], tuple[list[MultiroundRow], bool, dict[str, Stopping]]]


def run_multiround(
    settings: MultiroundSettings, model_dir: Path, dtype: str, device: str, vocab_size: int, seed: int,
    policy: Policy, trtllm: TrtllmArms | None = None,
) -> MultiroundRecord:
    """The hf arms (when `hf` is among the backends), then the TensorRT-LLM arms when `trtllm` is given."""
    work = workload(settings, vocab_size, seed)
    rows, identical, divergences, stopping = [], True, [], {}
    if "hf" in settings.backends:
        backend = load_eager(model_dir, dtype, device)
        try:
            rows, identical, divergences, stopping = measure_hf(backend, settings, work, policy.rule)
        finally:
            backend.release()
    if trtllm is not None:
        trt_rows, trt_identical, trt_stopping = trtllm(work)
        rows, identical, stopping = rows + trt_rows, identical and trt_identical, stopping | trt_stopping
    return record(settings, rows, identical, divergences, stopping, policy)
