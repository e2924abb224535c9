"""A router for ARM paths, which Azure Resource Manager matches case-insensitively.

Templates use `{name}` for one path segment and `{name:path}` for several (a resource id used as a scope).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from commgrid.errors import CommgridError, NotFound


class MethodNotAllowed(CommgridError, status=405, code="MethodNotAllowed"):
    """The resource does not support this HTTP method."""


@dataclass
class ArmCall:
    """One management request: the HTTP request, what its path named, and the runtime serving it."""

    request: Request
    params: dict[str, str]
    runtime: Any
    _body: Any = field(default=None, repr=False)


Handler = Callable[[ArmCall], Awaitable[Response]]
_PARAM = re.compile(r"\{(\w+)(:path)?\}")


def _compile(template: str) -> re.Pattern[str]:
    pattern, last = "", 0
    for m in _PARAM.finditer(template):
        pattern += re.escape(template[last:m.start()])
        pattern += f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})"
        last = m.end()
    return re.compile(pattern + re.escape(template[last:]) + "/?", re.IGNORECASE)


class ArmRouter:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        self._routes.append((method.upper(), _compile(template), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler for `method` on `path`, and the path's parameters; the first route that matches wins."""
        allowed = False
        for route_method, pattern, handler in self._routes:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            if route_method == method.upper():
                return handler, m.groupdict()
            allowed = True
        if allowed:
            raise MethodNotAllowed(f"The requested resource does not support http method '{method}'.")
        raise NotFound(f"No management operation is known for '{path}'. commgrid serves Microsoft.EventGrid topics,"
                       " system topics and event subscriptions, and its Microsoft.Communication resource.",
                       code="InvalidResourceType")
