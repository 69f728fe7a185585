"""Throttle evidence and energy per token, through the real NvmlSampler, usage_from and verdict, against a
fake `pynvml` whose readings each test scripts (no GPU or driver needed).

The verdict warns that the GPU slowed down only when a clock fell by more than CLOCK_FALL_LIMIT; NVML's
reason bits and violation counters are its evidence, never a warning alone (docs/nvml.md). Every expected
number is computed from the scripted readings.
"""

from __future__ import annotations

import re
import sys
import time
import types
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from inference_study import gpu
from inference_study.gpu import (
    CLOCK_FALL_LIMIT,
    POWER_SAMPLES,
    SLOWDOWN_REASONS,
    SM_CLOCK_SAMPLES,
    UTILIZATION_SAMPLES,
    VIOLATION_POLICIES,
    NvmlSampler,
    combined,
    usage_from,
    with_energy_per_token,
)
from inference_study.validity import judge

# Values as in nvml.h.
NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NOT_FOUND = 3, 6
NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2
SW_POWER_CAP = 0x4
POWER, THERMAL = 0, 1
GIB = 1 << 30


class FakeNvml:
    """One case's NVML, scripted: each reading is a list consumed one call at a time, its last value repeating
    once used up. A sample buffer is a list of batches, batch k being what has arrived by the k-th call (call
    0 is the sampler's look at the buffer before the span), or None: NVML_ERROR_NOT_FOUND, as an H200 answers
    for its SM-clock buffer. `energy_mj=None` is a device without an energy counter."""

    def __init__(self, *, sm=(1980,), mem=(3201,), reasons=(0,), energy_mj=(1_000_000,),
                 violation_ns=None, buffers=None, memory_used=(GIB,), utilization_now=(50,)):
        self.script = {"sm": list(sm), "mem": list(mem), "reasons": list(reasons),
                       "memory": list(memory_used), "utilization_now": list(utilization_now)}
        self.energy_mj = None if energy_mj is None else list(energy_mj)
        self.violation_ns = {POWER: [0], THERMAL: [0]} | (violation_ns or {})
        empty = {SM_CLOCK_SAMPLES: None, UTILIZATION_SAMPLES: [[]], POWER_SAMPLES: [[]]}
        self.buffers = empty | (buffers or {})
        self.calls: Counter[str] = Counter()
        self.not_found: Counter[int] = Counter()
        self.module = self._module()

    def _next(self, name: str, values: list):
        index = self.calls[name]
        self.calls[name] += 1
        return values[min(index, len(values) - 1)]

    def _module(self) -> types.ModuleType:
        fake = types.ModuleType("pynvml")

        class NVMLError(Exception):
            def __init__(self, value: int):
                super().__init__(f"NVML error {value}")
                self.value = value

        def samples(handle, kind, since):
            batches = self.buffers[kind]
            if batches is None:
                self.not_found[kind] += 1
                raise NVMLError(NVML_ERROR_NOT_FOUND)
            arrived = batches[: self._next(f"samples{kind}", range(len(batches))) + 1]
            newer = [SimpleNamespace(timeStamp=t, sampleValue=SimpleNamespace(uiVal=v))
                     for batch in arrived for t, v in batch if t > since]
            if not newer:
                raise NVMLError(NVML_ERROR_NOT_FOUND)
            return 1, newer

        def energy(handle):
            if self.energy_mj is None:
                raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
            return self._next("energy", self.energy_mj)

        clocks = {NVML_CLOCK_SM: "sm", NVML_CLOCK_MEM: "mem"}
        fake.NVMLError = NVMLError
        fake.NVML_CLOCK_SM, fake.NVML_CLOCK_MEM = NVML_CLOCK_SM, NVML_CLOCK_MEM
        fake.nvmlInit = lambda: None
        fake.nvmlDeviceGetHandleByIndex = lambda index: f"gpu{index}"
        def read(name: str):
            return self._next(name, self.script[name])

        fake.nvmlDeviceGetClockInfo = lambda handle, which: read(clocks[which])
        fake.nvmlDeviceGetCurrentClocksEventReasons = lambda handle: read("reasons")
        fake.nvmlDeviceGetMemoryInfo = lambda handle: SimpleNamespace(used=read("memory"))
        fake.nvmlDeviceGetUtilizationRates = lambda handle: SimpleNamespace(gpu=read("utilization_now"))
        fake.nvmlDeviceGetViolationStatus = lambda handle, policy: SimpleNamespace(
            referenceTime=0, violationTime=self._next(f"violation{policy}", self.violation_ns[policy]))
        fake.nvmlDeviceGetTotalEnergyConsumption = energy
        fake.nvmlDeviceGetSamples = samples
        return fake


