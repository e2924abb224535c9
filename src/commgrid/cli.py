"""The `commgrid` command line: `serve`, `info`, and the command groups of `commands/`.

Commands act on the data dir's store directly, so they work whether or not a server is running.
Options fall back to `COMMGRID_*` environment variables; nothing below this module reads the environment.
"""

from __future__ import annotations

import urllib.request
from typing import Annotated, Any

import typer
import uvloop

from commgrid import __version__
from commgrid.acs.phone_numbers import number_kind
from commgrid.commands.common import DEFAULT_DIR, DataDir, JsonFlag, StoreUrl, console, err, fail, print_json, run
from commgrid.commands.phone_numbers import phone_number_app
from commgrid.commands.sms import sms_app
from commgrid.commands.subscriptions import deadletter_app, subscription_app
from commgrid.commands.topics import events_app, publish, topic_app, topic_json
from commgrid.config import Settings
from commgrid.errors import CommgridError
from commgrid.events.acs import profile_by_name
from commgrid.logs import configure as configure_logging
from commgrid.private_files import without_password
from commgrid.runtime import Runtime
from commgrid.store.base import Topic
from commgrid.tls import tls_files

app = typer.Typer(help="commgrid: Azure Event Grid and Communication Services on your machine.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(topic_app, name="topic")
app.add_typer(events_app, name="events")
app.add_typer(subscription_app, name="subscription")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(phone_number_app, name="phone-number")
app.add_typer(sms_app, name="sms")
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
    log_level: Annotated[str, typer.Option(envvar="COMMGRID_LOG_LEVEL",
                                           help="debug, info (every delivery step), warning or error.")] = "warning",
    read_timeout: Annotated[float, typer.Option(
        envvar="COMMGRID_READ_TIMEOUT", min=0.1,
        help="Seconds a client may take to send its request headers, and each chunk of its body.")] = 30.0,
) -> None:
    """Start commgrid: HTTP and HTTPS listeners, the store, and delivery."""
    from commgrid.server import serve as run_server

    try:
        configure_logging(log_level)
    except ValueError:
        err.print(f"[red]error:[/red] unknown log level '{log_level}'")
        raise typer.Exit(2) from None
    try:
        profile = profile_by_name(event_profile).name if event_profile else None
        numbers = tuple(n for n in phone_number or () if number_kind(n))
    except (ValueError, CommgridError) as exc:
        err.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
        raise typer.Exit(2) from None
    settings = Settings(data_dir=data_dir, host=host, port=port, tls_port=tls_port, store_url=store,
                        resource_name=resource_name, subscription_id=subscription_id,
                        resource_group=resource_group, time_scale=time_scale, event_profile=profile,
                        phone_numbers=numbers, read_timeout=read_timeout)

    def announce(runtime: Runtime, tls: Any) -> None:
        console.print(f"commgrid {__version__} ready", highlight=False)
        console.print(f"  HTTP   {settings.http_base}", highlight=False)
        if settings.tls_port:
            console.print(f"  HTTPS  {settings.https_base}", highlight=False)
        console.print(f"  CA     {tls.ca_cert.resolve()}", highlight=False)
        console.print(f"  store  {without_password(settings.effective_store_url)}", highlight=False)
        console.print(f"  Communication Services: {runtime.deployment.connection_string(settings.https_base)}",
                      highlight=False, soft_wrap=True)

    try:
        uvloop.run(run_server(settings, announce))  # the server's loop: uvloop, as uvicorn would pick
    except CommgridError as exc:
        raise fail(exc) from None


# info ----------------------------------------------------------------------------------------------------
def _is_running(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"{settings.http_base}/healthz", timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


def info_json(runtime: Runtime, topics: list[Topic]) -> dict[str, Any]:
    s, d = runtime.settings, runtime.deployment
    return {
        "version": __version__,
        "dataDir": str(s.data_dir.resolve()),
        "running": _is_running(s),
        "http": s.http_base,
        "https": s.https_base,
        "caCertificate": str(tls_files(s.data_dir).ca_cert.resolve()),
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
        "topics": [topic_json(t, s) for t in topics if t.kind == "custom"],
    }


@app.command()
def info(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """URLs, CA path, connection string and topics of a data dir (running server or not)."""

    async def collect(runtime: Runtime) -> dict[str, Any]:
        return info_json(runtime, await runtime.grid.list_topics())

    data = run(data_dir, store, collect)
    if as_json:
        print_json(data)
        return
    acs = data["communicationServices"]
    console.print(f"commgrid {data['version']}  ({'running' if data['running'] else 'not running'})",
                  highlight=False)
    for label, key in (("data dir", "dataDir"), ("HTTP", "http"), ("HTTPS", "https"),
                       ("CA certificate", "caCertificate"), ("store", "store")):
        console.print(f"{label:>16}: {data[key]}", highlight=False)
    console.print(f"{'connection str':>16}: {acs['connectionString']}", highlight=False, soft_wrap=True)
    console.print(f"{'ACS resource':>16}: {acs['armId']}", highlight=False, soft_wrap=True)
    console.print(f"{'system topic':>16}: {acs['systemTopic']['armId']}", highlight=False, soft_wrap=True)
    console.print(f"{'event profile':>16}: {acs['eventProfile']}", highlight=False)
    for t in data["topics"]:
        console.print(f"{'topic':>16}: {t['name']}  {t['endpoint']}  ({t['inputSchema']})", highlight=False)
        console.print(f"{'':>16}  key1={t['key1']}  key2={t['key2']}", highlight=False, soft_wrap=True)


@app.command()
def version() -> None:
    """Print commgrid's version."""
    console.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
