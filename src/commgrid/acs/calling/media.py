"""Media operations on a connected call: play, recognize (DTMF, choices, speech), cancel, send DTMF; and the
simulated caller pressing keys or saying a phrase.

One operation runs at a time; others wait in `mediaQueue` unless they interrupt the current one. Durations
(`durations.py`) decide when prompts end and silence times out. Result codes are the service's
(learn.microsoft.com/azure/communication-services/how-tos/call-automation/recognize-action#event-codes):
8531 max digits, 8514 stop tone, 8510 initial silence timeout, 8532 inter-digit timeout (commgrid completes
with the tones collected), 8545 choice matched, 8547 no choice matched, 8534 a tone that selects no choice,
8508 canceled, 8535 an unsupported file format.
"""

from __future__ import annotations

import uuid
from typing import Any

from commgrid.acs.calling import durations
from commgrid.acs.calling.calls import CallLifecycle, context_field
from commgrid.acs.calling.ids import InvalidCallRequest, raw_id_of
from commgrid.acs.calling.model import Effects
from commgrid.acs.calling.notify import CANCELED, COMPLETED

TONE_NAMES = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
              "7": "seven", "8": "eight", "9": "nine", "a": "a", "b": "b", "c": "c", "d": "d", "#": "pound",
              "*": "asterisk"}
TONE_WORDS = set(TONE_NAMES.values())
MAX_DIGITS = (200, 8531, "Action completed, max digits received.")
STOP_TONE = (200, 8514, "Action completed as stop tone was detected.")
INTER_DIGIT = (200, 8532, "Action completed, inter-digit silence timeout reached.")
SILENCE = (400, 8510, "Action failed, initial silence timeout reached.")
CHOICE_MATCHED = (200, 8545, "Action completed, speech option matched.")
SPEECH_RECOGNIZED = (200, 8533, "Action completed, speech recognized.")
NO_CHOICE = (400, 8547, "Action failed, speech option not matched.")
WRONG_TONE = (400, 8534, "Action failed, incorrect tone entered.")
BAD_FORMAT = (400, 8535, "Action failed, file format is invalid.")
_AUDIO_FILES = (".wav", ".mp3")


def tone_word(key: str) -> str:
    """`1` → `one`, `#` → `pound`; words pass through."""
    lowered = key.strip().lower()
    if lowered in TONE_WORDS:
        return lowered
    if lowered not in TONE_NAMES:
        raise InvalidCallRequest(f"'{key}' is not a DTMF tone (0-9, A-D, #, *).")
    return TONE_NAMES[lowered]


def _source_length(source: dict[str, Any]) -> float:
    kind = str(source.get("kind", "")).lower()
    if kind == "text":
        return durations.text_prompt(str((source.get("text") or {}).get("text", "")))
    if kind == "ssml":
        return durations.text_prompt(str((source.get("ssml") or {}).get("ssmlText", "")))
    return durations.FILE_PROMPT


def _check_sources(sources: Any) -> list[dict[str, Any]]:
    if not isinstance(sources, list) or not sources:
        raise InvalidCallRequest("At least one play source is required.")
    for source in sources:
        kind = str(source.get("kind", "")).lower() if isinstance(source, dict) else ""
        body = source.get(kind) if kind else None
        if kind not in ("file", "text", "ssml") or not isinstance(body, dict):
            raise InvalidCallRequest("Each play source needs a kind (file, text, ssml) and its object.")
        if kind == "file" and not str(body.get("uri", "")).lower().startswith(("http://", "https://")):
            raise InvalidCallRequest("A file play source needs an absolute http(s) uri.")
        if kind == "text" and not body.get("text"):
            raise InvalidCallRequest("A text play source needs text.")
    return sources