class Clock:
    """The sampler's perf_counter, set by the test: the span it measures is exactly the scripted one."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake_clock = Clock()
    monkeypatch.setattr(gpu, "time", SimpleNamespace(perf_counter=fake_clock.perf_counter))
    return fake_clock


def install(monkeypatch, fake: FakeNvml) -> FakeNvml:
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    return fake


def timed_span(fake: FakeNvml, clock: Clock, *, seconds: float, drains: int) -> NvmlSampler:
    """start(), `drains` drains as the sampler's thread would make them, stop(): a timing of `seconds`."""
    sampler = NvmlSampler("gpu0", interval_s=3600)  # the thread never drains on its own: the test does
    sampler.start()
    for _ in range(drains):
        sampler._drain()
    clock.now += seconds
    sampler.stop()
    assert fake.calls["sm"] == drains + 2, "the SM clock is read at the start, each drain and the end"
    return sampler


def verdict(usage):
    return judge(status="ok", error=None, warmup_iterations=2, headline=None, stopping=None, gpu=usage,
                 memory_seen_by_torch_allocator=True, on_gpu=True, max_cv=0.05)


def slowdowns(result) -> list[str]:
    return [r for r in result.reasons if r.startswith("GPU slowed down")]


def held_pct(reasons: list[str], policy: int) -> float:
    """The share a violation entry states, in percent."""
    entry = next(r for r in reasons if r.startswith(VIOLATION_POLICIES[policy]))
    return float(re.search(r"clocks held ([0-9.]+)% of the timing", entry).group(1))


def fall(high: int, low: int, name: str) -> str:
    return f"{name} clock fell from {high} to {low} MHz (-{round(100 * (1 - low / high))}%)"


def test_nothing_moved_no_warning_and_the_cell_passes(monkeypatch, clock) -> None:
    fake = install(monkeypatch, FakeNvml(sm=[1980], mem=[3201], violation_ns={POWER: [7_000], THERMAL: [0]}))
    usage = usage_from(timed_span(fake, clock, seconds=10.0, drains=3), None)
    assert fake.calls["violation0"] == 2 and fake.calls["reasons"] == 5, "counters and reasons were read"
    assert (usage.sm_clock_min_mhz, usage.sm_clock_max_mhz) == (1980, 1980)
    assert (usage.memory_clock_min_mhz, usage.memory_clock_max_mhz) == (3201, 3201)
    assert usage.slowdown_reasons == []
    result = verdict(usage)
    assert (result.status, result.reasons) == ("pass", [])


def test_power_counter_and_power_cap_bit_at_full_clocks_are_evidence_only(monkeypatch, clock) -> None:
    """As in the H200's hf_fused_loop batch-32 run: the counter ran for 40% of the timing, the clocks held."""
    before, after, seconds = 5_000_000_000, 5_000_000_000 + 4_000_000_000, 10.0
    fake = install(monkeypatch, FakeNvml(sm=[1980, 1980, 1965, 1980], mem=[3201],
                                         reasons=[0, SW_POWER_CAP, SW_POWER_CAP, 0],
                                         violation_ns={POWER: [before, after]}))
    usage = usage_from(timed_span(fake, clock, seconds=seconds, drains=3), None)
    assert after > before and fake.calls["violation0"] == 2, "the power counter moved between its readings"
    assert SLOWDOWN_REASONS[SW_POWER_CAP] in usage.slowdown_reasons
    share_pct = 100 * (after - before) / 1e9 / seconds
    assert held_pct(usage.slowdown_reasons, POWER) == pytest.approx(share_pct, abs=0.05)
    assert 1 - usage.sm_clock_min_mhz / usage.sm_clock_max_mhz <= CLOCK_FALL_LIMIT
    result = verdict(usage)
    assert slowdowns(result) == [] and result.status == "pass"


