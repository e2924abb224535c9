"""`commgrid store …`: what the store holds and how much room it takes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from commgrid.commands.common import DEFAULT_DIR, DataDir, JsonFlag, StoreUrl, console, print_json, run
from commgrid.store.base import StoreStats
from commgrid.timestamps import azure_time

if TYPE_CHECKING:
    from commgrid.runtime import Runtime

store_app = typer.Typer(help="The store: counts and size.", no_args_is_help=True)


def stats_json(stats: StoreStats, retention: dict[str, int]) -> dict[str, Any]:
    topics = [{"topic": t.topic, "events": t.events, "pendingDeliveries": t.pending_deliveries,
               "deadLetters": t.dead_letters, "oldestEvent": azure_time(t.oldest_event_at),
               "retentionMinutes": retention.get(t.topic)} for t in stats.topics]
    oldest = min((t.oldest_event_at for t in stats.topics if t.oldest_event_at is not None), default=None)
    return {"events": sum(t.events for t in stats.topics),
            "pendingDeliveries": sum(t.pending_deliveries for t in stats.topics),
            "deadLetters": sum(t.dead_letters for t in stats.topics), "oldestEvent": azure_time(oldest),
            "sizeBytes": stats.size_bytes, "freeBytes": stats.free_bytes, "topics": topics}


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@store_app.command("stats")
def store_stats(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """Events, pending deliveries and dead letters per topic, the oldest event, and the size on disk."""
    from commgrid.grid.retention import retention_minutes

    async def go(runtime: Runtime) -> dict[str, Any]:
        retention = {t.name: retention_minutes(t) for t in await runtime.store.list_topics()}
        return stats_json(await runtime.store.stats(), retention)

    shown = run(data_dir, store, go)
    if as_json:
        print_json(shown)
        return
    table = Table("topic", "events", "pending deliveries", "dead letters", "oldest event", "retention (min)")
    for t in shown["topics"]:
        table.add_row(t["topic"], str(t["events"]), str(t["pendingDeliveries"]), str(t["deadLetters"]),
                      t["oldestEvent"] or "-", str(t["retentionMinutes"] or "-"))
    table.add_section()
    table.add_row("all", str(shown["events"]), str(shown["pendingDeliveries"]), str(shown["deadLetters"]),
                  shown["oldestEvent"] or "-", "")
    console.print(table)
    console.print(f"size on disk: {_size(shown['sizeBytes'])} ({_size(shown['freeBytes'])} free for reuse)")
