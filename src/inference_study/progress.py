"""Progress bars for long steps that stay quiet in CI and when output is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def quiet() -> bool:
    """No bars when CI is set or stderr is not a terminal (DVC logs, pipes, test runners)."""
    return bool(os.environ.get("CI")) or not sys.stderr.isatty()


def progress(items: Iterable[T], description: str) -> Iterable[T]:
    return tqdm(items, desc=description, disable=quiet(), leave=False)
