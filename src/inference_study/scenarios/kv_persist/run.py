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

import copy
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from pydantic import BaseModel
from transformers import DynamicCache

from inference_study.backends.hf.generate import GreedyRun, HfEager
from inference_study.models import PROVENANCE_FILE
from inference_study.scenarios.common import divergence, load_eager, repeated
from inference_study.scenarios.kv_persist.record import KvPersistRecord, KvPersistRow
from inference_study.scenarios.kv_persist.settings import KvPersistSettings
from inference_study.scenarios.records import Divergence, Expectation, agreement
from inference_study.strict import Record
from inference_study.tensor_files import CacheRefused, read_tensor_file, write_tensor_file
from inference_study.workload import synthetic_input_ids

CACHE_FORMAT = "inference-study/prefix-kv/1"
EXPECTED = (
    "The second instance finds the saved prefix, prefills only the new tokens (skips the prefix's "
    "prefill) and its output is identical to the first instance's (the persistent-KV write-up)."
)


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
    """What the parent tells each instance process: the model, the prompts and where the caches live."""

    model_dir: Path
    dtype: str
    device: str
    cache_dir: Path
    prefix_lens: list[int]
    prompts: list[list[int]]
    output_len: int
    warmup_iterations: int
    iterations: int


class InstanceRow(BaseModel):
    """One prompt as one instance saw it."""

    ttft_s: float
    output_ids: list[int]
    prefilled_tokens: int
    cache_bytes: int | None = None
    load_s: float | None = None
    cache_used: bool = False
    refused_reason: str | None = None


def cache_path(spec: InstanceSpec, prefix_len: int) -> Path:
    return spec.cache_dir / f"prefix_{prefix_len}.safetensors"


def _summary(runs: list[GreedyRun]) -> dict[str, object]:
    return {
        "ttft_s": statistics.median(r.ttft_s for r in runs),
        "output_ids": runs[-1].output_ids,
        "prefilled_tokens": runs[-1].forward_lengths[0],
    }


def _timed(backend: HfEager, spec: InstanceSpec, prompt: list[int], cache: DynamicCache | None) -> list[GreedyRun]:
    return repeated(
        lambda: backend.greedy(prompt, spec.output_len, past_key_values=copy.deepcopy(cache)),
        spec.warmup_iterations,
        spec.iterations,
    )


@torch.inference_mode()
def compute_and_save(backend: HfEager, spec: InstanceSpec, prefix_len: int, prompt: list[int]) -> InstanceRow:
    """Instance 1: cold generation (full prefill), then the prefix's KV computed and saved."""
    runs = _timed(backend, spec, prompt, None)
    cache = DynamicCache(config=backend.model_config)
    backend.prefill(prompt[:prefix_len], cache)
    model_fingerprint = fingerprint(spec.model_dir, spec.dtype, backend.settings.attn_implementation)
    size = save_prefix_cache(cache_path(spec, prefix_len), cache, prompt[:prefix_len], model_fingerprint)
    return InstanceRow(**_summary(runs), cache_bytes=size)


def load_and_generate(
    backend: HfEager, spec: InstanceSpec, prefix_len: int, prompt: list[int]
) -> InstanceRow:
    """Instance 2: load the saved prefix and prefill the rest; a refused file means computing it all."""
    model_fingerprint = fingerprint(spec.model_dir, spec.dtype, backend.settings.attn_implementation)
    start = time.perf_counter()
    try:
        cache = load_prefix_cache(cache_path(spec, prefix_len), prompt, model_fingerprint, backend)
    except CacheRefused as refused:
        return InstanceRow(**_summary(_timed(backend, spec, prompt, None)), refused_reason=str(refused))
    load_s = time.perf_counter() - start
    return InstanceRow(**_summary(_timed(backend, spec, prompt, cache)), load_s=load_s, cache_used=True)


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


def expectation(rows: list[KvPersistRow], divergences: list[Divergence]) -> Expectation:
    skipped = [r for r in rows if r.cache_used and r.prefilled_tokens_warm == r.prompt_len - r.prefix_len]
    identical = sum(r.identical_output for r in rows)
    agree, outputs = agreement(identical == len(rows), divergences)
    faster = sum(r.ttft_speedup > 1 for r in rows)
    observed = (
        f"{len(skipped)} of {len(rows)} prefixes loaded with only the new tokens prefilled; output identical "
        f"in {identical} of {len(rows)} ({outputs}); warm TTFT lower in {faster} of {len(rows)}"
    )
    return Expectation(expected=EXPECTED, met=len(skipped) == len(rows) and agree, observed=observed)


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
    settings: KvPersistSettings, model_dir: Path, dtype: str, device: str, vocab_size: int, seed: int
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
            iterations=settings.iterations,
        )
        cold = spawn_instance("save", spec, Path(work))
        warm = spawn_instance("load", spec, Path(work))
    rows = [
        KvPersistRow(
            prefix_len=n,
            prompt_len=len(prompt),
            output_len=settings.output_len,
            ttft_cold_ms=c.ttft_s * 1e3,
            ttft_warm_ms=w.ttft_s * 1e3,
            ttft_speedup=c.ttft_s / w.ttft_s,
            cache_bytes=c.cache_bytes,
            load_ms=w.load_s * 1e3 if w.load_s is not None else None,
            prefilled_tokens_cold=c.prefilled_tokens,
            prefilled_tokens_warm=w.prefilled_tokens,
            cache_used=w.cache_used,
            refused_reason=w.refused_reason,
            identical_output=c.output_ids == w.output_ids,
        )
        for n, prompt, c, w in zip(settings.prefix_lens, prompts, cold, warm)
    ]
    divergences = warm_divergences(model_dir, dtype, device, prompts, cold, warm)
    return KvPersistRecord(
        cache_format=CACHE_FORMAT, rows=rows, divergences=divergences, expectation=expectation(rows, divergences)
    )


if __name__ == "__main__":
    role, spec_path, out_path = sys.argv[1:4]
    result = run_instance(role, InstanceSpec.model_validate_json(Path(spec_path).read_text()))
    Path(out_path).write_text(json.dumps([row.model_dump() for row in result]))
