"""Call recording: start, state, pause/resume, stop; the finished file's Event Grid event; and the chunks the
event points at, which commgrid serves itself (`/v1/objects/{documentId}/…`, as the service's storage host).

start_recording answers `inactive`; `active` follows `RECORDING_START` seconds later. State changes are posted
(RecordingStateChanged) only to `recordingStateCallbackUri`. After a stop, or the end of the call,
RecordingFileStatusUpdated is published `RECORDING_FILE` seconds later, with one chunk whose file is generated
from the recording's active time (`media_files.py`).
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from commgrid.acs.calling import durations
from commgrid.acs.calling.calls import CallLifecycle
from commgrid.acs.calling.ids import InvalidCallRequest
from commgrid.acs.calling.model import RECORDINGS, Effects
from commgrid.acs.calling.notify import OK
from commgrid.errors import NotFound
from commgrid.events.calling_shapes import RecordingChunk, RecordingFile
from commgrid.store.base import Document, Missing
from commgrid.timestamps import Precision, format_timestamp

KIND = "azureCommunicationServices"
_FORMATS = {"wav", "mp3", "mp4"}


class RecordingNotFound(NotFound):
    code = "8522"

    def __init__(self) -> None:
        super().__init__("Recording not found.")


def _recording_id() -> str:
    payload = {"PlatformEndpointId": str(uuid.uuid4()), "ResourceSpecificId": str(uuid.uuid4())}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


class Recordings:
    def __init__(self, calls: CallLifecycle, base_url: str) -> None:
        self.calls = calls
        self.repo = calls.repo
        self.notify = calls.notify
        self.store = calls.resource.store
        self.base_url = base_url.rstrip("/")

    # The API ---------------------------------------------------------------------------------------------
    async def start(self, body: dict[str, Any]) -> dict[str, Any]:
        call = await self._locate(body)
        options = self._options(body)
        recording_id = _recording_id()
        await self.store.put_document(Document(RECORDINGS, recording_id, {"callId": call["id"]}))

        def change(c: dict[str, Any], fx: Effects) -> None:
            if not c["live"]:
                raise NotFound("Call not found.", code="8522")
            c["recordings"][recording_id] = options | {"state": "inactive", "accumulatedMs": 0, "activeSince": None,
                                                       "startedAt": None}
            if not options["pauseOnStart"]:
                fx.timer(durations.RECORDING_START, "recording_active", recordingId=recording_id)

        await self.repo.change(call["id"], change)
        return self._state(recording_id, "inactive")

    async def _locate(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("callConnectionId"):
            return await self.calls.repo.get(str(body["callConnectionId"]))
        locator = body.get("callLocator") or {}
        if locator.get("serverCallId"):
            return await self.calls.by_server_call_id(str(locator["serverCallId"]))
        key = locator.get("groupCallId") or locator.get("roomId")
        if key:
            return await self.calls.by_group(str(key))
        raise InvalidCallRequest("A callConnectionId or a callLocator is required.")

    @staticmethod
    def _options(body: dict[str, Any]) -> dict[str, Any]:
        content = str(body.get("recordingContentType") or "audioVideo")
        channel = str(body.get("recordingChannelType") or "mixed")
        default_format = "mp4" if content.lower() == "audiovideo" else "wav"
        format_type = str(body.get("recordingFormatType") or default_format).lower()
        if format_type not in _FORMATS:
            raise InvalidCallRequest(f"Unsupported recording format '{format_type}'.")
        if content.lower() == "audiovideo" and format_type != "mp4":
            raise InvalidCallRequest("Audio and video recordings are MP4.")
        return {"stateUrl": body.get("recordingStateCallbackUri"), "contentType": content, "channelType": channel,
                "formatType": format_type, "pauseOnStart": bool(body.get("pauseOnStart"))}

    @staticmethod
    def _state(recording_id: str, state: str) -> dict[str, Any]:
        return {"recordingId": recording_id, "recordingState": state, "recordingKind": KIND}

    async def _call_of(self, recording_id: str) -> str:
        try:
            return (await self.store.get_document(RECORDINGS, recording_id)).value["callId"]
        except Missing:
            raise RecordingNotFound() from None

    async def get(self, recording_id: str) -> dict[str, Any]:
        call = await self.repo.get(await self._call_of(recording_id))
        recording = call["recordings"].get(recording_id)
        if recording is None or recording["state"] not in ("active", "inactive"):
            raise RecordingNotFound()
        return self._state(recording_id, recording["state"])

    async def pause(self, recording_id: str) -> None:
        await self._set(recording_id, "inactive", paused=True)

    async def resume(self, recording_id: str) -> None:
        await self._set(recording_id, "active", paused=False)

    async def _set(self, recording_id: str, state: str, *, paused: bool) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            recording = self._live(call, recording_id)
            recording["paused"] = paused
            self._switch(call, fx, recording_id, recording, state)

        await self.repo.change(await self._call_of(recording_id), change)

    async def stop(self, recording_id: str) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            self._stop(call, fx, recording_id, self._live(call, recording_id), "RecordingStopped")

        await self.repo.change(await self._call_of(recording_id), change)

    @staticmethod
    def _live(call: dict[str, Any], recording_id: str) -> dict[str, Any]:
        recording = call["recordings"].get(recording_id)
        if recording is None or recording["state"] not in ("active", "inactive"):
            raise RecordingNotFound()
        return recording

    # State changes --------------------------------------------------------------------------------------------
    def _switch(self, call: dict[str, Any], fx: Effects, recording_id: str, recording: dict[str, Any],
                state: str) -> None:
        now = self.calls.resource.clock()
        if recording["state"] == state:
            return
        if state == "active":
            recording["activeSince"] = now
            recording["startedAt"] = recording["startedAt"] or now
        elif recording["activeSince"] is not None:
            recording["accumulatedMs"] += int((now - recording["activeSince"]) * 1000)
            recording["activeSince"] = None
        recording["state"] = state
        if recording.get("stateUrl"):
            started = recording["startedAt"] or now
            data = {"recordingId": recording_id, "state": state,
                    "startDateTime": format_timestamp(datetime.fromtimestamp(started, UTC), Precision.TICKS, "+00:00"),
                    "recordingKind": KIND}
            self.notify.callback(call, fx, "RecordingStateChanged", data, result=OK, url=recording["stateUrl"])

    def _stop(self, call: dict[str, Any], fx: Effects, recording_id: str, recording: dict[str, Any],
              reason: str) -> None:
        self._switch(call, fx, recording_id, recording, "inactive")
        recording["state"] = "stopped"
        recording["endReason"] = reason
        recording["documentId"] = f"0-eus-d1-{uuid.uuid4().hex}"
        fx.timer(durations.RECORDING_FILE, "recording_file", recordingId=recording_id)

    # Timers ------------------------------------------------------------------------------------------------
    async def activate(self, call_id: str, recording_id: str) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            recording = call["recordings"].get(recording_id)
            if recording and recording["state"] == "inactive" and not recording.get("paused"):
                self._switch(call, fx, recording_id, recording, "active")

        await self.repo.change(call_id, change)

    async def stop_for_call_end(self, call_id: str, recording_id: str, reason: str) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            recording = call["recordings"].get(recording_id)
            if recording and recording["state"] in ("active", "inactive"):
                self._stop(call, fx, recording_id, recording, reason)

        await self.repo.change(call_id, change)

    async def publish_file(self, call_id: str, recording_id: str) -> None:
        call = await self.repo.get(call_id)
        recording = call["recordings"][recording_id]
        await self.store.put_document(Document(RECORDINGS, f"chunk:{recording['documentId']}",
                                               {"callId": call_id, "recordingId": recording_id}))

        def change(c: dict[str, Any], fx: Effects) -> None:
            rec = c["recordings"][recording_id]
            if rec.get("published"):
                return
            rec["published"] = True
            self.notify.grid(fx, "recording_file_status_updated", self._file(c, recording_id, rec))

        await self.repo.change(call_id, change)

    def _file(self, call: dict[str, Any], recording_id: str, rec: dict[str, Any]) -> RecordingFile:
        doc = rec["documentId"]
        media = "video" if rec["formatType"] == "mp4" else "audio"
        chunk = RecordingChunk(doc, 0, "SessionEnded", f"{self.base_url}/v1/objects/{doc}/content/{media}",
                               f"{self.base_url}/v1/objects/{doc}/content/acsmetadata",
                               f"{self.base_url}/v1/objects/{doc}")
        started = datetime.fromtimestamp(rec["startedAt"] or call["createdAt"], UTC)
        return RecordingFile(call["correlationId"], call["serverCallId"], recording_id, (chunk,), started,
                             rec["accumulatedMs"], _title(rec["contentType"]), _title(rec["channelType"]),
                             _title(rec["formatType"]), "CallEnded" if rec["endReason"] == "CallEnded"
                             else "RecordingStopped")

    # The chunk store ----------------------------------------------------------------------------------------
    async def chunk(self, document_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The call and recording of a chunk that exists and was not deleted."""
        try:
            index = (await self.store.get_document(RECORDINGS, f"chunk:{document_id}")).value
        except Missing:
            raise NotFound("The recording file does not exist.", code="NotFound") from None
        call = await self.repo.get(index["callId"])
        recording = call["recordings"][index["recordingId"]]
        if recording.get("deleted"):
            raise NotFound("The recording file does not exist.", code="NotFound")
        return call, recording | {"recordingId": index["recordingId"]}

    async def delete_chunk(self, document_id: str) -> None:
        call, recording = await self.chunk(document_id)

        def change(c: dict[str, Any], fx: Effects) -> None:
            c["recordings"][recording["recordingId"]]["deleted"] = True

        await self.repo.change(call["id"], change)

    def metadata(self, call: dict[str, Any], recording: dict[str, Any]) -> dict[str, Any]:
        started = datetime.fromtimestamp(recording["startedAt"] or call["createdAt"], UTC)
        return {
            "resourceId": self.calls.resource.deployment.immutable_id, "callId": call["correlationId"],
            "chunkDocumentId": recording["documentId"], "chunkIndex": 0,
            "chunkStartTime": format_timestamp(started, Precision.TICKS),
            "chunkDuration": recording["accumulatedMs"], "pauseResumeIntervals": [],
            "recordingInfo": {"contentType": recording["contentType"], "channelType": recording["channelType"],
                              "format": recording["formatType"],
                              "audioConfiguration": {"sampleRate": 8000, "bitRate": 128000, "channels": 1}},
            "participants": [{"participantId": p["rawId"]} for p in call["parties"]],
        }


def _title(value: str) -> str:
    """`audioVideo` → `AudioVideo`, `wav` → `Wav`: the event's casing."""
    return value[:1].upper() + value[1:]
