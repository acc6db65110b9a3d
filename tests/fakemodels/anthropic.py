"""The Anthropic Messages API as Claude Code calls it: `HEAD /`, `POST /v1/messages` (SSE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .script import FinalText, Script, Step, WriteFile
from .server import Answer, FakeModelServer, sse

DEFAULT_MODEL = "claude-sonnet-4-5"


class AnthropicProvider:
    name = "anthropic"

    def is_model_call(self, method: str, path: str) -> bool:
        return method == "POST" and path == "/v1/messages"

    def model_turns(self, body: Any) -> int:
        messages = body.get("messages", []) if isinstance(body, dict) else []
        return sum(1 for m in messages if m.get("role") == "assistant")

    def answer(self, step: Step, turn: int, body: Any, path: str) -> Answer:
        model = str(body.get("model") or DEFAULT_MODEL) if isinstance(body, dict) else ""
        if not (isinstance(body, dict) and body.get("tools")):
            # A side call (title, summary): answer briefly, never with the script.
            step = FinalText("ok", input_tokens=5, output_tokens=1)
        return _stream(step, turn, model)

    def error_body(self, status: int) -> dict[str, Any]:
        kind, message = {
            401: ("authentication_error", "invalid x-api-key"),
            429: ("rate_limit_error", "Number of request tokens has exceeded your rate limit"),
        }.get(status, ("api_error", "fake failure"))
        return {"type": "error", "error": {"type": kind, "message": message}}

    def other(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/v1/messages/count_tokens":
            return 200, {"input_tokens": 10}
        if method == "HEAD":
            return 200, None
        return 200, {}


def _stream(step: Step, turn: int, model: str) -> Iterator[bytes]:
    msg_id = f"msg_fake_{turn}"
    yield sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": step.input_tokens,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        },
    )
    if isinstance(step, WriteFile):
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": f"toolu_fake_{turn}",
            "name": "Write",
            "input": {},
        }
        payload = json.dumps({"file_path": step.path, "content": step.content})
        half = len(payload) // 2
        deltas = [
            {"type": "input_json_delta", "partial_json": payload[:half]},
            {"type": "input_json_delta", "partial_json": payload[half:]},
        ]
        stop_reason = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": step.text}]
        stop_reason = "end_turn"
    yield sse(
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    )
    for delta in deltas:
        yield sse(
            "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
        )
    yield sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": step.output_tokens},
        },
    )
    yield sse("message_stop", {"type": "message_stop"})


def fake_anthropic(script: Script) -> FakeModelServer:
    """A not yet started fake Anthropic API; use it as a context manager."""
    return FakeModelServer(AnthropicProvider(), script)
