"""GPU memory, utilization, clocks, power and energy through NVML, around the timed region.

NVML sees the whole device, whoever allocated the memory (torch, TensorRT-LLM, cuBLAS workspaces);
the torch allocator only sees its own tensors. Both are recorded, each under its own name.

Polling NVML from a thread while the GPU runs costs time of its own (each query goes through the
driver, which kernel launches wait on: 1.2% of a compiled batch-1 decode at a 20 ms period). So the
sampler asks the driver for what it already keeps: its own utilization, SM-clock and power sample
buffers (`nvmlDeviceGetSamples`, drained every `interval_s` from the last timestamp seen, so nothing is
missed), and the cumulative energy and violation counters, read at the start and at the end of the span.
What has no buffer is read by the sampler itself at the start, at each drain and at the end: memory in
use, the SM and memory clocks (the SM-clock buffer stays empty on an H200) and the clock-event reason
bits. docs/nvml.md says what each reading means on Hopper and what was measured on an H200.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from inference_study.strict import Record


class GpuUsage(Record):
    nvml_device_memory_used_peak_bytes: int | None = None
    torch_allocated_peak_bytes: int | None = None
    torch_reserved_peak_bytes: int | None = None
    utilization_mean_pct: float | None = None
    utilization_max_pct: float | None = None
    power_mean_w: float | None = None
    sm_clock_min_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    memory_clock_min_mhz: int | None = None
    memory_clock_max_mhz: int | None = None
    slowdown_reasons: list[str] | None = None
    energy_j: float | None = None
    joules_per_output_token: float | None = None
    output_tokens_per_joule: float | None = None
    samples: int = 0


# A clock that fell by more than this share during the timing slowed the measurement. Under the software
# power cap an H200 dips its SM clock by up to 8% in a steady batch-32 decode (1980 to 1815-1860 MHz) while
# the repeats stay within a 0.1% CV (docs/nvml.md): that is how the GPU runs the load, not a slowed number.
CLOCK_FALL_LIMIT = 0.10


def slowdown_warning(gpu: GpuUsage) -> str | None:
    """The verdict's warning when a clock actually fell during the timing, naming which and by how much,
    with NVML's reasons as evidence; None otherwise. A reason bit or violation counter alone is no
    warning: on an H200 the power counter ran for 40% of a timing whose SM clock stayed within
    1905-1980 MHz (docs/h200-probes.md)."""
    fallen = []
    for name, low, high in (("SM", gpu.sm_clock_min_mhz, gpu.sm_clock_max_mhz),
                            ("memory", gpu.memory_clock_min_mhz, gpu.memory_clock_max_mhz)):
        if low and high and 1 - low / high > CLOCK_FALL_LIMIT:
            fallen.append(f"{name} clock fell from {high} to {low} MHz (-{1 - low / high:.0%})")
    if not fallen:
        return None
    evidence = f" ({', '.join(gpu.slowdown_reasons)})" if gpu.slowdown_reasons else ""
    return f"GPU slowed down during the timing: {'; '.join(fallen)}{evidence}"


# NVML clock-event (throttle) reasons that mean the GPU ran slower than it could during the timing.
SLOWDOWN_REASONS = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}
# Violation counters (ns the clocks were held down by each policy, cumulative since driver load):
# NVML_PERF_POLICY_POWER, NVML_PERF_POLICY_THERMAL.
VIOLATION_POLICIES = {0: "power cap (violation counter)", 1: "thermal limit (violation counter)"}
# Sample buffers the driver fills on its own: NVML_PROCESSOR_CLK_SAMPLES, NVML_GPU_UTILIZATION_SAMPLES,
# NVML_TOTAL_POWER_SAMPLES.
SM_CLOCK_SAMPLES, UTILIZATION_SAMPLES, POWER_SAMPLES = 5, 1, 0
BUFFERS = (SM_CLOCK_SAMPLES, UTILIZATION_SAMPLES, POWER_SAMPLES)


def nvml_handle():
    """The NVML handle of the GPU this process computes on, or None with the reason.

    NVML numbers every GPU of the machine while torch numbers only those in CUDA_VISIBLE_DEVICES (and, by
    default, fastest first), so an index can name another GPU than the one timed: on a machine of two GPUs
    running one cell per GPU, index 0 would read the neighbour's clocks and memory. The device's UUID is the
    same in both. Without a CUDA device in torch there is nothing to match, and NVML's first GPU is used.
    """
    try:
        import pynvml  # optional: NVML exists only beside an NVIDIA driver

        pynvml.nvmlInit()
        uuid = _torch_device_uuid()
        if uuid is None:
            return pynvml.nvmlDeviceGetHandleByIndex(0), None
        return pynvml.nvmlDeviceGetHandleByUUID(uuid), None
    except Exception as error:  # noqa: BLE001 -- NVML raises library-specific errors without a driver
        return None, f"NVML unavailable: {type(error).__name__}: {error}"


def _torch_device_uuid() -> str | None:
    """NVML's name (`GPU-<uuid>`) for torch's current CUDA device, or None when torch has no CUDA device."""
    import torch  # heavy: torch loads only where something runs on a device

    if not torch.cuda.is_available():
        return None
    return f"GPU-{torch.cuda.get_device_properties(torch.cuda.current_device()).uuid}"


def _optional(read, *args):
    """A reading the device may not support (energy, violation counters, reasons, sample buffers), or None."""
    import pynvml  # optional: NVML exists only beside an NVIDIA driver

    try:
        return read(*args)
    except pynvml.NVMLError:
        return None


def _energy_j(before_mj: int | None, after_mj: int | None) -> float | None:
    """Joules between two readings of the energy counter (mJ since the driver loaded), or None: a reading
    the device refused, or a counter that did not increase (a driver reload between the readings restarts
    it; a span too short for it to advance). A 64-bit count of mJ does not wrap in practice."""
    if before_mj is None or after_mj is None or after_mj <= before_mj:
        return None
    return (after_mj - before_mj) / 1000.0


def _share(share: float) -> str:
    return "<0.1%" if share < 0.001 else f"{share:.1%}"


@dataclass
class NvmlSampler:
    """Reads the driver's NVML sample buffers and counters for the span between `start()` and `stop()`."""

    handle: object
    interval_s: float
    memory: list[int] = field(default_factory=list)
    utilization: list[int] = field(default_factory=list)
    power_mw: list[int] = field(default_factory=list)
    sm_clock_mhz: list[int] = field(default_factory=list)
    memory_clock_mhz: list[int] = field(default_factory=list)
    event_reasons: int = 0
    violations: list[str] = field(default_factory=list)
    energy_j: float | None = None
    energy_power_w: float | None = None

    def start(self) -> None:
        import pynvml  # optional: NVML exists only beside an NVIDIA driver

        self._seen = {kind: self._newest_sample(kind) for kind in BUFFERS}
        self._read_now()
        # The counters last, next to the start of the span that `elapsed` measures.
        self._energy_mj = _optional(pynvml.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        self._violation_ns = self._violation_times()
        self._started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        import pynvml  # optional: NVML exists only beside an NVIDIA driver

        # The counters first, so that they cover the span `elapsed` measures and not the final drain.
        elapsed = time.perf_counter() - self._started
        energy_mj = _optional(pynvml.nvmlDeviceGetTotalEnergyConsumption, self.handle)
        violation_ns = self._violation_times()
        self._stop.set()
        self._thread.join()
        self._drain()
        if elapsed > 0:
            self.energy_j = _energy_j(self._energy_mj, energy_mj)
            self.energy_power_w = None if self.energy_j is None else self.energy_j / elapsed
            held = {name: (violation_ns[policy] - self._violation_ns[policy]) / 1e9 / elapsed
                    for policy, name in VIOLATION_POLICIES.items()
                    if None not in (self._violation_ns[policy], violation_ns[policy])}
            self.violations = [f"{name}: clocks held {_share(share)} of the timing"
                               for name, share in held.items() if share > 0]
        if not self.utilization:  # a span shorter than the driver's sampling period: one reading now
            rates = _optional(pynvml.nvmlDeviceGetUtilizationRates, self.handle)
            if rates is not None:
                self.utilization.append(rates.gpu)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._drain()

    def _read_now(self) -> None:
        """What the driver keeps no buffer of: memory in use, SM and memory clocks, clock-event reasons.

        The SM-clock sample buffer is empty on some GPUs (NVML_ERROR_NOT_FOUND on an H200), so the clock is
        read here at the start, at every drain and at the end: without it, "the clocks never moved" would rest
        on one reading."""
        import pynvml  # optional: NVML exists only beside an NVIDIA driver

        self.memory.append(pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        self.sm_clock_mhz.append(pynvml.nvmlDeviceGetClockInfo(self.handle, pynvml.NVML_CLOCK_SM))
        memory_clock = _optional(pynvml.nvmlDeviceGetClockInfo, self.handle, pynvml.NVML_CLOCK_MEM)
        if memory_clock is not None:  # some virtual GPUs do not report it: then the field stays null
            self.memory_clock_mhz.append(memory_clock)
        # renamed from "throttle" to "clocks event" reasons in newer NVML
        reasons = (getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                   or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons)
        self.event_reasons |= _optional(reasons, self.handle) or 0

    def _drain(self) -> None:
        """New samples of each driver buffer since the last drain, plus the readings taken now."""
        import pynvml  # optional: NVML exists only beside an NVIDIA driver

        self._read_now()
        for kind, into in ((SM_CLOCK_SAMPLES, self.sm_clock_mhz), (UTILIZATION_SAMPLES, self.utilization),
                           (POWER_SAMPLES, self.power_mw)):
            found = _optional(pynvml.nvmlDeviceGetSamples, self.handle, kind, self._seen[kind])
            fresh = [s for s in (found[1] if found else []) if s.timeStamp > self._seen[kind]]
            into.extend(s.sampleValue.uiVal for s in fresh)
            self._seen[kind] = max([self._seen[kind], *(s.timeStamp for s in fresh)])

    def _newest_sample(self, kind: int) -> int:
        """Timestamp of the newest sample already in the driver's buffer: later ones belong to the span."""
        import pynvml  # optional: NVML exists only beside an NVIDIA driver

        found = _optional(pynvml.nvmlDeviceGetSamples, self.handle, kind, 0)
        return max((s.timeStamp for s in found[1]), default=0) if found else 0

    def _violation_times(self) -> dict[int, int | None]:
        import pynvml  # optional: NVML exists only beside an NVIDIA driver

        readings = {policy: _optional(pynvml.nvmlDeviceGetViolationStatus, self.handle, policy)
                    for policy in VIOLATION_POLICIES}
        return {policy: None if r is None else r.violationTime for policy, r in readings.items()}


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def _extremes(values: list[int]) -> tuple[int | None, int | None]:
    return (min(values), max(values)) if values else (None, None)


def usage_from(sampler: NvmlSampler | None, torch_peaks: tuple[int, int] | None) -> GpuUsage:
    """Fold NVML readings and torch allocator peaks into one record; NVML fields stay null without a sampler
    that started (no NVML, or a cell that failed before its timing)."""
    usage = GpuUsage()
    if torch_peaks is not None:
        usage.torch_allocated_peak_bytes, usage.torch_reserved_peak_bytes = torch_peaks
    if sampler is None or not sampler.memory:
        return usage
    usage.nvml_device_memory_used_peak_bytes = max(sampler.memory)
    usage.utilization_mean_pct = _mean(sampler.utilization)
    usage.utilization_max_pct = float(max(sampler.utilization)) if sampler.utilization else None
    usage.samples = len(sampler.utilization)
    usage.sm_clock_min_mhz, usage.sm_clock_max_mhz = _extremes(sampler.sm_clock_mhz)
    usage.memory_clock_min_mhz, usage.memory_clock_max_mhz = _extremes(sampler.memory_clock_mhz)
    usage.energy_j = sampler.energy_j
    usage.slowdown_reasons = [
        *(name for bit, name in SLOWDOWN_REASONS.items() if sampler.event_reasons & bit), *sampler.violations
    ]
    if sampler.energy_power_w is not None:  # the energy counter covers the whole span; samples may not
        usage.power_mean_w = sampler.energy_power_w
    elif sampler.power_mw:
        usage.power_mean_w = _mean(sampler.power_mw) / 1000.0
    return usage


def with_energy_per_token(usage: GpuUsage, output_tokens: int) -> GpuUsage:
    """`usage` with joules per output token and its inverse, from the energy counter over the timed region;
    unchanged without an energy reading or without tokens."""
    if usage.energy_j is None or not output_tokens or usage.energy_j <= 0:
        return usage
    return usage.model_copy(update={"joules_per_output_token": usage.energy_j / output_tokens,
                                    "output_tokens_per_joule": output_tokens / usage.energy_j})


def combined(usages: list[GpuUsage]) -> GpuUsage:
    """The readings of several processes' timed regions as one; a field any process could not read stays null.

    Peaks and clock extremes are over all processes and energy is summed. Utilization is the mean of all
    utilization samples. Power is total energy over total time, each process's time being its energy over
    its mean power; without energy from every process it is weighted by utilization samples, which the
    driver takes at a fixed period. A violation counter's share is of one process's timing, so it keeps the
    process's number; reason bits are named once. Energy per token is left to `with_energy_per_token`."""
    def values(name: str) -> list:
        found = [getattr(u, name) for u in usages]
        return [] if any(v is None for v in found) else found

    def pick(name: str, how):
        found = values(name)
        return how(found) if found else None

    def weighted(name: str, weights: list[float]) -> float | None:
        found = values(name)
        if not found:
            return None
        if sum(weights) > 0:
            return float(sum(v * w for v, w in zip(found, weights)) / sum(weights))
        return float(sum(found) / len(found))

    samples = [u.samples for u in usages]
    energy, power = values("energy_j"), values("power_mean_w")
    timed = energy and power and all(p > 0 for p in power)
    seconds = [e / p for e, p in zip(energy, power)] if timed else samples
    evidence = None
    if values("slowdown_reasons"):
        evidence = []
        for number, usage in enumerate(usages, 1):
            for reason in usage.slowdown_reasons:
                bit = reason in SLOWDOWN_REASONS.values()
                entry = reason if bit else f"{reason} (process {number} of {len(usages)})"
                if entry not in evidence:
                    evidence.append(entry)
    return GpuUsage(
        nvml_device_memory_used_peak_bytes=pick("nvml_device_memory_used_peak_bytes", max),
        torch_allocated_peak_bytes=pick("torch_allocated_peak_bytes", max),
        torch_reserved_peak_bytes=pick("torch_reserved_peak_bytes", max),
        utilization_mean_pct=weighted("utilization_mean_pct", samples),
        utilization_max_pct=pick("utilization_max_pct", max),
        power_mean_w=weighted("power_mean_w", seconds),
        sm_clock_min_mhz=pick("sm_clock_min_mhz", min), sm_clock_max_mhz=pick("sm_clock_max_mhz", max),
        memory_clock_min_mhz=pick("memory_clock_min_mhz", min),
        memory_clock_max_mhz=pick("memory_clock_max_mhz", max),
        slowdown_reasons=evidence, energy_j=pick("energy_j", sum), samples=sum(samples),
    )
