"""The PyTorch ladder on Hugging Face transformers: each rung changes one thing from the one before.

`hf_eager` (generate, dynamic cache), `hf_static` (a static cache), `hf_static_compiled` (+ torch.compile),
`hf_compiled_loop` (the model's forward in a minimal greedy loop, one CUDA graph per step), `hf_fused_loop`
(a plain-PyTorch decode module over the same weights: fused projections, GQA against the unexpanded cache),
and `hf_paged` (continuous batching over a fixed paged KV pool). Its variants take the paged rung apart as
settings of the same code: `hf_paged_graphs` (CUDA graphs forced on), `hf_paged_compiled` (transformers'
compile level 1) and `hf_paged_graphs_compiled` (both).
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

PAGED = "inference_study.backends.hf.paged:HfPaged"


class PytorchFamily(BackendFamily):
    name = "pytorch"
    backends = (
        BackendSpec("hf_eager", HfEagerSettings, "inference_study.backends.hf.generate:HfEager"),
        BackendSpec("hf_static", HfStaticSettings, "inference_study.backends.hf.generate:HfStatic"),
        BackendSpec("hf_static_compiled", HfStaticCompiledSettings,
                    "inference_study.backends.hf.generate:HfStaticCompiled"),
        BackendSpec("hf_compiled_loop", HfCompiledLoopSettings, "inference_study.backends.hf.loop:HfCompiledLoop"),
        BackendSpec("hf_fused_loop", HfFusedLoopSettings, "inference_study.backends.hf.fused:HfFusedLoop"),
        BackendSpec("hf_paged", HfPagedSettings, PAGED),
        BackendSpec("hf_paged_graphs", HfPagedSettings, PAGED, variant_of="hf_paged", fixed={"use_cuda_graph": True}),
        BackendSpec("hf_paged_compiled", HfPagedSettings, PAGED, variant_of="hf_paged", fixed={"compile_level": 1}),
        BackendSpec("hf_paged_graphs_compiled", HfPagedSettings, PAGED, variant_of="hf_paged",
                    fixed={"use_cuda_graph": True, "compile_level": 1}),
    )


FAMILY = PytorchFamily()
