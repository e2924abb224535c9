"""Simulated durations of calls and media, in seconds; `--time-scale` divides them (see `CallRepository`)."""

from __future__ import annotations

RING = 3.0  # a simulated party that answers automatically does so after this long
UNANSWERED = 60.0  # an IncomingCall nobody answers ends after this long
INVITATION_TIMEOUT = 60.0  # add_participant's default invitationTimeoutInSeconds
CONNECT = 0.0  # from a party answering to CallConnected
RECORDING_START = 1.0  # start_recording answers `inactive`; the recording is `active` this much later
RECORDING_FILE = 3.0  # from the end of a recording to RecordingFileStatusUpdated
FILE_PROMPT = 3.0  # how long a file play source lasts (commgrid does not fetch the file)
TONE = 0.25  # per DTMF tone sent
# Recognize defaults (learn.microsoft.com/azure/communication-services/how-tos/call-automation/recognize-action)
INITIAL_SILENCE = 5.0
INTER_TONE = 2.0
SECONDS_PER_WORD = 0.4


def text_prompt(text: str) -> float:
    """How long speaking `text` takes: a words-per-minute estimate, at least one second."""
    return max(1.0, len(text.split()) * SECONDS_PER_WORD)
