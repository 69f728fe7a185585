"""torch.compile's cache (backends/hf/compile_cache.py): a second process compiles the same shape from it,
each environment has its own, and a cache that cannot be used falls back to compiling, saying so.

Each compile runs in a fresh spawned process (a DVC stage is one), on the tiny model at batch 1, a 4-token
prompt and 2 output tokens; the cold compile (~30 s on 2 CPU cores) runs once, for the whole module.
Warmness is judged by Inductor's FX graph cache counters, not by timing alone.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch._inductor.config as inductor

from inference_study.backends.hf.compile_cache import CompileCache, cache_dir
from inference_study.backends.hf.generate import HfStaticCompiled
from inference_study.backends.hf.settings import HfStaticCompiledSettings
from inference_study.environment import collect_environment

PROMPT, OUTPUT_LEN = [[1, 2, 3, 4]], 2


def _compile_once(xdg_cache_home: str, model_dir: str) -> dict[str, Any]:
    """Load, warm up (the compile) and generate, as a cell's process does; the compile report and tokens."""
    os.environ["XDG_CACHE_HOME"] = xdg_cache_home
    backend = HfStaticCompiled(HfStaticCompiledSettings(), Path(model_dir), "float32", "cpu")
    backend.load()
    try:
        backend.warmup(PROMPT, OUTPUT_LEN)
        tokens = backend.generate(PROMPT, OUTPUT_LEN).output_ids
    finally:
        backend.release()
    return {"report": backend.compile_report(), "tokens": tokens}


def in_fresh_process(xdg_cache_home: Path, model_dir: Path) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_compile_once, (str(xdg_cache_home), str(model_dir)))


def environment_cache(xdg_cache_home: Path) -> Path:
    """This environment's cache directory under `xdg_cache_home`."""
    return xdg_cache_home / "inference-study" / "compile" / collect_environment().fingerprint


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The first compile into an empty cache: its XDG_CACHE_HOME and its result."""
    home = tmp_path_factory.mktemp("cold")
    return home, in_fresh_process(home, model_dir)


def test_first_compile_is_cold_and_saves_a_bundle(cold: tuple[Path, dict[str, Any]]) -> None:
    home, result = cold
    cache = result["report"].cache
    assert cache.state == "cold" and cache.graphs_from_cache == 0 and cache.graphs_compiled >= 1
    assert cache.note is None
    assert result["report"].compile_s > 0
    assert len(list((environment_cache(home) / "artifacts").glob("*.bin"))) == 1


def test_a_second_process_compiles_from_the_cache(cold: tuple[Path, dict[str, Any]], model_dir: Path) -> None:
    home, first = cold
    second = in_fresh_process(home, model_dir)
    cache = second["report"].cache
    assert cache.state == "warm", cache
    assert cache.graphs_compiled == 0 and cache.graphs_from_cache == first["report"].cache.graphs_compiled
    assert second["report"].compile_s < first["report"].compile_s
    assert second["tokens"] == first["tokens"]
    assert len(list((environment_cache(home) / "artifacts").glob("*.bin"))) == 1, "nothing new to save"


def test_bundles_seed_an_empty_cache(cold: tuple[Path, dict[str, Any]], model_dir: Path, tmp_path: Path) -> None:
    """A bare machine given only the portable bundles starts warm; an unreadable bundle is skipped and named."""
    home, first = cold
    artifacts = environment_cache(tmp_path) / "artifacts"
    shutil.copytree(environment_cache(home) / "artifacts", artifacts)
    (artifacts / "0000000000000000.bin").write_bytes(b"not a bundle")
    seeded = in_fresh_process(tmp_path, model_dir)
    cache = seeded["report"].cache
    assert cache.state == "warm" and cache.graphs_compiled == 0, cache
    assert cache.note == "skipped unreadable cache bundles: 0000000000000000.bin (not a torch cache bundle)"
    assert seeded["tokens"] == first["tokens"]


@pytest.mark.parametrize(("corrupt", "says"), [
    ("**/*.so", ["first compile failed over the reused cache (", "): discarded it and compiled from scratch"]),
    ("fxgraph/**/*", ["torch skipped an unreadable cache entry and compiled instead: "]),
])
def test_a_corrupt_cache_falls_back_to_compiling(cold: tuple[Path, dict[str, Any]], model_dir: Path,
                                                 tmp_path: Path, corrupt: str, says: list[str]) -> None:
    """Compiled kernels that no longer load fail torch's compile (the cache is discarded and the compile
    retried); unreadable graph entries torch skips itself. Either way the cell compiles, and says why."""
    home, first = cold
    cache = environment_cache(tmp_path)
    shutil.copytree(environment_cache(home), cache)
    files = [path for path in (cache / "inductor").glob(corrupt) if path.is_file()]
    assert files
    for path in files:
        path.write_bytes(b"corrupt")
    result = in_fresh_process(tmp_path, model_dir)
    use = result["report"].cache
    assert use.state == "cold" and use.graphs_compiled >= 1, use
    assert use.note is not None and all(part in use.note for part in says), use.note
    assert result["tokens"] == first["tokens"]
    assert sorted(path.name for path in cache.iterdir()) == ["artifacts", "inductor"], "nothing left aside"


def test_each_environment_has_its_own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fingerprint names the directory torch compiles into while a backend is loaded, and torch gets its
    own directory back at release; a relative XDG_CACHE_HOME is ignored, as the XDG spec says."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    seen = []
    for fingerprint in ("aaaa", "bbbb"):
        cache = CompileCache.open(fingerprint)
        assert cache.directory == tmp_path / "inference-study" / "compile" / fingerprint
        seen.append(os.environ["TORCHINDUCTOR_CACHE_DIR"])
        cache.close()
        assert os.environ.get("TORCHINDUCTOR_CACHE_DIR") == before
    assert seen == [str(tmp_path / "inference-study" / "compile" / f / "inductor") for f in ("aaaa", "bbbb")]
    own = CompileCache.open()
    own.close()
    assert own.directory == cache_dir(collect_environment().fingerprint) == environment_cache(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert cache_dir("aaaa") == Path.home() / ".cache" / "inference-study" / "compile" / "aaaa"


def test_an_unusable_directory_falls_back_to_a_temporary_one(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    cache = CompileCache.open("aaaa")
    temporary = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    assert temporary == cache.inductor_dir and temporary.is_dir() and not temporary.is_relative_to(tmp_path)
    assert cache.report() is None, "no warmup call has finished: nothing to report"
    cache.warmup(lambda: None, lambda error: False)  # a warmup that compiles nothing
    cache.close()
    assert not temporary.exists()
    report = cache.report()
    assert report.cache.state == "in_memory" and report.compile_s == 0
    assert report.cache.note == ("compile cache directory unusable (NotADirectoryError: Not a directory): "
                                 "compiled in a temporary one")


def test_off_when_torch_caching_is_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TORCHINDUCTOR_FX_GRAPH_CACHE=0 (torch's own switch) turns the cache off: nothing is redirected."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    # torch's config modules restore a patch with their own `patch` (monkeypatch's undo would delete the key)
    with inductor.patch(fx_graph_cache=False):
        cache = CompileCache.open("aaaa")
        assert os.environ.get("TORCHINDUCTOR_CACHE_DIR") == before
        cache.warmup(lambda: None, lambda error: False)
        cache.close()
    assert cache.report().cache.state == "off"
    assert not (tmp_path / "inference-study").exists()
