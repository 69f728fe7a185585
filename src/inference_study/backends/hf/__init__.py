"""The PyTorch ladder on Hugging Face transformers: each rung changes one thing from the one before.

`hf_eager` (generate, dynamic cache), `hf_static` (a static cache), `hf_static_compiled` (+ torch.compile),
`hf_compiled_loop` (the model's forward in a minimal greedy loop, one CUDA graph per step), `hf_fused_loop`
(a plain-PyTorch decode module over the same weights: fused projections, GQA against the unexpanded cache),
and `hf_paged` (continuous batching over a fixed paged KV pool).
"""

from __future__ import annotations

from inference_study.backends.hf.settings import (
    HfCompiledLoopSettings,
    HfEagerSettings,
    HfFusedLoopSettings,
    HfPagedSettings,
    HfStaticCompiledSettings,
    HfStaticSettings,
)
from inference_study.registry import BackendFamily, BackendSpec


class PytorchFamily(BackendFamily):
    name = "pytorch"
    backends = (
        BackendSpec("hf_eager", HfEagerSettings, "inference_study.backends.hf.generate:HfEager"),
        BackendSpec("hf_static", HfStaticSettings, "inference_study.backends.hf.generate:HfStatic"),
        BackendSpec("hf_static_compiled", HfStaticCompiledSettings,
                    "inference_study.backends.hf.generate:HfStaticCompiled"),
        BackendSpec("hf_compiled_loop", HfCompiledLoopSettings, "inference_study.backends.hf.loop:HfCompiledLoop"),
        BackendSpec("hf_fused_loop", HfFusedLoopSettings, "inference_study.backends.hf.fused:HfFusedLoop"),
        BackendSpec("hf_paged", HfPagedSettings, "inference_study.backends.hf.paged:HfPaged"),
    )


FAMILY = PytorchFamily()
