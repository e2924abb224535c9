"""The `commgrid` command line: `serve`, `info`, `reset`, and the command groups of `commands/`.

Commands act on the data dir's store directly, so they work whether or not a server is running.
Options fall back to `COMMGRID_*` environment variables; nothing below this module reads the environment.
Heavy modules (the server stack, the Azure-shaped services) load only when a command runs, so `--help` is quick.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shlex
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from commgrid import __version__
from commgrid.commands.calls import call_app
from commgrid.commands.common import (
    DEFAULT_DIR,
    DataDir,
    JsonFlag,
    StoreUrl,
    console,
    err,
    fail,
    print_json,
    resolve_data_dir,
    run,
    settings_for,
)
from commgrid.commands.namespaces import namespace_app, pull
from commgrid.commands.phone_numbers import phone_number_app
from commgrid.commands.replay import replay
from commgrid.commands.sms import sms_app
from commgrid.commands.store import store_app
from commgrid.commands.subscriptions import deadletter_app, subscription_app
from commgrid.commands.topics import events_app, publish, topic_app, topic_json
from commgrid.config import Settings
from commgrid.errors import CommgridError
from commgrid.private_files import without_password
from commgrid.store.errors import StoreError

if TYPE_CHECKING:
    from commgrid.runtime import Runtime
    from commgrid.store.base import Topic

# Plain help text: rich's option tables cut long flag names (`--included-even…`) in an 80-column terminal.
typer.core.HAS_RICH = False

app = typer.Typer(help="commgrid: Azure Event Grid and Communication Services on your machine.",
                  no_args_is_help=True, add_completion=False, context_settings={"max_content_width": 120})
app.add_typer(topic_app, name="topic")
app.add_typer(events_app, name="events")
app.add_typer(subscription_app, name="subscription")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(phone_number_app, name="phone-number")
app.add_typer(sms_app, name="sms")
app.add_typer(namespace_app, name="namespace")
app.add_typer(call_app, name="call")
app.add_typer(store_app, name="store")
subscription_app.command("replay")(replay)
ca_app = typer.Typer(help="A CA to pin, so clients trust every commgrid started with it.", no_args_is_help=True)
app.add_typer(ca_app, name="ca")
app.command()(pull)
app.command()(publish)


# serve ---------------------------------------------------------------------------------------------------
@app.command()
def serve(
    data_dir: DataDir = DEFAULT_DIR,
    host: Annotated[str, typer.Option(envvar="COMMGRID_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="COMMGRID_PORT", help="Plain HTTP port.")] = 7070,
    tls_port: Annotated[int, typer.Option(envvar="COMMGRID_TLS_PORT", help="HTTPS port (0: none).")] = 7443,
    store: StoreUrl = None,
    resource_name: Annotated[
        str, typer.Option(envvar="COMMGRID_RESOURCE_NAME", help="Communication Services resource name (first start).")
    ] = "commgrid",
    subscription_id: Annotated[str, typer.Option(
        envvar="COMMGRID_SUBSCRIPTION_ID", help="Azure subscription id in ARM ids (first start).")
    ] = "00000000-0000-0000-0000-000000000000",
    resource_group: Annotated[str, typer.Option(
        envvar="COMMGRID_RESOURCE_GROUP", help="Resource group in ARM ids (first start).")] = "commgrid",
    time_scale: Annotated[float, typer.Option(envvar="COMMGRID_TIME_SCALE",
                                              help="Divide every delivery delay by this factor.")] = 1.0,
    event_profile: Annotated[str | None, typer.Option(
        envvar="COMMGRID_EVENT_PROFILE",
        help="Communication Services event shapes: seed (the seed documents) or current (Azure today); "
             "recorded for the resource. Default: the recorded choice, else seed.")] = None,
    phone_number: Annotated[list[str] | None, typer.Option(
        "--phone-number", envvar="COMMGRID_PHONE_NUMBERS",
        help="A phone number (E.164) or short code the resource owns (repeat; env: space-separated).")] = None,
    recording_host: Annotated[str | None, typer.Option(
        envvar="COMMGRID_RECORDING_HOST",
        help="Host name in recording file URLs, e.g. recordings.asm.skype.com mapped to this machine "
             "(added to a new TLS certificate).")] = None,
    log_level: Annotated[str, typer.Option(envvar="COMMGRID_LOG_LEVEL",
                                           help="sql, debug, info (every delivery step), warning or error.")
                         ] = "warning",
    management_token: Annotated[str | None, typer.Option(
        envvar="COMMGRID_MANAGEMENT_TOKEN",
        help="Bearer token of the management (ARM) API; default: the one made on first start.")] = None,
    access_key: Annotated[str | None, typer.Option(
        envvar="COMMGRID_ACCESS_KEY", help="Pin the Communication Services primary access key (base64).")] = None,
    ca_cert: Annotated[Path | None, typer.Option(
        envvar="COMMGRID_CA_CERT", help="Pin a CA certificate (PEM; see `commgrid ca create`) with --ca-key.")
    ] = None,
    ca_key: Annotated[Path | None, typer.Option(envvar="COMMGRID_CA_KEY", help="The pinned CA's private key.")
                      ] = None,
    read_timeout: Annotated[float, typer.Option(
        envvar="COMMGRID_READ_TIMEOUT", min=0.1,
        help="Seconds a client may take to send its request headers, and each chunk of its body.")] = 30.0,
    workers: Annotated[int, typer.Option(
        envvar="COMMGRID_WORKERS", min=1,
        help="Serving processes sharing the ports and the store: one per core uses every core.")] = 1,
) -> None:
    """Start commgrid: HTTP and HTTPS listeners, the store, and delivery."""
    from commgrid import faults
    from commgrid.acs.phone_numbers import number_kind
    from commgrid.events.profiles import profile_by_name
    from commgrid.logs import configure as configure_logging

    try:
        configure_logging(log_level)
    except ValueError:
        err.print(f"[red]error:[/red] unknown log level '{log_level}'")
        raise typer.Exit(2) from None
    try:
        profile = profile_by_name(event_profile).name if event_profile else None
        numbers = tuple(n for n in phone_number or () if number_kind(n))
        _check_pins(access_key, ca_cert, ca_key)
    except (ValueError, CommgridError) as exc:
        err.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
        raise typer.Exit(2) from None
    settings = Settings(data_dir=resolve_data_dir(data_dir), host=host, port=port, tls_port=tls_port,
                        store_url=store, resource_name=resource_name, subscription_id=subscription_id,
                        resource_group=resource_group, time_scale=time_scale, event_profile=profile,
                        phone_numbers=numbers, management_token=management_token or None,
                        access_key=access_key or None, ca_cert=ca_cert, ca_key=ca_key,
                        recording_host=recording_host, read_timeout=read_timeout)
    faults.arm(os.environ.get("COMMGRID_FAULT"))  # test-only crash point; see commgrid.faults
    _serve(settings, workers, log_level)


def _check_pins(access_key: str | None, ca_cert: Path | None, ca_key: Path | None) -> None:
    if access_key:
        try:
            base64.b64decode(access_key, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("--access-key must be base64, as Azure's access keys are.") from None
    if bool(ca_cert) != bool(ca_key):
        raise ValueError("--ca-cert and --ca-key go together (`commgrid ca create DIR` makes both).")
    for path in (ca_cert, ca_key):
        if path and not path.is_file():
            raise ValueError(f"{path} does not exist.")


def _serve(settings: Settings, workers: int = 1, log_level: str = "warning") -> None:
    from commgrid.server import event_loop_runner
    from commgrid.server import serve as run_server

    def announce(runtime: Runtime, tls: Any) -> None:
        d = runtime.deployment
        shown = [("HTTP", settings.http_base), ("HTTPS", settings.https_base if settings.tls_port else "off"),
                 ("CA", str(tls.ca_cert.resolve())), ("data dir", str(settings.data_dir)),
                 ("store", without_password(settings.effective_store_url)),
                 ("connection", d.connection_string(settings.https_base)),
                 ("event profile", runtime.acs.profile.name),
                 ("phone numbers", " ".join(settings.phone_numbers) or "none given (commgrid phone-number add)"),
                 ("time scale", f"{settings.time_scale:g}" + (" (delivery delays divided by it)"
                                                             if settings.time_scale != 1 else "")),
                 ("management", f"{settings.https_base}  token {d.management_token}  "
                                f"(subscription {d.subscription_id}, resource group {d.resource_group})"),
                 ("dashboard", f"{settings.http_base}/dashboard"), ("metrics", f"{settings.http_base}/metrics")]
        if workers > 1:
            shown.append(("workers", f"{workers} processes sharing the ports and the store"))
        console.print(f"commgrid {__version__} ready", highlight=False)
        for label, value in shown:
            console.print(f"  {label:<14}{value}", highlight=False, soft_wrap=True)
        sys.stdout.flush()  # a pipe or a container log sees the banner now, not at exit

    try:
        if workers > 1:
            from commgrid import workers as pool

            pool.run(settings, workers, log_level, announce, event_loop_runner())
        else:
            event_loop_runner()(run_server(settings, announce))
    except (CommgridError, StoreError) as exc:
        raise fail(exc) from None


# info ----------------------------------------------------------------------------------------------------
def _server_answering(settings: Settings) -> dict[str, Any] | None:
    """What the server on the data dir's port says of itself, or None when nothing answers there."""
    try:
        with urllib.request.urlopen(f"{settings.http_base}/healthz", timeout=0.5) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _running(settings: Settings, immutable_id: str) -> bool:
    """Whether this data dir's server is running; a different server on its port is an error, not a no."""
    health = _server_answering(settings)
    if health is None:
        return False
    if health.get("immutableResourceId") not in (None, immutable_id):
        raise CommgridError(
            f"A commgrid server answers on {settings.http_base}, but it serves another store than"
            f" {settings.effective_store_url} (data dir {settings.data_dir}). Pass the --data-dir (or --store) that"
            " server uses, or stop it.", code="AnotherServer")
    return True


