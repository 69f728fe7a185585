"""The report's generic Markdown sections: each takes the tidy frame, the loaded results or the config, and
returns its lines. None of them names a backend: what a backend is comes from its result files."""

from __future__ import annotations

import json
import re
from collections import Counter

import pandas as pd

from inference_study.config import StudyConfig
from inference_study.plan import bench_units
from inference_study.report.figures import ladder_order
from inference_study.report.table import (
    COMPARABLE,
    HEADLINE_LABELS,
    SHAPE,
    SHAPE_KEYS,
    SPEEDUP_KEYS,
    Loaded,
    as_ratio,
    cross_environment_pairs,
    ratio_text,
    setup_by_backend,
    setup_share_pct,
)
from inference_study.roofline import Roofline
from inference_study.tables import MISSING, markdown_table, readable

RESULT_COLUMNS = [
    "model", "backend", *SHAPE, "status", "verdict", "ttft_p50_ms", "tpot_p50_ms", "e2e_p50_ms", "e2e_p95_ms",
    "e2e_p99_ms", "output_tokens_per_s", "mbu_pct", "prefill_mfu_pct", "nvml_memory_peak_gib",
    "torch_allocated_peak_gib", "gpu_utilization_mean_pct", "joules_per_output_token"]


def header(study: StudyConfig, frame: pd.DataFrame) -> list[str]:
    counts = frame["status"].value_counts().to_dict()
    return [f"# Inference study: {study.study.name}", "", study.study.description, "",
            f"Cells: {len(frame)} configured; " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".", "",
            "Metrics follow trtllm-bench/MLPerf: TTFT = first token − request start; TPOT = (E2E − TTFT)/(OSL − 1);",
            "ITL = gap between consecutive tokens; output length is forced (EOS ignored) and checked per request.",
            "Values are P50 over all requests of all timed iterations unless named otherwise.", ""]


def results(frame: pd.DataFrame) -> list[str]:
    """Every cell's headline numbers; a `gpus` column where some model was sharded over several GPUs."""
    sharded = "gpus" in frame and (frame["gpus"].fillna(1) > 1).any()
    columns = [*RESULT_COLUMNS[:2], "gpus", *RESULT_COLUMNS[2:]] if sharded else RESULT_COLUMNS
    note = ["MBU and MFU of a sharded cell are against all its GPUs; its memory and utilization are rank 0's GPU's.",
            ""] if sharded else []
    return ["## Results", "", *note, markdown_table(frame, columns, readable_numbers=True), ""]


NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _merged(reasons: list[str]) -> str:
    """Reasons that differ only in their numbers (a sample count per cell) as one text, each number that differs
    shown as its range: "P99 needs >= 100 samples; 10–80 were timed"."""
    numbers = [NUMBER.findall(reason) for reason in reasons]
    parts = NUMBER.split(reasons[0])
    shown = []
    for column in zip(*numbers):
        values = sorted(set(column), key=float)
        shown.append(values[0] if len(values) == 1 else f"{values[0]}–{values[-1]}")
    return parts[0] + "".join(value + part for value, part in zip(shown, parts[1:]))


def _described(reasons: list[str]) -> str:
    """One field's reasons over the cells, grouped by their wording apart from numbers, each with its cell count."""
    groups: dict[str, list[str]] = {}
    for reason in reasons:
        groups.setdefault(NUMBER.sub("#", reason), []).append(reason)
    return "; ".join(f"{_merged(group)} ({len(group)} cell{'s' if len(group) > 1 else ''})"
                     for _, group in sorted(groups.items()))


def null_reasons(loaded: Loaded) -> list[str]:
    """Why a column shows "—": each null value carries its reason in the result file. Reasons are grouped by
    field with their cell counts, and fields whose reasons read alike share a line, so the list stays as long
    as the kinds of gap, not the number of cells."""
    by_field: dict[str, list[str]] = {}
    for _, result in loaded:
        for field, why in (result.null_reasons.items() if result is not None else ()):
            by_field.setdefault(field, []).append(why)
    if not by_field:
        return []
    fields_of: dict[str, list[str]] = {}
    for field in sorted(by_field):
        fields_of.setdefault(_described(by_field[field]), []).append(field)
    lines = [f"Values shown as {MISSING} were not measured, for these reasons:", ""]
    return lines + [f"- {', '.join(f'`{f}`' for f in fields)}: {text}" for text, fields in fields_of.items()] + [""]


