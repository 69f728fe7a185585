"""DVC stage: Aggregate the units listed in params.yaml into reports/<study>/."""

from pathlib import Path
from typing import Any

from inference_study.config import StudyConfig
from inference_study.pipeline import REPORTS_DIR
from inference_study.report import build_report
from inference_study.roofline import ROOFLINE_NAME
from inference_study.stage import hydra_stage


def report_stage(study: StudyConfig, cell: dict[str, Any], output_root: Path) -> None:
    """The report reads the results of the units the study plans, never a directory glob."""
    build_report(study, output_root, REPORTS_DIR / study.study.name, output_root / ROOFLINE_NAME)


if __name__ == "__main__":
    hydra_stage(report_stage)()
