"""`commgrid phone-number …`: the numbers the Communication Services resource owns.

Only owned numbers may send SMS (`from`) or receive them (`to`). Like the other commands, these act on the data
dir's store directly, with or without a running server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from commgrid.acs.phone_numbers import PhoneNumber, PhoneNumbers
from commgrid.commands.common import DEFAULT_DIR, DataDir, JsonFlag, StoreUrl, console, print_json, run

if TYPE_CHECKING:
    from commgrid.runtime import Runtime

phone_number_app = typer.Typer(help="Phone numbers and short codes the Communication Services resource owns.",
                               no_args_is_help=True)

Number = Annotated[str, typer.Argument(help="E.164 number (+15555550100) or 5-6 digit short code.")]


def _numbers(runtime: Runtime) -> PhoneNumbers:
    return runtime.sms.numbers


@phone_number_app.command("add")
def add(number: Number, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """Own a number: SMS can then be sent from it and received at it (a number owned already stays as it is)."""
    owned: PhoneNumber = run(data_dir, store,
                             lambda r: _numbers(r).add(number, r.acs.now().isoformat(), exist_ok=True))
    print_json(owned.to_json()) if as_json else console.print(f"added {owned.number} ({owned.kind})",
                                                               highlight=False)


@phone_number_app.command("list")
def list_numbers(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """The owned numbers."""
    numbers = run(data_dir, store, lambda r: _numbers(r).list_all())
    if as_json:
        print_json([n.to_json() for n in numbers])
        return
    table = Table("phone number", "kind", "added")
    for n in numbers:
        table.add_row(n.number, n.kind, n.added_at)
    console.print(table)


@phone_number_app.command("remove")
def remove(number: Number, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Give a number up: sending from it is refused (401) from then on."""
    run(data_dir, store, lambda r: _numbers(r).remove(number))
    console.print(f"removed {number}", highlight=False)
