"""Communication Services chat REST API: every call azure-communication-chat 1.3.0 makes
(azure-rest-api-specs `specification/communication/data-plane/Chat/stable/2024-03-07`; docs/wire-facts.md,
Chat API details).

Callers authenticate with `Authorization: Bearer <user token>`; each endpoint parses its request, calls one
`ChatService` method and renders the exact success status the SDK accepts (wire-facts: chat API).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from commgrid.acs.chat import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, ChatService, Page
from commgrid.acs.chat_docs import (
    identifier_raw_id,
    metadata_of,
    metadata_patch_of,
    page_size,
    participants_of,
    require_string,
    skip_of,
    time_param,
)
from commgrid.acs.tokens import TokenClaims
from commgrid.acs.validation import parse_object
from commgrid.api.acs.auth import user
from commgrid.api.acs.common import acs_empty, acs_json, begin, require_api_version
from commgrid.api.bodies import read_limited
from commgrid.errors import BadRequest

_MESSAGE_TYPES = ("text", "html")


def _chat(request: Request) -> ChatService:
    return request.app.state.runtime.chat


async def _caller(request: Request) -> TokenClaims:
    """The bearer of the request's user token; the request must name an api-version (any value)."""
    begin(request)
    claims = await user(request)
    require_api_version(request)
    return claims


async def _body(request: Request, *, optional: bool = False) -> dict[str, Any]:
    return parse_object(await read_limited(request), optional=optional)


def _start_time(request: Request) -> int:
    text = request.query_params.get("startTime")
    return time_param(text, "startTime") if text else 0


def _page(request: Request, page: Page, **carried: str | None) -> Response:
    """`{"value": [...], "nextLink"?}` with an absolute nextLink; the SDK replaces its api-version
    (wire-facts: chat API)."""
    body: dict[str, Any] = {"value": page.items}
    more: dict[str, str | None] | None = None
    if page.sync_state is not None:
        more = {"syncState": page.sync_state, **carried}
    elif page.next_skip is not None:
        more = {"skip": str(page.next_skip), **carried}
    if more is not None:
        query = {k: v for k, v in more.items() if v is not None} | {"api-version": request.query_params["api-version"]}
        body["nextLink"] = str(request.url.replace(path=quote(request.url.path, safe="/"), query=urlencode(query)))
    return acs_json(request, body)


