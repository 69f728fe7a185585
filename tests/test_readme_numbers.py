"""The numbers the README quotes are the committed H100 and H200 reports', to the digits shown."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).parents[1]
MODELS = {"TinyLlama-1.1B shape": "tinyllama_1b", "Qwen2.5-7B shape": "qwen2_5_7b"}
RUNGS = ["hf_eager", "hf_static_compiled", "hf_compiled_loop"]


def _shown(value: float, text: str) -> bool:
    """True when `text` is `value` rounded to the digits `text` shows."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{value:,.{decimals}f}" == text


def test_readme_batch_1_table_matches_the_h100_results() -> None:
    readme = (ROOT / "README.md").read_text()
    table = pd.read_csv(ROOT / "reports" / "h100" / "results.csv")
    batch_1 = table[(table["batch_size"] == 1) & (table["input_len"] == 512)]
    for label, model in MODELS.items():
        row = re.search(rf"^\| {re.escape(label)} \| (.+) \|$", readme, re.MULTILINE)
        assert row, f"README has no row for {label}"
        cells = [cell.strip() for cell in row.group(1).split("|")]
        for rung, cell in zip(RUNGS, cells):
            measured = batch_1[(batch_1["model"] == model) & (batch_1["backend"] == rung)].iloc[0]
            assert _shown(measured["output_tokens_per_s"], cell.removesuffix(" tok/s")), (label, rung, cell)
        loop = batch_1[(batch_1["model"] == model) & (batch_1["backend"] == "hf_compiled_loop")].iloc[0]
        assert _shown(loop["mbu_pct"], cells[3].removesuffix("%")), (label, cells[3])


def test_readme_bandwidth_matches_the_roofline() -> None:
    readme = (ROOT / "README.md").read_text()
    roofline = json.loads((ROOT / "reports" / "h100" / "inputs" / "roofline.json").read_text())
    quoted = re.search(r"relative to the ([\d,]+) GB/s", readme).group(1)
    assert _shown(roofline["measured_bandwidth_gb_s"], quoted)


def test_readme_batch_scaling_table_matches_the_h100_results() -> None:
    readme = (ROOT / "README.md").read_text()
    table = pd.read_csv(ROOT / "reports" / "h100" / "results.csv")
    header = re.search(r"^\| model, rung \| (.+) \|$", readme, re.MULTILINE).group(1)
    batches = [int(label.removeprefix("batch ")) for label in header.split(" | ")]
    for label, model in MODELS.items():
        row = re.search(rf"^\| {re.escape(label)}, `hf_compiled_loop` \| (.+) \|$", readme, re.MULTILINE)
        assert row, f"README has no batch-scaling row for {label}"
        for batch, cell in zip(batches, row.group(1).split(" | "), strict=True):
            rate, mbu = re.fullmatch(r"([\d,.]+) \((\d+)%\)", cell).groups()
            measured = table[(table["model"] == model) & (table["backend"] == "hf_compiled_loop")
                             & (table["batch_size"] == batch) & (table["input_len"] == 512)].iloc[0]
            assert _shown(measured["output_tokens_per_s"], rate) and _shown(measured["mbu_pct"], mbu), (label, batch)


