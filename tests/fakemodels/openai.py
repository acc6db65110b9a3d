"""The OpenAI Responses API as Codex calls it: `POST /v1/responses` (SSE).

A file write is an `apply_patch` custom tool call when the request offers that tool
(models Codex knows, such as gpt-5.5), else an `exec_command` function call running
a shell `printf`.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from typing import Any

from .script import FinalText, Script, Step, WriteFile
from .server import Answer, FakeModelServer, sse

_MODEL_ITEMS = {"function_call", "custom_tool_call", "local_shell_call"}


class OpenAIProvider:
    name = "openai"

    def is_model_call(self, method: str, path: str) -> bool:
        return method == "POST" and path.endswith("/responses")

    def model_turns(self, body: Any) -> int:
        items = body.get("input", []) if isinstance(body, dict) else []
        return sum(1 for item in items if _is_model_item(item))

    def answer(self, step: Step, turn: int, body: Any, path: str) -> Answer:
        tools = body.get("tools", []) if isinstance(body, dict) else []
        names = {t.get("name") for t in tools if isinstance(t, dict)}
        return _stream(step, turn, "apply_patch" in names)

    def error_body(self, status: int) -> dict[str, Any]:
        error: dict[str, Any]
        if status == 401:
            error = {
                "message": "Incorrect API key provided: sk-fake.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        elif status == 429:
            error = {
                "message": "Rate limit reached for requests. Please try again in 1s.",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        else:
            error = {"message": "fake failure", "type": "server_error", "code": None}
        return {"error": {**error, "param": None}}

    def other(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "HEAD":
            return 200, None
        if path.endswith("/models"):
            return 200, {"object": "list", "data": [], "models": []}
        return 200, {}


def _is_model_item(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    if item.get("type") in _MODEL_ITEMS:
        return True
    return item.get("type", "message") == "message" and item.get("role") == "assistant"


def add_file_patch(path: str, content: str) -> str:
    """An apply_patch body creating `path`; the written file ends with one newline."""
    lines = content[:-1].split("\n") if content.endswith("\n") else content.split("\n")
    added = "".join(f"+{line}\n" for line in lines)
    return f"*** Begin Patch\n*** Add File: {path}\n{added}*** End Patch"


def _item(step: Step, turn: int, apply_patch: bool) -> dict[str, Any]:
    if isinstance(step, FinalText):
        return {
            "type": "message",
            "id": f"msg_fake_{turn}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": step.text, "annotations": []}],
        }
    assert isinstance(step, WriteFile)
    if apply_patch:
        return {
            "type": "custom_tool_call",
            "id": f"ctc_fake_{turn}",
            "call_id": f"call_fake_{turn}",
            "name": "apply_patch",
            "input": add_file_patch(step.path, step.content),
            "status": "completed",
        }
    command = f"printf %s {shlex.quote(step.content)} > {shlex.quote(step.path)}"
    return {
        "type": "function_call",
        "id": f"fc_fake_{turn}",
        "call_id": f"call_fake_{turn}",
        "name": "exec_command",
        "arguments": json.dumps({"cmd": command}),
        "status": "completed",
    }


def _stream(step: Step, turn: int, apply_patch: bool) -> Iterator[bytes]:
    response_id = f"resp_fake_{turn}"
    yield sse(
        "response.created",
        {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}},
    )
    item = _item(step, turn, apply_patch)
    added = {**item, "content": []} if item["type"] == "message" else item
    yield sse(
        "response.output_item.added",
        {"type": "response.output_item.added", "output_index": 0, "item": added},
    )
    if isinstance(step, FinalText):
        yield sse(
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "item_id": item["id"],
                "output_index": 0,
                "content_index": 0,
                "delta": step.text,
            },
        )
    yield sse(
        "response.output_item.done",
        {"type": "response.output_item.done", "output_index": 0, "item": item},
    )
    usage = {
        "input_tokens": step.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": step.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": step.input_tokens + step.output_tokens,
    }
    yield sse(
        "response.completed",
        {
            "type": "response.completed",
            "response": {"id": response_id, "status": "completed", "usage": usage},
        },
    )


def fake_openai(script: Script) -> FakeModelServer:
    """A not yet started fake OpenAI Responses API; use it as a context manager."""
    return FakeModelServer(OpenAIProvider(), script)
