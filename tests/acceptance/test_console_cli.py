"""`commgrid publish` routes to subscriptions, and `commgrid events show` tells each event's journey."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import subscribe
from tests.support import ServerProcess


def test_cli_publish_is_delivered_and_its_journey_is_shown(server: ServerProcess, rx: Receiver,
                                                           tmp_path: Path) -> None:
    server.create_topic("cli-orders")
    subscribe(server, "cli-orders", "cli-hook", rx.endpoint("cli-hook"))
    subscribe(server, "cli-orders", "cli-other", rx.endpoint("cli-other"), "--subject-begins-with", "/returns/")
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"id": "cli-1", "subject": "/orders/1", "eventType": "Order.Created",
                                   "eventTime": "2024-01-01T00:00:00Z", "dataVersion": "1", "data": {}}]))
    server.cli("publish", "--topic", "cli-orders", "--file", str(events))
    rx.wait_events("cli-hook", 1)
    shown = rx.wait(lambda: (out := server.cli("events", "show", "cli-1").stdout) and "Succeeded" in out and out,
                    what="the attempt in the journey")
    assert "subscription cli-hook [Active]: delivered" in shown
    assert "attempt 1" in shown and "HTTP 200" in shown
    assert "cli-other [Active]: not matched - subjectBeginsWith '/returns/' does not match subject" in shown
    journey = json.loads(server.cli("events", "show", "cli-1", "--topic", "CLI-ORDERS", "--json").stdout)
    assert journey["event"]["id"] == "cli-1" and journey["topic"] == "cli-orders"
    assert {r["subscription"]: r["state"] for r in journey["journey"]} == {"cli-hook": "delivered",
                                                                           "cli-other": "not matched"}
    missing = server.cli("events", "show", "nope", check=False)
    assert missing.returncode != 0 and "Event 'nope' was not found" in missing.stdout + missing.stderr
