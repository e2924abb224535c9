"""The operator console at `/dashboard`: one page, its JSON reads, a live event stream, and two actions.

Access rules are in `console/access.py`: open on a loopback-only server, else the management credential;
actions (redeliver, simulate an inbound SMS) also need the page's CSRF token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from commgrid.console import access, views
from commgrid.console.journey import event_summary, journey
from commgrid.errors import BadRequest, Forbidden, NotFound, Unauthorized
from commgrid.jsonresponse import json_response
from commgrid.runtime import Runtime
from commgrid.store.base import EventQuery, Missing

STATIC = resources.files("commgrid.console") / "static"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
PAGE_SIZE = 50
KEEPALIVE = 15.0


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _guard(request: Request) -> None:
    if not access.authorized(request):
        raise Unauthorized("The dashboard needs the management token (`commgrid info` shows it) when commgrid"
                           " listens beyond loopback.", code="AuthenticationFailed")


def _guard_action(request: Request) -> None:
    _guard(request)
    if not access.same_origin(request):
        raise Forbidden("This action must come from the dashboard page (missing or wrong X-CSRF-Token, or"
                        " another Origin).", code="CrossSiteRequestRejected")


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON.", code="InvalidRequest") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="InvalidRequest")
    return body


# the page --------------------------------------------------------------------------------------------------
async def page(request: Request) -> Response:
    if not access.authorized(request):
        return HTMLResponse((STATIC / "login.html").read_text(), status_code=401)
    token = access.csrf_token(_runtime(request).deployment.management_token)
    html = (STATIC / "index.html").read_text().replace("{{csrf}}", token)
    return HTMLResponse(html, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        raise NotFound(f"No dashboard asset '{name}'.")
    return Response((STATIC / name).read_bytes(), media_type=ASSETS[name])


async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = (form.get("token") or [""])[0]
    if not access.token_matches(request, given):
        return HTMLResponse((STATIC / "login.html").read_text().replace("<!--error-->", "<p class=error>That is"
                            " not this commgrid's management token.</p>"), status_code=401)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(access.COOKIE, access.session_value(_runtime(request).deployment.management_token),
                        httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


# reads -------------------------------------------------------------------------------------------------------
async def overview(request: Request) -> Response:
    _guard(request)
    return json_response(await views.overview(_runtime(request)))


def _query(request: Request) -> EventQuery:
    q = request.query_params
    before = q.get("before")
    return EventQuery(topic=q.get("topic") or None, type=q.get("type") or None, subject=q.get("subject") or None,
                      id=q.get("id") or None, before_seq=int(before) if before and before.isdigit() else None)


async def events(request: Request) -> Response:
    _guard(request)
    found = await _runtime(request).store.search_events(_query(request), limit=PAGE_SIZE)
    more = found[-1].seq if len(found) == PAGE_SIZE else None
    return json_response({"events": [event_summary(e) for e in found], "before": more})


async def event_journey(request: Request) -> Response:
    _guard(request)
    store = _runtime(request).store
    try:
        event = await store.event_by_seq(int(request.path_params["seq"]))
    except Missing:
        raise NotFound(f"Event {request.path_params['seq']} was not found.") from None
    return json_response(await journey(store, event))


def _matches(event: dict[str, Any], query: EventQuery) -> bool:
    return ((not query.topic or event["topic"].lower() == query.topic.lower())
            and (not query.type or event["type"] == query.type)
            and (not query.subject or event["subject"].startswith(query.subject))
            and (not query.id or event["id"] == query.id))


async def stream(request: Request) -> Response:
    """Server-sent events: `data:` lines of new event summaries matching the page's search."""
    _guard(request)
    feed = _runtime(request).feed
    query = _query(request)
    queue = feed.watch()

    async def lines() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            while True:
                try:
                    update = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                shown = [e for e in update["events"] if _matches(e, query)]
                if shown or update["skipped"]:
                    yield b"data: " + orjson.dumps({"events": shown, "skipped": update["skipped"]}) + b"\n\n"
        finally:
            feed.unwatch(queue)

    return StreamingResponse(lines(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def dead_letters(request: Request) -> Response:
    _guard(request)
    q = request.query_params
    found = await _runtime(request).store.list_dead_letters(q.get("topic") or None, q.get("subscription") or None,
                                                            limit=views.LIST_LIMIT)
    return json_response({"deadLetters": [views.dead_letter_json(d) for d in found]})


async def communication(request: Request) -> Response:
    _guard(request)
    return json_response(await views.communication(_runtime(request)))


# actions -----------------------------------------------------------------------------------------------------
async def redeliver(request: Request) -> Response:
    """`{"ids": [...]}`, or `{"topic", "subscription"}` for every dead letter of a subscription."""
    _guard_action(request)
    body = await _body(request)
    runtime = _runtime(request)
    ids = body.get("ids")
    if ids is None:
        topic, name = body.get("topic"), body.get("subscription")
        if not isinstance(topic, str) or not isinstance(name, str):
            raise BadRequest("Give 'ids', or 'topic' and 'subscription'.", code="InvalidRequest")
        ids = [d.id for d in await runtime.subscriptions.dead_letters(topic, name, limit=1_000_000)]
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise BadRequest("'ids' must be a list of dead-letter ids.", code="InvalidRequest")
    moved = await runtime.subscriptions.redeliver(ids)
    if runtime.delivery is not None:
        runtime.delivery.wake()
    return json_response({"redelivered": moved})


async def receive_sms(request: Request) -> Response:
    """Simulate an SMS arriving at an owned number (`commgrid sms receive`)."""
    _guard_action(request)
    body = await _body(request)
    values = [v for k in ("from", "to", "message") if isinstance(v := body.get(k), str)]
    if len(values) != 3:
        raise BadRequest("Give 'from', 'to' and 'message' as strings.", code="InvalidRequest")
    sms = await _runtime(request).sms.receive(*values)
    return json_response({"messageId": sms.message_id, "from": sms.from_, "to": sms.to,
                          "receivedTimestamp": sms.received_at.isoformat()})


routes = [
    Route("/dashboard", page, methods=["GET"]),
    Route("/dashboard/login", login, methods=["POST"]),
    Route("/dashboard/static/{name}", asset, methods=["GET"]),
    Route("/dashboard/api/overview", overview, methods=["GET"]),
    Route("/dashboard/api/events", events, methods=["GET"]),
    Route("/dashboard/api/events/{seq:int}", event_journey, methods=["GET"]),
    Route("/dashboard/api/stream", stream, methods=["GET"]),
    Route("/dashboard/api/deadletters", dead_letters, methods=["GET"]),
    Route("/dashboard/api/deadletters/redeliver", redeliver, methods=["POST"]),
    Route("/dashboard/api/communication", communication, methods=["GET"]),
    Route("/dashboard/api/communication/sms/receive", receive_sms, methods=["POST"]),
]

