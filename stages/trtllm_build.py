"""DVC stage: Build one engine profile of one model with trtllm-build under results/trtllm/engines/."""

from inference_study.stage import hydra_stage
from inference_study.trtllm.stages import build_stage

if __name__ == "__main__":
    hydra_stage(build_stage)()
