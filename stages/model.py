"""DVC stage: Prepare one model directory (random weights, hub download or local path) under results/models/."""

from inference_study.pipeline import model_stage
from inference_study.stage import hydra_stage

if __name__ == "__main__":
    hydra_stage(model_stage)()
