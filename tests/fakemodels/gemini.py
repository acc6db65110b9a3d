"""The Gemini API as Gemini CLI calls it: `POST /v1beta/models/<m>:streamGenerateContent`.

Non-streaming `generateContent` calls are the CLI's side questions (model router,
next-speaker check) asking for JSON; they get one JSON object that fits those schemas
and never consume a step of the script.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .script import FinalText, Script, Step, WriteFile
from .server import Answer, FakeModelServer, sse

# Fits the router's and the next-speaker check's response schemas at once.
_SIDE_ANSWER = {
    "reasoning": "The model finished its turn.",
    "next_speaker": "user",
    "complexity_reasoning": "A simple task.",
    "complexity_score": 1,
}


_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


class GeminiProvider:
    name = "gemini"

    def is_model_call(self, method: str, path: str) -> bool:
        return method == "POST" and (path.endswith((":streamGenerateContent", ":generateContent")))

    def model_turns(self, body: Any) -> int:
        contents = body.get("contents", []) if isinstance(body, dict) else []
        return sum(1 for c in contents if c.get("role") == "model" and _is_ours(c))

    def answer(self, step: Step, turn: int, body: Any, path: str) -> Answer:
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        if path.endswith(":generateContent"):
            return _response([{"text": json.dumps(_SIDE_ANSWER)}], model, 10, 5)
        return _stream(step, model)

    def __init__(self, retry_after: int = 1) -> None:
        self.retry_after = retry_after

    def error_body(self, status: int) -> dict[str, Any]:
        kind, message = {
            401: ("UNAUTHENTICATED", "API key not valid. Please pass a valid API key."),
            429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        }.get(status, ("INTERNAL", "fake failure"))
        error: dict[str, Any] = {"code": status, "message": message, "status": kind}
        if status == 429:
            # Gemini CLI ignores Retry-After; it waits as long as RetryInfo says.
            retry = {"@type": _RETRY_INFO, "retryDelay": f"{self.retry_after}s"}
            error["details"] = [retry]
        return {"error": error}

    def other(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path.endswith(":countTokens"):
            return 200, {"totalTokens": 10}
        if method == "HEAD":
            return 200, None
        return 200, {}


def _is_ours(content: dict[str, Any]) -> bool:
    """A model turn the fake produced (a tool call or prose), not context the CLI seeds."""
    parts = content.get("parts", [])
    return any("functionCall" in p or "text" in p for p in parts) and not any(
        p.get("text", "").startswith("Got it. Thanks for the context") for p in parts
    )


def _response(
    parts: list[dict[str, Any]], model: str, input_tokens: int, output_tokens: int
) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": input_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": input_tokens + output_tokens,
        },
        "modelVersion": model,
    }


def _stream(step: Step, model: str) -> Iterator[bytes]:
    if isinstance(step, WriteFile):
        call = {"name": "write_file", "args": {"file_path": step.path, "content": step.content}}
        parts: list[dict[str, Any]] = [{"functionCall": call}]
    else:
        assert isinstance(step, FinalText)
        parts = [{"text": step.text}]
    yield sse(None, _response(parts, model, step.input_tokens, step.output_tokens))


def fake_gemini(script: Script) -> FakeModelServer:
    """A not yet started fake Gemini API; use it as a context manager."""
    return FakeModelServer(GeminiProvider(script.retry_after), script)