def test_sm_clock_fall_with_the_power_cap_warns_naming_the_clock_and_the_evidence(monkeypatch, clock) -> None:
    """As under the H200's 8192³ fp16 matmul: SM clock down to 1245 MHz, power counter 99.6% of the time."""
    sm, seconds = [1980, 1980, 1425, 1245, 1470, 1980], 10.0
    before, after = 0, 9_960_000_000
    fake = install(monkeypatch, FakeNvml(sm=sm, reasons=[0, SW_POWER_CAP, SW_POWER_CAP, SW_POWER_CAP, 0],
                                         violation_ns={POWER: [before, after]}))
    usage = usage_from(timed_span(fake, clock, seconds=seconds, drains=len(sm) - 2), None)
    assert (usage.sm_clock_min_mhz, usage.sm_clock_max_mhz) == (min(sm), max(sm))
    share_pct = 100 * (after - before) / 1e9 / seconds
    assert held_pct(usage.slowdown_reasons, POWER) == pytest.approx(share_pct, abs=0.05)
    result = verdict(usage)
    [warning] = slowdowns(result)
    assert fall(max(sm), min(sm), "SM") in warning
    assert SLOWDOWN_REASONS[SW_POWER_CAP] in warning and VIOLATION_POLICIES[POWER] in warning
    assert "memory clock" not in warning and result.status == "warn"


def test_memory_clock_fall_warns_naming_the_memory_clock(monkeypatch, clock) -> None:
    mem = [3201, 3201, 2619, 3201]
    fake = install(monkeypatch, FakeNvml(sm=[1980], mem=mem))
    usage = usage_from(timed_span(fake, clock, seconds=5.0, drains=len(mem) - 2), None)
    assert (usage.memory_clock_min_mhz, usage.memory_clock_max_mhz) == (min(mem), max(mem))
    [warning] = slowdowns(verdict(usage))
    assert fall(max(mem), min(mem), "memory") in warning and "SM clock" not in warning


def test_a_clock_fall_within_the_limit_is_no_warning(monkeypatch, clock) -> None:
    sm = [1980, 1905, 1980]  # the H200 fused-loop run's range, with the power counter moving
    fake = install(monkeypatch, FakeNvml(sm=sm, reasons=[SW_POWER_CAP],
                                         violation_ns={POWER: [0, 2_000_000_000]}))
    usage = usage_from(timed_span(fake, clock, seconds=5.0, drains=len(sm) - 2), None)
    assert 0 < 1 - usage.sm_clock_min_mhz / usage.sm_clock_max_mhz <= CLOCK_FALL_LIMIT, "the clock did fall"
    assert usage.slowdown_reasons, "with evidence recorded"
    assert slowdowns(verdict(usage)) == []


def test_h200_empty_sm_clock_buffer_the_clock_is_still_read_at_each_drain(monkeypatch) -> None:
    """The SM-clock sample buffer answers NVML_ERROR_NOT_FOUND; the sampler's own thread drains, and the
    clock it reads at each drain still catches the fall in the middle of the span."""
    sm = [1980, 1980, 1350, 1980]
    fake = install(monkeypatch, FakeNvml(sm=sm, buffers={SM_CLOCK_SAMPLES: None}))
    sampler = NvmlSampler("gpu0", interval_s=0.001)
    sampler.start()
    deadline = time.monotonic() + 10
    while fake.calls["sm"] < len(sm) + 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    sampler.stop()
    drains = fake.calls["sm"] - 1  # every read but the start's
    assert drains >= len(sm), "the thread drained, and stop() drained once more"
    assert fake.not_found[SM_CLOCK_SAMPLES] == drains + 1, "the buffer was asked at the start and each drain"
    assert len(sampler.sm_clock_mhz) == fake.calls["sm"], "every direct reading was kept"
    usage = usage_from(sampler, None)
    assert (usage.sm_clock_min_mhz, usage.sm_clock_max_mhz) == (min(sm), max(sm))
    assert fall(max(sm), min(sm), "SM") in slowdowns(verdict(usage))[0]