class MediaOps:
    def __init__(self, calls: CallLifecycle) -> None:
        self.calls = calls
        self.notify = calls.notify
        self.repo = calls.repo

    # Requests from the app --------------------------------------------------------------------------------
    async def play(self, call_id: str, body: dict[str, Any]) -> None:
        sources = _check_sources(body.get("playSources"))
        targets = [raw_id_of(t, "playTo") for t in body.get("playTo") or []]
        op = {"kind": "play", "sources": sources, "loop": bool((body.get("playOptions") or {}).get("loop")),
              "playTo": targets}
        await self._submit(call_id, op, body)

    async def recognize(self, call_id: str, body: dict[str, Any]) -> None:
        input_type = str(body.get("recognizeInputType", ""))
        if input_type not in ("dtmf", "choices", "speech", "speechOrDtmf"):
            raise InvalidCallRequest("recognizeInputType must be dtmf, choices, speech or speechOrDtmf.")
        options = body.get("recognizeOptions") or {}
        raw_id_of(options.get("targetParticipant"), "targetParticipant")
        if input_type == "choices" and not options.get("choices"):
            raise InvalidCallRequest("Choices are required for the choices input type.")
        prompts = body.get("playPrompts") or ([body["playPrompt"]] if body.get("playPrompt") else [])
        if prompts:
            _check_sources(prompts)
        op = {"kind": "recognize", "inputType": input_type, "sources": prompts, "options": options, "tones": []}
        await self._submit(call_id, op, body)

    async def _submit(self, call_id: str, op: dict[str, Any], body: dict[str, Any]) -> None:
        op |= {"id": uuid.uuid4().hex, "context": body.get("operationContext"),
               "url": body.get("operationCallbackUri")}

        def change(call: dict[str, Any], fx: Effects) -> None:
            self.calls.require_connected(call)
            for target in op.get("playTo", []):
                self.calls.connected_party(call, target)
            if call["media"] and body.get("interruptCallMediaOperation"):
                self._cancel(call, fx, call["media"])
                call["media"] = None
            if call["media"]:
                call["mediaQueue"].append(op)
            else:
                self._start(call, fx, op)

        await self.repo.change(call_id, change)

    async def cancel_all(self, call_id: str) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            self.calls.require_connected(call)
            for op in ([call["media"]] if call["media"] else []) + call["mediaQueue"]:
                self._cancel(call, fx, op)
            call["media"], call["mediaQueue"] = None, []

        await self.repo.change(call_id, change)

    async def send_dtmf(self, call_id: str, body: dict[str, Any]) -> dict[str, Any]:
        tones = body.get("tones")
        if not isinstance(tones, list) or not tones or any(str(t).lower() not in TONE_WORDS for t in tones):
            raise InvalidCallRequest("Tones must be a non-empty list of DTMF tone names.")
        target = raw_id_of(body.get("targetParticipant"), "targetParticipant")
        context, url = body.get("operationContext"), body.get("operationCallbackUri")

        def change(call: dict[str, Any], fx: Effects) -> dict[str, Any]:
            self.calls.require_connected(call)
            self.calls.connected_party(call, target)
            fx.timer(durations.TONE * len(tones), "dtmf_sent", context=context, url=url)
            return context_field(context)

        return await self.repo.change(call_id, change)

    # Running operations -------------------------------------------------------------------------------------
    def _start(self, call: dict[str, Any], fx: Effects, op: dict[str, Any]) -> None:
        call["media"] = op
        if op["kind"] == "play":
            bad = next((i for i, s in enumerate(op["sources"]) if _bad_file(s)), None)
            if bad is not None:
                self._callback(call, fx, op, "PlayFailed", {"failedPlaySourceIndex": bad}, BAD_FORMAT)
                self._finish(call, fx)
                return
            self._callback(call, fx, op, "PlayStarted", result=(200, 0, "Action started."))
            if not op["loop"]:
                fx.timer(sum(_source_length(s) for s in op["sources"]), "media_done", op=op["id"])
        elif op["sources"]:
            op["phase"] = "prompt"
            fx.timer(sum(_source_length(s) for s in op["sources"]), "media_done", op=op["id"])
        else:
            self._listen(fx, op)

    def _listen(self, fx: Effects, op: dict[str, Any]) -> None:
        op["phase"] = "listening"
        silence = op["options"].get("initialSilenceTimeoutInSeconds") or durations.INITIAL_SILENCE
        fx.timer(float(silence), "silence", op=op["id"])

    def _finish(self, call: dict[str, Any], fx: Effects) -> None:
        call["media"] = None
        if call["mediaQueue"]:
            self._start(call, fx, call["mediaQueue"].pop(0))

    def _cancel(self, call: dict[str, Any], fx: Effects, op: dict[str, Any]) -> None:
        name = "PlayCanceled" if op["kind"] == "play" else "RecognizeCanceled"
        self._callback(call, fx, op, name, result=CANCELED)

    def _callback(self, call: dict[str, Any], fx: Effects, op: dict[str, Any], name: str,
                  extra: dict[str, Any] | None = None, result: tuple[int, int, str] = COMPLETED) -> None:
        self.notify.callback(call, fx, name, extra, result=result, context=op.get("context"), url=op.get("url"))

    def _current(self, call: dict[str, Any], op_id: str | None = None) -> dict[str, Any] | None:
        op = call.get("media")
        if not call["live"] or op is None or (op_id is not None and op["id"] != op_id):
            return None
        return op

    # Timers ----------------------------------------------------------------------------------------------
    async def media_done(self, call_id: str, op_id: str) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            op = self._current(call, op_id)
            if op is None:
                return
            if op["kind"] == "play":
                self._callback(call, fx, op, "PlayCompleted")
                self._finish(call, fx)
            elif op.get("phase") == "prompt":
                self._listen(fx, op)

        await self.repo.change(call_id, change)

    async def silence(self, call_id: str, op_id: str) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            op = self._current(call, op_id)
            if op is not None and op.get("phase") == "listening" and not op["tones"]:
                self._callback(call, fx, op, "RecognizeFailed", result=SILENCE)
                self._finish(call, fx)

        await self.repo.change(call_id, change)

    async def inter_tone(self, call_id: str, op_id: str, count: int) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            op = self._current(call, op_id)
            if op is not None and len(op["tones"]) == count:
                self._recognized(call, fx, op, INTER_DIGIT)

        await self.repo.change(call_id, change)

    async def dtmf_sent(self, call_id: str, context: str | None, url: str | None) -> None:
        def change(call: dict[str, Any], fx: Effects) -> None:
            if call["live"] and call.get("app"):
                self.notify.callback(call, fx, "SendDtmfTonesCompleted", result=COMPLETED, context=context, url=url)

        await self.repo.change(call_id, change)

    def _recognized(self, call: dict[str, Any], fx: Effects, op: dict[str, Any], result: tuple[int, int, str],
                    extra: dict[str, Any] | None = None) -> None:
        data = extra or {"recognitionType": "dtmf", "dtmfResult": {"tones": list(op["tones"])}}
        self._callback(call, fx, op, "RecognizeCompleted", data, result)
        self._finish(call, fx)

    # The simulated caller ------------------------------------------------------------------------------------
    async def press(self, call_id: str, keys: list[str]) -> str:
        """The caller presses keys; returns what the recognizer made of them."""
        tones = [tone_word(k) for k in keys]
        if not tones:
            raise InvalidCallRequest("Press at least one key.")

        def change(call: dict[str, Any], fx: Effects) -> str:
            op = self._hearing(call)
            if op is None or op["inputType"] == "speech":
                return "no recognizer is listening for tones"
            if op["inputType"] == "choices":
                return self._choose(call, fx, op, tone=tones[0])
            return self._collect(call, fx, op, tones)

        return await self.repo.change(call_id, change)

    async def say(self, call_id: str, phrase: str) -> str:
        def change(call: dict[str, Any], fx: Effects) -> str:
            op = self._hearing(call)
            if op is None or op["inputType"] == "dtmf":
                return "no recognizer is listening for speech"
            if op["inputType"] == "choices":
                return self._choose(call, fx, op, phrase=phrase)
            speech = {"recognitionType": "speech", "speechResult": {"speech": phrase, "confidence": 1.0}}
            self._recognized(call, fx, op, SPEECH_RECOGNIZED, speech)
            return "speech recognized"

        return await self.repo.change(call_id, change)

    def _hearing(self, call: dict[str, Any]) -> dict[str, Any] | None:
        if not call["live"]:
            raise InvalidCallRequest("The call has ended.")
        op = self._current(call)
        if op is None or op["kind"] != "recognize":
            return None
        if op.get("phase") == "prompt":
            if not op["options"].get("interruptPrompt"):
                return None
            op["phase"] = "listening"
        return op

    def _collect(self, call: dict[str, Any], fx: Effects, op: dict[str, Any], tones: list[str]) -> str:
        dtmf = op["options"].get("dtmfOptions") or {}
        stop = {str(t).lower() for t in dtmf.get("stopTones") or []}
        most = int(dtmf.get("maxTonesToCollect") or 1)
        for tone in tones:
            if tone in stop:
                self._recognized(call, fx, op, STOP_TONE)
                return f"recognized {op['tones']} (stop tone)"
            op["tones"].append(tone)
            if len(op["tones"]) >= most:
                self._recognized(call, fx, op, MAX_DIGITS)
                return f"recognized {op['tones']} (max tones)"
        wait = dtmf.get("interToneTimeoutInSeconds") or durations.INTER_TONE
        fx.timer(float(wait), "inter_tone", op=op["id"], count=len(op["tones"]))
        return f"collected {op['tones']}"

    def _choose(self, call: dict[str, Any], fx: Effects, op: dict[str, Any], *, tone: str | None = None,
                phrase: str | None = None) -> str:
        for choice in op["options"].get("choices") or []:
            phrases = [str(p).lower() for p in choice.get("phrases") or []]
            if (tone and str(choice.get("tone", "")).lower() == tone) or (phrase and phrase.lower() in phrases):
                result = {"label": choice.get("label"), "recognizedPhrase": phrase or "", "confidence": 1.0}
                data = {"recognitionType": "choices", "choiceResult": result}
                self._recognized(call, fx, op, CHOICE_MATCHED, data)
                return f"chose {choice.get('label')}"
        self._callback(call, fx, op, "RecognizeFailed", result=WRONG_TONE if tone else NO_CHOICE)
        self._finish(call, fx)
        return "no choice matched"


def _bad_file(source: dict[str, Any]) -> bool:
    if str(source.get("kind", "")).lower() != "file":
        return False
    path = str(source["file"].get("uri", "")).split("?")[0].lower()
    return not path.endswith(_AUDIO_FILES)
