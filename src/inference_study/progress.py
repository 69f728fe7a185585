"""Progress bars for long steps that stay quiet in CI and when output is not a terminal.

One rule decides for every bar the study shows and for the bars of the libraries it calls
(huggingface_hub downloads, transformers' checkpoint shards), so a DVC log or a CI log never fills
with carriage-return noise while someone watching `dvc repro` in a terminal sees where it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
HUB_BARS_VARIABLE = "HF_HUB_DISABLE_PROGRESS_BARS"


def quiet() -> bool:
    """No bars when CI is set or stderr is not a terminal (DVC logs, pipes, test runners)."""
    return bool(os.environ.get("CI")) or not sys.stderr.isatty()


def progress(items: Iterable[T], description: str) -> Iterable[T]:
    return tqdm(items, desc=description, disable=quiet(), leave=False)


@contextmanager
def steps(description: str, names: list[str]) -> Iterator[Callable[[str], None]]:
    """A bar over a fixed sequence of named steps of one long operation (e.g. building a model).

    `begin(name)` marks the previous step done and shows `name` as the step now running.
    """
    with tqdm(total=len(names), desc=description, disable=quiet(), leave=False) as bar:
        started: list[str] = []

        def begin(name: str) -> None:
            if name not in names:
                raise ValueError(f"unknown step {name!r}; declared: {names}")
            if started:
                bar.update(1)
            started.append(name)
            bar.set_postfix_str(name)

        yield begin
        if started:
            bar.update(1)


def configure_library_bars() -> None:
    """Apply `quiet()` to huggingface_hub's bars (downloads) and transformers' (shards), before they load.

    Both libraries read `HF_HUB_DISABLE_PROGRESS_BARS` when first imported, so stage entry points call
    this first; a value the user set is left alone.
    """
    if quiet():
        os.environ.setdefault(HUB_BARS_VARIABLE, "1")
