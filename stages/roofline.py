"""DVC stage: Measure the GPU's memory bandwidth and matmul throughput into results/roofline.json."""

from inference_study.pipeline import roofline_stage
from inference_study.stage import hydra_stage

if __name__ == "__main__":
    hydra_stage(roofline_stage)()
