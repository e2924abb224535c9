"""Scenarios: a timeline of simulated-party steps, played with one command (`commgrid call play FILE`).

A scenario is YAML or JSON: `{"steps": [...]}` (or just the list). Each step is a one-key mapping:

    dial:   {from: "+14255550123", to: "+18005550100", displayName: "Pat"}   # the call later steps act on
    wait:   2                        # seconds of simulated time (divided by the time scale)
    wait:   {until: listening, timeout: 30}   # connected | listening | idle | ended; timeout in real seconds
    press:  "1 2 #"                  # keys, as the caller (or {keys: "1 2 #", as: "+1…"})
    say:    "help"                   # a phrase, for choices or speech recognition
    answer: {as: "8:acs:…"}          # a ringing party picks up
    hangup: {}                       # the caller (or {as: …}) hangs up
    join:   {group: "<guid>", user: "8:acs:…"}    # add room: true for a rooms call
    leave:  {group: "<guid>", user: "8:acs:…"}
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from commgrid.acs.calling.ids import InvalidCallRequest, normalize_party
from commgrid.acs.calling.service import CallingService

CONDITIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "connected": lambda c: c["live"] and c["state"] == "connected",
    "listening": lambda c: bool(c.get("media")) and c["media"]["kind"] == "recognize"
    and c["media"].get("phase") == "listening",
    "idle": lambda c: not c.get("media"),
    "ended": lambda c: not c["live"],
}


def load(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # PyYAML comes with uvicorn[standard]

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    steps = data.get("steps") if isinstance(data, dict) else data
    if not isinstance(steps, list) or not all(isinstance(s, dict) and len(s) == 1 for s in steps):
        raise InvalidCallRequest("A scenario is a list of steps, each a mapping with one key.")
    return steps


class Player:
    """Plays steps against the store; the serving node's worker fires the timers they cause."""

    def __init__(self, service: CallingService, time_scale: float, report: Callable[[str], None]) -> None:
        self.service = service
        self.time_scale = time_scale
        self.report = report
        self.call_id: str | None = None

    async def play(self, steps: list[dict[str, Any]]) -> str | None:
        for number, step in enumerate(steps, 1):
            (kind, arg), = step.items()
            outcome = await self.step(kind, arg)
            self.report(f"{number}. {kind}: {outcome}")
        return self.call_id

    async def step(self, kind: str, arg: Any) -> str:
        calls, media = self.service.calls, self.service.media
        args = arg if isinstance(arg, dict) else {}
        if kind == "dial":
            call = await calls.dial(normalize_party(str(args["from"])), normalize_party(str(args["to"])),
                                    str(args.get("displayName") or ""))
            self.call_id = call["id"]
            return f"call {call['id']} ringing"
        if kind == "wait":
            return await self._wait(arg)
        if kind in ("join", "leave"):
            return await self._group(kind, args)
        call_id = str(args.get("call") or self._current())
        call = await self.service.repo.get(call_id)
        who = normalize_party(str(args["as"])) if args.get("as") else call["startedBy"]
        if kind == "press":
            keys = (args.get("keys") or args.get("tones") or []) if isinstance(arg, dict) else arg
            return await media.press(call_id, str(keys).split() if isinstance(keys, str) else [str(k) for k in keys])
        if kind == "say":
            return await media.say(call_id, str(args.get("phrase", "") if isinstance(arg, dict) else arg))
        if kind == "answer":
            await calls.sim_answer(call_id, who, str(args.get("displayName") or ""))
            return f"{who} answered"
        if kind == "hangup":
            await calls.party_hangs_up(call_id, who)
            return f"{who} hung up"
        raise InvalidCallRequest(f"Unknown scenario step '{kind}'.")

    def _current(self) -> str:
        if self.call_id is None:
            raise InvalidCallRequest("No call yet: start the scenario with a dial step, or name the call.")
        return self.call_id

    async def _wait(self, arg: Any) -> str:
        if not isinstance(arg, dict):
            await asyncio.sleep(float(arg) / self.time_scale)
            return f"waited {arg}s"
        condition = CONDITIONS.get(str(arg.get("until")))
        if condition is None:
            raise InvalidCallRequest(f"wait until one of {', '.join(CONDITIONS)}.")
        deadline = time.monotonic() + float(arg.get("timeout", 30))
        while time.monotonic() < deadline:
            if condition(await self.service.repo.get(str(arg.get("call") or self._current()))):
                return f"call is {arg['until']}"
            await asyncio.sleep(0.05)
        raise InvalidCallRequest(f"The call did not become {arg['until']} within {arg.get('timeout', 30)}s.")

    async def _group(self, kind: str, args: dict[str, Any]) -> str:
        user, key = normalize_party(str(args["user"])), str(args["group"])
        if kind == "join":
            room = bool(args.get("room"))
            call = await self.service.participants.join(
                user, group_id=None if room else key, room_id=key if room else None,
                display_name=str(args.get("displayName") or ""))
            self.call_id = call["id"]
            return f"{user} joined {key}"
        call = await self.service.calls.by_group(key)
        await self.service.calls.party_hangs_up(call["id"], user)
        return f"{user} left {key}"
