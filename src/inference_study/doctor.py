"""`inference-study doctor`: what this machine and checkout can do, before anyone waits on `dvc repro`.

Each finding is `ok`, `absent` (an optional piece missing: no GPU, no TensorRT-LLM), `warn` (works,
but probably not what you want) or `problem` (the study cannot run as configured). Nothing here
measures or contacts a remote; it only looks.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from inference_study import registry
from inference_study.config import PARAMS_FILE, load_params
from inference_study.environment import collect_environment
from inference_study.gpu import nvml_handle
from inference_study.strict import ConfigError

STATES = ("ok", "absent", "warn", "problem")


@dataclass(frozen=True)
class Finding:
    topic: str
    state: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _torch() -> list[Finding]:
    import torch  # heavy: torch loads only where something runs on a device

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    findings = [Finding("torch", "ok", f"{torch.__version__} ({build})")]
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        findings.append(Finding("GPU", "ok", f"{torch.cuda.device_count()} x {', '.join(names)}"))
    else:
        why = "torch is a CPU-only build" if not torch.version.cuda else "torch sees no CUDA device"
        findings.append(Finding("GPU", "absent", f"{why}; cells run on the CPU"))
    return findings


def _nvml() -> Finding:

    handle, why = nvml_handle()
    if handle is None:
        return Finding("NVML", "absent", f"{why}; GPU memory, utilization and clocks are recorded as null")
    import pynvml  # optional: NVML exists only beside an NVIDIA driver

    return Finding("NVML", "ok", f"driver {pynvml.nvmlSystemGetDriverVersion()}")


def _libraries() -> list[Finding]:
    """The inference libraries, read exactly as the environment fingerprint of every result reads them."""

    env = collect_environment()
    trtllm = (
        Finding("tensorrt_llm", "ok", env.tensorrt_llm)
        if env.tensorrt_llm
        else Finding("tensorrt_llm", "absent", "not installed: TensorRT-LLM backends cannot run here")
    )
    return [Finding("transformers", "ok", env.transformers), trtllm]


def _backends() -> list[Finding]:
    """Every registered backend on the device `bench.device: auto` would pick here."""
    import torch  # heavy: doctor's other checks run without it

    device = "cuda" if torch.cuda.is_available() else "cpu"
    findings = []
    for name in registry.sweepable_backends():
        reason = registry.backend_class(name).unavailable_reason(device)
        findings.append(
            Finding(f"backend {name}", "problem" if reason else "ok", reason or f"can run on {device}")
        )
    return findings


def _remote(root: Path) -> Finding:
    from dvc.exceptions import NotDvcRepoError  # heavy: DVC's repository API, only for this check
    from dvc.repo import Repo  # heavy: DVC's repository API, only for this check

    try:
        with Repo(str(root)) as repo:
            config = repo.config
    except NotDvcRepoError:
        return Finding(
            "DVC remote", "problem", f"{root.resolve()} is not a DVC repository (run from the checkout)"
        )
    name = config["core"].get("remote")
    if not name:
        return Finding(
            "DVC remote", "absent", "no default remote: `dvc remote add -d <name> <url>` to share results"
        )
    if name not in config["remote"]:
        return Finding("DVC remote", "problem", f"core.remote names {name!r}, which is not configured")
    url = config["remote"][name]["url"]
    if "://" not in url:
        where = "exists" if Path(url).is_dir() else "created on first `dvc push`"
        return Finding("DVC remote", "ok", f"{name} (default): local directory {url} ({where})")
    return Finding("DVC remote", "ok", f"{name} (default): {url} (not contacted)")


def _params(root: Path) -> Finding:
    """Missing or unreadable is a problem (no stage can run); valid but not the conf/ defaults is a warning."""
    from inference_study.compose import drift  # imports Hydra

    path = root / PARAMS_FILE
    if not path.is_file():
        return Finding("params.yaml", "problem", f"{path} is missing: run `inference-study compose`")
    try:
        load_params(path)
        difference = drift(conf_dir=root / "conf", params_file=path)
    except ConfigError as error:
        return Finding("params.yaml", "problem", str(error))
    if difference:
        return Finding(
            "params.yaml",
            "warn",
            "differs from conf/ defaults (fine inside a `dvc exp run` "
            "experiment; otherwise run `inference-study compose`)",
        )
    return Finding("params.yaml", "ok", "matches conf/ defaults")


def diagnose(root: Path = Path(".")) -> list[Finding]:
    """All findings, in the order a person reads them: machine, libraries, backends, the checkout."""
    return [
        Finding("python", "ok", f"{platform.python_version()} on {platform.system()} {platform.machine()}"),
        *_torch(),
        _nvml(),
        *_libraries(),
        *_backends(),
        _remote(root),
        _params(root),
    ]
