"""Call Automation REST API (api-version 2024-09-15 and later, as azure-communication-callautomation sends it),
recording storage (`/v1/objects/…`), and commgrid's simulation API for the other end of the line.

Statuses are the ones the SDK accepts: create 201; answer, get, mute, hold and unhold 200; redirect, reject,
hang-up and terminate 204; participants add/remove, transfer, play, recognize, cancel, send DTMF, pause/resume
recording 202; start recording 200; stop recording 204; recording file download 200/206 and delete 200. Every
route is HMAC-signed with an access key, like SMS (the simulation API also takes `x-commgrid-access-key`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from commgrid.acs.calling.ids import InvalidCallRequest, normalize_party, raw_id_of
from commgrid.acs.calling.media_files import CONTENT_TYPES, media_file
from commgrid.acs.calling.scenario import Player
from commgrid.acs.calling.service import CallingService
from commgrid.acs.calling.views import sim_view
from commgrid.acs.hmac_auth import verify_content
from commgrid.acs.identifiers import identifier_model
from commgrid.acs.validation import parse_object
from commgrid.api.acs.auth import path_and_query, resource, signed_body
from commgrid.api.acs.common import acs_empty, acs_json, begin, require_api_version
from commgrid.api.acs.sms import inbound_body
from commgrid.errors import NotFound, Unauthorized

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class OperationConvertor(Convertor[str]):
    """`:answer`, `:play`, …: the operation suffix of Azure's custom-method paths."""

    regex = ":[A-Za-z]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("op", OperationConvertor())


def _service(request: Request) -> CallingService:
    return request.app.state.runtime.calling


async def _body(request: Request) -> dict[str, Any]:
    """The JSON body of a signed Call Automation request (an `api-version` is required)."""
    begin(request)
    raw = await signed_body(request)
    require_api_version(request)
    return parse_object(raw, optional=True)


def _callback_uri(body: dict[str, Any]) -> str:
    uri = body.get("callbackUri")
    if not isinstance(uri, str) or not uri.lower().startswith(("http://", "https://")):
        raise InvalidCallRequest("The field CallbackUri is invalid.")
    return uri


# Call connections ---------------------------------------------------------------------------------------------
async def connections(request: Request) -> Response:
    """`POST /calling/callConnections[:answer|:redirect|:reject]`."""
    body = await _body(request)
    action = request.path_params.get("action", "")
    calls = _service(request).calls
    if action == "":
        targets = [raw_id_of(t, "targets") for t in body.get("targets") or []]
        number = (body.get("sourceCallerIdNumber") or {}).get("value")
        props = await calls.create_call(targets, _callback_uri(body), source_number=number,
                                        source_name=body.get("sourceDisplayName"),
                                        context=body.get("operationContext"))
        return acs_json(request, props, 201)
    if action == ":answer":
        answered_by = (body.get("answeredBy") or {}).get("id")
        props = await calls.answer(body.get("incomingCallContext"), _callback_uri(body),
                                   body.get("operationContext"), answered_by)
        return acs_json(request, props)
    if action == ":redirect":
        await calls.redirect(body.get("incomingCallContext"), raw_id_of(body.get("target"), "target"))
        return acs_empty(request)
    if action == ":reject":
        await calls.reject(body.get("incomingCallContext"))
        return acs_empty(request)
    raise NotFound(f"No such operation {action}.")


async def connection(request: Request) -> Response:
    """`GET|DELETE /calling/callConnections/{id}` and `POST …/{id}:<action>`."""
    body = await _body(request)
    call_id, action = request.path_params["call_id"], request.path_params.get("action", "")
    service = _service(request)
    if request.method == "GET":
        return acs_json(request, service.calls.props(await service.calls.connection(call_id)))
    if request.method == "DELETE" or action == ":terminate":
        await service.calls.hang_up(call_id, for_everyone=action == ":terminate")
        return acs_empty(request)
    context, url = body.get("operationContext"), body.get("operationCallbackUri")
    if action == ":transferToParticipant":
        target = raw_id_of(body.get("targetParticipant"), "targetParticipant")
        transferee = raw_id_of(body["transferee"], "transferee") if body.get("transferee") else None
        result = await service.participants.transfer(call_id, target, transferee, context=context, url=url)
        return acs_json(request, result, 202)
    if action in (":hold", ":unhold"):
        target = raw_id_of(body.get("targetParticipant"), "targetParticipant")
        await service.participants.hold(call_id, target, action == ":hold")
        return acs_empty(request, 200)
    if action == ":play":
        await service.media.play(call_id, body)
    elif action == ":recognize":
        await service.media.recognize(call_id, body)
    elif action == ":cancelAllMediaOperations":
        await service.media.cancel_all(call_id)
    elif action == ":sendDtmfTones":
        return acs_json(request, await service.media.send_dtmf(call_id, body), 202)
    else:
        raise NotFound(f"No such operation {action}.")
    return acs_empty(request, 202)