def _page_size(request: Request) -> int:
    return page_size(request.query_params.get("maxPageSize"), DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


# threads --------------------------------------------------------------------------------------------------
async def create_thread(request: Request) -> Response:
    caller = await _caller(request)
    body = await _body(request)
    topic = require_string(body, "topic", required=True, empty=False) or ""
    thread, invalid = await _chat(request).create_thread(
        caller, topic, participants_of(body.get("participants")), metadata_of(body),
        request.headers.get("repeatability-request-id"),
    )
    result: dict[str, Any] = {"chatThread": thread.properties()}
    if invalid:
        result["invalidParticipants"] = invalid
    response = acs_json(request, result, 201)
    response.headers["Location"] = str(request.url.replace(path=f"/chat/threads/{quote(thread.id, safe='')}",
                                                           query=""))
    return response


async def list_threads(request: Request) -> Response:
    caller = await _caller(request)
    page = await _chat(request).list_threads(caller, _page_size(request), _start_time(request),
                                             request.query_params.get("syncState"))
    return _page(request, page, startTime=request.query_params.get("startTime"),
                 maxPageSize=request.query_params.get("maxPageSize"))


async def get_thread(request: Request) -> Response:
    caller = await _caller(request)
    return acs_json(request, await _chat(request).get_thread(caller, request.path_params["thread_id"]))


async def update_thread(request: Request) -> Response:
    caller = await _caller(request)
    body = await _body(request)
    topic = require_string(body, "topic", empty=False)
    await _chat(request).update_thread(caller, request.path_params["thread_id"], topic, metadata_patch_of(body))
    return acs_empty(request)


async def delete_thread(request: Request) -> Response:
    caller = await _caller(request)
    await _chat(request).delete_thread(caller, request.path_params["thread_id"])
    return acs_empty(request)


# messages -------------------------------------------------------------------------------------------------
async def send_message(request: Request) -> Response:
    caller = await _caller(request)
    body = await _body(request)
    content = require_string(body, "content", required=True, empty=False)
    kind = require_string(body, "type") or "text"
    if kind not in _MESSAGE_TYPES:
        raise BadRequest(f"Message type '{kind}' cannot be sent; use text or html.")
    thread_id = request.path_params["thread_id"]
    message_id = await _chat(request).send_message(
        caller, thread_id, content or "", kind, require_string(body, "senderDisplayName"), metadata_of(body)
    )
    response = acs_json(request, {"id": message_id}, 201)
    path = f"/chat/threads/{quote(thread_id, safe='')}/messages/{message_id}"
    response.headers["Location"] = str(request.url.replace(path=path, query=""))
    return response


async def list_messages(request: Request) -> Response:
    caller = await _caller(request)
    page = await _chat(request).list_messages(caller, request.path_params["thread_id"], _page_size(request),
                                              _start_time(request), request.query_params.get("syncState"))
    return _page(request, page, startTime=request.query_params.get("startTime"),
                 maxPageSize=request.query_params.get("maxPageSize"))


async def get_message(request: Request) -> Response:
    caller = await _caller(request)
    p = request.path_params
    return acs_json(request, await _chat(request).get_message(caller, p["thread_id"], p["message_id"]))


async def update_message(request: Request) -> Response:
    caller = await _caller(request)
    body = await _body(request)
    p = request.path_params
    await _chat(request).update_message(caller, p["thread_id"], p["message_id"], require_string(body, "content"),
                                        metadata_patch_of(body))
    return acs_empty(request)


async def delete_message(request: Request) -> Response:
    caller = await _caller(request)
    p = request.path_params
    await _chat(request).delete_message(caller, p["thread_id"], p["message_id"])
    return acs_empty(request)


# participants ---------------------------------------------------------------------------------------------
async def list_participants(request: Request) -> Response:
    caller = await _caller(request)
    page = await _chat(request).list_participants(caller, request.path_params["thread_id"], _page_size(request),
                                                  skip_of(request.query_params.get("skip")))
    return _page(request, page, maxPageSize=request.query_params.get("maxPageSize"))


async def add_participants(request: Request) -> Response:
    caller = await _caller(request)
    body = await _body(request)
    if not isinstance(body.get("participants"), list):
        raise BadRequest("'participants' is required.")
    invalid = await _chat(request).add_participants(caller, request.path_params["thread_id"],
                                                    participants_of(body["participants"]))
    return acs_json(request, {"invalidParticipants": invalid} if invalid else {}, 201)


async def remove_participant(request: Request) -> Response:
    caller = await _caller(request)
    raw_id = identifier_raw_id(await _body(request))  # the bare identifier (Chat spec)
    await _chat(request).remove_participant(caller, request.path_params["thread_id"], raw_id)
    return acs_empty(request)


# read receipts and typing ---------------------------------------------------------------------------------
async def send_read_receipt(request: Request) -> Response:
    caller = await _caller(request)
    body = await _body(request)
    message_id = require_string(body, "chatMessageId", required=True, empty=False)
    await _chat(request).send_read_receipt(caller, request.path_params["thread_id"], message_id or "")
    return acs_empty(request, 200)


async def list_read_receipts(request: Request) -> Response:
    caller = await _caller(request)
    page = await _chat(request).list_read_receipts(caller, request.path_params["thread_id"], _page_size(request),
                                                   skip_of(request.query_params.get("skip")))
    return _page(request, page, maxPageSize=request.query_params.get("maxPageSize"))


async def send_typing_notification(request: Request) -> Response:
    caller = await _caller(request)
    require_string(await _body(request, optional=True), "senderDisplayName")
    await _chat(request).send_typing_notification(caller, request.path_params["thread_id"])
    return acs_empty(request, 200)


_THREAD = "/chat/threads/{thread_id}"
routes: list[BaseRoute] = [
    Route("/chat/threads", create_thread, methods=["POST"]),
    Route("/chat/threads", list_threads, methods=["GET"]),
    Route(_THREAD, get_thread, methods=["GET"]),
    Route(_THREAD, update_thread, methods=["PATCH"]),
    Route(_THREAD, delete_thread, methods=["DELETE"]),
    Route(_THREAD + "/messages", send_message, methods=["POST"]),
    Route(_THREAD + "/messages", list_messages, methods=["GET"]),
    Route(_THREAD + "/messages/{message_id}", get_message, methods=["GET"]),
    Route(_THREAD + "/messages/{message_id}", update_message, methods=["PATCH"]),
    Route(_THREAD + "/messages/{message_id}", delete_message, methods=["DELETE"]),
    Route(_THREAD + "/participants", list_participants, methods=["GET"]),
    Route(_THREAD + "/participants/:add", add_participants, methods=["POST"]),
    Route(_THREAD + "/participants/:remove", remove_participant, methods=["POST"]),
    Route(_THREAD + "/readReceipts", send_read_receipt, methods=["POST"]),
    Route(_THREAD + "/readReceipts", list_read_receipts, methods=["GET"]),
    Route(_THREAD + "/typing", send_typing_notification, methods=["POST"]),
]
