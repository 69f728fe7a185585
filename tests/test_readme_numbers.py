"""The numbers the README quotes are the committed reports', to the digits shown."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from helpers.repository import REPO_ROOT

# README wording -> (report, model) of each best-rung figure it quotes
QUOTED = {
    "TinyLlama-1.1B shape 588": ("h100", "tinyllama_1b"),
    "Qwen2.5-7B shape 148": ("h100", "qwen2_5_7b"),
    "TinyLlama-1.1B shape at 737": ("h200", "tinyllama_1b"),
    "Qwen2.5-7B shape at 209": ("h200", "qwen2_5_7b"),
}


def _shown(value: float, text: str) -> bool:
    """True when `text` is `value` rounded to the digits `text` shows."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{value:,.{decimals}f}" == text


@pytest.mark.parametrize("phrase", QUOTED)
def test_readme_best_rung_at_batch_1_is_the_reports(phrase: str) -> None:
    """`<phrase> tok/s (<MBU>% MBU)`: the fastest measured rung at batch 1, input 512, in that report's results.csv."""
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    found = re.search(rf"{re.escape(phrase.rsplit(' ', 1)[0])} ([\d,.]+) tok/s \(([\d.]+)% MBU[,)]", readme)
    assert found and found.group(1) == phrase.rsplit(" ", 1)[1], phrase
    report, model = QUOTED[phrase]
    table = pd.read_csv(REPO_ROOT / "reports" / "measured" / report / "results.csv")
    rows = table[(table["model"] == model) & (table["status"] == "ok") & (table["batch_size"] == 1)
                 & (table["input_len"] == 512)]
    row = rows.loc[rows["output_tokens_per_s"].idxmax()]
    assert _shown(row["output_tokens_per_s"], found.group(1)) and _shown(row["mbu_pct"], found.group(2))