async def participants(request: Request) -> Response:
    """`GET …/{id}/participants[/{rawId}]`, `POST …/{id}/participants:add|:remove`."""
    body = await _body(request)
    call_id, action = request.path_params["call_id"], request.path_params.get("action", "")
    calls, participants = _service(request).calls, _service(request).participants
    context, url = body.get("operationContext"), body.get("operationCallbackUri")
    if action == ":add":
        timeout = body.get("invitationTimeoutInSeconds")
        target = raw_id_of(body.get("participantToAdd"), "participantToAdd")
        result = await participants.add_participant(call_id, target, context=context, url=url,
                                                    timeout=float(timeout) if timeout else None)
        return acs_json(request, result, 202)
    if action == ":mute":
        targets = body.get("targetParticipants")
        if not isinstance(targets, list) or len(targets) != 1:
            raise InvalidCallRequest("Exactly one participant can be muted at a time.")
        target = raw_id_of(targets[0], "targetParticipants")
        return acs_json(request, await participants.mute(call_id, target, context))
    if action == ":remove":
        target = raw_id_of(body.get("participantToRemove"), "participantToRemove")
        return acs_json(request, await participants.remove_participant(call_id, target, context=context, url=url), 202)
    if action:
        raise NotFound(f"No such operation {action}.")
    call = await calls.connection(call_id)
    listed = [_participant(p) for p in call["parties"] if p["state"] == "connected"]
    raw_id = request.path_params.get("raw_id")
    if raw_id is None:
        return acs_json(request, {"value": listed})
    found = next((p for p in listed if p["identifier"]["rawId"] == raw_id), None)
    if found is None:
        raise NotFound("Participant not found.", code="8522")
    return acs_json(request, found)


def _participant(party: dict[str, Any]) -> dict[str, Any]:
    return {"identifier": identifier_model(party["rawId"]), "isMuted": party["isMuted"],
            "isOnHold": party["isOnHold"]}


# Recordings ---------------------------------------------------------------------------------------------------
async def start_recording(request: Request) -> Response:
    body = await _body(request)
    return acs_json(request, await _service(request).recordings.start(body))


async def recording(request: Request) -> Response:
    await _body(request)
    recordings = _service(request).recordings
    recording_id, action = request.path_params["recording_id"], request.path_params.get("action", "")
    if request.method == "GET":
        return acs_json(request, await recordings.get(recording_id))
    if request.method == "DELETE":
        await recordings.stop(recording_id)
        return acs_empty(request)
    if action == ":pause":
        await recordings.pause(recording_id)
    elif action == ":resume":
        await recordings.resume(recording_id)
    else:
        raise NotFound(f"No such operation {action}.")
    return acs_empty(request, 202)


async def _storage_request(request: Request) -> None:
    """Authenticate a recording storage request. The SDK signs it with the endpoint's host and port while it goes to
    the recording host (`--recording-host`), naming the endpoint's host in `x-ms-host`: accept that signature too."""
    begin(request)
    try:
        await signed_body(request)
    except Unauthorized:
        endpoint_host = request.headers.get("x-ms-host")
        if not endpoint_host:
            raise
        port = request.headers.get("host", "").rpartition(":")[2]
        headers = dict(request.headers) | {"host": f"{endpoint_host}:{port}" if port.isdigit() else endpoint_host}
        signed_hash = resource(request).check_signature(request.method, path_and_query(request), headers)
        verify_content(signed_hash, hashlib.sha256(b""))  # storage requests (GET, DELETE) carry no body


async def recording_content(request: Request) -> Response:
    """`GET /v1/objects/{documentId}/content/{audio|video|acsmetadata}`: the chunk, ranges allowed."""
    await _storage_request(request)
    recordings = _service(request).recordings
    call, rec = await recordings.chunk(request.path_params["document_id"])
    part = request.path_params["part"]
    if part == "acsmetadata":
        return acs_json(request, recordings.metadata(call, rec))
    if part not in ("audio", "video"):
        raise NotFound("The recording file does not exist.")
    content = media_file(rec["formatType"], rec["accumulatedMs"])
    return _ranged(request, content, CONTENT_TYPES[rec["formatType"]])


def _ranged(request: Request, content: bytes, media_type: str) -> Response:
    match = _RANGE.match(request.headers.get("range", ""))
    if not match:
        return Response(content, media_type=media_type)
    start = int(match.group(1))
    end = min(int(match.group(2)) if match.group(2) else len(content) - 1, len(content) - 1)
    if start >= len(content) or start > end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{len(content)}"})
    return Response(content[start:end + 1], status_code=206, media_type=media_type,
                    headers={"Content-Range": f"bytes {start}-{end}/{len(content)}"})


