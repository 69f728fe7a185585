"""One compiled backend in a fresh process on CUDA: load, warm up (the compile), generate; one JSON line."""
import json, os, sys, time
from pathlib import Path

name, xdg, model_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
os.environ["XDG_CACHE_HOME"] = xdg
t0 = time.perf_counter()
from inference_study.backends.hf import settings as S
from inference_study.backends.hf.fused import HfFusedLoop
from inference_study.backends.hf.generate import HfStaticCompiled
from inference_study.backends.hf.loop import HfCompiledLoop

cls, st = {"hf_static_compiled": (HfStaticCompiled, S.HfStaticCompiledSettings()),
           "hf_compiled_loop": (HfCompiledLoop, S.HfCompiledLoopSettings()),
           "hf_fused_loop": (HfFusedLoop, S.HfFusedLoopSettings())}[name]
b = cls(st, model_dir, "float16", "cuda")
t = time.perf_counter(); b.load(); load_s = time.perf_counter() - t
ids = [[(7 * i) % 32000 for i in range(128)]]
t = time.perf_counter(); b.warmup(ids, 8); warm_s = time.perf_counter() - t
from torch._dynamo.utils import calculate_time_spent, counters
phases = {k: round(v, 2) for k, v in calculate_time_spent().items()}
t = time.perf_counter(); b.generate(ids, 8); second_s = time.perf_counter() - t
t = time.perf_counter(); g = b.generate(ids, 8); gen_s = time.perf_counter() - t
triton_env = os.environ.get("TRITON_CACHE_DIR")
b.release()
r = b.compile_report()
print("RESULT " + json.dumps({"backend": name, "xdg": xdg, "load_s": round(load_s, 1),
      "warmup_s": round(warm_s, 2), "second_call_s": round(second_s, 3), "phases": phases,
      "coordesc": counters["inductor"]["coordesc_tuning_bench"], "generate_s": round(gen_s, 4), "compile_s": round(r.compile_s, 2),
      "cache": r.cache.model_dump(), "tokens": g.output_ids, "triton_cache_dir": triton_env}), flush=True)
