"""The other end of the line from the CLI (`commgrid call …`, scenarios), group calls, and durability: calls
survive a killed server, and callbacks an app fails to take are retried in order."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.communication.callautomation import PhoneNumberIdentifier
from azure.core.exceptions import ResourceExistsError
from azure.eventgrid import EventGridEvent

from tests.acceptance.acs_helpers import Acs
from tests.acceptance.calling_helpers import CALLER, IVR_NUMBER, Sim, automation, callbacks, names, wait_callback
from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import subscribe
from tests.support import ServerProcess, clean_env

NS = "Microsoft.Communication."
SCENARIO = """\
steps:
  - dial: {from: "+14255550123", to: "+18005550100", displayName: Pat}
  - wait: {until: connected, timeout: 20}
  - wait: {until: listening, timeout: 20}
  - press: "1 2 #"
  - wait: {until: idle, timeout: 20}
  - wait: 1
  - hangup: {}
"""


@pytest.fixture
def server(tmp_path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "server", extra_args=("--time-scale", "10", "--phone-number", IVR_NUMBER)) as proc:
        yield proc


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def _incoming(rx: Receiver, count: int = 1) -> EventGridEvent:
    rx.wait(lambda: len([e for e in rx.events("eg") if e["eventType"] == NS + "IncomingCall"]) >= count, 15,
            "IncomingCall")
    return EventGridEvent.from_dict([e for e in rx.events("eg") if e["eventType"] == NS + "IncomingCall"][-1])


def test_scenario_file_drives_a_call_from_the_cli(server: ServerProcess, rx: Receiver, tmp_path: Path) -> None:
    acs = Acs(server)
    subscribe(server, acs.system_topic, "calls", rx.endpoint("eg"), "--included-event-types", NS + "IncomingCall")
    scenario = tmp_path / "ivr.yaml"
    scenario.write_text(SCENARIO)
    player = subprocess.Popen([sys.executable, "-m", "commgrid.cli", "call", "play", str(scenario), "--data-dir",
                               str(server.data_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=clean_env())
    try:
        incoming = _incoming(rx)
        with automation(acs) as client:
            answered = client.answer_call(incoming.data["incomingCallContext"], rx.endpoint("cb"))
            call = client.get_call_connection(answered.call_connection_id)
            call.start_recognizing_media("dtmf", PhoneNumberIdentifier(CALLER), dtmf_max_tones_to_collect=4,
                                         dtmf_stop_tones=["pound"], initial_silence_timeout=300)
        output, _ = player.communicate(timeout=60)
    finally:
        if player.poll() is None:
            player.kill()
    assert player.returncode == 0, output
    assert "4. press: recognized ['one', 'two'] (stop tone)" in output
    wait_callback(rx, "cb", "CallDisconnected")
    assert names(callbacks(rx, "cb")) == ["CallConnected", "ParticipantsUpdated", "RecognizeCompleted",
                                         "CallDisconnected"]
    assert callbacks(rx, "cb")[-1].data["resultInformation"]["subCode"] == 5002


def test_cli_dial_press_say_hangup_and_party_settings(server: ServerProcess, rx: Receiver) -> None:
    acs = Acs(server)
    subscribe(server, acs.system_topic, "calls", rx.endpoint("eg"), "--included-event-types", NS + "IncomingCall")
    dialled = json.loads(server.cli("call", "dial", "--from", CALLER, "--to", IVR_NUMBER, "--json").stdout)
    incoming = _incoming(rx)
    assert incoming.data["serverCallId"] == dialled["serverCallId"]
    with automation(acs) as client:
        answered = client.answer_call(incoming.data["incomingCallContext"], rx.endpoint("cb"))
        call = client.get_call_connection(answered.call_connection_id)
        assert "no recognizer" in server.cli("call", "press", "1").stdout
        call.start_recognizing_media("dtmf", PhoneNumberIdentifier(CALLER), dtmf_max_tones_to_collect=2,
                                     initial_silence_timeout=300)
        assert "max tones" in server.cli("call", "press", "7", "#").stdout
        assert wait_callback(rx, "cb", "RecognizeCompleted")[-1].data["dtmfResult"]["tones"] == ["seven", "pound"]
        call.start_recognizing_media("speech", PhoneNumberIdentifier(CALLER), initial_silence_timeout=300)
        assert "speech recognized" in server.cli("call", "say", "my account number").stdout
        speech = wait_callback(rx, "cb", "RecognizeCompleted", 2)[-1]
        assert speech.data["speechResult"]["speech"] == "my account number"
    assert "hung up" in server.cli("call", "hangup").stdout
    wait_callback(rx, "cb", "CallDisconnected")
    listed = json.loads(server.cli("call", "list", "--json").stdout)
    assert listed[0]["id"] == answered.call_connection_id and listed[0]["live"] is False
    assert server.cli("call", "hangup", check=False).returncode == 1  # no live call left
    server.cli("call", "party", "+14255550111", "--answer", "decline")
    assert server.cli("call", "party", "+14255550111", "--answer", "sometimes", check=False).returncode == 1


def test_group_call_joined_and_left_by_users_is_recorded(server: ServerProcess, rx: Receiver) -> None:
    acs = Acs(server)
    subscribe(server, acs.system_topic, "calls", rx.endpoint("eg"))
    alice, bob = (acs.request("POST", "/identities?api-version=2023-10-01", {}).json()["identity"]["id"]
                  for _ in range(2))
    group = "5e0b6a3c-9a1e-4f7e-8a8d-1f0e3c2b4a59"
    server.cli("call", "join", group, "--user", alice, "--display-name", "Alice")
    sim = Sim(acs)
    try:
        sim.group(group, "join", bob, displayName="Bob")
        with automation(acs) as client:
            recording = client.start_recording(group_call_id=group, recording_format_type="mp3",
                                               recording_content_type="audio")
            rx.wait(lambda: client.get_recording_properties(recording.recording_id).recording_state == "active", 10,
                    "an active recording")
        server.cli("call", "leave", group, "--user", alice)
        sim.group(group, "leave", bob)
    finally:
        sim.close()
    rx.wait(lambda: any(e["eventType"] == NS + "RecordingFileStatusUpdated" for e in rx.events("eg")), 15,
            "RecordingFileStatusUpdated")
    stored = list(reversed(acs.events()))
    assert [(e["eventType"].removeprefix(NS), e["subject"].rsplit("/", 1)[-1]) for e in stored] == [
        ("CallStarted", alice), ("CallParticipantAdded", alice), ("CallParticipantAdded", bob),
        ("CallParticipantRemoved", alice), ("UserDisconnected", alice), ("CallParticipantRemoved", bob),
        ("UserDisconnected", bob), ("CallEnded", stored[0]["data"]["serverCallId"]),
        ("RecordingFileStatusUpdated", recording.recording_id)]
    started = stored[0]["data"]
    assert started["group"] == {"id": group} and started["isTwoParty"] is False and started["isRoomsCall"] is False
    assert stored[2]["data"]["displayName"] == "Bob"
    chunk = stored[-1]["data"]["recordingStorageInfo"]["recordingChunks"][0]
    assert chunk["contentLocation"].endswith("/content/audio")
    assert chunk["contentLocation"].startswith(f"https://127.0.0.1:{server.tls_port}/v1/objects/")

    room = "99021234-5678-4abc-9def-0123456789ab"
    sim = Sim(acs)
    try:
        sim.group(room, "join", alice, room=True)
        with automation(acs) as client:
            in_room = client.start_recording(room_id=room, recording_content_type="audio", recording_format_type="wav")
            assert client.get_recording_properties(in_room.recording_id).recording_kind == "azureCommunicationServices"
        sim.group(room, "leave", alice)
    finally:
        sim.close()
    started = acs.wait_events(lambda e: e["eventType"] == NS + "CallStarted" and e["data"]["isRoomsCall"], 1)[0]
    assert started["data"]["room"] == {"id": room} and started["data"]["isTwoParty"] is False


def test_calls_survive_a_killed_server_and_callbacks_are_retried_in_order(server: ServerProcess,
                                                                          rx: Receiver) -> None:
    acs = Acs(server)
    url = rx.endpoint("cb", statuses=[500, 503])
    with automation(acs) as client:
        created = client.create_call(PhoneNumberIdentifier("+14255550199"), url,
                                     source_caller_id_number=PhoneNumberIdentifier(IVR_NUMBER))
        wait_callback(rx, "cb", "ParticipantsUpdated", timeout=15)
        posted = [r.events()[0]["type"].removeprefix(NS) for r in rx.received("cb", kind="*")]
        assert posted == ["CallConnected", "CallConnected", "CallConnected", "ParticipantsUpdated"]
        call = client.get_call_connection(created.call_connection_id)
        call.start_recognizing_media("dtmf", PhoneNumberIdentifier("+14255550199"), initial_silence_timeout=40)
    server.kill()
    server.start()
    with automation(acs) as client:
        call = client.get_call_connection(created.call_connection_id)
        assert call.get_call_properties().call_connection_state == "connected"
        failed = wait_callback(rx, "cb", "RecognizeFailed", timeout=15)[-1]
        assert failed.data["resultInformation"]["subCode"] == 8510
        call.hang_up(is_for_everyone=True)
    wait_callback(rx, "cb", "CallDisconnected")


RECORDING_HOST = "recordings.asm.skype.com"


@pytest.fixture
def host_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an /etc/hosts line `127.0.0.1 recordings.asm.skype.com` does, for this test process only."""
    real = socket.getaddrinfo

    def resolve(host: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        return real("127.0.0.1" if host == RECORDING_HOST else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def test_recording_host_satisfies_the_sdk_allow_list_unpatched(tmp_path: Path, rx: Receiver,
                                                              host_mapping: None) -> None:
    server = ServerProcess(tmp_path / "rec", extra_args=(
        "--time-scale", "20", "--phone-number", IVR_NUMBER, "--recording-host", RECORDING_HOST)).start()
    try:
        acs = Acs(server)
        with automation(acs) as client:
            created = client.create_call(PhoneNumberIdentifier("+14255550199"), rx.endpoint("cb"),
                                         source_caller_id_number=PhoneNumberIdentifier(IVR_NUMBER))
            wait_callback(rx, "cb", "CallConnected")
            recording = client.start_recording(call_connection_id=created.call_connection_id,
                                               recording_content_type="audio", recording_format_type="wav")
            rx.wait(lambda: client.get_recording_properties(recording.recording_id).recording_state == "active",
                    10, "an active recording")
            client.get_call_connection(created.call_connection_id).hang_up(is_for_everyone=True)
            event = acs.wait_events(lambda e: e["eventType"] == NS + "RecordingFileStatusUpdated", 1)[0]
            chunk = event["data"]["recordingStorageInfo"]["recordingChunks"][0]
            assert chunk["contentLocation"].startswith(f"https://{RECORDING_HOST}:{server.tls_port}/v1/objects/")
            audio = client.download_recording(chunk["contentLocation"]).read()
            assert audio[:4] == b"RIFF"
            client.delete_recording(chunk["deleteLocation"])
    finally:
        server.stop()


def test_user_calls_user_who_answers_from_the_cli(server: ServerProcess, rx: Receiver) -> None:
    acs = Acs(server)
    subscribe(server, acs.system_topic, "calls", rx.endpoint("eg"))
    alice, bob = (acs.request("POST", "/identities?api-version=2023-10-01", {}).json()["identity"]["id"]
                  for _ in range(2))
    call = json.loads(server.cli("call", "dial", "--from", alice, "--to", bob, "--display-name", "Alice",
                                 "--json").stdout)
    incoming = _incoming(rx)
    assert incoming.subject == f"/caller/{alice}/recipient/{bob}"
    assert incoming.data["to"]["kind"] == "communicationUser" and incoming.data["callerDisplayName"] == "Alice"
    server.cli("call", "answer", "--call", call["id"], "--as", bob)
    server.cli("call", "hangup", "--call", call["id"], "--as", bob)
    rx.wait(lambda: any(e["eventType"] == NS + "CallEnded" for e in rx.events("eg")), 10, "CallEnded")
    stored = list(reversed(acs.events()))
    assert [(e["eventType"].removeprefix(NS), e["subject"].rsplit("/", 1)[-1]) for e in stored] == [
        ("IncomingCall", bob), ("CallStarted", alice), ("CallParticipantAdded", alice), ("CallParticipantAdded", bob),
        ("CallParticipantRemoved", alice), ("UserDisconnected", alice), ("CallParticipantRemoved", bob),
        ("UserDisconnected", bob), ("CallEnded", call["serverCallId"])]
    assert stored[1]["data"]["isTwoParty"] is True
    # The user answered it: no app can any more.
    with automation(acs) as client, pytest.raises(ResourceExistsError):
        client.answer_call(incoming.data["incomingCallContext"], rx.endpoint("cb"))


def test_two_nodes_fire_each_call_timer_and_post_each_callback_once(tmp_path: Path, postgres_url: str,
                                                                     rx: Receiver) -> None:
    nodes = [ServerProcess(tmp_path / name, store=postgres_url, extra_args=(
        "--time-scale", "20", "--phone-number", IVR_NUMBER)).start() for name in ("a", "b")]
    try:
        acs_a, acs_b = Acs(nodes[0]), Acs(nodes[1])
        with automation(acs_a) as client_a, automation(acs_b) as client_b:
            calls = []
            for n in range(6):
                client = client_a if n % 2 else client_b
                created = client.create_call(PhoneNumberIdentifier(f"+1425555020{n}"), rx.endpoint(f"cb{n}"),
                                             source_caller_id_number=PhoneNumberIdentifier(IVR_NUMBER))
                calls.append(created.call_connection_id)
            for n, call_id in enumerate(calls):
                wait_callback(rx, f"cb{n}", "CallConnected", timeout=15)
                (client_b if n % 2 else client_a).get_call_connection(call_id).start_recognizing_media(
                    "dtmf", PhoneNumberIdentifier(f"+1425555020{n}"), initial_silence_timeout=2)
            for n in range(len(calls)):
                wait_callback(rx, f"cb{n}", "RecognizeFailed", timeout=15)
        time.sleep(0.5)  # a duplicate, if both nodes fired a timer or posted a callback, would arrive by now
        for n in range(len(calls)):
            assert names(callbacks(rx, f"cb{n}")) == ["CallConnected", "ParticipantsUpdated", "RecognizeFailed"]
    finally:
        for node in nodes:
            if node.process:
                node.stop()
