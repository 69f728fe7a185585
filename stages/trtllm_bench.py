"""DVC stage: Measure every swept cell of one model x TensorRT-LLM backend into results/cells/."""

from inference_study.stage import hydra_stage
from inference_study.trtllm.stages import bench_stage

if __name__ == "__main__":
    hydra_stage(bench_stage)()
