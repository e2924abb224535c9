"""A newcomer's first hour: where state lives, what `info` says, resetting, pinning, and the CLI's papercuts."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx

from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess, clean_env, cli, free_port


def commgrid(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """`commgrid ARGS` as a user types it: no --data-dir unless given."""
    return subprocess.run([sys.executable, "-m", "commgrid.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=clean_env(**env))


def test_the_data_dir_is_found_the_same_way_from_any_folder(tmp_path) -> None:
    project = tmp_path / "project"
    (project / ".commgrid").mkdir(parents=True)
    (project / "src" / "deep").mkdir(parents=True)
    home_data = tmp_path / "xdg"
    ports = json.dumps({"port": free_port(), "tls_port": free_port()})
    (project / ".commgrid" / "commgrid.json").write_text(ports)
    from_root = commgrid("info", "--json", cwd=project, XDG_DATA_HOME=str(home_data))
    from_deep = commgrid("info", "--json", cwd=project / "src" / "deep", XDG_DATA_HOME=str(home_data))
    assert from_root.returncode == 0, from_root.stderr
    assert json.loads(from_root.stdout)["dataDir"] == json.loads(from_deep.stdout)["dataDir"] == str(
        project / ".commgrid")
    assert json.loads(from_root.stdout)["communicationServices"]["accessKey"] == json.loads(
        from_deep.stdout)["communicationServices"]["accessKey"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (home_data / "commgrid").mkdir(parents=True)
    (home_data / "commgrid" / "commgrid.json").write_text(ports)
    per_user = json.loads(commgrid("info", "--json", cwd=elsewhere, XDG_DATA_HOME=str(home_data)).stdout)
    assert per_user["dataDir"] == str(home_data / "commgrid")
    assert Path(per_user["caCertificate"]).is_file()  # info makes the CA a server would use


def test_info_refuses_to_describe_another_server_as_its_own(tmp_path) -> None:
    running = ServerProcess(tmp_path / "running").start()
    try:
        other = tmp_path / "other"
        other.mkdir()
        (other / "commgrid.json").write_text(json.dumps({"port": running.port, "tls_port": running.tls_port}))
        done = cli(other, "info", "--json", check=False)
        assert done.returncode == 1
        assert "serves another store" in done.stderr and "Traceback" not in done.stderr
        assert running.info()["running"] is True
        refused = running.cli("reset", "--yes", check=False)
        assert refused.returncode == 1 and "stop it" in refused.stderr
    finally:
        running.stop()


def test_reset_forgets_everything_but_keeps_the_ca(tmp_path) -> None:
    data = tmp_path / "d"
    (data).mkdir()
    (data / "commgrid.json").write_text(json.dumps({"port": free_port(), "tls_port": free_port()}))
    cli(data, "topic", "create", "forgotten")
    before = json.loads(cli(data, "info", "--json").stdout)
    ca = Path(before["caCertificate"]).read_bytes()
    cli(data, "reset", "--yes")
    after = json.loads(cli(data, "info", "--json").stdout)
    assert after["topics"] == []
    assert after["communicationServices"]["accessKey"] != before["communicationServices"]["accessKey"]
    assert Path(after["caCertificate"]).read_bytes() == ca


def test_a_pinned_access_key_and_ca_stay_the_same_across_data_dirs(tmp_path) -> None:
    assert commgrid("ca", "create", str(tmp_path / "pinned")).returncode == 0
    key = "c2VjcmV0LWtleS1mb3ItY2ktcnVucy0xMjM0NTY3ODkwYWJj"
    flags = ("--access-key", key, "--ca-cert", str(tmp_path / "pinned" / "ca.pem"),
             "--ca-key", str(tmp_path / "pinned" / "ca-key.pem"))
    for name in ("first", "second"):
        server = ServerProcess(tmp_path / name, extra_args=flags).start()
        try:
            assert server.info()["communicationServices"]["accessKey"] == key
            trusted = ssl.create_default_context(cafile=str(tmp_path / "pinned" / "ca.pem"))
            assert httpx.get(f"{server.https}/healthz", verify=trusted).status_code == 200
        finally:
            server.stop()
    bad = commgrid("serve", "--data-dir", str(tmp_path / "x"), "--access-key", "not base64!")
    assert bad.returncode == 2 and "base64" in bad.stderr


def test_the_banner_says_what_a_newcomer_needs(tmp_path) -> None:
    server = ServerProcess(tmp_path / "d", extra_args=("--phone-number", "+14255550100", "--time-scale", "60",
                                                        "--event-profile", "current")).start()
    try:
        deadline = time.monotonic() + 10
        while "management" not in (banner := server.log()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for expected in ("+14255550100", "time scale    60", "event profile current", str(tmp_path / "d"),
                         "management"):
            assert expected in banner, (expected, banner)
    finally:
        server.stop()


def test_help_is_quick_because_the_server_stack_loads_only_when_needed() -> None:
    probe = ("import sys, commgrid.cli; heavy = [m for m in ('aiohttp', 'starlette', 'uvicorn', 'asyncpg',"
             " 'aiosqlite', 'cryptography') if m in sys.modules]; print(heavy)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
                          ).stdout.strip() == "[]"
    helped = commgrid("subscription", "create", "--help", COLUMNS="80")
    assert "--included-event-types" in helped.stdout and "--enable-advanced-filtering-on-arrays" in helped.stdout


def test_az_style_flags_ids_and_honest_exit_codes(tmp_path, rx: Receiver) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "commgrid.json").write_text(json.dumps({"port": free_port(), "tls_port": free_port()}))
    topic = json.loads(cli(data, "topic", "create", "shop", "--json").stdout)
    done = cli(data, "subscription", "create", "--topic", "shop", "--name", "az-style", "--endpoint", rx.endpoint("az"),
               "--included-event-types", "Order.Created", "Order.Shipped",
               "--advanced-filter", "data.n", "NumberIn", "1", "2", "--labels", "a", "b", "--json")
    filt = json.loads(done.stdout)["properties"]["filter"]
    assert filt["includedEventTypes"] == ["Order.Created", "Order.Shipped"]
    assert filt["advancedFilters"] == [{"operatorType": "NumberIn", "key": "data.n", "values": [1, 2]}]

    event = {"id": "0f1e2d3c-aaaa-bbbb-cccc-123456789abc", "subject": "/o/1", "eventType": "Order.Created",
             "eventTime": "2024-01-01T00:00:00Z", "data": {"n": 3}, "dataVersion": "1"}
    (tmp_path / "events.json").write_text(json.dumps([event]))
    cli(data, "publish", "--topic", "shop", "--file", str(tmp_path / "events.json"))
    assert event["id"] in cli(data, "events", "list", "--topic", "shop", "--wide").stdout
    shown = cli(data, "events", "show", "0f1e2d3c", "--topic", "shop", "--json")
    assert json.loads(shown.stdout)["id"] == event["id"]
    (tmp_path / "shown.json").write_text(shown.stdout)
    for how in (("--event-id", "0f1e2d3c"), ("--event", str(tmp_path / "shown.json"))):
        tested = cli(data, "subscription", "test", "--topic", "shop", "--name", "az-style", *how, check=False)
        assert tested.returncode == 1 and "data.n" in tested.stdout, tested.stdout + tested.stderr

    assert cli(data, "phone-number", "add", "+14255550199").returncode == 0
    assert cli(data, "phone-number", "add", "+14255550199").returncode == 0  # owned already: fine
    missing = cli(data, "deadletter", "redeliver", "424242", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert topic["name"] == "shop"


def test_debug_logs_leave_sql_to_the_sql_level(tmp_path) -> None:
    for level, shows_sql in (("debug", False), ("sql", True)):
        server = ServerProcess(tmp_path / level, extra_args=("--log-level", level)).start()
        try:
            urllib.request.urlopen(f"{server.http}/healthz", timeout=5).read()
            server.cli("topic", "create", "logged")
        finally:
            server.stop()
        assert ("aiosqlite" in server.log()) is shows_sql, level
