"""DVC stage: Measure one cell (model x backend x batch x input x output) into results/cells/."""

from inference_study.pipeline import bench_stage
from inference_study.stage import hydra_stage

if __name__ == "__main__":
    hydra_stage(bench_stage)()
