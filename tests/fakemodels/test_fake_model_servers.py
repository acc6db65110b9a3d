"""The fake model servers themselves, spoken to over real HTTP (no agent CLI needed)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import FinalText, Mode, Script, WriteFile, cli_env, fake_server
from .openai import add_file_patch

TOOLS = [{"name": "Write"}]


def sse_events(response: httpx.Response) -> list[tuple[str | None, Any]]:
    """(event name, data) pairs of an SSE body."""
    events = []
    for frame in response.text.split("\n\n"):
        if not frame.strip():
            continue
        name, data = None, None
        for line in frame.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
        events.append((name, data))
    return events


def test_anthropic_streams_a_write_then_text_chosen_by_the_conversation() -> None:
    script = Script.write_then_say("/w/a.txt", "hi\n", "Said.")
    with fake_server("claude", script) as fake, httpx.Client(base_url=fake.base_url) as http:
        assert http.head("/").status_code == 200
        user = {"role": "user", "content": "go"}
        body = {"model": "claude-x", "messages": [user], "tools": TOOLS, "stream": True}
        first = http.post("/v1/messages?beta=true", json=body)
        assert first.headers["content-type"] == "text/event-stream"
        assert first.headers["transfer-encoding"] == "chunked"
        events = sse_events(first)
        assert [name for name, _ in events] == [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        assert events[0][1]["message"]["model"] == "claude-x"
        assert events[0][1]["message"]["usage"]["input_tokens"] == 100
        assert events[1][1]["content_block"]["name"] == "Write"
        partial = "".join(data["delta"]["partial_json"] for name, data in events[2:4])
        assert json.loads(partial) == {"file_path": "/w/a.txt", "content": "hi\n"}
        assert events[5][1]["delta"]["stop_reason"] == "tool_use"
        assert events[5][1]["usage"]["output_tokens"] == 20

        assistant = {"role": "assistant", "content": [{"type": "tool_use"}]}
        body["messages"] = [user, assistant, {"role": "user", "content": "result"}]
        second = dict(sse_events(http.post("/v1/messages?beta=true", json=body)))
        assert second["content_block_delta"]["delta"] == {"type": "text_delta", "text": "Said."}
        assert second["message_delta"]["delta"]["stop_reason"] == "end_turn"

    calls = fake.model_calls()
    assert [(c.path, c.query, c.status) for c in calls] == [("/v1/messages", "beta=true", 200)] * 2
    assert calls[1].body["messages"][1]["role"] == "assistant"
    assert [r.method for r in fake.requests] == ["HEAD", "POST", "POST"]


def test_anthropic_side_call_without_tools_does_not_consume_the_script() -> None:
    script = Script.write_then_say("/w/a.txt", "hi\n")
    with fake_server("claude", script) as fake, httpx.Client(base_url=fake.base_url) as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "title?"}]}
        events = sse_events(http.post("/v1/messages", json=body))
    assert events[1][1]["content_block"]["type"] == "text"
    assert events[2][1]["delta"]["text"] == "ok"


def test_openai_answers_with_apply_patch_when_offered_else_exec_command(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    script = Script.write_then_say(str(target), "it's $HOME\n", "Done.")
    with fake_server("codex", script) as fake, httpx.Client(base_url=fake.base_url) as http:
        user = {"type": "message", "role": "user", "content": []}
        offered = {"input": [user], "tools": [{"type": "custom", "name": "apply_patch"}]}
        events = sse_events(http.post("/v1/responses", json=offered))
        assert [name for name, _ in events] == [
            "response.created",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed",
        ]
        item = events[2][1]["item"]
        assert (item["type"], item["name"]) == ("custom_tool_call", "apply_patch")
        assert item["input"] == add_file_patch(str(target), "it's $HOME\n")

        plain = {"input": [user], "tools": [{"type": "function", "name": "exec_command"}]}
        item = sse_events(http.post("/v1/responses", json=plain))[2][1]["item"]
        assert (item["type"], item["name"]) == ("function_call", "exec_command")
        # the command really writes the exact content, quotes and dollars included
        subprocess.run(["sh", "-c", json.loads(item["arguments"])["cmd"]], check=True)
        assert target.read_text() == "it's $HOME\n"

        done = {"input": [user, {"type": "custom_tool_call"}, {"type": "x_output"}]}
        events = sse_events(http.post("/v1/responses", json=done))
        names = [name for name, _ in events]
        assert "response.output_text.delta" in names
        assert events[names.index("response.output_text.delta")][1]["delta"] == "Done."
        usage = events[-1][1]["response"]["usage"]
        assert (usage["input_tokens"], usage["output_tokens"]) == (150, 10)


def test_add_file_patch_writes_lines_with_plus_signs() -> None:
    assert add_file_patch("a.txt", "x\ny\n") == (
        "*** Begin Patch\n*** Add File: a.txt\n+x\n+y\n*** End Patch"
    )
    assert add_file_patch("a.txt", "x") == "*** Begin Patch\n*** Add File: a.txt\n+x\n*** End Patch"


def test_gemini_streams_data_frames_and_answers_side_calls_with_json() -> None:
    script = Script(steps=(WriteFile("/w/g.txt", "g\n"), FinalText("Fin.")))
    with fake_server("gemini", script) as fake, httpx.Client(base_url=fake.base_url) as http:
        path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "go"}]}]}
        ((name, data),) = sse_events(http.post(path, json=body))
        assert name is None
        part = data["candidates"][0]["content"]["parts"][0]
        assert part["functionCall"] == {
            "name": "write_file",
            "args": {"file_path": "/w/g.txt", "content": "g\n"},
        }
        assert data["usageMetadata"]["promptTokenCount"] == 100
        assert data["modelVersion"] == "gemini-2.5-pro"

        body["contents"] += [
            {"role": "model", "parts": [{"functionCall": {"name": "write_file"}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "write_file"}}]},
        ]
        ((_, data),) = sse_events(http.post(path, json=body))
        assert data["candidates"][0]["content"]["parts"] == [{"text": "Fin."}]

        side = http.post("/v1beta/models/gemini-2.5-flash:generateContent", json=body).json()
        text = side["candidates"][0]["content"]["parts"][0]["text"]
        assert json.loads(text)["next_speaker"] == "user"
        counted = http.post("/v1beta/models/gemini-2.5-pro:countTokens", json=body).json()
        assert counted == {"totalTokens": 10}
    assert len(fake.model_calls()) == 3


@pytest.mark.parametrize("kind", ["claude", "codex", "gemini"])
def test_rate_limited_mode_answers_429_with_retry_after(kind: str) -> None:
    script = Script.write_then_say("/w/a", "a", mode=Mode.RATE_LIMITED, retry_after=7)
    path = {
        "claude": "/v1/messages",
        "codex": "/v1/responses",
        "gemini": "/v1beta/models/m:streamGenerateContent",
    }[kind]
    with fake_server(kind, script) as fake, httpx.Client(base_url=fake.base_url) as http:
        assert http.head("/").status_code == 200  # not a model call: never failed
        for _ in range(3):
            answer = http.post(path, json={})
            assert answer.status_code == 429
            assert answer.headers["retry-after"] == "7"
            assert "error" in answer.json()
    assert [c.status for c in fake.model_calls()] == [429, 429, 429]


def test_rate_limited_first_then_normal_and_unauthorized_modes() -> None:
    script = Script.write_then_say("/w/a", "a", mode=Mode.RATE_LIMITED_FIRST, fail_first=2)
    with fake_server("codex", script) as fake, httpx.Client(base_url=fake.base_url) as http:
        statuses = [http.post("/v1/responses", json={"input": []}).status_code for _ in range(4)]
    assert statuses == [429, 429, 200, 200]
    assert [c.status for c in fake.model_calls()] == statuses

    script = Script.write_then_say("/w/a", "a", mode=Mode.UNAUTHORIZED)
    with fake_server("claude", script) as fake, httpx.Client(base_url=fake.base_url) as http:
        answer = http.post("/v1/messages", json={})
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"
    assert "retry-after" not in answer.headers


def test_requests_are_recorded_with_headers_query_and_body() -> None:
    with (
        fake_server("gemini", Script.write_then_say("/w/a", "a")) as fake,
        httpx.Client(base_url=fake.base_url) as http,
    ):
        http.post(
            "/v1beta/models/m:streamGenerateContent?alt=sse",
            json={"contents": []},
            headers={"x-goog-api-key": "k1"},
        )
        http.get("/v1beta/models")
    first, second = fake.requests
    assert (first.method, first.path, first.query) == (
        "POST",
        "/v1beta/models/m:streamGenerateContent",
        "alt=sse",
    )
    assert first.headers["x-goog-api-key"] == "k1"
    assert first.body == {"contents": []} and first.model_call
    assert (second.method, second.body, second.model_call) == ("GET", None, False)


def test_stop_does_not_wait_for_a_client_holding_a_keepalive_connection() -> None:
    fake = fake_server("claude", Script.write_then_say("/w/a", "a")).start()
    http = httpx.Client(base_url=fake.base_url)
    try:
        assert http.get("/v1/models").status_code == 200  # connection stays open
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 3
    finally:
        http.close()


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        fake_server("cursor", Script(steps=()))


def test_cli_env_is_isolated_and_configures_each_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "real-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "real-secret")
    url = "http://127.0.0.1:9"

    claude = cli_env("claude", tmp_path / "c", url, max_attempts=3)
    assert claude.env["ANTHROPIC_BASE_URL"] == url
    assert claude.env["CLAUDE_CODE_MAX_RETRIES"] == "2"
    assert claude.env["HOME"] == str(tmp_path / "c")
    assert Path(claude.env["TMPDIR"]).is_dir()
    assert "real-secret" not in claude.env.values()

    codex = cli_env("codex", tmp_path / "x", url)
    assert Path(codex.env["CODEX_HOME"]).is_dir()
    assert codex.env["OPENAI_API_KEY"] != "real-secret"
    assert any(f'base_url="{url}/v1"' in flag for flag in codex.extra_flags)
    assert "request_max_retries=0" in codex.extra_flags[-1]

    gemini = cli_env("gemini", tmp_path / "g", url, max_attempts=2)
    settings = json.loads((tmp_path / "g" / ".gemini" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert settings["general"]["maxAttempts"] == 2
    assert gemini.env["GOOGLE_GEMINI_BASE_URL"] == url

    with pytest.raises(ValueError, match="unknown agent CLI"):
        cli_env("cursor", tmp_path / "u", url)
