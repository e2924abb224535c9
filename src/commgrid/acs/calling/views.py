"""How the simulation API and the CLI show a call."""

from __future__ import annotations

from typing import Any


def sim_view(call: dict[str, Any]) -> dict[str, Any]:
    """A call as the simulation API shows it."""
    keys = ("id", "serverCallId", "correlationId", "kind", "state", "live", "startedBy", "recipient", "groupId",
            "roomId", "incomingCallContext")
    view = {k: call[k] for k in keys if call.get(k) is not None}
    view["parties"] = [{"rawId": p["rawId"], "state": p["state"]} for p in call["parties"]]
    if call.get("media"):
        view["media"] = {"kind": call["media"]["kind"], "phase": call["media"].get("phase", "playing")}
    view["recordings"] = {rid: r["state"] for rid, r in call.get("recordings", {}).items()}
    return view
