"""The report tables of the scenario: prompt-lookup (n-gram) speculative decoding against plain greedy, over draft length x n-gram size x workload."""

from __future__ import annotations

import pandas as pd

from inference_study.results import ScenarioResult
from inference_study.scenarios.ngram.record import setting
from inference_study.scenarios.report import comparison_lines, table, timing_lines
from inference_study.scenarios.timing import shown

RANDOM_WEIGHTS_NOTE = (
    "Random weights: a random model's greedy output is not text, so these acceptance rates say nothing about a "
    "trained model's. Read them beside the workload's n-gram overlap (share of output n-grams already in the "
    "prompt, or anywhere earlier in prompt + output, which is what prompt lookup can find): acceptance follows it."
)


def tables(results: list[ScenarioResult]) -> list[str]:
    workloads = pd.DataFrame(
        [
            {"model": r.model.name, **w.model_dump(exclude={"greedy_output_ids", "construction", "greedy_tokens_per_s"}),
             "greedy_tokens_per_s": shown(w.greedy_tokens_per_s)}
            for r in results
            for w in r.record.workloads
        ]
    )
    overlap = workloads.set_index(["model", "name"])["context_overlap"]
    rows = []
    for r in results:
        against = {(c.what, c.subject): c.short() for c in r.record.claims}
        for row in r.record.rows:
            rows.append({"model": r.model.name, "workload": row.workload,
                         "workload_overlap": overlap[(r.model.name, row.workload)],
                         "draft_len": row.draft_len, "ngram_size": row.ngram_size,
                         "tokens_per_s": shown(row.tokens_per_s),
                         "against_greedy": against.get((row.workload, setting(row)), "—"),
                         **row.model_dump(exclude={"workload", "draft_len", "ngram_size", "tokens_per_s"})})
    constructions = {w.name: w.construction for r in results for w in r.record.workloads}
    lines = timing_lines(results) + [
        "Workloads (overlap: share of output n-grams of size `overlap_ngram` already seen):",
        "",
        table(workloads),
        "",
    ]
    lines += [f"- `{name}`: {text}" for name, text in constructions.items()] + [""]
    lines += [
        (
            "Speculative settings against plain greedy (same workload, same model, timed round-robin with it); "
            "`workload_overlap` is the context overlap; `against_greedy` is the setting's tokens/s speedup:"
        ),
        "",
        table(pd.DataFrame(rows)),
        "",
    ]
    controls = comparison_lines(results, claims=False)
    if controls:
        lines += [("Controls: settings that proposed and accepted the same drafts in the same forward passes do the "
                   "same model work, so the fastest of them against the slowest should not differ:"), "", *controls]
    if any(r.model.random_weights for r in results):
        lines += [RANDOM_WEIGHTS_NOTE, ""]
    return lines