def info_json(runtime: Runtime, topics: list[Topic]) -> dict[str, Any]:
    from commgrid.tls import ensure_certificates

    s, d = runtime.settings, runtime.deployment
    return {
        "version": __version__,
        "dataDir": str(s.data_dir.resolve()),
        "running": _running(s, d.immutable_id),
        "http": s.http_base,
        "https": s.https_base,
        "caCertificate": str(ensure_certificates(s.data_dir, extra_hosts=(s.host,)).ca_cert.resolve()),
        "store": without_password(s.effective_store_url),
        "communicationServices": {
            "resourceName": d.resource_name,
            "armId": d.acs_arm_id,
            "endpoint": s.https_base + "/",
            "accessKey": d.access_key,
            "connectionString": d.connection_string(s.https_base),
            "eventProfile": runtime.acs.profile.name,
            "systemTopic": {"name": d.system_topic_name, "armId": d.system_topic_arm_id, "source": d.acs_arm_id},
        },
        "management": {"endpoint": s.https_base, "token": d.management_token, "subscriptionId": d.subscription_id,
                       "resourceGroup": d.resource_group},
        "topics": [topic_json(t, s) for t in topics if t.kind == "custom"],
    }


@app.command()
def info(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """URLs, CA path, connection string, management token and topics of a data dir (running server or not)."""

    async def collect(runtime: Runtime) -> dict[str, Any]:
        return info_json(runtime, await runtime.grid.list_topics())

    data = run(data_dir, store, collect)
    if as_json:
        print_json(data)
        return
    acs, management = data["communicationServices"], data["management"]
    console.print(f"commgrid {data['version']}  ({'running' if data['running'] else 'not running'})",
                  highlight=False)
    rows = [("data dir", data["dataDir"]), ("HTTP", data["http"]), ("HTTPS", data["https"]),
            ("CA certificate", data["caCertificate"]), ("store", data["store"]),
            ("connection str", acs["connectionString"]), ("ACS resource", acs["armId"]),
            ("system topic", acs["systemTopic"]["armId"]), ("event profile", acs["eventProfile"]),
            ("management API", f"{management['endpoint']}  subscription {management['subscriptionId']},"
                               f" resource group {management['resourceGroup']}"),
            ("management token", management["token"])]
    for label, value in rows:
        console.print(f"{label:>16}: {value}", highlight=False, soft_wrap=True)
    for t in data["topics"]:
        console.print(f"{'topic':>16}: {t['name']}  {t['endpoint']}  ({t['inputSchema']})", highlight=False)
        console.print(f"{'':>16}  key1={t['key1']}  key2={t['key2']}", highlight=False, soft_wrap=True)


# reset and ca --------------------------------------------------------------------------------------------
@app.command()
def reset(
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    keep_ca: Annotated[bool, typer.Option("--keep-ca/--new-ca", help="Keep the data dir's CA (trusted already).")
                       ] = True,
) -> None:
    """Forget everything: topics, subscriptions, events, identities, keys (the server must be stopped)."""
    settings = settings_for(data_dir, store)
    if _server_answering(settings) is not None:
        err.print(f"[red]error:[/red] a server answers on {settings.http_base}; stop it before resetting.")
        raise typer.Exit(1)
    what = settings.effective_store_url
    if not yes and not typer.confirm(f"Delete everything in {what} (data dir {settings.data_dir})?"):
        raise typer.Exit(1)
    run_store_reset(settings)
    (settings.data_dir / "commgrid.json").unlink(missing_ok=True)
    if not keep_ca:
        shutil.rmtree(settings.data_dir / "tls", ignore_errors=True)
    console.print(f"reset {what}", highlight=False)


def run_store_reset(settings: Settings) -> None:
    import asyncio

    from commgrid.store import store_from_url

    async def main() -> None:
        store = store_from_url(settings.effective_store_url)
        await store.open()
        try:
            await store.reset()
        finally:
            await store.close()

    try:
        asyncio.run(main())
    except (CommgridError, StoreError) as exc:
        raise fail(exc) from None


@ca_app.command("create")
def ca_create(directory: Annotated[Path, typer.Argument(help="Where to write ca.pem and ca-key.pem.")]) -> None:
    """Make a CA to pin: `serve --ca-cert DIR/ca.pem --ca-key DIR/ca-key.pem` (or COMMGRID_CA_CERT/_KEY)."""
    from commgrid.tls import write_ca

    if (directory / "ca.pem").exists() or (directory / "ca-key.pem").exists():
        err.print(f"[red]error:[/red] {directory} already holds a CA; remove it first or choose another folder.")
        raise typer.Exit(1)
    cert, key = write_ca(directory)
    console.print(f"CA certificate {cert}\nCA private key {key} (keep it private)", highlight=False)


@app.command()
def version() -> None:
    """Print commgrid's version."""
    console.print(__version__)


#: az's flags that take several words: `--included-event-types A B` means the flag once per word.
_MANY_WORDS = frozenset({"--included-event-types", "--labels", "--event-type"})
#: az's flags whose words make one value: `--advanced-filter data.n NumberIn 1 2`.
_ONE_VALUE_OF_WORDS = frozenset({"--advanced-filter", "--delivery-attribute-mapping"})


def az_words(argv: list[str]) -> list[str]:
    """Accept az's multi-word flags as well as commgrid's repeated (or quoted) ones."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        flag = argv[i]
        i += 1
        out.append(flag)
        if flag not in _MANY_WORDS and flag not in _ONE_VALUE_OF_WORDS:
            continue
        words: list[str] = []
        while i < len(argv) and not argv[i].startswith("--"):
            words.append(argv[i])
            i += 1
        if flag in _ONE_VALUE_OF_WORDS or len(words) < 2:
            out.extend([" ".join(shlex.quote(w) if " " in w else w for w in words)] if len(words) > 1 else words)
        else:
            out.extend([words[0], *(x for w in words[1:] for x in (flag, w))])
    return out


def main() -> None:
    app(args=az_words(sys.argv[1:]), prog_name="commgrid")


if __name__ == "__main__":
    main()
