"""Scenario timings stop on evidence, carry intervals and a verdict, and state a difference only where the
interval excludes 1: the timed loop on scripted arms and on the tiny model, the words of a claim, the verdict's
reasons, the upgrade of every committed scenario result, and the config hash of old params."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.repository import REPO_ROOT, composed, scenario_result

from inference_study import registry
from inference_study.config import load_params, validate_params
from inference_study.plan import scenario_units
from inference_study.report.scenarios import load_scenarios, scenario_sections
from inference_study.results import read_scenario_result, write_scenario_result
from inference_study.scenarios.ngram.run import run_ngram
from inference_study.scenarios.ngram.settings import NgramSettings
from inference_study.scenarios.timing import (
    UNRECORDED_REPEATS,
    Policy,
    converge,
    rate_speedup,
    time_speedup,
    verdict,
)
from inference_study.stopping import Stopping, StoppingRule
from inference_study.uncertainty import interval, ratio

# Every committed scenario result, wherever its report lies under reports/ (<report>/inputs/cells/<model>/scenarios/).
COMMITTED = sorted((REPO_ROOT / "reports").rglob("inputs/cells/*/scenarios/*.json"))
# The CPU scenario run as committed before the stopping rule (record version 1, fixed counts), kept as test data
OLD_INPUTS = REPO_ROOT / "tests" / "data" / "scenarios_cpu_old_inputs"
OLD = sorted(OLD_INPUTS.rglob("cells/*/scenarios/*.json"))
SCENARIO_REPORTS = sorted({path.parents[4] for path in COMMITTED})
RULE = {"min_requests": 1, "max_requests": 10_000, "min_seconds": 0.0, "max_seconds": 1_000.0, "target_half_width": 0.05}


# --- the timed loop on scripted arms ------------------------------------------------------------------------------


class Arm:
    """A scripted arm: each run returns its next (value, seconds of work) and logs its name."""

    def __init__(self, name: str, values, work_s: float, log: list[str]):
        self.name, self.values, self.work_s, self.log = name, iter(values), work_s, log

    def __call__(self) -> tuple[float, float]:
        self.log.append(self.name)
        return next(self.values), self.work_s


def _loop(arms: dict[str, Arm], warmup: int, **rule):
    return converge(arms, warmup=warmup, rule=StoppingRule(**(RULE | rule)), work_s=lambda run: run[1],
                    requests=lambda run: 2,
                    headline=lambda runs: {name: interval([[v for v, _ in timed]]) for name, timed in runs.items()})


def test_arms_run_round_robin_after_their_warmup_and_converge_on_every_headline() -> None:
    log: list[str] = []
    steady = Arm("steady", itertools.cycle([1.0, 1.001]), 0.25, log)
    noisy_then_steady = Arm("noisy", itertools.chain([1.0, 3.0, 0.2, 5.0], itertools.repeat(2.0)), 0.25, log)
    measured = _loop({"steady": steady, "noisy": noisy_then_steady}, warmup=2)
    stopping = measured.stopping
    assert log[:4] == ["steady", "noisy"] * 2  # the warmup: untimed, not counted
    assert log[4:] == ["steady", "noisy"] * stopping.iterations
    assert stopping.reason == "converged" and stopping.converged
    # the steady arm alone would converge at 6 repeats; the noisy one holds the loop until its interval narrows
    steady_alone = _loop({"steady": Arm("steady", itertools.cycle([1.0, 1.001]), 0.25, [])}, warmup=0).stopping
    assert steady_alone.iterations == 6 < stopping.iterations
    assert stopping.requests == 2 * 2 * stopping.iterations  # each run's requests, both arms
    assert stopping.seconds == pytest.approx(2 * 0.25 * stopping.iterations)  # the arms' work, not wall time
    assert all(len(timed) == stopping.iterations for timed in measured.runs.values())
    assert all(width <= RULE["target_half_width"] for width in stopping.half_widths.values())


@pytest.mark.parametrize(("limit", "reason"), [({"max_requests": 24}, "max_requests"),
                                                ({"max_seconds": 3.0}, "max_seconds")])
def test_a_loop_that_never_narrows_stops_at_its_maximum_not_converged(limit: dict, reason: str) -> None:
    rng = np.random.default_rng(0)
    arms = {"noisy": Arm("noisy", rng.lognormal(0, 1, 1000), 0.5, [])}
    stopping = _loop(arms, warmup=0, **limit).stopping
    assert stopping.reason == reason and stopping.converged is False
    assert (stopping.requests, stopping.seconds) == ((24, 6.0) if reason == "max_requests" else (12, 3.0))
    assert stopping.not_converged_reason().startswith(f"not converged: stopped at {reason}")


# --- the rule in a scenario on the tiny model ---------------------------------------------------------------------

SMALL = NgramSettings(prompt_len=32, output_len=24, draft_lens=[4], ngram_sizes=[1], workloads=["high_overlap"],
                      warmup_iterations=1)
SHORT = SMALL.model_copy(update={"output_len": 8})  # where only the timing loop is checked, not the drafts


def test_ngram_stopped_at_its_maximum_warns_and_states_no_difference(backend) -> None:
    rule = StoppingRule(**(RULE | {"max_requests": 4, "target_half_width": 0.5}))
    record = run_ngram(backend, SMALL, backend.model_config.vocab_size, 0, Policy(rule=rule, max_cv=10.0))
    stopping = record.stopping["high_overlap"]
    # 2 arms (plain greedy, draft 4 n-gram 1) per iteration: 2 iterations reach 4 requests
    assert (stopping.reason, stopping.iterations, stopping.requests, stopping.converged) == ("max_requests", 2, 4, False)
    assert record.verdict.status == "warn"
    assert any(reason.startswith("high_overlap: not converged: stopped at max_requests after 2 iterations")
               for reason in record.verdict.reasons)
    (row,) = record.rows
    assert row.tokens_per_s.repeats == 2 and row.tokens_per_s.ci_low is None  # fewer than 6 repeats: no interval
    (claim,) = record.claims
    assert claim.wording == "no interval" and "not tested against noise" in claim.stated()
    assert record.expectation.met  # outputs and drafts: no timing in it


def test_ngram_converges_when_its_intervals_reach_the_target(backend) -> None:
    rule = StoppingRule(**(RULE | {"min_requests": 12, "max_seconds": 60.0, "target_half_width": 0.99}))
    record = run_ngram(backend, SHORT, backend.model_config.vocab_size, 0, Policy(rule=rule, max_cv=10.0))
    stopping = record.stopping["high_overlap"]
    assert stopping.reason == "converged" and stopping.converged and stopping.iterations >= 6
    assert not any("not converged" in reason for reason in record.verdict.reasons)
    (row,) = record.rows
    greedy = record.workloads[0].greedy_tokens_per_s
    for timing in (row.tokens_per_s, greedy):
        assert timing.repeats == stopping.iterations and timing.ci_low <= timing.value <= timing.ci_high
    (claim,) = record.claims
    assert claim.speedup == ratio(row.tokens_per_s, greedy)  # the claim is the ratio of the two intervals
    assert claim.wording in ("faster", "slower", "not distinguishable")


# --- the words of a claim -----------------------------------------------------------------------------------------


def _timings(scale: float, seed: int) -> list[float]:
    return (scale * np.random.default_rng(seed).normal(1.0, 0.05, 12)).tolist()


def test_a_claim_whose_interval_spans_1_is_not_distinguishable_and_quotes_no_speedup() -> None:
    subject, baseline = interval([_timings(1.0, 1)]), interval([_timings(1.0, 2)])
    claim = time_speedup("same work", "A", "B", "TTFT", subject, baseline)
    low, high = claim.speedup.ci_low, claim.speedup.ci_high
    assert low < 1 < high and claim.wording == "not distinguishable"
    assert claim.stated() == f"not distinguishable (the speedup's 95% interval, {low:.3g}×–{high:.3g}×, spans 1)"
    assert f"{claim.speedup.value:.3g}×" not in claim.stated().replace(f"{low:.3g}×", "").replace(f"{high:.3g}×", "")
    assert claim.short() == f"not distinguishable [{low:.3g}×, {high:.3g}×]"


def test_a_claim_whose_interval_excludes_1_is_faster_or_slower_with_its_interval() -> None:
    fast, slow = interval([_timings(1.0, 1)]), interval([_timings(1.5, 2)])
    faster = time_speedup("x", "fast", "slow", "TTFT", fast, slow)  # a time: lower is better
    assert faster.wording == "faster" and faster.speedup.value == pytest.approx(slow.value / fast.value)
    assert faster.stated().startswith(
        f"faster: speedup {faster.speedup.value:.3g}× (95% interval {faster.speedup.ci_low:.3g}×")
    assert rate_speedup("x", "fast", "slow", "tokens/s", fast, slow).wording == "slower"  # a rate: higher is better


def test_the_report_states_a_claim_that_spans_1_in_words(backend, model_dir) -> None:
    """A real record whose claim is replaced by plain greedy against itself (the same repeats resampled apart):
    the section says not distinguishable, never a bare speedup."""
    rule = StoppingRule(**(RULE | {"min_requests": 12, "max_requests": 12, "target_half_width": 0.5}))
    record = run_ngram(backend, SHORT, backend.model_config.vocab_size, 0, Policy(rule=rule, max_cv=10.0))
    greedy = record.workloads[0].greedy_tokens_per_s
    itself = rate_speedup("high_overlap", "draft 4, n-gram 1", "plain greedy", "output tokens/s", greedy, greedy)
    assert itself.wording == "not distinguishable"
    study = validate_params(composed("study=scenarios_cpu"))
    text = "\n".join(scenario_sections(study, [("ngram", "tiny_llama", scenario_result(
        study, model_dir, record.model_copy(update={"claims": [itself]})))]))
    assert itself.short() in text and "timing verdict: **" in text
    assert f"{itself.speedup.value:.3g}× " not in text.replace(f"{itself.speedup.ci_low:.3g}× ", "")


# --- the verdict --------------------------------------------------------------------------------------------------


def _stopping(converged: bool) -> Stopping:
    return Stopping(reason="converged" if converged else "max_seconds", iterations=8, requests=16, seconds=6.0,
                    converged=converged, target_half_width=0.05, half_widths={"TTFT": 0.01 if converged else 0.2})


def test_verdict_passes_only_without_a_reason_and_names_each_reason() -> None:
    steady = interval([[1.0, 1.01, 0.99, 1.0, 1.02, 0.98]])
    noisy = interval([[1.0, 2.0, 0.5, 1.5, 3.0, 0.7]])
    same = time_speedup("equal work", "A", "B", "TTFT", steady, interval([[1.0, 0.99, 1.01, 1.0, 0.98, 1.02]]))
    apart = time_speedup("equal work", "A", "B", "TTFT", steady, interval([[2.0, 2.02, 1.98, 2.0, 2.04, 1.96]]))
    clean = verdict(warmup_iterations=1, stopping={"loop": _stopping(True)}, intervals={"TTFT": steady}, max_cv=0.1,
                    controls=[same])
    assert (clean.status, clean.reasons) == ("pass", [])
    judged = verdict(warmup_iterations=0, stopping={"loop": _stopping(False)}, intervals={"TTFT": noisy}, max_cv=0.1,
                     controls=[apart])
    assert judged.status == "warn"
    assert judged.reasons == [
        "no warmup: first-call allocations and lazy initialization are inside the timings",
        f"loop: {_stopping(False).not_converged_reason()}",
        f"TTFT varies across repeats: CV {noisy.cv:.1%} > 10%",
        f"control differs: {apart.sentence()}; equal work measured apart, so a claim of that size is noise here",
    ]


# --- committed results: read, upgraded, rendered ------------------------------------------------------------------


def test_there_are_committed_scenario_results_of_every_scenario() -> None:
    assert {path.stem for path in COMMITTED} == set(registry.scenarios())


def _intervals(node):
    if isinstance(node, dict):
        if {"value", "ci_low", "ci_high", "repeats"} <= set(node):
            yield node
        else:
            for value in node.values():
                yield from _intervals(value)
    elif isinstance(node, list):
        for value in node:
            yield from _intervals(value)


def _old_speedups(raw: dict) -> list[float]:
    """The bare speedups an old record quoted, in the order its claims now hold them."""
    if raw["scenario"] == "ngram":
        return [row["speedup"] for row in raw["rows"]]
    if raw["scenario"] == "kv_persist":
        return [row["ttft_speedup"] for row in raw["rows"]]
    if raw["scenario"] == "kv_offload":
        old = raw["returning_ttft_speedup"]
        return list(old.values()) if isinstance(old, dict) else [old]
    return []


def _older(path: Path) -> bool:
    raw = json.loads(path.read_text())["record"]
    return raw["record_version"] < read_scenario_result(path).record.record_version


@pytest.mark.parametrize("path", [p for p in COMMITTED + OLD if _older(p)], ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_older_scenario_result_reads_as_the_current_record_version(path: Path, tmp_path: Path) -> None:
    raw = json.loads(path.read_text())["record"]
    result = read_scenario_result(path)
    record = result.record
    assert record.record_version == type(record).model_fields["record_version"].default > raw["record_version"]
    # every old timing is an Interval of that one median, without an interval or its repeats
    timings = list(_intervals(record.model_dump(include={"rows", "workloads"})))
    assert timings and all(t["ci_low"] is None and t["cv"] is None and t["repeats"] == UNRECORDED_REPEATS
                           for t in timings)
    old_numbers = {round(v, 9) for v in _numbers(raw)}
    assert all(round(t["value"], 9) in old_numbers for t in timings)
    # the bare speedups become claims without an interval, of the same ratio
    speedups = _old_speedups(raw)
    if speedups:
        assert [c.speedup.value for c in record.claims] == pytest.approx(speedups)
    assert record.claims and all(c.wording == "no interval" for c in record.claims + record.controls)
    assert record.verdict.status == "warn" and record.verdict.reasons[0].startswith(
        f"timings of record version {raw['record_version']}: medians of a fixed count of iterations")
    assert record.stopping == {}
    # met is judged anew on counters and outputs only: what the old record held for those
    if raw["scenario"] == "ngram":
        high = [r for r in raw["rows"] if r["workload"] == "high_overlap"]
        expected_met = all(r["identical_to_greedy"] for r in raw["rows"]) and all(r["accepted_tokens"] > 0 for r in high)
    else:
        expected_met = raw["expectation"]["met"]
    assert record.expectation.met == expected_met
    kept = tmp_path / path.name
    write_scenario_result(kept, result)  # the upgraded record round-trips as the current version
    assert read_scenario_result(kept) == result


def _numbers(node) -> list[float]:
    if isinstance(node, bool):
        return []
    if isinstance(node, (int, float)):
        return [float(node)]
    if isinstance(node, dict):
        return [n for value in node.values() for n in _numbers(value)]
    if isinstance(node, list):
        return [n for value in node for n in _numbers(value)]
    return []


@pytest.mark.parametrize("inputs", [report / "inputs" for report in SCENARIO_REPORTS] + [OLD_INPUTS],
                         ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_committed_scenario_run_renders_its_sections(inputs: Path) -> None:
    """Old records render as timings without intervals that warn; current ones with their intervals. A run
    not measured yet (a report still filling in) renders as not run."""
    study = load_params(inputs / "params.yaml", legacy_ok=True)
    loaded = load_scenarios(study, inputs)
    measured = [(name, result) for name, _, result in loaded if result is not None]
    assert measured
    text = "\n".join(scenario_sections(study, loaded))
    sections = text.split("## Scenario: ")[1:]
    assert len(sections) == len({name for name, _, _ in loaded})
    titles = {registry.scenarios()[name].title for name, _ in measured}
    old = {registry.scenarios()[name].title for name, result in measured if result.record.stopping == {}}
    for section in sections:
        assert "| nan" not in section and " nan " not in section
        if not any(section.startswith(title) for title in titles):
            assert "not run (no result file)" in section
        elif any(section.startswith(title) for title in old):
            assert "timing verdict: **warn**" in section and "no interval" in section
        else:
            assert re.search(r"\[[\d.]+, [\d.]+\]", section), "current timings carry their intervals"


# --- config hashes ------------------------------------------------------------------------------------------------


def test_old_params_keep_the_config_hash_their_results_were_written_with() -> None:
    inputs = OLD_INPUTS
    units = scenario_units(load_params(inputs / "params.yaml", legacy_ok=True))
    assert units
    for unit in units:
        stored = json.loads(unit.result_path(inputs).read_text())["config_hash"]
        assert unit.config_hash == stored, unit.key
        assert "iterations" in unit.settings.model_dump() and "stopping" not in unit.settings.model_dump()


def test_new_settings_dump_no_unset_protocol_fields_and_their_own_rule_when_set() -> None:
    cpu = {unit.scenario: unit for unit in scenario_units(validate_params(composed("study=scenarios_cpu")))}
    for unit in cpu.values():
        dumped = unit.settings.model_dump()
        assert "iterations" not in dumped and "stopping" not in dumped
        assert unit.settings.rule(unit.bench) == unit.bench.stopping
    h100 = {unit.scenario: unit for unit in scenario_units(validate_params(composed("study=h100", "scenario=h100")))}
    ngram = h100["ngram"]
    assert ngram.settings.stopping is not None and ngram.settings.rule(ngram.bench) == ngram.settings.stopping
    assert ngram.settings.model_dump()["stopping"] == ngram.settings.stopping.model_dump()
    assert h100["kv_persist"].settings.rule(h100["kv_persist"].bench) == h100["kv_persist"].bench.stopping
