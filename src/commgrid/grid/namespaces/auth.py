"""Namespace publisher and consumer authentication: `SharedAccessKey <key>` or a SAS token.

The data plane accepts `Authorization: SharedAccessKey <key>` (what `AzureKeyCredential` sends),
`Authorization: SharedAccessSignature r=…&e=…&s=…`, and the classic `aeg-sas-key` / `aeg-sas-token` headers.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

from commgrid.errors import Unauthorized
from commgrid.grid.auth import authenticate

_KEY_PREFIX = "sharedaccesskey "


def authenticate_namespace(
    url: str, headers: Mapping[str, str], query: Mapping[str, str], keys: tuple[str, ...]
) -> None:
    """Accept the request if it carries one of the namespace's `keys` or a SAS token signed with one."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith(_KEY_PREFIX):
        key = authorization[len(_KEY_PREFIX):].strip()
        if any(k and hmac.compare_digest(key.encode(), k.encode()) for k in keys):
            return
        raise Unauthorized("The request authorization key is not authorized for this namespace.")
    authenticate(url, headers, query, keys, datetime.now(UTC))
