"""Prompt-lookup speculative decoding (the n-gram speculation write-up) with transformers: no draft model.

`prompt_lookup_num_tokens` (the draft length) and `max_matching_ngram_size` make `generate` propose
the tokens that followed the last n-gram's earlier occurrence in the prompt or the output so far, and
verify them in one forward pass. Greedy verification keeps the output identical to plain greedy.
Random weights make acceptance rates unrepresentative of a trained model; each workload's measured
n-gram overlap is recorded beside them so the cause is visible.
"""

from __future__ import annotations

import statistics
from functools import partial
from itertools import product

import torch
from transformers.generation.candidate_generator import PromptLookupCandidateGenerator

from inference_study.backends.hf.generate import GreedyRun, HfEager
from inference_study.scenarios.common import divergence, repeated
from inference_study.scenarios.ngram.record import NgramRecord, NgramRow, NgramWorkloadInfo
from inference_study.scenarios.ngram.settings import NgramSettings, NgramWorkload
from inference_study.scenarios.records import Divergence, Expectation, agreement
from inference_study.workload import synthetic_input_ids

SEED_LEN = 16
CONSTRUCTIONS = {
    "high_overlap": f"the model's own greedy continuation of a {SEED_LEN}-token random seed, cut at the prompt "
    "length: the output continues text the prompt already holds, as an edit repeats the text it edits",
    "low_overlap": "uniformly random tokens: nothing in the prompt predicts the output",
}
EXPECTED = (
    "Output identical to plain greedy decoding for every draft length and n-gram size; on the "
    "high-overlap workload drafts are accepted and decoding is faster (the n-gram speculation write-up: editing, code "
    "modification and templates work best)."
)


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


def tokens_per_s(runs: list[GreedyRun]) -> float:
    return len(runs[0].output_ids) / statistics.median(r.elapsed_s for r in runs)


def speculative_row(
    backend: HfEager,
    workload: NgramWorkload,
    prompt: list[int],
    greedy: list[GreedyRun],
    draft_len: int,
    ngram_size: int,
    settings: NgramSettings,
) -> tuple[NgramRow, Divergence | None]:
    """Time one draft length × n-gram size and count its drafts on the last timed run; where its output
    differs from plain greedy's, the first divergence."""
    runs = repeated(
        partial(
            backend.greedy,
            prompt,
            settings.output_len,
            prompt_lookup_num_tokens=draft_len,
            max_matching_ngram_size=ngram_size,
        ),
        settings.warmup_iterations,
        settings.iterations,
    )
    last = runs[-1]
    proposed_last = proposed_drafts(prompt, last, draft_len, ngram_size)
    accepted = sum(size - 1 for size in last.step_sizes)
    speed = tokens_per_s(runs)
    differing = next((r.output_ids for r in runs if r.output_ids != greedy[-1].output_ids), None)
    what = f"{workload}, draft {draft_len}, n-gram {ngram_size} against plain greedy"
    found = differing and divergence(backend, what, prompt, greedy[-1].output_ids, differing)
    row = NgramRow(
        workload=workload,
        draft_len=draft_len,
        ngram_size=ngram_size,
        tokens_per_s=speed,
        speedup=speed / tokens_per_s(greedy),
        proposed_tokens=proposed_last,
        accepted_tokens=accepted,
        acceptance_rate=accepted / proposed_last if proposed_last else None,
        forward_passes=len(last.forward_lengths),
        tokens_per_forward=len(last.output_ids) / len(last.forward_lengths),
        identical_to_greedy=differing is None,
    )
    return row, found or None


def expectation(rows: list[NgramRow], divergences: list[Divergence]) -> Expectation:
    identical = sum(r.identical_to_greedy for r in rows)
    agree, outputs = agreement(identical == len(rows), divergences)
    high = [r for r in rows if r.workload == "high_overlap"]
    best = max(high, key=lambda r: r.speedup, default=None)
    faster = best is not None and best.speedup > 1 and best.accepted_tokens > 0
    observed = f"identical to greedy in {identical} of {len(rows)} settings, outputs {outputs}"
    observed += (
        f"; best high-overlap speedup {best.speedup:.2f}× (draft {best.draft_len}, n-gram {best.ngram_size}, "
        f"acceptance {best.acceptance_rate or 0:.0%})"
        if best
        else "; no high-overlap workload was run"
    )
    return Expectation(expected=EXPECTED, met=agree and faster, observed=observed)


def run_ngram(backend: HfEager, settings: NgramSettings, vocab_size: int, seed: int) -> NgramRecord:
    """Every workload: plain greedy, then every draft length × n-gram size against it."""
    workloads, rows, divergences = [], [], []
    for name in settings.workloads:
        prompt = workload_prompt(backend, name, settings, vocab_size, seed)
        greedy = repeated(
            partial(backend.greedy, prompt, settings.output_len),
            settings.warmup_iterations,
            settings.iterations,
        )
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
                greedy_tokens_per_s=tokens_per_s(greedy),
                greedy_output_ids=greedy[-1].output_ids,
            )
        )
        measured = [
            speculative_row(backend, name, prompt, greedy, k, n, settings)
            for k, n in product(settings.draft_lens, settings.ngram_sizes)
        ]
        rows += [row for row, _ in measured]
        divergences += [found for _, found in measured if found]
    return NgramRecord(
        workloads=workloads, rows=rows, divergences=divergences, expectation=expectation(rows, divergences)
    )
