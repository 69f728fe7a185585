"""The report tables of the scenario: prompt-lookup (n-gram) speculative decoding against plain greedy, over draft length x n-gram size x workload."""

from __future__ import annotations

import pandas as pd

from inference_study.results import ScenarioResult
from inference_study.scenarios.report import table

RANDOM_WEIGHTS_NOTE = (
    "Random weights: a random model's greedy output is not text, so these acceptance rates say nothing about a "
    "trained model's. Read them beside the workload's n-gram overlap (share of output n-grams already in the "
    "prompt, or anywhere earlier in prompt + output, which is what prompt lookup can find): acceptance follows it."
)

def tables(results: list[ScenarioResult]) -> list[str]:
    workloads = pd.DataFrame(
        [
            {"model": r.model.name, **w.model_dump(exclude={"greedy_output_ids", "construction"})}
            for r in results
            for w in r.record.workloads
        ]
    )
    overlap = workloads.set_index(["model", "name"])["context_overlap"]
    rows = pd.DataFrame(
        [{"model": r.model.name, **row.model_dump()} for r in results for row in r.record.rows]
    )
    rows.insert(2, "workload_overlap", [overlap[(m, w)] for m, w in zip(rows["model"], rows["workload"])])
    constructions = {w.name: w.construction for r in results for w in r.record.workloads}
    lines = [
        "Workloads (overlap: share of output n-grams of size `overlap_ngram` already seen):",
        "",
        table(workloads),
        "",
    ]
    lines += [f"- `{name}`: {text}" for name, text in constructions.items()] + [""]
    lines += [
        (
            "Speculative settings against plain greedy (same workload, same model); `workload_overlap` is the "
            "context overlap:"
        ),
        "",
        table(rows),
        "",
    ]
    if any(r.model.random_weights for r in results):
        lines += [RANDOM_WEIGHTS_NOTE, ""]
    return lines
