"""The building blocks every typed settings section shares: strict models, unique lists, one error type.

Config sections, backend settings and scenario settings all reject unknown keys and lax coercion
(`2.0` or `true` where a count belongs), so a value means one thing to the study and to DVC.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

PositiveInt = Annotated[int, Field(gt=0)]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"  # models, studies, scenarios: safe in paths, stage names and overrides


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key, the value and what is allowed."""


class Record(BaseModel):
    """Base for what is measured and recorded: unknown keys are errors, so a misspelt field never reads as absent."""

    model_config = ConfigDict(extra="forbid")


class Strict(BaseModel):
    """Base for settings: unknown keys are errors, values never change, and nothing is coerced (`2.0` or
    `true` is no count): DVC names a stage after the raw value, so the study must read the same value."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def unique(values: list[Any]) -> list[Any]:
    """A DVC matrix axis or a list of names: each value once."""
    duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
    if duplicates:
        raise ValueError(f"values must be unique; repeated: {duplicates}")
    return values


UniqueNames = Annotated[list[str], AfterValidator(unique)]
UniquePositive = Annotated[list[PositiveInt], Field(min_length=1), AfterValidator(unique)]


def format_errors(error: ValidationError, prefix: str = "") -> str:
    """pydantic's errors as `key: message (got value)` lines."""
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = item["msg"].removeprefix("Value error, ")
        shown = item.get("input")
        value = "" if isinstance(shown, dict) or shown is None else f" (got {shown!r})"
        lines.append(f"{loc}: {message}{value}" if loc else f"{message}{value}")
    return "\n".join(lines)
