"""What every `commgrid` command shares: the data-dir and store options, opening a runtime, and output."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console

from commgrid.config import Settings
from commgrid.errors import CommgridError
from commgrid.runtime import Runtime

console = Console()
err = Console(stderr=True)
T = TypeVar("T")

DEFAULT_DIR = Path(".commgrid")
DataDir = Annotated[Path, typer.Option("--data-dir", envvar="COMMGRID_DATA_DIR", help="Data directory.")]
StoreUrl = Annotated[str | None, typer.Option("--store", envvar="COMMGRID_STORE",
                                              help="Store URL: sqlite:///path or postgresql://…")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def settings_for(data_dir: Path, store: str | None = None) -> Settings:
    """The settings `commgrid serve` last recorded in `data_dir`, with `--store` applied."""
    return Settings.for_data_dir(data_dir, store_url=store)


def fail(exc: CommgridError, exit_code: int = 1) -> typer.Exit:
    """Print a domain error (and its further details) and return the exit to raise."""
    err.print(f"[red]error:[/red] {exc.message or exc.code}", highlight=False, soft_wrap=True)
    for detail in exc.details[1:]:
        err.print(f"  - {detail.message}", highlight=False, soft_wrap=True)
    return typer.Exit(exit_code)


def run_with(settings: Settings, action: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open a runtime on `settings` (no background workers), run `action`, close."""

    async def main() -> T:
        async with Runtime(settings) as runtime:
            return await action(runtime)

    try:
        return asyncio.run(main())
    except CommgridError as exc:
        raise fail(exc) from None


def run(data_dir: Path, store: str | None, action: Callable[[Runtime], Awaitable[T]]) -> T:
    """`run_with` on a data dir's settings."""
    return run_with(settings_for(data_dir, store), action)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
