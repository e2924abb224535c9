"""Settings: one frozen object built by the CLI from flags and `COMMGRID_*` variables, passed down in pieces."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from commgrid.private_files import private_dir, without_password, write_private

DEFAULT_PORT = 7070
DEFAULT_TLS_PORT = 7443
RUNTIME_FILE = "commgrid.json"
# Secrets stay out of the file, and so does what only a worker of `serve --workers N` has.
_NOT_RECORDED = ("data_dir", "management_token", "access_key", "ca_cert", "ca_key", "metrics_dir")


@dataclass(frozen=True)
class Settings:
    """Everything a commgrid process needs to know; no module below `cli.py` reads the environment."""

    data_dir: Path = Path(".commgrid")
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls_port: int = DEFAULT_TLS_PORT
    store_url: str | None = None
    resource_name: str = "commgrid"
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "commgrid"
    location: str = "local"
    #: Divides every delivery delay (retry ladder, TTL, validation expiry): 60 turns minutes into seconds.
    time_scale: float = 1.0
    #: ACS event shapes, `seed` or `current`; None: the choice recorded for the resource (`acs/config.py`).
    event_profile: str | None = None
    #: Phone numbers the Communication Services resource owns from this start on (`--phone-number`).
    phone_numbers: tuple[str, ...] = ()
    #: How long a delivery worker leases the deliveries it claims, in seconds (renewed while it holds them).
    delivery_lease: float = 6.0
    delivery_concurrency: int = 256
    node_id: str = ""
    #: The management API's bearer token; None: the one recorded for the deployment (made on first start).
    management_token: str | None = None
    #: A pinned primary access key of the Communication Services resource (base64); None: the recorded one.
    access_key: str | None = None
    #: A pinned CA (certificate and key, PEM) that issues the server certificate; None: the data dir's own CA.
    ca_cert: Path | None = None
    ca_key: Path | None = None
    #: Host name in recording file URLs (e.g. `recordings.asm.skype.com`, mapped to this machine), which SDKs that
    #: accept only Azure's recording hosts can download from; None: the HTTPS base URL's host.
    recording_host: str | None = None
    #: Longest wait for a request's headers, and for each chunk of its body (`--read-timeout`).
    read_timeout: float = 30.0
    #: A worker of `serve --workers N`: the directory where all of them keep their Prometheus metrics.
    metrics_dir: Path | None = None

    @property
    def effective_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'commgrid.db'}"

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def https_base(self) -> str:
        return f"https://{self.host}:{self.tls_port}"

    @property
    def recording_base(self) -> str:
        return f"https://{self.recording_host}:{self.tls_port}" if self.recording_host else self.https_base

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    # The runtime file lets `commgrid info` and other commands find a data dir's store and ports.
    # It is private (0600 in a 0700 dir) and never holds the store URL's password.
    def write_runtime_file(self) -> None:
        private_dir(self.data_dir)
        fields = {k: v for k, v in asdict(self).items() if k not in _NOT_RECORDED}
        fields["store_url"] = without_password(self.store_url)
        write_private(self.data_dir / RUNTIME_FILE, json.dumps(fields, indent=2, default=str) + "\n")

    @classmethod
    def for_data_dir(cls, data_dir: Path, **overrides: Any) -> Settings:
        """Settings as last written by `commgrid serve` into `data_dir`, with non-None overrides applied."""
        saved: dict[str, Any] = {}
        path = data_dir / RUNTIME_FILE
        if path.exists():
            known = set(cls.__dataclass_fields__)
            saved = {k: v for k, v in json.loads(path.read_text()).items() if k in known}
        saved.update({k: v for k, v in overrides.items() if v is not None})
        return cls(data_dir=data_dir, **saved)
