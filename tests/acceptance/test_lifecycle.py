"""Starting, stopping and describing a data dir: first-start resources, reuse, SIGTERM, `info` offline."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys

import httpx

from tests.support import ServerProcess, clean_env, cli, free_port, free_ports


def test_first_start_creates_resource_and_restart_reuses_it(tmp_path) -> None:
    server = ServerProcess(tmp_path / "d").start()
    try:
        first = server.info()
        assert first["running"] is True
        acs = first["communicationServices"]
        assert acs["connectionString"] == f"endpoint={server.https}/;accesskey={acs['accessKey']}"
        assert acs["armId"].endswith("/providers/Microsoft.Communication/communicationServices/commgrid")
        assert acs["systemTopic"]["armId"].endswith("/providers/Microsoft.EventGrid/systemTopics/commgrid")
        ca = (tmp_path / "d" / "tls" / "ca.pem").read_bytes()
        health = httpx.get(f"{server.https}/healthz", verify=_ssl(server.ca)).json()
        assert health["status"] == "ok"
        assert server.stop(signal.SIGTERM) == 0
        server.start()
        again = server.info()
        assert again["communicationServices"]["accessKey"] == acs["accessKey"]
        assert (tmp_path / "d" / "tls" / "ca.pem").read_bytes() == ca
    finally:
        if server.process:
            server.stop()


def test_arm_ids_are_configurable_on_first_start(tmp_path) -> None:
    server = ServerProcess(tmp_path / "d", extra_args=("--resource-name", "contoso-acs", "--subscription-id",
                                                       "1234", "--resource-group", "rg1")).start()
    try:
        acs = server.info()["communicationServices"]
        assert acs["armId"] == ("/subscriptions/1234/resourceGroups/rg1/providers/Microsoft.Communication"
                                "/communicationServices/contoso-acs")
        assert acs["systemTopic"]["name"] == "contoso-acs"
    finally:
        server.stop()


def test_a_port_in_use_is_a_clear_error(tmp_path) -> None:
    first = ServerProcess(tmp_path / "first").start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "commgrid.cli", "serve", "--data-dir", str(tmp_path / "second"),
             "--port", str(first.port), "--tls-port", str(free_port())],
            capture_output=True, text=True, timeout=30, env=clean_env())
        assert second.returncode == 1
        assert f"Cannot listen on 127.0.0.1:{first.port}" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
    finally:
        first.stop()


def test_info_without_a_running_server(tmp_path) -> None:
    port, tls_port = free_ports(2)  # not the defaults, which a developer's own server may hold
    (tmp_path / "commgrid.json").write_text(json.dumps({"port": port, "tls_port": tls_port}))
    created = json.loads(cli(tmp_path, "topic", "create", "offline", "--json").stdout)
    info = json.loads(cli(tmp_path, "info", "--json").stdout)
    assert info["running"] is False
    assert set(info) == {"version", "dataDir", "running", "http", "https", "caCertificate", "store",
                         "communicationServices", "management", "topics"}
    (topic,) = info["topics"]
    assert topic == created
    assert topic["endpoint"] == f"https://127.0.0.1:{tls_port}/topics/offline/api/events"


def test_topic_commands(tmp_path) -> None:
    cli(tmp_path, "topic", "create", "tp1")
    keys = json.loads(cli(tmp_path, "topic", "keys", "tp1").stdout)
    rotated = json.loads(cli(tmp_path, "topic", "regenerate-key", "tp1", "--key-name", "key2").stdout)
    assert rotated["key1"] == keys["key1"] and rotated["key2"] != keys["key2"]
    assert [t["name"] for t in json.loads(cli(tmp_path, "topic", "list", "--json").stdout)] == ["tp1"]
    duplicate = cli(tmp_path, "topic", "create", "TP1", check=False)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    cli(tmp_path, "topic", "delete", "tp1")
    assert json.loads(cli(tmp_path, "topic", "list", "--json").stdout) == []
    missing = cli(tmp_path, "topic", "show", "tp1", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_publish_command_validates_like_http(tmp_path) -> None:
    cli(tmp_path, "topic", "create", "files")
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"id": "f1", "subject": "s", "eventType": "T", "eventTime": "2024-01-01T00:00:00Z",
                                 "data": {"a": 1}, "dataVersion": "1"}]))
    cli(tmp_path, "publish", "--topic", "files", "--file", str(good))
    shown = json.loads(cli(tmp_path, "events", "show", "f1", "--topic", "files", "--json").stdout)
    assert shown["type"] == "T" and shown["event"]["data"] == {"a": 1}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "f2"}]))
    failed = cli(tmp_path, "publish", "--topic", "files", "--file", str(bad), check=False)
    assert failed.returncode == 1 and "Subject" in failed.stderr


def _ssl(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)
