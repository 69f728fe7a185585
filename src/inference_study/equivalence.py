"""Output equivalence: every backend's greedy tokens against the baseline's, on the same inputs.

The optimizations studied here are lossless: greedy outputs should match the baseline's except for
numeric noise (a different kernel can flip an argmax between two nearly equal logits, most often
with random weights, whose logits are nearly flat). Divergence in the first quarter of the output
is flagged.
"""

from __future__ import annotations

import pandas as pd

EARLY_DIVERGENCE_FRACTION = 0.25


def compare(candidate: list[list[int]], reference: list[list[int]]) -> dict[str, float | int | None]:
    """Share of requests whose tokens are identical, and the first position where any request differs."""
    divergences = [
        next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), None)
        for mine, theirs in zip(candidate, reference)
    ]
    first = min((d for d in divergences if d is not None), default=None)
    identical = sum(d is None for d in divergences)
    return {"greedy_match_pct": 100.0 * identical / len(reference), "first_divergence": first}


def equivalence_table(outputs: dict[tuple, list[list[int]]], baseline: str) -> pd.DataFrame:
    """One row per non-baseline cell that has a baseline cell of the same model and shape.

    `outputs` maps (model, backend, batch, input, output) to that cell's output ids.
    """
    rows = []
    for (model, backend, batch, input_len, output_len), ids in sorted(outputs.items()):
        reference = outputs.get((model, baseline, batch, input_len, output_len))
        if backend == baseline or reference is None:
            continue
        row = {"model": model, "backend": backend, "batch_size": batch, "input_len": input_len,
               "output_len": output_len} | compare(ids, reference)
        first = row["first_divergence"]
        row["early_divergence"] = first is not None and first < EARLY_DIVERGENCE_FRACTION * output_len
        rows.append(row)
    return pd.DataFrame(rows)
