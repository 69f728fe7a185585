"""GPU memory, utilization and power through NVML, sampled during the timed region.

NVML sees the whole device, whoever allocated the memory (torch, TensorRT-LLM, cuBLAS workspaces);
the torch allocator only sees its own tensors. Both are recorded, each under its own name.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict


class GpuUsage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nvml_device_memory_used_peak_bytes: int | None = None
    torch_allocated_peak_bytes: int | None = None
    torch_reserved_peak_bytes: int | None = None
    utilization_mean_pct: float | None = None
    utilization_max_pct: float | None = None
    power_mean_w: float | None = None
    sm_clock_min_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    slowdown_reasons: list[str] | None = None
    samples: int = 0


# NVML clock-event (throttle) reasons that mean the GPU ran slower than it could during the timing.
SLOWDOWN_REASONS = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}


def nvml_handle(device_index: int = 0):
    """An NVML handle for the device, or None with pynvml's error text when NVML is unusable."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(device_index), None
    except Exception as error:  # NVML raises library-specific errors on machines without a driver
        return None, f"NVML unavailable: {type(error).__name__}: {error}"


@dataclass
class NvmlSampler:
    """Background thread sampling NVML every `interval_s` between `start()` and `stop()`."""

    handle: object
    interval_s: float
    memory: list[int] = field(default_factory=list)
    utilization: list[int] = field(default_factory=list)
    power_mw: list[int] = field(default_factory=list)
    sm_clock_mhz: list[int] = field(default_factory=list)
    event_reasons: int = 0

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        import pynvml

        self.memory.append(pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        self.utilization.append(pynvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
        self.sm_clock_mhz.append(pynvml.nvmlDeviceGetClockInfo(self.handle, pynvml.NVML_CLOCK_SM))
        try:
            self.power_mw.append(pynvml.nvmlDeviceGetPowerUsage(self.handle))
        except pynvml.NVMLError:
            pass
        # renamed from "throttle" to "clocks event" reasons in newer NVML
        reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons"
        )
        self.event_reasons |= reasons(self.handle)


def usage_from(sampler: NvmlSampler | None, torch_peaks: tuple[int, int] | None) -> GpuUsage:
    """Fold sampled NVML readings and torch allocator peaks into one record."""
    usage = GpuUsage()
    if torch_peaks is not None:
        usage.torch_allocated_peak_bytes, usage.torch_reserved_peak_bytes = torch_peaks
    if sampler is not None and sampler.memory:
        usage.nvml_device_memory_used_peak_bytes = max(sampler.memory)
        usage.utilization_mean_pct = sum(sampler.utilization) / len(sampler.utilization)
        usage.utilization_max_pct = float(max(sampler.utilization))
        usage.samples = len(sampler.memory)
        usage.sm_clock_min_mhz, usage.sm_clock_max_mhz = min(sampler.sm_clock_mhz), max(sampler.sm_clock_mhz)
        usage.slowdown_reasons = [name for bit, name in SLOWDOWN_REASONS.items() if sampler.event_reasons & bit]
        if sampler.power_mw:
            usage.power_mean_w = sum(sampler.power_mw) / len(sampler.power_mw) / 1000.0
    return usage
