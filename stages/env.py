"""DVC stage: Fingerprint the machine (GPU, driver, CUDA, library versions) into results/env.json."""

from inference_study.pipeline import environment_stage
from inference_study.stage import hydra_stage

if __name__ == "__main__":
    hydra_stage(environment_stage)()
