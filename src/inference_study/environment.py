"""Environment fingerprint stored with every result: enough to tell two machines apart, nothing private.

No hostnames, user names, paths or tokens are collected.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata

from inference_study.gpu import nvml_handle
from inference_study.strict import Record

# Recorded instead of a version when the `tensorrt_llm` in this process is a test stand-in: results
# carrying it are refused by results.py, so they can never be reported as TensorRT-LLM measurements.
STAND_IN_MARK = "stand-in (records calls, measures nothing)"


class Environment(Record):
    gpu_name: str | None
    gpu_count: int  # GPUs this process may use: torch's count (CUDA_VISIBLE_DEVICES applied), else NVML's
    gpu_driver: str | None
    cuda: str | None
    torch: str
    transformers: str
    tensorrt_llm: str | None
    python: str
    cpu: str
    os: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _tensorrt_llm_version() -> str | None:
    """The installed TensorRT-LLM version, or the stand-in mark when a test stand-in is loaded."""
    module = sys.modules.get("tensorrt_llm")
    if getattr(module, "IS_STAND_IN", False):
        return f"{module.__version__} {STAND_IN_MARK}"
    return _version("tensorrt_llm") or _version("tensorrt-llm")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_facts() -> tuple[str | None, int, str | None]:
    handle, _ = nvml_handle()
    if handle is None:
        return None, 0, None
    import pynvml  # optional: NVML exists only beside an NVIDIA driver
    import torch  # heavy: torch loads only where something runs on a device

    name = pynvml.nvmlDeviceGetName(handle)
    # GPUs this process may use: a cell pinned to one GPU of a larger machine (CUDA_VISIBLE_DEVICES) runs in
    # the same environment as on a machine of one GPU of the kind.
    count = torch.cuda.device_count() if torch.cuda.is_available() else pynvml.nvmlDeviceGetCount()
    return name.decode() if isinstance(name, bytes) else name, count, pynvml.nvmlSystemGetDriverVersion()


def collect_environment() -> Environment:
    """Read the versions and hardware this process runs on."""
    import torch  # heavy: torch loads only where something runs on a device

    gpu_name, gpu_count, driver = _gpu_facts()
    return Environment(
        gpu_name=gpu_name,
        gpu_count=gpu_count,
        gpu_driver=driver,
        cuda=torch.version.cuda if torch.cuda.is_available() else None,
        torch=torch.__version__,
        transformers=_version("transformers") or "absent",
        tensorrt_llm=_tensorrt_llm_version(),
        python=platform.python_version(),
        cpu=_cpu_model(),
        os=f"{platform.system()} {platform.machine()}",
    )