def test_sample_buffers_count_only_the_samples_of_the_span(monkeypatch, clock) -> None:
    """Samples already in the driver's buffer when the span starts are not the span's; each arrives once."""
    utilization = [[(100, 3)], [(200, 90), (300, 96)], [(400, 92)], [(500, 88)]]
    power_mw = [[(100, 120_000)], [(250, 690_000)], [(450, 700_000)], [(550, 680_000)]]
    fake = install(monkeypatch, FakeNvml(energy_mj=None, buffers={UTILIZATION_SAMPLES: utilization,
                                                                  POWER_SAMPLES: power_mw}))
    usage = usage_from(timed_span(fake, clock, seconds=2.0, drains=len(utilization) - 2), None)
    in_span = [v for batch in utilization[1:] for _, v in batch]
    power_in_span = [v for batch in power_mw[1:] for _, v in batch]
    assert usage.samples == len(in_span)
    assert usage.utilization_mean_pct == pytest.approx(sum(in_span) / len(in_span))
    assert usage.utilization_max_pct == max(in_span)
    assert usage.power_mean_w == pytest.approx(sum(power_in_span) / len(power_in_span) / 1000)


@pytest.fixture
def gpu_watch(monkeypatch):
    """The harness's _GpuWatch on device "cuda", with torch's CUDA calls stubbed."""
    import torch

    from inference_study import harness

    peaks = (3 * GIB, 4 * GIB)
    monkeypatch.setattr(gpu, "_torch_device_uuid", lambda: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: peaks[0])
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: peaks[1])

    def watch_span(fake: FakeNvml, clock: Clock, seconds: float):
        watch = harness._GpuWatch("cuda", interval_s=3600)
        assert watch.sampler is not None, watch.reasons
        with watch:
            clock.now += seconds
        usage = watch.usage()
        assert (usage.torch_allocated_peak_bytes, usage.torch_reserved_peak_bytes) == peaks
        return watch, usage

    return watch_span


def test_energy_per_token_from_the_energy_counter(monkeypatch, clock, gpu_watch) -> None:
    from inference_study.harness import ENERGY_FIELDS

    before_mj, after_mj, seconds, tokens = 2_000_000, 2_000_000 + 2_518_000, 10.0, 32 * 128 * 5
    fake = install(monkeypatch, FakeNvml(energy_mj=[before_mj, after_mj]))
    watch, usage = gpu_watch(fake, clock, seconds)
    assert fake.calls["energy"] == 2, "the counter was read before and after"
    energy_j = (after_mj - before_mj) / 1000
    assert usage.energy_j == pytest.approx(energy_j)
    assert usage.power_mean_w == pytest.approx(energy_j / seconds)
    priced = with_energy_per_token(usage, tokens)
    assert priced.joules_per_output_token == pytest.approx(energy_j / tokens)
    assert priced.output_tokens_per_joule == pytest.approx(tokens / energy_j)
    assert not {f"gpu.{name}" for name in ENERGY_FIELDS} & set(watch.reasons)


def test_energy_fields_null_with_the_harness_reason_without_a_counter(monkeypatch, clock, gpu_watch) -> None:
    from inference_study.harness import ENERGY_FIELDS

    power_mw = [[], [(10, 250_000), (20, 254_000)]]
    fake = install(monkeypatch, FakeNvml(energy_mj=None, buffers={POWER_SAMPLES: power_mw}))
    watch, usage = gpu_watch(fake, clock, 10.0)
    priced = with_energy_per_token(usage, 4096)
    assert all(getattr(priced, name) is None for name in ENERGY_FIELDS)
    reasons = {watch.reasons.get(f"gpu.{name}") for name in ENERGY_FIELDS}
    (reason,) = reasons
    assert reason is not None and "energy counter gave no reading" in reason
    samples = [v for batch in power_mw for _, v in batch]
    assert priced.power_mean_w == pytest.approx(sum(samples) / len(samples) / 1000), "power from the samples"
    assert "gpu.power_mean_w" not in watch.reasons


