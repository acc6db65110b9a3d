"""The real Gemini CLI against the fake Gemini API, without Flotilla."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from fakemodels import FinalText, Mode, Script, WriteFile, cli_env, fake_server
from realcli.drive import headless_argv, run

pytestmark = [pytest.mark.real_cli, pytest.mark.slow]


def test_writes_the_file_and_reports_tokens(repo: Path, tmp_path: Path) -> None:
    target = repo / "hello.txt"
    script = Script.write_then_say(str(target), "hello from gemini\n", "Wrote hello.txt.")
    with fake_server("gemini", script) as fake:
        cli = cli_env("gemini", tmp_path / "home", fake.base_url)
        out = run(headless_argv("gemini", cli, "write hello.txt", repo), cli, repo)

    assert out.returncode == 0, out.describe()
    assert target.read_text() == "hello from gemini\n"
    init = out.last("init")
    assert init["session_id"] and init["model"] == "gemini-2.5-pro"
    (tool_use,) = out.of_type("tool_use")
    assert tool_use["tool_name"] == "write_file"
    assert tool_use["parameters"]["file_path"] == str(target)
    (tool_result,) = out.of_type("tool_result")
    assert tool_result["tool_id"] == tool_use["tool_id"] and tool_result["status"] == "success"
    said = [e["content"] for e in out.of_type("message") if e["role"] == "assistant"]
    assert "".join(said) == "Wrote hello.txt."
    result = out.last("result")
    assert result["status"] == "success"
    stats = result["stats"]
    assert (stats["input_tokens"], stats["output_tokens"], stats["total_tokens"]) == (250, 30, 280)

    calls = fake.model_calls()
    assert [c.path for c in calls] == ["/v1beta/models/gemini-2.5-pro:streamGenerateContent"] * 2
    assert all(c.query == "alt=sse" for c in calls)
    assert all(c.headers.get("x-goog-api-key") == "fake-gemini-key" for c in calls)
    responses = [
        part["functionResponse"]
        for content in calls[1].body["contents"]
        for part in content["parts"]
        if "functionResponse" in part
    ]
    assert [r["name"] for r in responses] == ["write_file"]


def test_persistent_429_exits_with_status_mod_256(repo: Path, tmp_path: Path) -> None:
    script = Script.write_then_say(str(repo / "x.txt"), "x\n", mode=Mode.RATE_LIMITED)
    with fake_server("gemini", script) as fake:
        cli = cli_env("gemini", tmp_path / "home", fake.base_url)
        out = run(headless_argv("gemini", cli, "write x.txt", repo), cli, repo)

    assert out.returncode == 429 % 256, out.describe()
    assert not (repo / "x.txt").exists()
    result = out.last("result")
    assert result["status"] == "error"
    assert "Resource has been exhausted" in result["error"]["message"]
    assert list((cli.home / "tmp").glob("gemini-client-error-*.json"))
    assert len(fake.model_calls()) == 1


def test_401_exits_with_status_mod_256(repo: Path, tmp_path: Path) -> None:
    script = Script.write_then_say(str(repo / "x.txt"), "x\n", mode=Mode.UNAUTHORIZED)
    with fake_server("gemini", script) as fake:
        cli = cli_env("gemini", tmp_path / "home", fake.base_url)
        out = run(headless_argv("gemini", cli, "write x.txt", repo), cli, repo)

    assert out.returncode == 401 % 256, out.describe()
    result = out.last("result")
    assert result["status"] == "error"
    assert "UNAUTHENTICATED" in result["error"]["message"]
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
    with fake_server("gemini", script) as fake:
        cli = cli_env("gemini", tmp_path / "home", fake.base_url)
        first = run(headless_argv("gemini", cli, "write one", repo, session_id=session), cli, repo)
        assert first.returncode == 0, first.describe()
        assert first.last("init")["session_id"] == session
        calls_before = len(fake.model_calls())
        second = run(headless_argv("gemini", cli, "now write two", repo, resume=session), cli, repo)

    assert second.returncode == 0, second.describe()
    assert (repo / "two.txt").read_text() == "two\n"
    said = [e["content"] for e in second.of_type("message") if e["role"] == "assistant"]
    assert "".join(said) == "Second done."
    resumed = fake.model_calls()[calls_before].body["contents"]
    text = repr(resumed)
    for earlier in ("write one", "write_file", "First done.", "now write two"):
        assert earlier in text
    assert sum(1 for c in resumed if c["role"] == "model") == 2


def test_429_then_success_retries_and_writes(repo: Path, tmp_path: Path) -> None:
    """Gemini CLI waits at least 5 s before a retry, whatever the server suggests."""
    script = Script.write_then_say(
        str(repo / "x.txt"), "x\n", mode=Mode.RATE_LIMITED_FIRST, fail_first=1
    )
    with fake_server("gemini", script) as fake:
        cli = cli_env("gemini", tmp_path / "home", fake.base_url, max_attempts=2)
        out = run(headless_argv("gemini", cli, "write x.txt", repo), cli, repo)

    assert out.returncode == 0, out.describe()
    assert (repo / "x.txt").read_text() == "x\n"
    assert out.last("result")["status"] == "success"
    assert [c.status for c in fake.model_calls()] == [429, 200, 200]
