"""Prompt-lookup speculative decoding (the n-gram speculation write-up) with transformers: no draft model.

`prompt_lookup_num_tokens` (the draft length) and `max_matching_ngram_size` make `generate` propose
the tokens that followed the last n-gram's earlier occurrence in the prompt or the output so far, and
verify them in one forward pass. Greedy verification keeps the output identical to plain greedy.
Random weights make acceptance rates unrepresentative of a trained model; each workload's measured
n-gram overlap is recorded beside them so the cause is visible.

Per workload, plain greedy and every setting run round-robin, one request of each per iteration, until the
stopping rule is met on every arm's tokens/s (timing.converge): a change in the machine's load falls on all
of them alike. Each setting's speedup over greedy is a claim with its interval; settings whose drafts were
identical are the controls.
"""

from __future__ import annotations

from functools import partial
from itertools import product

import torch
from transformers.generation.candidate_generator import PromptLookupCandidateGenerator

from inference_study.backends.hf.generate import GreedyRun, HfEager
from inference_study.scenarios.common import divergence
from inference_study.scenarios.ngram.record import (
    NgramRecord,
    NgramRow,
    NgramWorkloadInfo,
    claims,
    controls,
    expectation,
)
from inference_study.scenarios.ngram.settings import NgramSettings, NgramWorkload
from inference_study.scenarios.records import Divergence
from inference_study.scenarios.timing import Policy, Repeats, converge, verdict
from inference_study.stopping import Stopping
from inference_study.uncertainty import Interval, interval
from inference_study.workload import synthetic_input_ids

SEED_LEN = 16
CONSTRUCTIONS = {
    "high_overlap": f"the model's own greedy continuation of a {SEED_LEN}-token random seed, cut at the prompt "
    "length: the output continues text the prompt already holds, as an edit repeats the text it edits",
    "low_overlap": "uniformly random tokens: nothing in the prompt predicts the output",
}
GREEDY = (0, 0)  # the arm key of plain greedy among (draft length, n-gram size) keys


def ngram_overlap(prompt: list[int], output: list[int], n: int) -> tuple[float, float]:
    """Share of output n-grams (each output token with the n-1 tokens before it) that occur in the prompt,
    and that occur anywhere earlier in prompt + output: the second is what prompt lookup can find."""
    tokens = prompt + output
    in_prompt = {tuple(prompt[i : i + n]) for i in range(len(prompt) - n + 1)}
    seen = set(in_prompt)
    prompt_hits = context_hits = 0
    for end in range(len(prompt) + 1, len(tokens) + 1):
        gram = tuple(tokens[max(0, end - n) : end])
        prompt_hits += gram in in_prompt
        context_hits += gram in seen
        seen.add(gram)
    return prompt_hits / len(output), context_hits / len(output)


def workload_prompt(
    backend: HfEager, name: NgramWorkload, settings: NgramSettings, vocab_size: int, seed: int
) -> list[int]:
    """The prompt of one workload, built from seeded random tokens (and, for high overlap, the model)."""
    if name == "low_overlap":
        return synthetic_input_ids(1, settings.prompt_len, vocab_size, seed)[0]
    start = synthetic_input_ids(1, SEED_LEN, vocab_size, seed)[0]
    if settings.prompt_len == SEED_LEN:
        return start
    return start + backend.greedy(start, settings.prompt_len - SEED_LEN).output_ids


def proposed_drafts(prompt: list[int], run: GreedyRun, draft_len: int, ngram_size: int) -> int:
    """Draft tokens prompt lookup proposed over one run, replayed with transformers' public
    `PromptLookupCandidateGenerator` on the context each step started from: the lookup is a deterministic
    function of that context, so the replay proposes what `generate` did (a test checks it step by step)."""
    lookup = PromptLookupCandidateGenerator(num_output_tokens=draft_len, max_matching_ngram_size=ngram_size,
                                            max_length=len(prompt) + len(run.output_ids))
    sequence = torch.tensor([prompt + run.output_ids])
    length, proposed = len(prompt), 0
    for size in run.step_sizes:
        candidates, _ = lookup.get_candidates(sequence[:, :length])
        proposed += candidates.shape[1] - length
        length += size
    return proposed


def tokens_per_s(run: GreedyRun) -> float:
    return len(run.output_ids) / run.elapsed_s


def arm_name(arm: tuple[int, int]) -> str:
    return "plain greedy" if arm == GREEDY else f"draft {arm[0]}, n-gram {arm[1]}"


def _headline(runs: dict[tuple[int, int], list[GreedyRun]]) -> dict[str, Interval]:
    return {f"{arm_name(arm)} tokens/s": interval([[tokens_per_s(r) for r in timed]]) for arm, timed in runs.items()}


