"""torch.compile's caches kept per environment fingerprint, so a compiled cell reuses what an earlier cell or
process compiled instead of compiling its graph again (30-75 s a cell on an H200, about 30 s on 2 CPU cores).

Where: `$XDG_CACHE_HOME/inference-study/compile/<fingerprint>/` (`~/.cache/...` when XDG_CACHE_HOME is
unset). Outside the repository on purpose: every clone, every DVC stage process and every `dvc exp run`
workspace (a temporary copy of the repository, where an untracked folder at the root would be missing)
shares it, and neither git nor DVC ever sees it, so it can never become an output or a dependency. The
environment fingerprint (torch, CUDA, driver, GPU, Python, CPU) keys it, so another environment never reads
this one's kernels. Two layers live there:

* `inductor/` is `TORCHINDUCTOR_CACHE_DIR` while a compiled backend is loaded: Inductor's FX graph cache and
  the AOTAutograd cache (both on by default in torch, and both keyed by graph, config and versions), the
  generated code and, on CUDA, Triton's kernels (`inductor/triton/<device>`, unless TRITON_CACHE_DIR is set).
* `artifacts/` holds portable bundles (`torch.compiler.save_cache_artifacts`), one per process that compiled
  something new, named by content. They are loaded into an empty `inductor/` only: copied to a bare machine
  of the same fingerprint (a fresh GPU lease), they make its first cells warm.

Turning torch's cache off (`TORCHINDUCTOR_FX_GRAPH_CACHE=0` or `TORCHINDUCTOR_FORCE_DISABLE_CACHES=1`)
reports `off`. There is no study setting: the cache changes setup time only, never the compiled kernels,
so it must not change a cell's config hash. A cache that cannot be used never fails a cell: an unusable
directory falls back to a temporary one, an unreadable bundle is skipped, and a first compile that fails
over a non-empty cache discards that cache and compiles from scratch; the report's note says which.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inference_study.backend import CompileCacheState, CompileCacheUse, CompileReport
from inference_study.environment import collect_environment

ENV_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
# What torch times as compilation (`calculate_time_spent`): a frame's whole compile (Dynamo, AOTAutograd,
# Inductor, code generation), and the Triton autotuning that Inductor's kernels run at their first launch,
# outside that compile: a warm cache was seen to skip little of it on an H200 (torch 2.11, coordinate descent),
# so a warm cell's compile_s shows what the cache did not save.
COMPILE_PHASES = ("entire_frame_compile", "CachingAutotuner.benchmark_all_configs",
                  "CachingAutotuner.coordinate_descent_tuning", "CachingAutotuner.combo_sequential_autotune")
# Where torch reports a cache entry it could not read before compiling instead (its own fallback).
TORCH_CACHE_LOGGERS = ("torch._inductor.codecache", "torch._functorch._aot_autograd.autograd_cache")


def cache_root() -> Path:
    """The per-user cache folder of every environment's compile caches."""
    base = Path(os.environ.get("XDG_CACHE_HOME", ""))
    if not base.is_absolute():  # unset, empty or relative: the XDG spec says to ignore it
        base = Path.home() / ".cache"
    return base / "inference-study" / "compile"


def cache_dir(fingerprint: str) -> Path:
    """One environment's compile cache (see the module docstring)."""
    return cache_root() / fingerprint


@dataclass(frozen=True)
class _Counts:
    """Process-wide compile time and FX graph cache lookups so far; a warmup's share is a difference."""

    compile_s: float
    hits: int
    misses: int

    @staticmethod
    def now() -> _Counts:
        from torch._dynamo.utils import (  # heavy: torch loads only where something runs on a device
            calculate_time_spent,
            counters,
        )

        spent, inductor = calculate_time_spent(), counters["inductor"]
        return _Counts(sum(spent.get(phase, 0.0) for phase in COMPILE_PHASES), inductor["fxgraph_cache_hit"],
                       inductor["fxgraph_cache_miss"] + inductor["fxgraph_cache_bypass"])

    def since(self, start: _Counts) -> _Counts:
        return _Counts(self.compile_s - start.compile_s, self.hits - start.hits, self.misses - start.misses)


class _Warnings(logging.Handler):
    """The first warning torch logs while it skips an unreadable cache entry (it compiles instead)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.first = self.first or record.getMessage().splitlines()[0]


def _problem(error: BaseException) -> str:
    """An error's root cause in one line, without the paths it may name (a result records no user names)."""
    while error.__cause__ is not None:  # torch wraps a backend's error (BackendCompilerFailed) around the cause
        error = error.__cause__
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _caching_enabled() -> bool:
    import torch._inductor.config as inductor  # heavy: torch loads only where something runs on a device
    import torch.compiler.config as compiler  # heavy: torch loads only where something runs on a device

    return bool(inductor.fx_graph_cache) and not compiler.force_disable_caches


def _clear_inductor_memory() -> None:
    """Forget Inductor's in-process caches of paths under the old cache directory, as torch's own
    `temporary_cache_dir` does when it switches directories."""
    from torch._inductor.utils import clear_caches  # heavy: torch loads only where something runs on a device

    clear_caches()


