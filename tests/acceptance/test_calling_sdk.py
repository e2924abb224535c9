"""Every Call Automation operation of azure-communication-callautomation 1.6.0 against a real `commgrid serve`,
with the callbacks each one causes and its error statuses (unknown call 404, wrong state 400/409, bad HMAC 401).
The other end of the line is commgrid's simulation API."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator

import httpx
import pytest
from azure.communication.callautomation import (
    CallAutomationClient,
    CallConnectionClient,
    CommunicationUserIdentifier,
    FileSource,
    PhoneNumberIdentifier,
    RecognitionChoice,
    SsmlSource,
    TextSource,
)
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import RequestsTransport

from tests.acceptance.acs_helpers import Acs
from tests.acceptance.calling_helpers import CALLER, IVR_NUMBER, Sim, automation, callbacks, names, wait_callback
from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess

OUT = "+14255550199"  # a PSTN party the app calls
NEVER = "+14255550177"  # rings until told (manual)
DECLINES = "+14255550166"
WAV = "https://media.example.com/prompt.wav"
SERVER_ARGS = ("--time-scale", "20", "--phone-number", IVR_NUMBER)


@pytest.fixture(scope="module")
def acs(server: ServerProcess) -> Acs:
    return Acs(server)


@pytest.fixture(scope="module")
def client(acs: Acs) -> Iterator[CallAutomationClient]:
    with automation(acs) as c:
        yield c


@pytest.fixture(scope="module")
def sim(acs: Acs) -> Iterator[Sim]:
    s = Sim(acs)
    s.party(NEVER, "manual")
    s.party(DECLINES, "decline")
    yield s
    s.close()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def _outbound(client: CallAutomationClient, rx: Receiver, target: str = OUT) -> CallConnectionClient:
    """create_call to a PSTN party that answers after the simulated ring; CallConnected awaited."""
    created = client.create_call(PhoneNumberIdentifier(target), rx.endpoint("cb"),
                                 source_caller_id_number=PhoneNumberIdentifier(IVR_NUMBER), operation_context="out")
    assert created.call_connection_state == "connecting"
    assert [t.raw_id for t in created.targets] == [f"4:{target}"]
    wait_callback(rx, "cb", "CallConnected")
    return client.get_call_connection(created.call_connection_id)


def test_create_call_properties_and_participants(client: CallAutomationClient, rx: Receiver) -> None:
    call = _outbound(client, rx)
    props = call.get_call_properties()
    assert props.call_connection_state == "connected"
    assert props.source_caller_id_number.raw_id == f"4:{IVR_NUMBER}"
    listed = list(call.list_participants())
    assert [p.identifier.raw_id for p in listed] == [f"4:{OUT}"]
    assert call.get_participant(PhoneNumberIdentifier(OUT)).identifier.raw_id == f"4:{OUT}"
    with pytest.raises(ResourceNotFoundError):
        call.get_participant(PhoneNumberIdentifier("+14255550000"))
    connected, updated = callbacks(rx, "cb")[:2]
    assert connected.data["operationContext"] == "out"
    assert updated.data["participants"][0]["identifier"]["rawId"] == f"4:{OUT}"
    call.hang_up(is_for_everyone=False)
    wait_callback(rx, "cb", "CallDisconnected")
    assert callbacks(rx, "cb")[-1].data["resultInformation"]["subCode"] == 7000
    with pytest.raises(ResourceNotFoundError) as missing:
        call.get_call_properties()
    assert "Call not found." in str(missing.value)
    with pytest.raises(ResourceNotFoundError):
        call.hang_up(is_for_everyone=True)


def test_play_file_text_failures_and_cancel(client: CallAutomationClient, rx: Receiver) -> None:
    call = _outbound(client, rx)
    call.play_media_to_all(FileSource(WAV), operation_context="file")
    wait_callback(rx, "cb", "PlayCompleted")
    call.play_media(FileSource("https://media.example.com/prompt.ogg"), play_to=[PhoneNumberIdentifier(OUT)])
    failed = wait_callback(rx, "cb", "PlayFailed")[-1]
    assert failed.data["resultInformation"] == {"code": 400, "subCode": 8535,
                                               "message": "Action failed, file format is invalid."}
    assert failed.data["failedPlaySourceIndex"] == 0
    call.play_media([SsmlSource(ssml_text="<speak>One moment</speak>"), TextSource(text="please")])
    wait_callback(rx, "cb", "PlayCompleted", 2)
    call.play_media(TextSource(text="Please hold"), loop=True, operation_context="hold")
    call.play_media(TextSource(text="queued"), operation_context="queued")
    wait_callback(rx, "cb", "PlayStarted", 2)
    call.cancel_all_media_operations()
    wait_callback(rx, "cb", "PlayCanceled", 2)
    assert names(callbacks(rx, "cb"))[2:] == ["PlayStarted", "PlayCompleted", "PlayFailed", "PlayStarted",
                                             "PlayCompleted", "PlayStarted", "PlayCanceled", "PlayCanceled"]
    with pytest.raises(HttpResponseError) as bad:
        call.play_media(FileSource("not-a-url"))
    assert bad.value.status_code == 400
    call.hang_up(is_for_everyone=True)


def test_recognize_dtmf_results_and_timeouts(client: CallAutomationClient, rx: Receiver, sim: Sim) -> None:
    call = _outbound(client, rx)
    call_id = call._call_connection_id
    target = PhoneNumberIdentifier(OUT)
    call.start_recognizing_media("dtmf", target, dtmf_max_tones_to_collect=3, initial_silence_timeout=300)
    sim.step(call_id, "press", tones=["4", "5", "6"], **{"as": OUT})
    done = wait_callback(rx, "cb", "RecognizeCompleted")[-1]
    assert done.data["dtmfResult"]["tones"] == ["four", "five", "six"]
    assert done.data["resultInformation"]["subCode"] == 8531
    call.start_recognizing_media("dtmf", target, initial_silence_timeout=1)
    failed = wait_callback(rx, "cb", "RecognizeFailed")[-1]
    assert failed.data["resultInformation"] == {"code": 400, "subCode": 8510,
                                               "message": "Action failed, initial silence timeout reached."}
    call.start_recognizing_media("dtmf", target, dtmf_max_tones_to_collect=5, dtmf_inter_tone_timeout=1,
                                 initial_silence_timeout=300, play_prompt=TextSource(text="Your PIN"),
                                 interrupt_prompt=True)
    sim.step(call_id, "press", tones=["9"])
    done = wait_callback(rx, "cb", "RecognizeCompleted", 2)[-1]
    assert done.data["dtmfResult"]["tones"] == ["nine"]
    assert done.data["resultInformation"]["subCode"] == 8532
    choices = [RecognitionChoice(label="Sales", phrases=["sales", "buy"], tone="one"),
               RecognitionChoice(label="Support", phrases=["help", "support"], tone="two")]
    call.start_recognizing_media("choices", target, choices=choices, initial_silence_timeout=300,
                                 operation_context="menu")
    assert sim.step(call_id, "say", phrase="Help")["outcome"] == "chose Support"
    chosen = wait_callback(rx, "cb", "RecognizeCompleted", 3)[-1]
    assert chosen.data["recognitionType"] == "choices"
    assert chosen.data["choiceResult"]["label"] == "Support"
    assert chosen.data["operationContext"] == "menu"
    call.start_recognizing_media("choices", target, choices=choices, initial_silence_timeout=300)
    sim.step(call_id, "press", tones=["1"])
    assert wait_callback(rx, "cb", "RecognizeCompleted", 4)[-1].data["choiceResult"]["label"] == "Sales"
    call.start_recognizing_media("dtmf", target, initial_silence_timeout=300)
    call.cancel_all_media_operations()
    wait_callback(rx, "cb", "RecognizeCanceled")
    call.hang_up(is_for_everyone=True)


def test_send_dtmf_add_remove_and_transfer(client: CallAutomationClient, rx: Receiver, acs: Acs, sim: Sim) -> None:
    call = _outbound(client, rx)
    sent = call.send_dtmf_tones(["one", "pound"], PhoneNumberIdentifier(OUT), operation_context="dtmf")
    assert sent.operation_context == "dtmf"
    assert wait_callback(rx, "cb", "SendDtmfTonesCompleted")[-1].data["operationContext"] == "dtmf"
    agent = acs.request("POST", "/identities?api-version=2023-10-01", {}).json()["identity"]["id"]
    added = call.add_participant(CommunicationUserIdentifier(agent), operation_context="add",
                                 operation_callback_url=rx.endpoint("ops"))
    assert added.invitation_id and added.participant.identifier.raw_id == agent
    ok = wait_callback(rx, "ops", "AddParticipantSucceeded")[-1]
    assert ok.data["participant"]["rawId"] == agent and ok.data["operationContext"] == "add"
    call.add_participant(PhoneNumberIdentifier(DECLINES), operation_context="nope")
    failed = wait_callback(rx, "cb", "AddParticipantFailed")[-1]
    assert failed.data["resultInformation"]["code"] == 603
    call.add_participant(PhoneNumberIdentifier(NEVER), invitation_timeout=1, operation_context="late")
    late = wait_callback(rx, "cb", "AddParticipantFailed", 2)[-1]
    assert (late.data["resultInformation"]["code"], late.data["operationContext"]) == (408, "late")
    muted = call.mute_participant(CommunicationUserIdentifier(agent), operation_context="mute")
    assert muted.operation_context == "mute"
    call.hold(PhoneNumberIdentifier(OUT))
    flags = {p.identifier.raw_id: (p.is_muted, p.is_on_hold) for p in call.list_participants()}
    assert flags == {agent: (True, False), f"4:{OUT}": (False, True)}
    call.unhold(PhoneNumberIdentifier(OUT))
    assert not call.get_participant(PhoneNumberIdentifier(OUT)).is_on_hold
    with pytest.raises(HttpResponseError) as phone_mute:
        call.mute_participant(PhoneNumberIdentifier(OUT))
    assert phone_mute.value.status_code == 400
    removed = call.remove_participant(CommunicationUserIdentifier(agent), operation_context="rm")
    assert removed.operation_context == "rm"
    wait_callback(rx, "cb", "RemoveParticipantSucceeded")
    with pytest.raises(HttpResponseError):
        call.transfer_call_to_participant(PhoneNumberIdentifier(DECLINES), transferee=PhoneNumberIdentifier(NEVER))
    call.transfer_call_to_participant(PhoneNumberIdentifier(DECLINES), operation_context="xfer")
    assert wait_callback(rx, "cb", "CallTransferFailed")[-1].data["operationContext"] == "xfer"
    assert call.get_call_properties().call_connection_state == "connected"
    call.hang_up(is_for_everyone=True)


def test_incoming_call_reject_redirect_and_answer_errors(client: CallAutomationClient, rx: Receiver,
                                                         sim: Sim) -> None:
    rejected = sim.dial(CALLER, IVR_NUMBER)
    client.reject_call(rejected["incomingCallContext"], call_reject_reason="busy")
    assert sim.call(rejected["id"])["live"] is False
    with pytest.raises(ResourceExistsError):
        client.answer_call(rejected["incomingCallContext"], rx.endpoint("cb"))
    redirected = sim.dial(CALLER, IVR_NUMBER)
    client.redirect_call(redirected["incomingCallContext"], PhoneNumberIdentifier(OUT))
    sim.wait_state(redirected["id"], lambda c: any(p["rawId"] == f"4:{OUT}" and p["state"] == "connected"
                                                   for p in c["parties"]))
    with pytest.raises(HttpResponseError) as bad:
        client.answer_call("not-a-context", rx.endpoint("cb"))
    assert bad.value.status_code == 400
    with pytest.raises(ResourceNotFoundError):
        client.get_call_connection("00000000-0000-0000-0000-000000000000").get_call_properties()


def test_wrong_state_and_bad_hmac(client: CallAutomationClient, rx: Receiver, acs: Acs, sim: Sim) -> None:
    created = client.create_call(PhoneNumberIdentifier(NEVER), rx.endpoint("cb"),
                                 source_caller_id_number=PhoneNumberIdentifier(IVR_NUMBER))
    ringing = client.get_call_connection(created.call_connection_id)
    with pytest.raises(HttpResponseError) as early:
        ringing.play_media(TextSource(text="too early"))
    assert early.value.status_code == 400 and "Established" in str(early.value)
    ringing.hang_up(is_for_everyone=True)
    with pytest.raises(HttpResponseError) as no_source:
        client.create_call(PhoneNumberIdentifier(OUT), rx.endpoint("cb"))
    assert no_source.value.status_code == 400
    declined = client.create_call(PhoneNumberIdentifier(DECLINES), rx.endpoint("declined"),
                                  source_caller_id_number=PhoneNumberIdentifier(IVR_NUMBER), operation_context="d")
    failed = wait_callback(rx, "declined", "CreateCallFailed")[-1]
    assert (failed.data["resultInformation"]["code"], failed.data["operationContext"]) == (603, "d")
    with pytest.raises(ResourceNotFoundError):
        client.get_call_connection(declined.call_connection_id).get_call_properties()
    wrong_key = base64.b64encode(b"k" * 32).decode()
    transport = RequestsTransport(connection_verify=acs.ca)
    try:
        forged = CallAutomationClient.from_connection_string(
            acs.connection_string.replace(acs.key, wrong_key), transport=transport)
        with pytest.raises(ClientAuthenticationError):
            forged.get_call_connection(created.call_connection_id).get_call_properties()
    finally:
        transport.close()


def test_recording_lifecycle(client: CallAutomationClient, rx: Receiver) -> None:
    call = _outbound(client, rx)
    started = client.start_recording(call_connection_id=call._call_connection_id,
                                      recording_state_callback_url=rx.endpoint("rec"))
    assert (started.recording_state, started.recording_kind) == ("inactive", "azureCommunicationServices")
    wait_callback(rx, "rec", "RecordingStateChanged")
    client.pause_recording(started.recording_id)
    assert client.get_recording_properties(started.recording_id).recording_state == "inactive"
    client.resume_recording(started.recording_id)
    assert client.get_recording_properties(started.recording_id).recording_state == "active"
    client.stop_recording(started.recording_id)
    assert [e.data["state"] for e in wait_callback(rx, "rec", "RecordingStateChanged", 4)] == [
        "active", "inactive", "active", "inactive"]
    with pytest.raises(ResourceNotFoundError):
        client.get_recording_properties(started.recording_id)
    with pytest.raises(ResourceNotFoundError):
        client.pause_recording(started.recording_id)
    assert names(callbacks(rx, "cb")) == ["CallConnected", "ParticipantsUpdated"]  # state changes go elsewhere
    call.hang_up(is_for_everyone=True)


def test_simulation_api_errors(acs: Acs, sim: Sim) -> None:
    unowned = sim.client.post(acs.endpoint + "/commgrid/calls", json={"from": CALLER, "to": "+18005550999"})
    assert unowned.status_code == 404 and "does not own" in unowned.json()["error"]["message"]
    malformed = sim.client.post(acs.endpoint + "/commgrid/calls", json={"from": "425-555", "to": IVR_NUMBER})
    assert malformed.status_code == 400
    keyless = httpx.post(acs.endpoint + "/commgrid/calls", json={"from": CALLER, "to": IVR_NUMBER},
                         verify=ssl.create_default_context(cafile=acs.ca))
    assert keyless.status_code == 401
    missing = sim.client.post(acs.endpoint + "/commgrid/calls/nope:press", json={"tones": ["1"]})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "8522"
    ringing = sim.dial(CALLER, IVR_NUMBER)
    bad_tone = sim.client.post(f"{acs.endpoint}/commgrid/calls/{ringing['id']}:press", json={"tones": ["x"]})
    assert bad_tone.status_code == 400
    sim.step(ringing["id"], "hangup")
    assert sim.call(ringing["id"])["live"] is False
