"""The report's performance targets: each bar judged from its cell, evidence shown only while a bar is not met."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import yaml

from helpers.repository import REPO_ROOT
from inference_study.compose import compose_yaml
from inference_study.config import validate_params
from inference_study.report.targets import targets_section

CELL = {"model": "tiny_llama", "backend": "hf_eager", "input_len": 32, "output_len": 16}


@pytest.fixture(scope="module")
def default_raw() -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO_ROOT)
        return yaml.safe_load(compose_yaml([]))


def _study(raw: dict, at_least: float, **extra):
    raw = copy.deepcopy(raw)
    raw["study"]["targets"] = [{"name": "MBU bar", "cell": {**CELL, "batch_size": 4}, "metric": "mbu_pct",
                                "at_least": at_least, "evidence": "the profile says why", **extra}]
    raw["study"]["setup_share_at_most_pct"] = 50
    raw["study"]["setup_share_evidence"] = "compile per cell"
    return validate_params(raw, source="test")


def _frame(mbu_by_batch: dict[int, float], setup_s: float, measure_s: float) -> pd.DataFrame:
    return pd.DataFrame([{**CELL, "batch_size": batch, "status": "ok", "verdict": "pass", "mbu_pct": mbu,
                          "load_s": setup_s / 2, "warmup_s": setup_s / 2, "measure_s": measure_s}
                         for batch, mbu in mbu_by_batch.items()])


def _rows(lines: list[str]) -> dict[str, list[str]]:
    table = "\n".join(lines).splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table if line.startswith("| ")]
    return {row[0]: row[1:] for row in rows[1:]}


def test_a_bar_not_met_shows_its_evidence_and_a_met_one_hides_it(default_raw: dict) -> None:
    frame = _frame({1: 30.0, 4: 40.0}, setup_s=30.0, measure_s=10.0)  # setup share 75%
    lines = targets_section(_study(default_raw, at_least=60), frame)
    rows = _rows(lines)
    assert rows["MBU bar"] == ["≥ 60%", "40%", "not met"]
    assert rows["setup share of cell wall time"] == ["≤ 50%", "75%", "not met"]
    text = "\n".join(lines)
    assert "**MBU bar:** the profile says why" in text and "**Setup share:** compile per cell" in text

    met = targets_section(_study(default_raw, at_least=35), _frame({4: 40.0}, setup_s=10.0, measure_s=30.0))
    assert _rows(met)["MBU bar"][-1] == "met" and _rows(met)["setup share of cell wall time"][-1] == "met"
    assert "the profile says why" not in "\n".join(met) and "compile per cell" not in "\n".join(met)


def test_a_relative_bar_divides_by_the_other_batch_and_a_missing_cell_is_not_judged(default_raw: dict) -> None:
    relative = targets_section(_study(default_raw, at_least=1.2, relative_to_batch=1),
                               _frame({1: 30.0, 4: 40.0}, 1.0, 9.0))
    assert _rows(relative)["MBU bar"] == ["≥ 1.2×", "1.33×", "met"]
    missing = _rows(targets_section(_study(default_raw, at_least=60), _frame({1: 30.0}, 1.0, 9.0)))["MBU bar"]
    assert missing[1] == "—" and missing[2].startswith("not judged: ") and "batch 4" in missing[2]