class CompileCache:
    """One compiled backend's use of its environment's cache, from `open` (in load) to `close` (in release).

    `warmup` wraps the backend's warmup calls: it measures their compile time and cache lookups, falls back to
    compiling from scratch when a first compile fails over a reused cache, and saves a bundle of what was new.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.enabled = _caching_enabled()
        self.notes: list[str] = []
        self.spent = _Counts(0.0, 0, 0)
        self.finished = 0  # warmup calls that completed: none, and there is no compile time to report
        self.reused = False  # entries came from before this process (or a bundle): a failed compile may be theirs
        self.loaded: list[Path] = []
        self.temporary: Path | None = None
        self.saved_env = {name: os.environ.get(name) for name in ENV_VARS}

    @classmethod
    def open(cls, fingerprint: str | None = None) -> CompileCache:
        """This environment's cache (or `fingerprint`'s), made torch's for this process until `close`."""
        cache = cls(cache_dir(fingerprint or collect_environment().fingerprint))
        if cache.enabled:
            cache._activate()
        return cache

    @property
    def inductor_dir(self) -> Path:
        return self.temporary or self.directory / "inductor"

    @property
    def artifacts_dir(self) -> Path:
        return self.directory / "artifacts"

    def _activate(self) -> None:
        try:
            self.inductor_dir.mkdir(parents=True, exist_ok=True)
            self.artifacts_dir.mkdir(exist_ok=True)
            tempfile.TemporaryFile(dir=self.inductor_dir).close()  # writable, not only present
            self.reused = any(self.inductor_dir.iterdir())
        except OSError as error:
            self.temporary = Path(tempfile.mkdtemp(prefix="inference-study-compile-"))
            self.notes.append(f"compile cache directory unusable ({_problem(error)}): compiled in a temporary one")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(self.inductor_dir)
        _clear_inductor_memory()
        if not self.reused and self.temporary is None:
            self._load_bundles()

    def _load_bundles(self) -> None:
        """Seed an empty cache from the portable bundles beside it; an unreadable one is skipped."""
        import torch  # heavy: torch loads only where something runs on a device

        unreadable = []
        for bundle in sorted(self.artifacts_dir.glob("*.bin")):
            try:
                loaded = torch.compiler.load_cache_artifacts(bundle.read_bytes())
            except Exception as error:  # noqa: BLE001 -- each torch artifact type raises its own errors on bad content
                loaded, problem = None, _problem(error)
            else:
                problem = "not a torch cache bundle"
            if loaded is None:
                unreadable.append(f"{bundle.name} ({problem})")
            else:
                self.loaded.append(bundle)
                self.reused = True
        if unreadable:
            self.notes.append(f"skipped unreadable cache bundles: {', '.join(unreadable)}")

    def warmup(self, run: Callable[[], None], is_out_of_memory: Callable[[Exception], bool]) -> None:
        """Run one warmup call, counting its compilation; on a failure that a reused cache may have caused,
        discard the cache and run it once more from scratch (a second failure is the cell's own)."""
        warnings = _Warnings()
        for name in TORCH_CACHE_LOGGERS:
            logging.getLogger(name).addHandler(warnings)
        start = _Counts.now()
        try:
            run()
        except Exception as error:
            if is_out_of_memory(error) or not self.reused:
                raise
            failed = _Counts.now().since(start)
            self._discard(error)
            self.spent = _Counts(self.spent.compile_s + failed.compile_s, self.spent.hits, self.spent.misses)
            start = _Counts.now()
            run()
        finally:
            for name in TORCH_CACHE_LOGGERS:
                logging.getLogger(name).removeHandler(warnings)
        this = _Counts.now().since(start)
        self.finished += 1
        self.spent = _Counts(self.spent.compile_s + this.compile_s, self.spent.hits + this.hits,
                             self.spent.misses + this.misses)
        if warnings.first:
            self.notes.append(f"torch skipped an unreadable cache entry and compiled instead: {warnings.first}")
        if self.enabled and this.misses and self.temporary is None:
            self._save_bundle()

    def _discard(self, error: Exception) -> None:
        """Start over as a fresh process would, in an empty cache: the reused one and the bundles this process
        loaded into it are removed (moved aside first, so no other process reads a half-deleted folder)."""
        import torch  # heavy: torch loads only where something runs on a device

        torch._dynamo.reset()
        aside = self.directory / f"discarded-{os.getpid()}-{time.monotonic_ns()}"
        try:
            self.inductor_dir.rename(aside)
        except OSError:
            pass  # another process moved it first
        shutil.rmtree(aside, ignore_errors=True)
        for bundle in self.loaded:
            bundle.unlink(missing_ok=True)
        self.inductor_dir.mkdir(parents=True, exist_ok=True)
        _clear_inductor_memory()
        self.reused = False
        self.notes.append(f"first compile failed over the reused cache ({_problem(error)}): "
                          "discarded it and compiled from scratch")

    def _save_bundle(self) -> None:
        """Write what this process compiled or reused as one portable bundle, atomically, named by content."""
        import torch  # heavy: torch loads only where something runs on a device

        saved = torch.compiler.save_cache_artifacts()
        if saved is None:
            return
        content = saved[0]
        path = self.artifacts_dir / f"{hashlib.sha256(content).hexdigest()[:16]}.bin"
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.artifacts_dir, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(tmp, path)
        except OSError as error:
            self.notes.append(f"cache bundle not saved ({_problem(error)})")
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def report(self) -> CompileReport | None:
        """What warmup compiled and how the cache served it; None when no warmup call finished (an
        out-of-memory error in the first one, or no warmup: then compilation is inside the timings)."""
        if not self.finished:
            return None
        spent = self.spent
        if not self.enabled:
            state: CompileCacheState = "off"
        elif spent.hits == spent.misses == 0:
            state = "in_memory"
        elif spent.hits == 0:
            state = "cold"
        else:
            state = "warm" if spent.misses == 0 else "partial"
        use = CompileCacheUse(state=state, graphs_compiled=spent.misses, graphs_from_cache=spent.hits,
                              note="; ".join(self.notes) or None)
        return CompileReport(compile_s=spent.compile_s, cache=use)

    def close(self) -> None:
        """Give torch back the cache directories it had before `open`."""
        if not self.enabled:
            return
        for name, value in self.saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _clear_inductor_memory()
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