def test_readme_target_outcomes_match_the_report() -> None:
    """The README's sentence on the bars says what the report's Performance targets table says."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    report = (ROOT / "reports" / "h100" / "report.md").read_text()
    judged = {name: (measured, outcome) for name, measured, outcome in
              re.findall(r"^\| (.+?) +\| [≥≤][^|]*\| ([\d.]+)[%×] +\| (met|not met) +\|$", report, re.MULTILINE)}
    claims = {  # README wording -> the report's target name
        "Qwen2.5-7B batch-1 MBU ≥ 70%": "Qwen2.5-7B shape, best rung's decode MBU at batch 1",
        "TinyLlama batch-32 throughput ≥ 10× batch 1": "TinyLlama-1.1B shape, best rung's output tok/s at batch 32 over batch 1",
        "TinyLlama batch-1 MBU ≥ 50%": "TinyLlama-1.1B shape, best rung's decode MBU at batch 1",
        "setup ≤ 50% of cell wall time": "setup share of cell wall time",
    }
    met, not_met = readme.split(" are met; ")[0], readme.split(" are met; ")[1].split(" are not.")[0]
    for wording, target in claims.items():
        measured, outcome = judged[target]
        assert wording in (met if outcome == "met" else not_met), (wording, outcome)
        if outcome == "not met":
            assert f"{wording} ({float(measured):.0f}%" in not_met, (wording, measured)


def _table(readme: str, corner: str) -> tuple[list[int], list[list[str]]]:
    """The batch sizes of the README table whose top-left cell is `corner`, and its rows' cells."""
    lines = readme[readme.index(f"| {corner} |"):].splitlines()
    table = lines[: next(i for i, line in enumerate(lines) if not line.startswith("|"))]
    batches = [int(label.strip().removeprefix("batch ")) for label in table[0].strip("| ").split("|")[1:]]
    return batches, [[cell.strip() for cell in line.strip("| ").split("|")] for line in table[2:]]


def test_readme_paged_ratios_match_the_h100_results() -> None:
    """Each `hf_paged` ÷ rung ratio the README quotes is the ratio of the two committed cells' tok/s."""
    table = pd.read_csv(ROOT / "reports" / "h100" / "results.csv").set_index(
        ["model", "backend", "batch_size", "input_len"])["output_tokens_per_s"]
    batches, rows = _table((ROOT / "README.md").read_text(), "model, `hf_paged` ÷")
    quoted = {tuple(row[0].split(", ÷ ")): row[1:] for row in rows}
    assert set(quoted) == {(label, f"`{rung}`") for label in MODELS for rung in ("hf_static_compiled", "hf_eager")}
    for (label, rung), cells in quoted.items():
        for batch, cell in zip(batches, cells, strict=True):
            paged, contiguous = (table[(MODELS[label], backend, batch, 512)] for backend in ("hf_paged", rung.strip("`")))
            assert _shown(paged / contiguous, cell.removesuffix("×")), (label, rung, batch, cell)


def test_readme_paged_grid_matches_the_h200_results() -> None:
    """The H200 paged table: every input length of the report, against both contiguous rungs."""
    table = pd.read_csv(ROOT / "reports" / "h200" / "results.csv").set_index(
        ["backend", "batch_size", "input_len"])["output_tokens_per_s"]
    batches, rows = _table((ROOT / "README.md").read_text(), "input, `hf_paged` ÷")
    quoted = {tuple(row[0].split(", ÷ ")): row[1:] for row in rows}
    assert set(quoted) == {(f"input {length}", f"`{rung}`") for length in (128, 512, 2048)
                           for rung in ("hf_static_compiled", "hf_eager")}
    for (length, rung), cells in quoted.items():
        for batch, cell in zip(batches, cells, strict=True):
            key = (batch, int(length.removeprefix("input ")))
            assert _shown(table[("hf_paged", *key)] / table[(rung.strip("`"), *key)], cell.removesuffix("×"))


def test_readme_h200_best_rung_matches_the_h200_results() -> None:
    table = pd.read_csv(ROOT / "reports" / "h200" / "results.csv")
    batches, rows = _table((ROOT / "README.md").read_text(), "`hf_compiled_loop`, TinyLlama-1.1B shape")
    assert [row[0] for row in rows] == ["H200"]
    for batch, cell in zip(batches, rows[0][1:], strict=True):
        rate, mbu = re.fullmatch(r"([\d,.]+) \((\d+)%\)", cell).groups()
        measured = table[(table["backend"] == "hf_compiled_loop") & (table["batch_size"] == batch)
                         & (table["input_len"] == 512)].iloc[0]
        assert _shown(measured["output_tokens_per_s"], rate) and _shown(measured["mbu_pct"], mbu), (batch, cell)
