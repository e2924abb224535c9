"""Effects a crash left in a call document (written with the change, not yet carried out) are carried out by the
sweep, once, on both store backends; fresh ones are left to the writer."""

from __future__ import annotations

import pytest

from commgrid.acs.calling.model import CALLBACKS, CALLS, RETENTION, TIMERS
from commgrid.acs.phone_numbers import PhoneNumbers
from commgrid.config import Settings
from commgrid.runtime import Runtime
from commgrid.store.base import Document

pytestmark = pytest.mark.asyncio


async def test_sweep_carries_out_left_behind_effects_once(store_url: str, tmp_path) -> None:
    async with Runtime(Settings(data_dir=tmp_path, store_url=store_url)) as runtime:
        await PhoneNumbers(runtime.store).add("+18005550100", "2026-11-30T00:00:00Z")
        calls = runtime.calling.calls
        call = await calls.dial("4:+14255550123", "4:+18005550100")
        topic = runtime.deployment.system_topic_name
        assert await runtime.store.count_events(topic) == 1  # IncomingCall, carried out by the writer

        doc = await runtime.store.get_document(CALLS, call["id"])
        now = runtime.acs.clock()
        event = runtime.acs.profile.user_disconnected(runtime.acs.emission(), "8:acs:x_1")
        left = {"id": "crash", "created": now - 60, "events": [event],
                "callbacks": [{"url": "http://127.0.0.1:9/cb", "event": {"type": "t", "source": "s"}}],
                "timers": [{"in": 1.0, "action": "unanswered", "args": {}}]}
        fresh = left | {"id": "in-flight", "created": now, "events": []}
        await runtime.store.put_document(Document(CALLS, call["id"], doc.value | {"pending": [left, fresh]}),
                                         expect_version=doc.version)

        assert await runtime.calling.repo.sweep() == 1
        assert await runtime.calling.repo.sweep() == 0
        assert await runtime.store.count_events(topic) == 2
        stored = await runtime.store.list_events(topic, limit=1)
        assert stored[0].id == event["id"]
        assert len(await runtime.store.list_documents(CALLBACKS)) == 1
        timers = [t.value["action"] for t in await runtime.store.list_documents(TIMERS)]
        assert timers.count("unanswered") == 2  # the dial's own, and the one left behind
        remaining = (await runtime.store.get_document(CALLS, call["id"])).value["pending"]
        assert [p["id"] for p in remaining] == ["in-flight"]


async def test_sweep_forgets_calls_ended_long_ago(store_url: str, tmp_path) -> None:
    async with Runtime(Settings(data_dir=tmp_path, store_url=store_url)) as runtime:
        await PhoneNumbers(runtime.store).add("+18005550100", "2026-11-30T00:00:00Z")
        old, recent = [await runtime.calling.calls.dial("4:+14255550123", "4:+18005550100") for _ in range(2)]
        for call, age in ((old, RETENTION + 60), (recent, 60)):
            await runtime.calling.calls.party_hangs_up(call["id"], "4:+14255550123")
            doc = await runtime.store.get_document(CALLS, call["id"])
            ended = doc.value | {"endedAt": runtime.acs.clock() - age}
            await runtime.store.put_document(Document(CALLS, call["id"], ended), expect_version=doc.version)
        await runtime.calling.repo.sweep()
        assert [c["id"] for c in await runtime.calling.repo.list_calls()] == [recent["id"]]


async def test_user_disconnected_only_when_the_last_call_connection_closes(store_url: str, tmp_path) -> None:
    alice, bob = "8:acs:r_00000000-0000-0000-0000-00000000000a", "8:acs:r_00000000-0000-0000-0000-00000000000b"
    async with Runtime(Settings(data_dir=tmp_path, store_url=store_url)) as runtime:
        calls = runtime.calling.calls
        joining = runtime.calling.participants
        for group in ("g1", "g2"):
            await joining.join(alice, group_id=group, room_id=None)
            await joining.join(bob, group_id=group, room_id=None)

        async def disconnected() -> list[str]:
            events = await runtime.store.list_events(runtime.deployment.system_topic_name, limit=100)
            return [e.subject for e in events if e.type.endswith("UserDisconnected")]

        g1 = await calls.by_group("g1")
        await calls.party_hangs_up(g1["id"], alice)
        assert await disconnected() == []
        g2 = await calls.by_group("g2")
        await calls.party_hangs_up(g2["id"], alice)
        assert await disconnected() == [f"user/{alice}"]