@pytest.mark.parametrize("delta_mj", [0, -1_500_000], ids=["did_not_advance", "driver_reloaded"])
def test_an_energy_counter_that_did_not_increase_is_no_reading(monkeypatch, clock, delta_mj) -> None:
    before = 9_000_000
    fake = install(monkeypatch, FakeNvml(energy_mj=[before, before + delta_mj]))
    usage = usage_from(timed_span(fake, clock, seconds=1.0, drains=0), None)
    assert fake.calls["energy"] == 2
    assert usage.energy_j is None and with_energy_per_token(usage, 100).joules_per_output_token is None


@dataclass
class Process:
    seconds: float
    energy_mj: tuple[int, int]
    sm: list[int]
    utilization: list[list[tuple[int, int]]]
    memory_used: int
    power_violation_ns: tuple[int, int]


def test_combined_two_processes(monkeypatch, clock) -> None:
    """Process 1: 10 s at 688 W with the SM clock down to 1245 MHz; process 2: 30 s at 250 W, clocks held;
    the power-cap bit seen in both."""
    runs = [Process(10.0, (1_000_000, 1_000_000 + 6_880_000), [1980, 1245, 1980],
                    [[], [(10, 99), (20, 97)]], 60 * GIB, (0, 9_960_000_000)),
            Process(30.0, (8_000_000, 8_000_000 + 7_500_000), [1980],
                    [[], [(10, 80), (20, 84), (30, 82), (40, 86)]], 50 * GIB, (5, 5))]
    usages = []
    for run in runs:
        fake = install(monkeypatch, FakeNvml(sm=run.sm, energy_mj=list(run.energy_mj), reasons=[SW_POWER_CAP],
                                             memory_used=[run.memory_used],
                                             violation_ns={POWER: list(run.power_violation_ns)},
                                             buffers={UTILIZATION_SAMPLES: run.utilization}))
        usages.append(usage_from(timed_span(fake, clock, seconds=run.seconds, drains=1), None))
    both = combined(usages)

    energy = [(r.energy_mj[1] - r.energy_mj[0]) / 1000 for r in runs]
    utilization = [v for r in runs for batch in r.utilization for _, v in batch]
    assert both.energy_j == pytest.approx(sum(energy))
    assert both.power_mean_w == pytest.approx(sum(energy) / sum(r.seconds for r in runs)), "energy over time"
    assert both.utilization_mean_pct == pytest.approx(sum(utilization) / len(utilization))
    assert both.samples == len(utilization) and both.utilization_max_pct == max(utilization)
    assert both.nvml_device_memory_used_peak_bytes == max(r.memory_used for r in runs)
    all_sm = [c for r in runs for c in r.sm]
    assert (both.sm_clock_min_mhz, both.sm_clock_max_mhz) == (min(all_sm), max(all_sm))
    [held] = [r for r in both.slowdown_reasons if r.startswith(VIOLATION_POLICIES[POWER])]
    assert held.endswith(f"(process 1 of {len(runs)})"), "a share of one process's timing says whose"
    assert all(SLOWDOWN_REASONS[SW_POWER_CAP] in u.slowdown_reasons for u in usages)
    assert both.slowdown_reasons.count(SLOWDOWN_REASONS[SW_POWER_CAP]) == 1, "a reason bit is named once"
    [warning] = slowdowns(verdict(both))
    assert fall(max(all_sm), min(all_sm), "SM") in warning

    without_energy = usages[1].model_copy(update={"energy_j": None, "power_mean_w": 250.0})
    partial = combined([usages[0], without_energy])
    assert partial.energy_j is None, "a field one process could not read stays null"
    weights = [u.samples for u in usages]
    expected = (usages[0].power_mean_w * weights[0] + 250.0 * weights[1]) / sum(weights)
    assert partial.power_mean_w == pytest.approx(expected), "without energy, power is weighted by samples"
