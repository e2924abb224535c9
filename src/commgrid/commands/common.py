"""What every `commgrid` command shares: the data-dir and store options, opening a runtime, and output."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console

from commgrid.config import Settings
from commgrid.errors import CommgridError, from_store
from commgrid.store.errors import StoreError

if TYPE_CHECKING:  # the server stack loads only when a command runs, so `--help` answers at once
    from commgrid.runtime import Runtime

console = Console()
err = Console(stderr=True)
T = TypeVar("T")

PROJECT_DIR = ".commgrid"
DEFAULT_DIR: Path | None = None
DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="COMMGRID_DATA_DIR",
    help="Data directory. Default: the nearest ./.commgrid in this folder or a parent, else the per-user one"
         " (~/.local/share/commgrid).")]
StoreUrl = Annotated[str | None, typer.Option("--store", envvar="COMMGRID_STORE",
                                              help="Store URL: sqlite:///path or postgresql://…")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def user_data_dir() -> Path:
    """The per-user data dir: `$XDG_DATA_HOME/commgrid` (~/.local/share/commgrid), or the platform's own."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "commgrid"


def resolve_data_dir(given: Path | None) -> Path:
    """Where commgrid keeps its state, found the same way from any folder.

    `--data-dir` / `COMMGRID_DATA_DIR` when given; else the nearest `.commgrid` folder in the current folder or
    one of its parents (a project's own state, as git finds `.git`); else the per-user data dir.
    """
    if given is not None:
        return given.expanduser().resolve()
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / PROJECT_DIR).is_dir():
            return folder / PROJECT_DIR
    return user_data_dir()


def settings_for(data_dir: Path | None, store: str | None = None) -> Settings:
    """The settings `commgrid serve` last recorded in the data dir, with `--store` applied."""
    return Settings.for_data_dir(resolve_data_dir(data_dir), store_url=store)


def fail(exc: CommgridError | StoreError, exit_code: int = 1) -> typer.Exit:
    """Print a domain (or store) error and its further details, and return the exit to raise."""
    if isinstance(exc, StoreError):
        exc = from_store(exc)
    err.print(f"[red]error:[/red] {exc.message or exc.code}", highlight=False, soft_wrap=True)
    for detail in exc.details[1:]:
        err.print(f"  - {detail.message}", highlight=False, soft_wrap=True)
    return typer.Exit(exit_code)


def run_with(settings: Settings, action: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open a runtime on `settings` (no background workers), run `action`, close."""

    from commgrid.runtime import Runtime

    async def main() -> T:
        async with Runtime(settings) as runtime:
            return await action(runtime)

    try:
        return asyncio.run(main())
    except (CommgridError, StoreError) as exc:
        raise fail(exc) from None


def run(data_dir: Path | None, store: str | None, action: Callable[[Runtime], Awaitable[T]]) -> T:
    """`run_with` on a data dir's settings."""
    return run_with(settings_for(data_dir, store), action)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
