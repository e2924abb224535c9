"""The calling service of one process: call lifecycle, media, recordings, and the timers that drive them."""

from __future__ import annotations

from typing import Any

from commgrid.acs.calling.calls import CallLifecycle
from commgrid.acs.calling.media import MediaOps
from commgrid.acs.calling.model import CallRepository
from commgrid.acs.calling.participants import ParticipantOps
from commgrid.acs.calling.recording import Recordings
from commgrid.acs.calling.worker import CallingWorker
from commgrid.acs.resource import CommunicationResource


class CallingService:
    def __init__(self, resource: CommunicationResource, *, recording_base_url: str) -> None:
        self.resource = resource
        self.repo = CallRepository(resource, resource.time_scale)
        self.calls = CallLifecycle(resource, self.repo)
        self.participants = ParticipantOps(self.calls)
        self.media = MediaOps(self.calls)
        self.recordings = Recordings(self.calls, recording_base_url)
        self.worker: CallingWorker | None = None

    async def start(self) -> None:
        """Serve: run timers and callbacks, and finish changes a crash interrupted."""
        self.worker = CallingWorker(self.resource.store, self.dispatch, time_scale=self.resource.time_scale,
                                    clock=self.resource.clock, sweep=self.repo.sweep)
        self.repo.wake = self.worker.wake
        await self.worker.start()

    async def stop(self) -> None:
        if self.worker:
            await self.worker.stop()
            self.worker = None

    async def dispatch(self, action: str, call_id: str, args: dict[str, Any]) -> None:
        """Carry out one due timer."""
        match action:
            case "party_answer":
                await self.calls.party_answers(call_id, args["party"], args["participantId"])
            case "party_decline":
                await self.calls.party_declines(call_id, args["party"], args["participantId"])
            case "invite_timeout":
                await self.calls.invite_timeout(call_id, args["party"], args["participantId"])
            case "unanswered":
                await self.calls.unanswered(call_id)
            case "media_done":
                await self.media.media_done(call_id, args["op"])
            case "silence":
                await self.media.silence(call_id, args["op"])
            case "inter_tone":
                await self.media.inter_tone(call_id, args["op"], args["count"])
            case "dtmf_sent":
                await self.media.dtmf_sent(call_id, args.get("context"), args.get("url"))
            case "recording_active":
                await self.recordings.activate(call_id, args["recordingId"])
            case "recording_stop":
                await self.recordings.stop_for_call_end(call_id, args["recordingId"], args["reason"])
            case "recording_file":
                await self.recordings.publish_file(call_id, args["recordingId"])