def _with_interval(frame: pd.DataFrame, label: str) -> pd.Series:
    """"median [low, high]" per cell for a headline metric; the bare median when there is no interval."""
    def cell(row: pd.Series) -> str:
        if pd.isna(row.get(f"{label}_median")):
            return MISSING
        text = readable(float(row[f"{label}_median"]))
        if pd.notna(row.get(f"{label}_ci_low")):
            text += f" [{readable(float(row[f'{label}_ci_low']))}, {readable(float(row[f'{label}_ci_high']))}]"
        return text

    return frame.apply(cell, axis=1)


def _half_widths(row: pd.Series) -> str:
    """Each headline metric's interval half-width relative to its median, in HEADLINE_LABELS order."""
    def one(label: str) -> str:
        low, high, median = (row.get(f"{label}_{end}") for end in ("ci_low", "ci_high", "median"))
        if any(pd.isna(value) for value in (low, high, median)) or not median:
            return MISSING
        return f"±{(high - low) / 2 / abs(median):.1%}"

    return " / ".join(one(label) for label in HEADLINE_LABELS)


def _stopped(row: pd.Series) -> str:
    converged = row.get("converged")
    return row["stop_reason"] + (", not converged" if pd.notna(converged) and not converged else "")


def repeatability(frame: pd.DataFrame) -> list[str]:
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return []
    if f"{HEADLINE_LABELS[0]}_median" not in ok:
        return ["## Repeatability", "", ("These results predate per-repeat intervals (result schema 1): "
                "each cell reports one pooled distribution, without a confidence interval."), ""]
    table = ok[SHAPE_KEYS].copy()
    for label in HEADLINE_LABELS:
        table[label] = _with_interval(ok, label)
    table["half-widths"] = ok.apply(_half_widths, axis=1)
    table["max CV"] = ok[[f"{label}_cv" for label in HEADLINE_LABELS]].max(axis=1).map(
        lambda cv: MISSING if pd.isna(cv) else f"{cv:.1%}"
    )
    table["stopped"] = ok.apply(_stopped, axis=1)
    table["iterations"] = ok["iterations"].map(lambda n: MISSING if pd.isna(n) else str(int(n)))
    lines = ["## Repeatability", "",
             ("Median over the timed iterations (each one a repeat) with its 95% interval: two order statistics of "
             "the repeats (distribution-free) for a cell timed in one process, a hierarchical bootstrap over "
             "processes and their repeats for one timed in several. `half-widths` are each interval's half-width "
             f"relative to its median ({' / '.join(HEADLINE_LABELS)}), `max CV` the largest coefficient of "
             "variation of the three. Timing stopped as `converged` once every half-width was within the study's "
             "target, at `max_requests` or `max_seconds` before that (not converged: the verdict warns), or "
             "after the fixed count of an older result (`fixed_iterations`, convergence not judged)."), ""]
    return lines + [markdown_table(table, disable_numparse=True), ""]


