"""Independent timing checks on a GPU: the harness against CUDA events, and the harness's own overhead.

Skipped without CUDA. On the device: `python -m pytest -m gpu tests/test_gpu_timing.py -s`.
"""

from __future__ import annotations

import statistics
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from helpers.repository import REPO_ROOT
from inference_study.backends.hf import generate as hf
from inference_study.backends.hf import loop as hf_loop
from inference_study.plan import backend_settings
from inference_study.registry import backend_class
from inference_study.compose import compose_yaml
from inference_study.config import validate_params
from inference_study.gpu import NvmlSampler, nvml_handle, usage_from
from inference_study.models import prepare_model
from inference_study.workload import synthetic_input_ids

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
REPO = REPO_ROOT
MODEL = "tinyllama_1b"
BATCH, INPUT_LEN, OUTPUT_LEN = 1, 512, 128


@pytest.fixture(scope="module")
def study():
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        return validate_params(yaml.safe_load(compose_yaml(["study=h100"])))


@pytest.fixture(scope="module")
def model_dir(study, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu_models") / MODEL
    prepare_model(MODEL, study.models[MODEL], out)
    return out


@pytest.fixture(scope="module")
def input_ids(study):
    return synthetic_input_ids(BATCH, INPUT_LEN, study.models[MODEL].shape.vocab_size, 0)


def _loaded(study, model_dir: Path, name: str):
    backend = backend_class(name)(backend_settings(study, name, MODEL), model_dir, study.models[MODEL].dtype, "cuda")
    backend.load()
    backend.warmup(input_ids=synthetic_input_ids(BATCH, INPUT_LEN, 1000, 0), output_len=OUTPUT_LEN)
    return backend


def _event_timed(backend, ids) -> tuple[float, object, object]:
    """E2E of one generate call measured by CUDA events around it (the call syncs at its end)."""
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    generation = backend.generate(ids, OUTPUT_LEN)
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / 1000.0, generation, begin


def test_eager_e2e_and_ttft_agree_with_cuda_events(study, model_dir, input_ids, monkeypatch) -> None:
    """Harness timestamps (host clock at each streamed token) against CUDA events of the same calls."""
    backend = _loaded(study, model_dir, "hf_eager")
    first_token_events: list = []
    original_put = hf.TokenTimestamps.put

    def put_with_event(self, value):
        original_put(self, value)
        if len(self.times) == 1:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            first_token_events.append(event)

    monkeypatch.setattr(hf.TokenTimestamps, "put", put_with_event)
    for _ in range(3):
        first_token_events.clear()
        by_events, generation, begin = _event_timed(backend, input_ids)
        times = generation.token_times[0]
        harness_e2e, harness_ttft = times[-1] - generation.start, times[0] - generation.start
        event_ttft = begin.elapsed_time(first_token_events[0]) / 1000.0
        print(f"eager E2E harness {harness_e2e * 1e3:.2f} ms events {by_events * 1e3:.2f} ms; "
              f"TTFT harness {harness_ttft * 1e3:.3f} ms events {event_ttft * 1e3:.3f} ms")
        assert harness_e2e == pytest.approx(by_events, rel=0.02)
        assert harness_ttft == pytest.approx(event_ttft, rel=0.02)
    backend.release()


@contextmanager
def _uninstrumented(backend):
    """The same generate calls without the harness: no token streamer, no per-step clock, no NVML."""
    with pytest.MonkeyPatch.context() as patch:
        if hasattr(backend, "model"):
            generate = backend.model.generate
            patch.setattr(backend.model, "generate", lambda *args, streamer=None, **kwargs: generate(*args, **kwargs))
        patch.setattr(hf_loop.StepClock, "mark", lambda self: None)
        yield


@pytest.mark.parametrize("name", ["hf_eager", "hf_compiled_loop"])
def test_harness_overhead_under_one_percent(study, model_dir, input_ids, name) -> None:
    """E2E of generate as the harness runs it (token timestamps, per-step clock, NVML sampler) against the
    same calls uninstrumented, interleaved in one process."""
    backend = _loaded(study, model_dir, name)
    handle, why = nvml_handle()
    assert handle is not None, why
    plain, instrumented = [], []
    sampler = NvmlSampler(handle, study.bench.gpu_sample_interval_ms / 1000)
    for _ in range(7):
        with _uninstrumented(backend):
            plain.append(_event_timed(backend, input_ids)[0])
        sampler.start()
        instrumented.append(_event_timed(backend, input_ids)[0])
        sampler.stop()
    ratio = statistics.median(instrumented) / statistics.median(plain)
    usage = usage_from(sampler, None)
    print(f"{name}: median E2E uninstrumented {statistics.median(plain) * 1e3:.2f} ms, as the harness runs it "
          f"{statistics.median(instrumented) * 1e3:.2f} ms, overhead {100 * (ratio - 1):.2f} %; NVML {usage}")
    assert ratio < 1.01
    assert usage.utilization_mean_pct is not None and usage.sm_clock_max_mhz and usage.power_mean_w
    backend.release()
