"""NVML must read the GPU that torch computes on, not NVML's first GPU: on a machine of two GPUs with one
cell pinned to each (CUDA_VISIBLE_DEVICES), index 0 would be the neighbour's clocks, power and memory."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pynvml
import torch

from inference_study import environment
from inference_study.gpu import nvml_handle

SECOND_GPU = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _machine_of_two_gpus(monkeypatch, torch_sees_cuda: bool) -> None:
    """NVML sees two GPUs by index and UUID; torch sees only the second (CUDA_VISIBLE_DEVICES=1), or none."""
    handles = {0: "handle of GPU 0", 1: "handle of GPU 1"}
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", handles.__getitem__)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByUUID", {f"GPU-{SECOND_GPU}": handles[1]}.__getitem__)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: len(handles))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda handle: "NVIDIA H200")
    monkeypatch.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: "580.159.04")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: torch_sees_cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if torch_sees_cuda else 0)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(uuid=SECOND_GPU))


def test_nvml_reads_the_gpu_torch_computes_on(monkeypatch) -> None:
    _machine_of_two_gpus(monkeypatch, torch_sees_cuda=True)
    assert nvml_handle() == ("handle of GPU 1", None)


def test_a_cell_pinned_to_one_gpu_of_two_counts_the_gpus_it_may_use(monkeypatch) -> None:
    """The fingerprint of a pinned cell equals one taken on a machine of one such GPU."""
    _machine_of_two_gpus(monkeypatch, torch_sees_cuda=True)
    assert environment._gpu_facts() == ("NVIDIA H200", 1, "580.159.04")


def test_without_cuda_in_torch_nvml_falls_back_to_its_first_gpu(monkeypatch) -> None:
    _machine_of_two_gpus(monkeypatch, torch_sees_cuda=False)
    assert nvml_handle() == ("handle of GPU 0", None)
    assert environment._gpu_facts() == ("NVIDIA H200", 2, "580.159.04")