def verdicts(frame: pd.DataFrame) -> list[str]:
    flagged = frame[frame["verdict"].isin(["warn", "fail"])] if "verdict" in frame else frame.iloc[0:0]
    lines = ["## Validity", ""]
    counts = frame["verdict"].value_counts().to_dict() if "verdict" in frame else {}
    lines.append("Verdicts: " + (", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "none") + ".")
    if not flagged.empty:
        lines += ["", markdown_table(flagged, [*SHAPE_KEYS, "verdict", "verdict_reasons"], readable_numbers=True)]
    return lines + [""]


def equivalence(frame: pd.DataFrame, baseline: str | None) -> list[str]:
    lines = ["## Output equivalence", ""]
    if baseline is None:
        return lines + ["No baseline is declared (`study.comparisons.baseline`), so no greedy tokens are compared.",
                        ""]
    if "greedy_match_pct" not in frame or frame["greedy_match_pct"].isna().all():
        return lines + [f"No cell has both its own and `{baseline}`'s greedy tokens to compare.", ""]
    compared = frame[frame["greedy_match_pct"].notna()]
    early = int(compared["early_divergence"].fillna(False).astype(bool).sum())
    return lines + [
        f"Greedy tokens of the last timed iteration against `{baseline}` on the same inputs: the share of",
        "requests with identical tokens, and the first position where any request differs (— when none does).",
        "These optimizations are lossless; numeric noise can still flip an argmax between nearly equal logits,",
        (f"most often with random weights. {early} of {len(compared)} cells diverge within the first quarter "
        "of the output (flagged)."),
        "",
        markdown_table(compared, [*SHAPE_KEYS, "greedy_match_pct", "first_divergence", "early_divergence"],
                       readable_numbers=True),
        "",
    ]


def problems(frame: pd.DataFrame, pairs: pd.DataFrame, baseline: str | None) -> list[str]:
    """The cells without a measurement, and those whose baseline cell ran in another environment."""
    lines = []
    unmeasured = frame[frame["status"] != "ok"]
    if not unmeasured.empty:
        lines += ["Cells without a measurement (never counted in speedups):", "",
                  markdown_table(unmeasured, [*SHAPE_KEYS, "status", "error"], readable_numbers=True), ""]
    unpaired = cross_environment_pairs(pairs)
    if not unpaired.empty:
        lines += [(f"**Warning:** these cells ran in another environment than their `{baseline}` cell, so no "
                  "speedup is computed for them:"), "",
                  markdown_table(unpaired, list(unpaired.columns), readable_numbers=True), ""]
    return lines


def other_settings(study: StudyConfig, loaded: Loaded) -> list[str]:
    """Cells whose result was measured under other settings than these params give (their config hash
    differs): their numbers are shown as measured, and a re-run is what compares them under these settings."""
    expected = {unit.cell: unit.config_hash for unit in bench_units(study)}
    differing = [cell.key for cell, result in loaded if result is not None and result.config_hash != expected[cell]]
    if not differing:
        return []
    return [(f"**Measured under other settings:** {len(differing)} of the {sum(r is not None for _, r in loaded)} "
            "cells with a result were measured under settings other than this study's (their config hash "
            "differs from the one these params give; `inference-study cells --results DIR` lists them as "
            f"stale): {', '.join(f'`{key}`' for key in differing)}."), ""]


def no_speedup_reason(study: StudyConfig, baseline: str | None) -> str | None:
    """Why this study has no speedups at all (no baseline declared, or none measured), or None."""
    if baseline is None:
        return "No baseline is declared (`study.comparisons.baseline`), so no speedup is computed."
    if baseline not in {unit.cell.backend for unit in bench_units(study)}:
        return (f"The baseline `{baseline}` (`study.comparisons.baseline`) has no cell in this study, so no speedup "
                "is computed: add it to the sweep, or declare a baseline the study has.")
    return None


def left_out_lines(pairs: pd.DataFrame, what: str = "speedups") -> list[str]:
    """How many pairs were left out of `what` and why, a pair counted once under each of its reasons."""
    reasons = pairs["left_out"].dropna()
    if reasons.empty:
        return []
    counts = Counter(part for reason in reasons for part in reason.split("; "))
    lines = [f"Left out of the {what}: {len(reasons)} of {len(pairs)} pairs, because"]
    return lines + [f"- {reason}: {n} pair{'s' if n > 1 else ''}"
                    for reason, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))] + [""]


def shown_ratios(pairs: pd.DataFrame) -> pd.Series:
    """Each pair's speedup as the report writes it (ratio_text), "—" for a pair left out."""
    return pairs.apply(lambda row: MISSING if pd.notna(row["left_out"]) else ratio_text(as_ratio(row)), axis=1)


def speedup(study: StudyConfig, pairs: pd.DataFrame, baseline: str | None, ladder: list[str]) -> list[str]:
    """Each backend's output tok/s over the baseline's per shape with its interval; or why there is no such table."""
    why = no_speedup_reason(study, baseline)
    if why is not None:
        return ["## Speedup", "", why, ""]
    if pairs.empty:
        return []
    wide = pairs.assign(shown=shown_ratios(pairs)).pivot(index=SPEEDUP_KEYS, columns="backend", values="shown")
    wide = wide[ladder_order(list(wide.columns), ladder)].reset_index()
    return [f"## Speedup over `{baseline}` (output tokens/s ratio)", "",
            ("Median output tokens/s of each backend over the baseline's at the same model and shape, with the 95% "
            "interval bootstrapped from both cells' repeats. ≈1: the interval spans 1, no measurable difference. "
            f"A pair gives a speedup only with {COMPARABLE}; {MISSING}: left out."), "", markdown_table(wide, disable_numparse=True), "", *left_out_lines(pairs)]


