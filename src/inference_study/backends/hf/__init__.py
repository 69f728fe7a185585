"""The PyTorch ladder on Hugging Face transformers: each rung changes one thing from the one before.

`hf_eager` (generate, dynamic cache), `hf_static` (a static cache), `hf_static_compiled` (+ torch.compile),
`hf_compiled_loop` (the model's forward in a minimal greedy loop, one CUDA graph per step), `hf_fused_loop`
(a plain-PyTorch decode module over the same weights: fused projections, GQA against the unexpanded cache),
and `hf_paged` (continuous batching over a fixed paged KV pool). Its variants take the paged rung apart as
settings of the same code: `hf_paged_graphs` (CUDA graphs forced on), `hf_paged_compiled` (transformers'
compile level 1) and `hf_paged_graphs_compiled` (both).
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

from packaging.version import Version

from inference_study.backends.hf.settings import (
    HfCompiledLoopSettings,
    HfEagerSettings,
    HfFusedLoopSettings,
    HfPagedSettings,
    HfStaticCompiledSettings,
    HfStaticSettings,
)
from inference_study.registry import BackendFamily, BackendSpec
from inference_study.strict import ConfigError

if TYPE_CHECKING:
    from inference_study.config import StudyConfig

PAGED = "inference_study.backends.hf.paged:HfPaged"
# TensorRT-LLM 1.2's pin: the oldest transformers the rungs are tested on (.ci/run's second leg). Older ones
# may take the same calls and do something else (an unknown `dtype=` keyword is not an error everywhere).
OLDEST_TESTED_TRANSFORMERS = "4.57.1"


class PytorchFamily(BackendFamily):
    name = "pytorch"
    backends = (
        BackendSpec("hf_eager", HfEagerSettings, "inference_study.backends.hf.generate:HfEager", ranks="torchrun"),
        BackendSpec("hf_static", HfStaticSettings, "inference_study.backends.hf.generate:HfStatic", ranks="torchrun"),
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

    def preflight(self, study: StudyConfig, features: list[str]) -> None:
        """Stop before any work when a swept paged rung needs a continuous batching this transformers lacks
        (TensorRT-LLM 1.2's image pins transformers 4.57.1; the other rungs run there), or any rung
        would run on a transformers older than the rungs are tested on (older TensorRT-LLM images)."""
        swept = [name for name in study.sweep.backends if self.owns(name)]
        installed = metadata.version("transformers")
        if swept and Version(installed) < Version(OLDEST_TESTED_TRANSFORMERS):
            raise ConfigError(f"sweep.backends: {', '.join(swept)}: the installed transformers {installed} is "
                              f"older than {OLDEST_TESTED_TRANSFORMERS}, the oldest these rungs are tested "
                              "on; allowed here: none of them")
        paged = [name for name in swept if self.spec(name).implementation == PAGED]
        if not paged:
            return
        from inference_study.backends.hf.paged import (  # heavy: loads torch and transformers
            continuous_batching_missing,
        )

        problem = continuous_batching_missing()
        if problem:
            raise ConfigError(f"sweep.backends: {', '.join(paged)}: {problem}; allowed here: the other rungs")


FAMILY = PytorchFamily()
