"""A prefix KV cache that outlives the process that computed it (the persistent-KV write-up, the "KV connector").

Instance 1 prefills the prompt cold, saves the prefix's per-layer keys and values with safetensors
and exits. Instance 2, a new process with the same model and configuration, loads the file,
prefills only the tokens after the prefix and generates. The file carries its prefix token ids, a
fingerprint of the model, dtype and attention configuration, and a checksum of its tensors: a file
that does not match is refused with the reason, and instance 2 computes the prefix instead, so a
stale or damaged cache costs time but never changes the output.

GreedyRun as `python -m inference_study.scenarios.kv_persist.run {save|load} SPEC_JSON OUT_JSON` (one instance).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel
from transformers import DynamicCache

from inference_study.backends.hf.generate import GreedyRun, HfEager
from inference_study.models import PROVENANCE_FILE
from inference_study.scenarios.common import divergence, load_eager
from inference_study.scenarios.kv_persist.record import (
    KvPersistRecord,
    KvPersistRow,
    claims,
    controls,
    expectation,
)
from inference_study.scenarios.kv_persist.settings import KvPersistSettings
from inference_study.scenarios.records import Divergence
from inference_study.scenarios.timing import Policy, converge, scaled, verdict
from inference_study.stopping import Stopping, StoppingRule
from inference_study.strict import Record
from inference_study.tensor_files import CacheRefused, read_tensor_file, write_tensor_file
from inference_study.uncertainty import Interval, interval
from inference_study.workload import synthetic_input_ids

CACHE_FORMAT = "inference-study/prefix-kv/1"


def fingerprint(model_dir: Path, dtype: str, attn_implementation: str) -> str:
    """What makes KV tensors interchangeable: the model's config and weight provenance, dtype, attention."""
    parts = [json.loads((model_dir / "config.json").read_text())]
    provenance = model_dir / PROVENANCE_FILE
    parts.append(json.loads(provenance.read_text()) if provenance.exists() else None)
    payload = json.dumps(
        {"model": parts, "dtype": dtype, "attn": attn_implementation, "format": CACHE_FORMAT}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def save_prefix_cache(path: Path, cache: DynamicCache, prefix_ids: list[int], model_fingerprint: str) -> int:
    """Write the prefix's keys and values atomically; returns the file's size in bytes."""
    tensors = {
        f"layer.{i}.{part}": getattr(layer, part).detach().to("cpu").contiguous()
        for i, layer in enumerate(cache.layers)
        for part in ("keys", "values")
    }
    metadata = {
        "format": CACHE_FORMAT,
        "fingerprint": model_fingerprint,
        "prefix_ids": json.dumps(prefix_ids),
        "layers": str(len(cache.layers)),
    }
    return write_tensor_file(path, tensors, metadata)


def load_prefix_cache(
    path: Path, prompt: list[int], model_fingerprint: str, backend: HfEager
) -> DynamicCache:
    """The cache of the longest usable prefix of `prompt`, or CacheRefused saying why it cannot be used."""
    metadata, tensors = read_tensor_file(path)
    if metadata.get("format") != CACHE_FORMAT:
        raise CacheRefused(f"{path}: format {metadata.get('format')!r}, expected {CACHE_FORMAT!r}")
    if metadata.get("fingerprint") != model_fingerprint:
        raise CacheRefused(
            f"{path}: computed by another model, dtype or configuration (fingerprint "
            f"{str(metadata.get('fingerprint'))[:12]}…, this run {model_fingerprint[:12]}…)"
        )
    prefix = json.loads(metadata["prefix_ids"])
    if prompt[: len(prefix)] != prefix:
        raise CacheRefused(f"{path}: its {len(prefix)} prefix tokens are not a prefix of this prompt")
    layers = int(metadata["layers"])
    if layers != backend.model_config.num_hidden_layers or len(tensors) != 2 * layers:
        raise CacheRefused(
            f"{path}: {len(tensors)} tensors for {layers} layers; the model has "
            f"{backend.model_config.num_hidden_layers}"
        )
    device = backend.device
    cache = DynamicCache(
        [
            (tensors[f"layer.{i}.keys"].to(device), tensors[f"layer.{i}.values"].to(device))
            for i in range(layers)
        ],
        config=backend.model_config,
    )
    if cache.get_seq_length() != len(prefix):
        raise CacheRefused(
            f"{path}: holds {cache.get_seq_length()} positions for {len(prefix)} prefix tokens"
        )
    if len(prefix) >= len(prompt):
        # generate re-feeds the whole prompt when nothing is left to prefill: keep the last token uncached
        cache.crop(-(len(prefix) - len(prompt) + 1))
    return cache


class InstanceSpec(Record):
    """What the parent tells each instance process: the model, the prompts, where the caches live, and the
    stopping rule of its timed loops."""

    model_dir: Path
    dtype: str
    device: str
    cache_dir: Path
    prefix_lens: list[int]
    prompts: list[list[int]]
    output_len: int
    warmup_iterations: int
    stopping: StoppingRule


class InstanceRow(BaseModel):
    """One prompt as one instance saw it: its TTFT over the timed repeats and how the loop stopped."""

    ttft_s: Interval
    stopping: Stopping
    output_ids: list[int]
    prefilled_tokens: int
    control_ttft_s: Interval | None = None  # instance 2: the whole prompt prefilled, round-robin with the warm runs
    cache_bytes: int | None = None
    load_s: Interval | None = None
    cache_used: bool = False
    refused_reason: str | None = None


@dataclass(frozen=True)
class Served:
    """One request of instance 2: the prefix read from disk (outside TTFT; 0 when nothing was read) and the
    generation."""

    load_s: float
    run: GreedyRun


def cache_path(spec: InstanceSpec, prefix_len: int) -> Path:
    return spec.cache_dir / f"prefix_{prefix_len}.safetensors"


def _ttft(timed: list[GreedyRun]) -> Interval:
    return interval([[r.ttft_s for r in timed]])


@torch.inference_mode()
def compute_and_save(backend: HfEager, spec: InstanceSpec, prefix_len: int, prompt: list[int]) -> InstanceRow:
    """Instance 1: cold generations (full prefill) until the stopping rule is met, then the prefix's KV
    computed and saved."""
    measured = converge({"cold": lambda: backend.greedy(prompt, spec.output_len)}, warmup=spec.warmup_iterations,
                        rule=spec.stopping, work_s=lambda r: r.elapsed_s, requests=lambda r: 1,
                        headline=lambda runs: {"TTFT cold": _ttft(runs["cold"])})
    runs = measured.runs["cold"]
    cache = DynamicCache(config=backend.model_config)
    backend.prefill(prompt[:prefix_len], cache)
    model_fingerprint = fingerprint(spec.model_dir, spec.dtype, backend.settings.attn_implementation)
    size = save_prefix_cache(cache_path(spec, prefix_len), cache, prompt[:prefix_len], model_fingerprint)
    return InstanceRow(ttft_s=_ttft(runs), stopping=measured.stopping, output_ids=runs[-1].output_ids,
                       prefilled_tokens=runs[-1].forward_lengths[0], cache_bytes=size)


@torch.inference_mode()
def load_and_generate(
    backend: HfEager, spec: InstanceSpec, prefix_len: int, prompt: list[int]
) -> InstanceRow:
    """Instance 2: load the saved prefix and prefill the rest (each warm request reads the file anew), round-robin
    with a cold request that prefills the whole prompt as instance 1 did; a refused file means computing it all."""
    model_fingerprint = fingerprint(spec.model_dir, spec.dtype, backend.settings.attn_implementation)
    path = cache_path(spec, prefix_len)
    refused = None
    try:
        load_prefix_cache(path, prompt, model_fingerprint, backend)
    except CacheRefused as error:
        refused = str(error)

    def warm() -> Served:
        if refused:
            return Served(0.0, backend.greedy(prompt, spec.output_len))
        start = time.perf_counter()
        cache = load_prefix_cache(path, prompt, model_fingerprint, backend)
        return Served(time.perf_counter() - start, backend.greedy(prompt, spec.output_len, past_key_values=cache))

    def cold() -> Served:
        return Served(0.0, backend.greedy(prompt, spec.output_len))

    def headline(runs: dict[str, list[Served]]) -> dict[str, Interval]:
        return {"TTFT warm": _ttft([w.run for w in runs["warm"]]),
                "TTFT cold (control)": _ttft([w.run for w in runs["cold"]])}

    measured = converge({"warm": warm, "cold": cold}, warmup=spec.warmup_iterations, rule=spec.stopping,
                        work_s=lambda w: w.load_s + w.run.elapsed_s, requests=lambda w: 1, headline=headline)
    warm_runs = measured.runs["warm"]
    last = warm_runs[-1].run
    return InstanceRow(ttft_s=_ttft([w.run for w in warm_runs]), stopping=measured.stopping, output_ids=last.output_ids,
                       prefilled_tokens=last.forward_lengths[0],
                       control_ttft_s=_ttft([w.run for w in measured.runs["cold"]]),
                       load_s=None if refused else interval([[w.load_s for w in warm_runs]]),
                       cache_used=refused is None, refused_reason=refused)


INSTANCES = {"save": compute_and_save, "load": load_and_generate}


def run_instance(role: str, spec: InstanceSpec) -> list[InstanceRow]:
    """One instance: load the model, handle every prompt, and return (the process then exits)."""
    backend = load_eager(spec.model_dir, spec.dtype, spec.device)
    return [INSTANCES[role](backend, spec, n, prompt) for n, prompt in zip(spec.prefix_lens, spec.prompts)]


def spawn_instance(role: str, spec: InstanceSpec, work_dir: Path) -> list[InstanceRow]:
    """GreedyRun one instance in a new Python process: nothing but the cache files passes between instances."""
    spec_file, out_file = work_dir / f"{role}_spec.json", work_dir / f"{role}_out.json"
    spec_file.write_text(spec.model_dump_json())
    subprocess.run([sys.executable, "-m", __name__, role, str(spec_file), str(out_file)], check=True)
    return [InstanceRow.model_validate(row) for row in json.loads(out_file.read_text())]


def warm_divergences(
    model_dir: Path, dtype: str, device: str, prompts: list[list[int]], cold: list[InstanceRow], warm: list[InstanceRow]
) -> list[Divergence]:
    """Where instance 2's output differs from instance 1's, the first divergence (the model is loaded here,
    in the parent, only then)."""
    differing = [(p, c, w) for p, c, w in zip(prompts, cold, warm) if c.output_ids != w.output_ids]
    if not differing:
        return []
    backend = load_eager(model_dir, dtype, device)
    try:
        return [divergence(backend, f"instance 2 against instance 1, prompt of {len(p)} tokens", p,
                           c.output_ids, w.output_ids) for p, c, w in differing]
    finally:
        backend.release()


def run_kv_persist(
    settings: KvPersistSettings, model_dir: Path, dtype: str, device: str, vocab_size: int, seed: int, policy: Policy
) -> KvPersistRecord:
    """Instance 1 and instance 2 as two processes, one after the other, over every prefix length."""
    prompts = [
        synthetic_input_ids(1, n + settings.suffix_len, vocab_size, seed)[0] for n in settings.prefix_lens
    ]
    with tempfile.TemporaryDirectory(prefix="kv_persist_") as work:
        spec = InstanceSpec(
            model_dir=model_dir,
            dtype=dtype,
            device=device,
            cache_dir=Path(work) / "cache",
            prefix_lens=settings.prefix_lens,
            prompts=prompts,
            output_len=settings.output_len,
            warmup_iterations=settings.warmup_iterations,
            stopping=policy.rule,
        )
        cold = spawn_instance("save", spec, Path(work))
        warm = spawn_instance("load", spec, Path(work))
    rows = [
        KvPersistRow(
            prefix_len=n,
            prompt_len=len(prompt),
            output_len=settings.output_len,
            ttft_cold_ms=scaled(c.ttft_s, 1e3),
            ttft_warm_ms=scaled(w.ttft_s, 1e3),
            ttft_cold_instance2_ms=scaled(w.control_ttft_s, 1e3),
            cache_bytes=c.cache_bytes,
            load_ms=scaled(w.load_s, 1e3) if w.load_s is not None else None,
            prefilled_tokens_cold=c.prefilled_tokens,
            prefilled_tokens_warm=w.prefilled_tokens,
            cache_used=w.cache_used,
            refused_reason=w.refused_reason,
            identical_output=c.output_ids == w.output_ids,
        )
        for n, prompt, c, w in zip(settings.prefix_lens, prompts, cold, warm)
    ]
    divergences = warm_divergences(model_dir, dtype, device, prompts, cold, warm)
    stopping = {f"instance {i}, prefix {n}": row.stopping
                for i, instance in ((1, cold), (2, warm)) for n, row in zip(settings.prefix_lens, instance)}
    return record(settings, rows, divergences, stopping, policy)


def record(settings: KvPersistSettings, rows: list[KvPersistRow], divergences: list[Divergence],
           stopping: dict[str, Stopping], policy: Policy) -> KvPersistRecord:
    checks = controls(rows)
    timings = {f"prefix {r.prefix_len} {name}": timing for r in rows
               for name, timing in (("TTFT cold", r.ttft_cold_ms), ("TTFT warm", r.ttft_warm_ms),
                                    ("TTFT cold in instance 2", r.ttft_cold_instance2_ms)) if timing is not None}
    return KvPersistRecord(
        cache_format=CACHE_FORMAT, rows=rows, divergences=divergences, expectation=expectation(rows, divergences),
        verdict=verdict(warmup_iterations=settings.warmup_iterations, stopping=stopping, intervals=timings,
                        max_cv=policy.max_cv, controls=checks),
        stopping=stopping, claims=claims(rows), controls=checks,
    )


if __name__ == "__main__":
    role, spec_path, out_path = sys.argv[1:4]
    result = run_instance(role, InstanceSpec.model_validate_json(Path(spec_path).read_text()))
    Path(out_path).write_text(json.dumps([row.model_dump() for row in result]))
