"""The Containerfile's install lines, read as text: NVIDIA's registry is unreachable here, so the image
itself is never built in CI. What can break TensorRT-LLM's pins is checked: the base tag, and that no pip
step installs or upgrades what the image has."""

from __future__ import annotations

import re
import shlex

from helpers.repository import REPO_ROOT

from inference_study.trtllm.version import band_for

BASE = "nvcr.io/nvidia/tensorrt-llm/release"
# Pinned by the image (TensorRT-LLM's requirements.txt, NVIDIA's PyTorch under it): never named by a pip step.
IMAGE_PACKAGES = {"torch", "torchvision", "transformers", "tensorrt", "tensorrt-llm", "tokenizers",
                  "huggingface-hub", "accelerate", "numpy", "pydantic", "triton", "flashinfer-python"}


def _instructions() -> list[tuple[str, str]]:
    """(keyword, arguments) of each instruction, continuation lines joined and comments dropped."""
    text = (REPO_ROOT / "Containerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [tuple(line.split(None, 1)) for line in joined.splitlines() if line.strip()]


def _pip_installs() -> list[list[str]]:
    """The words of every `pip install` command the RUN steps execute."""
    commands = []
    for keyword, arguments in _instructions():
        if keyword == "RUN":
            for command in re.split(r"&&|\|\||;", arguments):
                if re.search(r"\bpip install\b", command):
                    commands.append(shlex.split(command)[shlex.split(command).index("install") + 1:])
    return commands


def test_the_base_is_a_pinned_release_with_both_flows() -> None:
    (keyword, image), *_ = _instructions()
    assert keyword == "FROM" and image.startswith(f"{BASE}:")
    tag = image.removeprefix(f"{BASE}:")
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{tag}: a release number, never latest or a moving tag"
    assert band_for(tag, "engine") == band_for(tag, "pytorch"), "study=h100_trtllm needs both flows"


def test_constraints_come_from_the_image_before_any_install() -> None:
    runs = [arguments for keyword, arguments in _instructions() if keyword == "RUN"]
    freeze = next(i for i, run in enumerate(runs) if re.search(r"pip (list --format=freeze|freeze) >", run))
    first_install = next(i for i, run in enumerate(runs) if "pip install" in run)
    assert freeze < first_install
    constraints = re.search(r"> (\S+)", runs[freeze]).group(1)
    assert all(f"-c {constraints}" in run for run in runs if "pip install -c" in run or "-r " in run)
    assert any(constraints in run and "grep -Fxv" in run for run in runs[first_install:]), \
        "a last step proves that no pinned version changed"


def test_no_pip_step_replaces_a_package_of_the_image() -> None:
    installs = _pip_installs()
    assert installs, "the Containerfile installs the study"
    for words in installs:
        assert not {"-U", "--upgrade", "--force-reinstall", "--ignore-installed", "-I"} & set(words), words
        assert "--no-deps" in words or "-c" in words, f"{words}: neither --no-deps nor a constraints file"
        named = {re.split(r"[<>=!~\[; ]", word, maxsplit=1)[0].lower().replace("_", "-")
                 for word in words if not word.startswith("-") and word not in (".", "-e")}
        assert not named & IMAGE_PACKAGES, f"{words} names a package the image pins"
        assert "-r" not in words or "-c" in words, f"{words}: a requirements file installed unconstrained"


def test_the_ci_leg_installs_the_same_way_on_tensorrt_llm_s_transformers() -> None:
    """.ci/run's second leg is where this route runs for real: the pinned transformers, then the study with
    --no-deps, the rest constrained to what was there, and a check that nothing changed."""
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "transformers==4.57.1" in ci and "pip install --quiet --no-deps -e ." in ci
    assert re.search(r"pip install --quiet -c \S+constraints.txt", ci) and "grep -Fxv" in ci
