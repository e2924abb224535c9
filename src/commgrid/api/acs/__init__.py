"""Communication Services REST APIs, served on the same listeners as Event Grid (the SDKs need HTTPS)."""

from __future__ import annotations

from commgrid.api.acs import calling, chat, identity, sms

routes = [*identity.routes, *sms.routes, *chat.routes, *calling.routes]
