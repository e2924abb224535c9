"""`commgrid call …`: the other end of the line — dial an owned number or a user, answer and hang up as a
simulated party, press keys, say a phrase, join and leave group calls, and play a scenario file.

The commands change the store directly; a running `commgrid serve` fires the timers and posts the callbacks
they cause. Steps without `--call` act on the most recent live call.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from commgrid.acs.calling.ids import InvalidCallRequest, normalize_party
from commgrid.acs.calling.views import sim_view
from commgrid.commands.common import DEFAULT_DIR, DataDir, JsonFlag, StoreUrl, console, print_json, run

if TYPE_CHECKING:
    from commgrid.runtime import Runtime

call_app = typer.Typer(help="Calls: be the caller, the callee or a group-call user.", no_args_is_help=True)
CallId = Annotated[str | None, typer.Option("--call", help="The call (default: the most recent live call).")]
As = Annotated[str | None, typer.Option("--as", help="The party acting (default: the caller).")]


async def _call_id(runtime: Runtime, call_id: str | None) -> str:
    if call_id:
        return call_id
    live = [c for c in await runtime.calling.repo.list_calls() if c["live"]]
    if not live:
        raise InvalidCallRequest("There is no live call.")
    return max(live, key=lambda c: c["createdAt"])["id"]


def _show(view: dict[str, Any], as_json: bool, line: str) -> None:
    print_json(view) if as_json else console.print(line, highlight=False, soft_wrap=True)


@call_app.command("dial")
def dial(
    from_: Annotated[str, typer.Option("--from", help="The caller: +E.164 or a raw id (8:acs:…).")],
    to: Annotated[str, typer.Option("--to", help="An owned number or a Communication Services user.")],
    display_name: Annotated[str, typer.Option("--display-name", help="callerDisplayName.")] = "",
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Place a call: publishes Microsoft.Communication.IncomingCall to the system topic."""

    async def go(runtime: Runtime) -> dict[str, Any]:
        return await runtime.calling.calls.dial(normalize_party(from_), normalize_party(to), display_name)

    call = run(data_dir, store, go)
    _show(sim_view(call), as_json, f"call {call['id']} ringing {to}; IncomingCall published")


def _step(data_dir: Path | None, store: str | None, call_id: str | None, kind: str, arg: Any) -> str:
    """One scenario step on the given call (default: the most recent live one)."""

    async def go(runtime: Runtime) -> str:
        from commgrid.acs.calling.scenario import Player  # the calling service loads only when a call runs

        player = Player(runtime.calling, runtime.settings.time_scale, lambda _: None)
        if kind not in ("join", "leave"):
            player.call_id = await _call_id(runtime, call_id)
        return await player.step(kind, arg)

    return run(data_dir, store, go)


@call_app.command("answer")
def answer(call: CallId = None, as_: As = None, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Answer as a ringing party (a user an IncomingCall was for, or an invited party)."""
    console.print(_step(data_dir, store, call, "answer", {"as": as_} if as_ else {}), highlight=False)


@call_app.command("hangup")
def hangup(call: CallId = None, as_: As = None, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Hang up as a party (default: the caller)."""
    console.print(_step(data_dir, store, call, "hangup", {"as": as_} if as_ else {}), highlight=False)


@call_app.command("press")
def press(keys: Annotated[list[str], typer.Argument(help="Keys: 0-9, A-D, # and *.")], call: CallId = None,
          data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Press keys as the caller: `commgrid call press 1 2 '#'`."""
    console.print(_step(data_dir, store, call, "press", keys), highlight=False)


@call_app.command("say")
def say(phrase: str, call: CallId = None, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Say a phrase as the caller (matched against recognize choices, or returned as speech)."""
    console.print(_step(data_dir, store, call, "say", phrase), highlight=False)


@call_app.command("join")
def join(group: str, user: Annotated[str, typer.Option("--user", help="The user joining (8:acs:…).")],
         room: Annotated[bool, typer.Option("--room", help="GROUP is a rooms id.")] = False,
         display_name: Annotated[str, typer.Option("--display-name")] = "",
         data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Join a group (or rooms) call as a user; the first to join starts it."""
    step = {"group": group, "user": user, "room": room, "displayName": display_name}
    console.print(_step(data_dir, store, None, "join", step), highlight=False)


@call_app.command("leave")
def leave(group: str, user: Annotated[str, typer.Option("--user")], data_dir: DataDir = DEFAULT_DIR,
          store: StoreUrl = None) -> None:
    """Leave a group call; the last to leave ends it."""
    console.print(_step(data_dir, store, None, "leave", {"group": group, "user": user}), highlight=False)


@call_app.command("party")
def party(raw_id: str, answer_mode: Annotated[str, typer.Option("--answer", help="auto, manual or decline.")],
          data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """How a simulated party answers calls the app places to it (default: auto, after a ring)."""
    number = normalize_party(raw_id)
    run(data_dir, store, lambda r: r.calling.calls.set_party_setting(number, answer_mode))
    console.print(f"{number} answers {answer_mode}", highlight=False)


@call_app.command("list")
def list_calls(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """Calls, most recent first."""
    calls = sorted(run(data_dir, store, lambda r: r.calling.repo.list_calls()), key=lambda c: -c["createdAt"])
    if as_json:
        print_json([sim_view(c) for c in calls])
        return
    table = Table("call", "kind", "state", "live", "parties")
    for c in calls:
        table.add_row(c["id"], c["kind"], c["state"], str(c["live"]),
                      ", ".join(f"{p['rawId']} ({p['state']})" for p in c["parties"]))
    console.print(table)


@call_app.command("play")
def play(scenario: Annotated[Path, typer.Argument(help="A YAML or JSON scenario.", exists=True, dir_okay=False)],
         time_scale: Annotated[float | None, typer.Option(
             "--time-scale", help="Divides the scenario's waits (default: the server's).")] = None,
         data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Play a scenario's steps in order."""
    from commgrid.acs.calling.scenario import Player, load

    steps = load(scenario)

    async def go(runtime: Runtime) -> str | None:
        player = Player(runtime.calling, time_scale or runtime.settings.time_scale,
                        lambda line: console.print(line, highlight=False, soft_wrap=True))
        return await player.play(steps)

    call_id = run(data_dir, store, go)
    console.print(f"scenario done (call {call_id})", highlight=False)
