"""JSON object members read case-insensitively, as Azure Resource Manager reads property names."""

from __future__ import annotations

from typing import Any


def fields(value: Any) -> dict[str, Any]:
    """An object's members by lower-cased name (`Key`, `key` and `KEY` alike); `{}` for anything else."""
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


def field(obj: dict[str, Any], name: str, default: Any = None) -> Any:
    """One member of `obj`, whatever its case."""
    return next((v for k, v in obj.items() if k.lower() == name.lower()), default)
