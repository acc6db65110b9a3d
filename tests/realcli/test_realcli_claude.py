"""The real Claude Code CLI against the fake Anthropic API, without Flotilla."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from fakemodels import FinalText, Mode, Script, WriteFile, cli_env, fake_server
from realcli.drive import headless_argv, run

pytestmark = [pytest.mark.real_cli, pytest.mark.slow]


def test_writes_the_file_and_reports_tokens_and_cost(repo: Path, tmp_path: Path) -> None:
    target = repo / "hello.txt"
    script = Script.write_then_say(str(target), "hello from claude\n", "Wrote hello.txt.")
    with fake_server("claude", script) as fake:
        cli = cli_env("claude", tmp_path / "home", fake.base_url)
        out = run(headless_argv("claude", cli, "write hello.txt", repo), cli, repo)

    assert out.returncode == 0, out.describe()
    assert target.read_text() == "hello from claude\n"
    init = out.last("system")
    assert init["subtype"] == "init" and init["cwd"] == str(repo)
    tool_uses = [
        block
        for event in out.of_type("assistant")
        for block in event["message"]["content"]
        if block["type"] == "tool_use"
    ]
    assert [(t["name"], t["input"]["file_path"]) for t in tool_uses] == [("Write", str(target))]
    result = out.last("result")
    assert result["subtype"] == "success" and result["is_error"] is False
    assert result["result"] == "Wrote hello.txt."
    assert result["session_id"] == init["session_id"]
    assert (result["usage"]["input_tokens"], result["usage"]["output_tokens"]) == (250, 30)
    assert result["total_cost_usd"] > 0
    (model_usage,) = result["modelUsage"].values()
    assert (model_usage["inputTokens"], model_usage["outputTokens"]) == (250, 30)
    assert model_usage["costUSD"] == result["total_cost_usd"]

    calls = fake.model_calls()
    assert len(calls) == 2
    assert all(c.headers.get("x-api-key") == "sk-ant-fake" for c in calls)
    tool_results = [
        block
        for message in calls[1].body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert [b["tool_use_id"] for b in tool_results] == ["toolu_fake_0"]
    assert any(r.method == "HEAD" and r.path == "/" for r in fake.requests)


def test_persistent_429_is_reported_as_rate_limit(repo: Path, tmp_path: Path) -> None:
    script = Script.write_then_say(str(repo / "x.txt"), "x\n", mode=Mode.RATE_LIMITED)
    with fake_server("claude", script) as fake:
        cli = cli_env("claude", tmp_path / "home", fake.base_url, max_attempts=2)
        out = run(headless_argv("claude", cli, "write x.txt", repo), cli, repo)

    assert out.returncode == 1, out.describe()
    assert not (repo / "x.txt").exists()
    retries = [e for e in out.of_type("system") if e.get("subtype") == "api_retry"]
    assert [(r["error_status"], r["error"]) for r in retries] == [(429, "rate_limit")]
    assert [e.get("error") for e in out.of_type("assistant")] == ["rate_limit"]
    result = out.last("result")
    assert result["is_error"] is True and result["api_error_status"] == 429
    assert len(fake.model_calls()) == 2


def test_429_then_success_retries_and_writes(repo: Path, tmp_path: Path) -> None:
    script = Script.write_then_say(
        str(repo / "x.txt"), "x\n", mode=Mode.RATE_LIMITED_FIRST, fail_first=1
    )
    with fake_server("claude", script) as fake:
        cli = cli_env("claude", tmp_path / "home", fake.base_url, max_attempts=2)
        out = run(headless_argv("claude", cli, "write x.txt", repo), cli, repo)

    assert out.returncode == 0, out.describe()
    assert (repo / "x.txt").read_text() == "x\n"
    retries = [e for e in out.of_type("system") if e.get("subtype") == "api_retry"]
    assert [r["error_status"] for r in retries] == [429]
    assert out.last("result")["is_error"] is False
    assert [c.status for c in fake.model_calls()] == [429, 200, 200]


def test_401_is_reported_as_authentication_failure(repo: Path, tmp_path: Path) -> None:
    script = Script.write_then_say(str(repo / "x.txt"), "x\n", mode=Mode.UNAUTHORIZED)
    with fake_server("claude", script) as fake:
        cli = cli_env("claude", tmp_path / "home", fake.base_url)
        out = run(headless_argv("claude", cli, "write x.txt", repo), cli, repo)

    assert out.returncode == 1, out.describe()
    assert [e.get("error") for e in out.of_type("assistant")] == ["authentication_failed"]
    result = out.last("result")
    assert result["is_error"] is True and result["api_error_status"] == 401
    assert len(fake.model_calls()) == 1


def test_resume_sends_the_previous_conversation(repo: Path, tmp_path: Path) -> None:
    script = Script(
        steps=(
            WriteFile(str(repo / "one.txt"), "one\n"),
            FinalText("First done."),
            WriteFile(str(repo / "two.txt"), "two\n"),
            FinalText("Second done."),
        )
    )
    session = str(uuid.uuid4())
    with fake_server("claude", script) as fake:
        cli = cli_env("claude", tmp_path / "home", fake.base_url)
        first = run(headless_argv("claude", cli, "write one", repo, session_id=session), cli, repo)
        assert first.returncode == 0, first.describe()
        assert first.last("result")["session_id"] == session
        calls_before = len(fake.model_calls())
        second = run(headless_argv("claude", cli, "now write two", repo, resume=session), cli, repo)

    assert second.returncode == 0, second.describe()
    assert (repo / "two.txt").read_text() == "two\n"
    assert second.last("result")["result"] == "Second done."
    resumed = fake.model_calls()[calls_before].body["messages"]
    text = repr(resumed)
    for earlier in ("write one", "toolu_fake_0", "First done.", "now write two"):
        assert earlier in text
    assert sum(1 for m in resumed if m["role"] == "assistant") == 2
