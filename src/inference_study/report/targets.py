"""The preset's performance bars (`study.targets`, `study.setup_share_at_most_pct`) against the measured cells."""

from __future__ import annotations

import numpy as np
import pandas as pd

from inference_study.config import StudyConfig, Target
from inference_study.report.table import setup_share_pct
from inference_study.tables import markdown_table


def target_value(target: Target, frame: pd.DataFrame) -> tuple[float | None, str]:
    """The target's measured value, or None with the reason it cannot be judged."""
    def measured(batch_size: int) -> tuple[float | None, str]:
        coords = target.cell.model_dump() | {"batch_size": batch_size}
        rows = frame[np.logical_and.reduce([frame[key] == value for key, value in coords.items()])]
        if rows.empty:
            cell = target.cell
            return None, (f"{cell.model} {cell.backend} batch {batch_size}, {cell.input_len}/{cell.output_len} "
                          "is not in this sweep")
        row = rows.iloc[0]
        if row["status"] != "ok":
            return None, f"batch {batch_size}: {row['status']}"
        if row["verdict"] == "fail" or pd.isna(row.get(target.metric)):
            return None, f"batch {batch_size}: verdict {row['verdict']}, {target.metric} not measured"
        return float(row[target.metric]), ""

    value, why = measured(target.cell.batch_size)
    if value is None or target.relative_to_batch is None:
        return value, why
    base, why = measured(target.relative_to_batch)
    return (None, why) if base is None else (value / base, "")


def targets_section(study: StudyConfig, frame: pd.DataFrame) -> list[str]:
    """The study's performance bars, each with its measured value and whether this run met it."""
    section = study.study
    if not section.targets and section.setup_share_at_most_pct is None:
        return []
    rows, evidence = [], []
    for target in section.targets:
        value, why = target_value(target, frame)
        unit = "×" if target.relative_to_batch else ("%" if target.metric.endswith("pct") else "")
        met = "not judged: " + why if value is None else ("met" if value >= target.at_least else "not met")
        rows.append((target.name, f"≥ {target.at_least:g}{unit}", "—" if value is None else f"{value:.3g}{unit}", met))
        if met == "not met" and target.evidence:
            evidence.append(f"* **{target.name}:** {target.evidence.strip()}")
    if section.setup_share_at_most_pct is not None:
        share = setup_share_pct(frame)
        met = "not judged: no measured cell" if share is None else (
            "met" if share <= section.setup_share_at_most_pct else "not met")
        rows.append(("setup share of cell wall time", f"≤ {section.setup_share_at_most_pct:g}%",
                     "—" if share is None else f"{share:.3g}%", met))
        if met == "not met" and section.setup_share_evidence:
            evidence.append(f"* **Setup share:** {section.setup_share_evidence.strip()}")
    table = markdown_table(pd.DataFrame(rows, columns=["target", "bar", "measured", "outcome"]))
    lines = ["## Performance targets", "", ("Bars set by the study preset (`study.targets`), checked against "
             "the measured cells; a cell that is missing, failed or not in the sweep is not judged."), "", table, ""]
    if evidence:
        lines += ["Why a bar is not met (the preset's evidence, shown only while the bar is not met):", "",
                  *evidence, ""]
    return lines
