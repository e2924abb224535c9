"""`commgrid subscription replay`: deliver a subscription's retained events again (grid/replay.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from commgrid.commands.common import DEFAULT_DIR, DataDir, JsonFlag, StoreUrl, console, print_json, run
from commgrid.commands.subscriptions import SubName, TopicName

if TYPE_CHECKING:
    from commgrid.grid.replay import ReplayResult
    from commgrid.runtime import Runtime


def replay(
    topic: TopicName, name: SubName,
    start: Annotated[str, typer.Option("--from", help="A time (ISO 8601, UTC unless it says) or an event id.")],
    end: Annotated[str | None, typer.Option("--to", help="A time or an event id (default: the newest).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count the events it would deliver.")] = False,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Deliver again the retained events, from --from to --to, that pass the subscription's current filter.

    They go out in publish order with the header `commgrid-replay: <replay id>`.
    """

    async def go(runtime: Runtime) -> ReplayResult:
        total = await runtime.store.count_events((await runtime.grid.get_topic(topic)).name)
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[matched]} matched"))
        with Progress(*columns, console=console, transient=True, disable=as_json) as progress:
            task = progress.add_task("counting" if dry_run else "replaying", total=total, matched=0)
            result = await runtime.replays.replay(
                topic, name, start, end, dry_run=dry_run,
                progress=lambda scanned, matched: progress.update(task, completed=scanned, matched=matched))
        return result

    result = run(data_dir, store, go)
    if as_json:
        print_json(result.to_json())
    elif dry_run:
        console.print(f"dry run: {result.matched} of {result.scanned} event(s) would be delivered again")
    else:
        console.print(f"replay {result.replay_id}: {result.queued} event(s) queued for delivery"
                      f" ({result.matched} of {result.scanned} matched the filter)")
