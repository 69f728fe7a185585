"""DVC stage: Run one scenario (n-gram speculation, persistent prefix KV, ...) on one model."""

from inference_study.pipeline import scenario_stage
from inference_study.stage import hydra_stage

if __name__ == "__main__":
    hydra_stage(scenario_stage)()
