"""inference-study: LLM inference optimizations measured against PyTorch baselines, as a DVC pipeline."""

__version__ = "0.1.0"
