"""Communication Services SMS REST API (azure-rest-api-specs
`specification/communication/data-plane/Sms/stable/2021-03-07`), and commgrid's inbound-SMS endpoint.

`POST /commgrid/sms/inbound` is commgrid's own (the real service receives SMS from carriers): it takes
`{"from", "to", "message"}` and publishes `Microsoft.Communication.SMSReceived`, as `commgrid sms receive` does.
It is authenticated like the SMS API, by an HMAC signature with either access key, or more simply by sending
one access key as it is in the `x-commgrid-access-key` header.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from commgrid.acs.sms import SendRequest, SmsService
from commgrid.acs.validation import parse_object, required
from commgrid.api.acs.auth import resource, signed_body
from commgrid.api.acs.common import acs_json, begin, require_api_version
from commgrid.api.bodies import read_limited
from commgrid.errors import Unauthorized

ACCESS_KEY_HEADER = "x-commgrid-access-key"


def _service(request: Request) -> SmsService:
    return request.app.state.runtime.sms


async def send(request: Request) -> Response:
    """`POST /sms` → 202 `{"value": [SmsSendResponseItem, ...]}`, one item per recipient."""
    begin(request)
    body = await signed_body(request)
    require_api_version(request)
    results = await _service(request).send(SendRequest.from_json(parse_object(body)))
    return acs_json(request, {"value": results}, 202)


async def inbound_body(request: Request) -> bytes:
    key = request.headers.get(ACCESS_KEY_HEADER)
    if key is None:
        return await signed_body(request)
    deployment = resource(request).deployment
    if not any(hmac.compare_digest(key.encode(), k.encode())
               for k in (deployment.access_key, deployment.secondary_key)):
        raise Unauthorized("Denied by the resource provider.", code="Denied")
    return await read_limited(request)


async def inbound(request: Request) -> Response:
    """`POST /commgrid/sms/inbound` → 202 with the received message as the event describes it."""
    begin(request)
    body = parse_object(await inbound_body(request))
    fields: dict[str, str] = {}
    for name in ("from", "to", "message"):
        value = body.get(name)
        if not isinstance(value, str) or (name != "message" and not value):
            raise required(name.title())
        fields[name] = value
    sms = await _service(request).receive(fields["from"], fields["to"], fields["message"])
    return acs_json(request, {"messageId": sms.message_id, "from": sms.from_, "to": sms.to, "message": sms.message,
                              "receivedTimestamp": sms.received_at.isoformat(), "segmentCount": sms.segment_count},
                    202)


routes: list[BaseRoute] = [
    Route("/sms", send, methods=["POST"]),
    Route("/commgrid/sms/inbound", inbound, methods=["POST"]),
]
