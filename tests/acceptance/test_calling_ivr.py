"""An IVR written only against the official SDKs (azure-communication-callautomation, azure-eventgrid models)
against a real `commgrid serve`: a simulated PSTN call reaches an owned number, IncomingCall arrives through a
real Event Grid webhook subscription, the app answers, records, plays a prompt, collects "1 2 #", transfers the
caller to a user; the caller hangs up and the app downloads the recording. The Event Grid events (shapes
against the documented samples, order per call) and the callback events are asserted exactly, on SQLite with
the `seed` profile and on PostgreSQL with `current`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.communication.callautomation import (
    CommunicationUserIdentifier,
    PhoneNumberIdentifier,
    TextSource,
    recording_url_validator,
)
from azure.communication.identity import CommunicationIdentityClient
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.eventgrid import EventGridEvent

from tests.acceptance.acs_helpers import Acs, assert_same_shape
from tests.acceptance.calling_helpers import (
    CALLER,
    IVR_NUMBER,
    Sim,
    automation,
    callbacks,
    names,
    sample,
    wait_callback,
)
from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import subscribe
from tests.support import ServerProcess

NS = "Microsoft.Communication."
CALLING_TYPES = ["IncomingCall", "CallStarted", "CallParticipantAdded", "CallParticipantRemoved", "CallEnded",
                 "RecordingFileStatusUpdated", "UserDisconnected"]
# What the `current` profile adds to the 2022 samples (the event schema's later fields).
CURRENT_EXTRAS = {"CallEnded": {"endedBy", "reason", "callDurationInSeconds"}, "CallParticipantAdded": {"userAgent"},
                  "CallParticipantRemoved": {"userAgent"}, "IncomingCall": {"customContext"},
                  "RecordingFileStatusUpdated": {"recordingContentType", "recordingChannelType", "recordingFormatType"}}


@pytest.fixture
def allow_local_recordings(monkeypatch: pytest.MonkeyPatch) -> None:
    """SDK 1.6 downloads only from *.asm.skype.com and Teams hosts; let it reach commgrid on 127.0.0.1."""
    monkeypatch.setattr(recording_url_validator, "ALLOWED_HOST_SUFFIXES",
                        (*recording_url_validator.ALLOWED_HOST_SUFFIXES, "127.0.0.1"))


@pytest.fixture(params=[("sqlite", "seed"), ("postgres", "current")], ids=["sqlite-seed", "postgres-current"])
def ivr(request, tmp_path) -> Iterator[tuple[ServerProcess, str]]:
    backend, profile = request.param
    store = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    server = ServerProcess(tmp_path / "server", store=store, extra_args=(
        "--time-scale", "20", "--phone-number", IVR_NUMBER, "--event-profile", profile)).start()
    try:
        yield server, profile
    finally:
        if server.process:
            server.stop()


def _new_user(acs: Acs) -> str:
    transport = RequestsTransport(connection_verify=acs.ca)
    try:
        client = CommunicationIdentityClient.from_connection_string(acs.connection_string, transport=transport)
        return client.create_user().properties["id"]
    finally:
        transport.close()


def _as_user_identifiers(value: Any) -> Any:
    """Phone-number identifiers rewritten as user ones, to compare shapes with samples that show users."""
    if isinstance(value, dict):
        if "phoneNumber" in value and "rawId" in value:
            value = {k: v for k, v in value.items() if k != "phoneNumber"} | {"communicationUser": {"id": "x"}}
        return {k: _as_user_identifiers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_user_identifiers(v) for v in value]
    return value


def _check_shape(event: dict[str, Any], profile: str) -> None:
    short = event["eventType"].removeprefix(NS)
    expected = sample(short)
    if profile == "seed":
        assert_same_shape(_as_user_identifiers(event), expected)
        return
    assert list(event) == list(expected)
    assert set(event["data"]) == set(expected["data"]) | CURRENT_EXTRAS.get(short, set()), short


def test_ivr_answers_collects_digits_transfers_and_downloads_the_recording(
        ivr: tuple[ServerProcess, str], allow_local_recordings: None) -> None:
    server, profile = ivr
    acs = Acs(server)
    rx = Receiver().start()
    sim = Sim(acs)
    try:
        eg_url, cb_url, rec_url = rx.endpoint("eg"), rx.endpoint("cb"), rx.endpoint("rec")
        subscribe(server, acs.system_topic, "ivr", eg_url, "--included-event-types",
                  " ".join(NS + t for t in CALLING_TYPES))
        agent = _new_user(acs)
        caller = sim.dial(CALLER, IVR_NUMBER, displayName="Pat Caller")

        # The app: IncomingCall by Event Grid → answer.
        rx.wait(lambda: rx.events("eg"), 10, "IncomingCall")
        incoming = EventGridEvent.from_dict(rx.events("eg")[0])
        assert incoming.event_type == NS + "IncomingCall"
        assert incoming.subject == f"/caller/4:{CALLER}/recipient/4:{IVR_NUMBER}"
        with automation(acs) as client:
            answered = client.answer_call(incoming.data["incomingCallContext"], cb_url, operation_context="ivr")
            assert answered.call_connection_state == "connected"
            assert answered.server_call_id == incoming.data["serverCallId"]
            call = client.get_call_connection(answered.call_connection_id)
            wait_callback(rx, "cb", "CallConnected")

            started = client.start_recording(call_connection_id=answered.call_connection_id,
                                             recording_state_callback_url=rec_url, recording_content_type="audio",
                                             recording_channel_type="mixed", recording_format_type="wav")
            assert started.recording_state == "inactive"
            wait_callback(rx, "rec", "RecordingStateChanged")
            assert client.get_recording_properties(started.recording_id).recording_state == "active"

            call.play_media(TextSource(text="Welcome to Contoso. Enter your account number, then press pound."),
                            operation_context="welcome")
            wait_callback(rx, "cb", "PlayCompleted")
            call.start_recognizing_media("dtmf", PhoneNumberIdentifier(CALLER), dtmf_max_tones_to_collect=8,
                                         dtmf_stop_tones=["pound"], initial_silence_timeout=300,
                                         dtmf_inter_tone_timeout=60, operation_context="account")
            assert "stop tone" in sim.step(caller["id"], "press", tones=["1", "2", "#"])["outcome"]
            recognized = next(e for e in wait_callback(rx, "cb", "RecognizeCompleted") if "dtmfResult" in e.data)
            assert recognized.data["dtmfResult"] == {"tones": ["one", "two"]}
            assert recognized.data["resultInformation"]["subCode"] == 8514
            assert recognized.data["operationContext"] == "account"

            transfer = call.transfer_call_to_participant(CommunicationUserIdentifier(agent), operation_context="agent")
            assert transfer.operation_context == "agent"
            wait_callback(rx, "cb", "CallDisconnected")

            sim.step(caller["id"], "hangup")
            rx.wait(lambda: any(e["eventType"] == NS + "RecordingFileStatusUpdated" for e in rx.events("eg")), 15,
                    "RecordingFileStatusUpdated")
            chunk = next(e for e in rx.events("eg") if e["eventType"].endswith("RecordingFileStatusUpdated"))
            chunk = chunk["data"]["recordingStorageInfo"]["recordingChunks"][0]

            audio = client.download_recording(chunk["contentLocation"]).read()
            assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
            assert client.download_recording(chunk["contentLocation"], offset=8, length=4).read() == b"WAVE"
            metadata = json.loads(client.download_recording(chunk["metadataLocation"]).read())
            assert metadata["recordingInfo"]["format"] == "wav"
            client.delete_recording(chunk["deleteLocation"])
            with pytest.raises(ResourceNotFoundError):
                client.download_recording(chunk["contentLocation"]).read()

        # Callback events, exactly and in order.
        assert names(callbacks(rx, "cb")) == ["CallConnected", "ParticipantsUpdated", "PlayStarted", "PlayCompleted",
                                              "RecognizeCompleted", "CallTransferAccepted", "CallDisconnected"]
        connected, accepted, disconnected = (callbacks(rx, "cb")[i] for i in (0, 5, 6))
        assert connected.source == f"calling/callConnections/{answered.call_connection_id}"
        assert connected.data["operationContext"] == "ivr"
        assert accepted.data["transferTarget"]["rawId"] == agent
        assert accepted.data["transferee"]["rawId"] == f"4:{CALLER}"
        assert disconnected.data["callConnectionId"] == answered.call_connection_id
        states = [e.data["state"] for e in callbacks(rx, "rec")]
        assert states == ["active", "inactive"]

        # Event Grid: the stored order, the same events at the webhook, documented shapes.
        stored = list(reversed(acs.events()))
        assert [(e["eventType"].removeprefix(NS), e["subject"].rsplit("/", 1)[-1]) for e in stored] == [
            ("IncomingCall", f"4:{IVR_NUMBER}"),
            ("CallStarted", f"4:{CALLER}"),
            ("CallParticipantAdded", f"4:{CALLER}"),
            ("CallParticipantAdded", agent),
            ("CallParticipantRemoved", f"4:{CALLER}"),
            ("CallParticipantRemoved", agent),
            ("UserDisconnected", agent),
            ("CallEnded", answered.server_call_id),
            ("RecordingFileStatusUpdated", started.recording_id),
        ]
        rx.wait(lambda: len(rx.events("eg")) == len(stored), 10, "every event at the webhook")
        assert sorted(e["id"] for e in rx.events("eg")) == sorted(e["id"] for e in stored)
        for event in stored:
            _check_shape(event, profile)
            EventGridEvent.from_dict(event)
        ended = stored[7]["data"]
        assert ended["serverCallId"] == answered.server_call_id and ended["isTwoParty"] is True
        if profile == "current":
            assert ended["endedBy"]["communicationIdentifier"]["rawId"] == f"4:{CALLER}"
            assert ended["reason"]["subCode"] == 5002
    finally:
        sim.close()
        rx.stop()
