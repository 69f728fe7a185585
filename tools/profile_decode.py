"""Where a decode step's time goes: run one backend on a prepared model and profile its timed call.

Usage (on a GPU box, after `dvc repro model@<name>`):
    python tools/profile_decode.py results/models/tinyllama_1b hf_compiled_loop --batch 1 --input 512 --output 128

Prints decode steps/s, GPU-busy time per decode step against wall time per decode step (the difference is
host and launch overhead), kernels per decode step, and the kernels that take the most time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from torch.profiler import ProfilerActivity, profile

from inference_study.models import resolve_model
from inference_study.registry import backend_class, sweepable_backends
from inference_study.workload import synthetic_input_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_stage_dir", type=Path)
    parser.add_argument("backend", choices=sorted(sweepable_backends()))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--input", type=int, default=512)
    parser.add_argument("--output", type=int, default=128)
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a backend setting (YAML value), e.g. --set coordinate_descent_tuning=false")
    args = parser.parse_args()

    model_dir, _ = resolve_model(args.model_stage_dir)
    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    settings = sweepable_backends()[args.backend].validate(overrides, key="--set")
    backend = backend_class(args.backend)(settings, model_dir, args.dtype, "cuda")
    backend.load()
    vocab = backend.model.config.vocab_size
    ids = synthetic_input_ids(args.batch, args.input, vocab, seed=0)
    for _ in range(2):
        backend.warmup(ids, args.output)
    torch.cuda.synchronize()
    started = time.perf_counter()
    generation = backend.generate(ids, args.output)
    wall = time.perf_counter() - started
    times = generation.token_times[0]
    decode_s = times[-1] - times[0]
    steps = args.output - 1
    print(f"{args.backend} {overrides or ''} b{args.batch} i{args.input} o{args.output}: {steps / decode_s:.1f} decode steps/s, "
          f"TTFT {(times[0] - generation.start) * 1e3:.2f} ms, call {wall * 1e3:.1f} ms")

    # The decode steps' share is the whole call's GPU time less a one-token call's (the prefill alone): at a
    # large batch and input the prefill is a large part of the call and would swell a per-step average. The
    # one-token call's static cache is output - 1 slots shorter, so its prefill is a little cheaper and the
    # decode share comes out a little high: an upper bound.
    backend.warmup(ids, 1)  # the one-token call is a shape of its own: compiled here, not under the profiler
    call_us, call_kernels, prof = _gpu_time(backend, ids, args.output)
    prefill_us, prefill_kernels, _ = _gpu_time(backend, ids, 1)
    print(f"GPU busy per decode step {(call_us - prefill_us) / steps:.1f} us, wall per decode step "
          f"{decode_s / steps * 1e6:.1f} us, kernels per decode step {(call_kernels - prefill_kernels) / steps:.0f}; "
          f"prefill {prefill_us:.0f} us GPU busy")
    print("kernels of the whole call, prefill included:")
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=args.top, max_name_column_width=70))
    backend.release()


def _gpu_time(backend, ids, output_len: int) -> tuple[float, int, profile]:
    """GPU-busy microseconds and kernel launches of one generate call, under the profiler."""
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        backend.generate(ids, output_len)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    return sum(e.self_device_time_total for e in events), sum(e.count for e in events), prof


if __name__ == "__main__":
    main()
