"""DVC stage: Convert one model's HF directory into a TensorRT-LLM checkpoint under results/trtllm/checkpoints/."""

from inference_study.stage import hydra_stage
from inference_study.trtllm.stages import convert_stage

if __name__ == "__main__":
    hydra_stage(convert_stage)()