def measure_workload(backend: HfEager, prompt: list[int], settings: NgramSettings,
                     policy: Policy) -> Repeats[tuple[int, int], GreedyRun]:
    """Plain greedy and every draft length × n-gram size on one prompt, one run of each per iteration
    (round-robin), until the stopping rule is met on every arm's tokens/s."""
    arms = {GREEDY: partial(backend.greedy, prompt, settings.output_len)}
    arms |= {(k, n): partial(backend.greedy, prompt, settings.output_len, prompt_lookup_num_tokens=k,
                             max_matching_ngram_size=n)
             for k, n in product(settings.draft_lens, settings.ngram_sizes)}
    return converge(arms, warmup=settings.warmup_iterations, rule=policy.rule, work_s=lambda r: r.elapsed_s,
                    requests=lambda r: 1, headline=_headline)


def speculative_row(
    backend: HfEager,
    workload: NgramWorkload,
    prompt: list[int],
    greedy: list[GreedyRun],
    draft_len: int,
    ngram_size: int,
    runs: list[GreedyRun],
) -> tuple[NgramRow, Divergence | None]:
    """One draft length × n-gram size from its timed runs, its drafts counted on the last; where its output
    differs from plain greedy's, the first divergence."""
    last = runs[-1]
    proposed_last = proposed_drafts(prompt, last, draft_len, ngram_size)
    accepted = sum(size - 1 for size in last.step_sizes)
    differing = next((r.output_ids for r in runs if r.output_ids != greedy[-1].output_ids), None)
    what = f"{workload}, draft {draft_len}, n-gram {ngram_size} against plain greedy"
    found = differing and divergence(backend, what, prompt, greedy[-1].output_ids, differing)
    row = NgramRow(
        workload=workload,
        draft_len=draft_len,
        ngram_size=ngram_size,
        tokens_per_s=interval([[tokens_per_s(r) for r in runs]]),
        proposed_tokens=proposed_last,
        accepted_tokens=accepted,
        acceptance_rate=accepted / proposed_last if proposed_last else None,
        forward_passes=len(last.forward_lengths),
        tokens_per_forward=len(last.output_ids) / len(last.forward_lengths),
        identical_to_greedy=differing is None,
    )
    return row, found or None


def run_ngram(backend: HfEager, settings: NgramSettings, vocab_size: int, seed: int, policy: Policy) -> NgramRecord:
    """Every workload: plain greedy and every draft length × n-gram size, timed together until they converge."""
    workloads, rows, divergences, stopping = [], [], [], {}
    for name in settings.workloads:
        prompt = workload_prompt(backend, name, settings, vocab_size, seed)
        measured = measure_workload(backend, prompt, settings, policy)
        stopping[name] = measured.stopping
        greedy = measured.runs[GREEDY]
        prompt_overlap, context_overlap = ngram_overlap(prompt, greedy[-1].output_ids, settings.overlap_ngram)
        workloads.append(
            NgramWorkloadInfo(
                name=name,
                construction=CONSTRUCTIONS[name],
                prompt_len=len(prompt),
                output_len=settings.output_len,
                overlap_ngram=settings.overlap_ngram,
                prompt_overlap=prompt_overlap,
                context_overlap=context_overlap,
                greedy_tokens_per_s=measured.interval(GREEDY, tokens_per_s),
                greedy_output_ids=greedy[-1].output_ids,
            )
        )
        found = [speculative_row(backend, name, prompt, greedy, k, n, measured.runs[(k, n)])
                 for k, n in product(settings.draft_lens, settings.ngram_sizes)]
        rows += [row for row, _ in found]
        divergences += [d for _, d in found if d]
    return record(settings, workloads, rows, divergences, stopping, policy)


def record(settings: NgramSettings, workloads: list[NgramWorkloadInfo], rows: list[NgramRow],
           divergences: list[Divergence], stopping: dict[str, Stopping], policy: Policy) -> NgramRecord:
    checks = controls(rows)
    timings = {f"{w.name} plain greedy tokens/s": w.greedy_tokens_per_s for w in workloads}
    timings |= {f"{r.workload} draft {r.draft_len}, n-gram {r.ngram_size} tokens/s": r.tokens_per_s for r in rows}
    return NgramRecord(
        workloads=workloads, rows=rows, divergences=divergences, expectation=expectation(rows, divergences),
        verdict=verdict(warmup_iterations=settings.warmup_iterations, stopping=stopping, intervals=timings,
                        max_cv=policy.max_cv, controls=checks),
        stopping=stopping, claims=claims(workloads, rows), controls=checks,
    )