def setup(frame: pd.DataFrame) -> list[str]:
    lines = ["## Setup versus measurement (seconds)", ""]
    share = setup_share_pct(frame)
    if share is None:
        return lines + ["No measured cell.", ""]
    lines += [(f"Setup (load, compile, warmup) took {share:.1f}% of the cells' wall time; the rest was measurement. "
              "Compiled rungs compile one static graph per cell (per shape)."), "",
              markdown_table(setup_by_backend(frame), ["model", "backend", "load_s", "warmup_s", "measure_s",
                                                       "setup_share_pct"], readable_numbers=True), ""]
    return lines + [markdown_table(frame, ["model", "backend", "batch_size", "input_len", "load_s", "warmup_s",
                                           "measure_s"], readable_numbers=True), ""]


def roofline(ceilings: Roofline | None) -> list[str]:
    lines = ["## Roofline", ""]
    if ceilings is None:
        return lines + ["The roofline stage has not run: MBU and MFU are not shown.", ""]
    for field in ("measured_bandwidth_gb_s", "datasheet_bandwidth_gb_s", "measured_matmul_tflops",
                  "datasheet_fp16_tflops"):
        value = getattr(ceilings, field)
        shown = f"{value:,.0f}" if value is not None else f"— ({ceilings.null_reasons.get(field, 'not measured')})"
        lines.append(f"- {field}: {shown}")
    return lines + [
        "",
        "MBU = (weight bytes + K/V bytes of the mean context) × decode steps/s ÷ measured bandwidth.",
        "Prefill MFU = (2 × non-embedding parameters × prompt tokens + causal attention FLOPs) ÷ TTFT P50 ÷ measured",
        (f"{ceilings.matmul_dtype} matmul throughput. TTFT includes the host work before the first token, so MFU is a "
        "lower bound."),
        "",
    ]


def environment(loaded: Loaded) -> list[str]:
    environments = {r.environment_fingerprint: r.environment for _, r in loaded if r is not None}
    lines = ["## Environment", ""]
    if len(environments) > 1:
        lines += [(f"**Warning:** cells were measured in {len(environments)} different environments; "
                  "compare them with care."), ""]
    for fingerprint, env in sorted(environments.items()):
        lines += [f"Fingerprint `{fingerprint}`:", ""]
        lines += [f"- {key}: {value if value is not None else 'none'}" for key, value in env.model_dump().items()]
        lines.append("")
    return lines


def _backend_lines(loaded: Loaded) -> list[str]:
    """Each backend of the study as its result files describe it (every distinct description and settings)."""
    recorded: dict[str, dict[str, int]] = {}
    for cell, result in loaded:
        described = recorded.setdefault(cell.backend, {})
        if result is not None:
            text = f"{result.backend.description}. Settings `{json.dumps(result.backend.settings)}`"
            described[text] = described.get(text, 0) + 1
    lines = []
    for name, described in recorded.items():
        if not described:
            lines.append(f"- `{name}`: no result yet, so neither its description nor its settings are recorded.")
        elif len(described) == 1:
            lines.append(f"- `{name}`: {next(iter(described))}")
        else:
            lines += [f"- `{name}` ({count} cells): {text}" for text, count in described.items()]
    return lines


def configuration(study: StudyConfig, loaded: Loaded) -> list[str]:
    lines = ["## Configuration", "", f"- bench: `{json.dumps(study.bench.model_dump())}`"]
    lines += [f"- sweep: `{json.dumps(study.sweep.model_dump())}`", "", "Backends:", ""]
    lines += _backend_lines(loaded)
    lines += ["", "Models:", ""]
    for name in study.sweep.models:
        spec = study.models[name]
        weights = "random weights (timing does not depend on weight values)" if spec.source == "random" else spec.source
        shape = json.dumps(spec.model_dump(exclude_none=True).get("shape"))
        lines.append(f"- `{name}`: {spec.architecture}, {spec.dtype}, {weights}; shape `{shape}`")
    if any(study.models[name].source == "random" for name in study.sweep.models):
        lines += ["", ("Timing does not depend on weight values, so random weights give the real model's speed. "
                  "Experiments whose outcome depends on the generated text (speculative-decoding acceptance, "
                  "output-dependent cache reuse) do depend on them, and are not representative with random weights.")]
    return lines + [""]
