"""`commgrid sms …`: inject inbound SMS, and set the simulated carrier's delivery outcomes.

`commgrid sms receive --from +14255550123 --to +15555550100 "hi"` publishes `Microsoft.Communication.SMSReceived`
to the system topic, as a carrier delivering that SMS to an owned number would make the service do.
`commgrid sms rule add --to-prefix +1555000 --status Failed` makes delivery reports to matching recipients
`Failed`; rules are tried in the order they were added and the first match wins (default: `Delivered`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from commgrid.acs.sms_rules import DeliveryRule
from commgrid.commands.common import DEFAULT_DIR, DataDir, JsonFlag, StoreUrl, console, print_json, run

if TYPE_CHECKING:
    from commgrid.runtime import Runtime

sms_app = typer.Typer(help="SMS: inbound messages and delivery-report rules.", no_args_is_help=True)
rule_app = typer.Typer(help="Delivery outcomes of outbound SMS (default: Delivered).", no_args_is_help=True)
sms_app.add_typer(rule_app, name="rule")


@sms_app.command("receive")
def receive(
    message: Annotated[str, typer.Argument(help="The text.")],
    from_: Annotated[str, typer.Option("--from", help="The sender, E.164 (+14255550123) or a short code.")],
    to: Annotated[str, typer.Option("--to", help="The owned number that receives it.")],
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Receive an SMS at an owned number: publishes Microsoft.Communication.SMSReceived."""

    async def go(runtime: Runtime) -> dict:
        sms = await runtime.sms.receive(from_, to, message)
        return {"messageId": sms.message_id, "from": sms.from_, "to": sms.to, "message": sms.message,
                "receivedTimestamp": sms.received_at.isoformat(), "segmentCount": sms.segment_count,
                "topic": runtime.deployment.system_topic_name}

    received = run(data_dir, store, go)
    if as_json:
        print_json(received)
    else:
        console.print(f"received {received['messageId']} at {to}; SMSReceived published to the system topic "
                      f"'{received['topic']}'", highlight=False, soft_wrap=True)


def _rule_table(rules: list[DeliveryRule]) -> Table:
    table = Table("id", "to prefix", "to pattern", "status", "details")
    for r in rules:
        table.add_row(r.id, r.to_prefix or "", r.to_pattern or "", r.status, r.details)
    return table


@rule_app.command("add")
def rule_add(
    status: Annotated[str, typer.Option("--status", help="Delivered or Failed.")],
    to_prefix: Annotated[str | None, typer.Option("--to-prefix", help="Recipients starting with this.")] = None,
    to_pattern: Annotated[str | None, typer.Option(
        "--to-pattern", help="Recipients matching this regular expression (whole number).")] = None,
    details: Annotated[str | None, typer.Option(
        "--details", help="deliveryStatusDetails (default: 'No error.' / a 5002 delivery timeout).")] = None,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Add a rule; without --to-prefix or --to-pattern it matches every recipient."""
    rule = run(data_dir, store, lambda r: r.sms.rules.add(status, r.acs.now().isoformat(), to_prefix=to_prefix,
                                                         to_pattern=to_pattern, details=details))
    print_json(rule.to_json()) if as_json else console.print(_rule_table([rule]))


@rule_app.command("list")
def rule_list(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """Rules in matching order."""
    rules = run(data_dir, store, lambda r: r.sms.rules.list_all())
    print_json([r.to_json() for r in rules]) if as_json else console.print(_rule_table(rules))


@rule_app.command("remove")
def rule_remove(rule_id: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Remove one rule by id."""
    run(data_dir, store, lambda r: r.sms.rules.remove(rule_id))
    console.print(f"removed rule {rule_id}", highlight=False)


@rule_app.command("clear")
def rule_clear(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Remove every rule: all reports say Delivered again."""
    count = run(data_dir, store, lambda r: r.sms.rules.clear())
    console.print(f"removed {count} rule(s)", highlight=False)
