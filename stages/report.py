"""DVC stage: Aggregate the cells listed in params.yaml into reports/<study>/."""

from inference_study.pipeline import report_stage
from inference_study.stage import hydra_stage

if __name__ == "__main__":
    hydra_stage(report_stage)()