async def recording_object(request: Request) -> Response:
    """`DELETE /v1/objects/{documentId}` → 200 (the only status the SDK accepts)."""
    await _storage_request(request)
    await _service(request).recordings.delete_chunk(request.path_params["document_id"])
    return Response(status_code=200)


# Simulation ---------------------------------------------------------------------------------------------------
async def _sim_body(request: Request) -> dict[str, Any]:
    begin(request)
    return parse_object(await inbound_body(request), optional=True)


async def sim_dial(request: Request) -> Response:
    """`POST /commgrid/calls` `{"from", "to", "displayName"?}` → 201 the call as dialled."""
    body = await _sim_body(request)
    call = await _service(request).calls.dial(normalize_party(str(body.get("from", ""))),
                                              normalize_party(str(body.get("to", ""))),
                                              str(body.get("displayName") or ""))
    return acs_json(request, sim_view(call), 201)


async def sim_calls(request: Request) -> Response:
    await _sim_body(request)
    return acs_json(request, {"value": [sim_view(c) for c in await _service(request).repo.list_calls()]})


async def sim_call(request: Request) -> Response:
    """`GET /commgrid/calls/{id}`, `POST /commgrid/calls/{id}:answer|:hangup|:press|:say` (`{"as", …}`)."""
    body = await _sim_body(request)
    service, call_id = _service(request), request.path_params["call_id"]
    action = request.path_params.get("action", "")
    result = await sim_action(service, call_id, action, body)
    return acs_json(request, result)


async def sim_action(service: CallingService, call_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """One simulation step (`:answer`, `:hangup`, `:press`, `:say`), played as a scenario step would be."""
    outcome = ""
    if action:
        if action not in (":answer", ":hangup", ":press", ":say"):
            raise NotFound(f"No such simulation step {action}.")
        player = Player(service, service.resource.time_scale, lambda _: None)
        player.call_id = call_id
        await service.repo.get(call_id)  # 404 for an unknown call
        outcome = await player.step(action[1:], body)
    return sim_view(await service.repo.get(call_id)) | ({"outcome": outcome} if outcome else {})


async def sim_group(request: Request) -> Response:
    """`POST /commgrid/calls/groups/{id}:join|:leave` `{"user", "displayName"?, "room"?: bool}`."""
    body = await _sim_body(request)
    service, key, action = _service(request), request.path_params["group_id"], request.path_params["action"]
    user = normalize_party(str(body.get("user", "")))
    room = bool(body.get("room"))
    if action == ":join":
        call = await service.participants.join(user, group_id=None if room else key, room_id=key if room else None,
                                        display_name=str(body.get("displayName") or ""))
    elif action == ":leave":
        call = await service.calls.by_group(key)
        await service.calls.party_hangs_up(call["id"], user)
        call = await service.repo.get(call["id"])
    else:
        raise NotFound(f"No such simulation step {action}.")
    return acs_json(request, sim_view(call))


async def sim_party(request: Request) -> Response:
    """`PUT /commgrid/calls/parties/{rawId}` `{"answer": "auto"|"manual"|"decline"}`."""
    body = await _sim_body(request)
    raw_id = normalize_party(request.path_params["raw_id"])
    await _service(request).calls.set_party_setting(raw_id, str(body.get("answer", "")))
    return acs_json(request, {"party": raw_id, "answer": body.get("answer")})


_CC = "/calling/callConnections"
routes: list[BaseRoute] = [
    Route(_CC, connections, methods=["POST"]),
    Route(_CC + "{action:op}", connections, methods=["POST"]),
    Route(_CC + "/{call_id}/participants", participants, methods=["GET"]),
    Route(_CC + "/{call_id}/participants{action:op}", participants, methods=["POST"]),
    Route(_CC + "/{call_id}/participants/{raw_id}", participants, methods=["GET"]),
    Route(_CC + "/{call_id}{action:op}", connection, methods=["POST"]),
    Route(_CC + "/{call_id}", connection, methods=["GET", "DELETE"]),
    Route("/calling/recordings", start_recording, methods=["POST"]),
    Route("/calling/recordings/{recording_id}{action:op}", recording, methods=["POST"]),
    Route("/calling/recordings/{recording_id}", recording, methods=["GET", "DELETE"]),
    Route("/v1/objects/{document_id}/content/{part}", recording_content, methods=["GET"]),
    Route("/v1/objects/{document_id}", recording_object, methods=["DELETE"]),
    Route("/commgrid/calls", sim_dial, methods=["POST"]),
    Route("/commgrid/calls", sim_calls, methods=["GET"]),
    Route("/commgrid/calls/groups/{group_id}{action:op}", sim_group, methods=["POST"]),
    Route("/commgrid/calls/parties/{raw_id}", sim_party, methods=["PUT"]),
    Route("/commgrid/calls/{call_id}{action:op}", sim_call, methods=["POST"]),
    Route("/commgrid/calls/{call_id}", sim_call, methods=["GET"]),
]
