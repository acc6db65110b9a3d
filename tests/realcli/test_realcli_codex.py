"""The real Codex CLI (`codex exec`) against the fake OpenAI Responses API, without Flotilla."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakemodels import FinalText, Mode, Script, WriteFile, cli_env, fake_server
from realcli.drive import headless_argv, run

pytestmark = [pytest.mark.real_cli, pytest.mark.slow]


def test_writes_the_file_and_reports_tokens(repo: Path, tmp_path: Path) -> None:
    target = repo / "hello.txt"
    script = Script.write_then_say(str(target), "hello from codex\n", "Wrote hello.txt.")
    with fake_server("codex", script) as fake:
        cli = cli_env("codex", tmp_path / "home", fake.base_url)
        out = run(headless_argv("codex", cli, "write hello.txt", repo), cli, repo)

    assert out.returncode == 0, out.describe()
    assert target.read_text() == "hello from codex\n"
    assert out.last("thread.started")["thread_id"]
    items = [e["item"] for e in out.of_type("item.completed")]
    changes = [c for i in items if i["type"] == "file_change" for c in i["changes"]]
    assert changes == [{"path": str(target), "kind": "add"}]
    messages = [i["text"] for i in items if i["type"] == "agent_message"]
    assert messages == ["Wrote hello.txt."]
    assert (cli.home / "last.txt").read_text().strip() == "Wrote hello.txt."
    usage = out.last("turn.completed")["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (250, 30)

    calls = fake.model_calls()
    assert len(calls) == 2
    assert all(c.headers.get("authorization") == "Bearer sk-fake" for c in calls)
    assert all(c.body["model"] == "gpt-5.5" and c.body["stream"] is True for c in calls)
    outputs = [i for i in calls[1].body["input"] if i.get("type") == "custom_tool_call_output"]
    assert [o["call_id"] for o in outputs] == ["call_fake_0"]


def test_persistent_429_fails_the_turn(repo: Path, tmp_path: Path) -> None:
    script = Script.write_then_say(str(repo / "x.txt"), "x\n", mode=Mode.RATE_LIMITED)
    with fake_server("codex", script) as fake:
        cli = cli_env("codex", tmp_path / "home", fake.base_url)
        out = run(headless_argv("codex", cli, "write x.txt", repo), cli, repo)

    assert out.returncode == 1, out.describe()
    assert not (repo / "x.txt").exists()
    message = out.last("turn.failed")["error"]["message"]
    assert "429 Too Many Requests" in message
    assert out.of_type("turn.completed") == []
    assert len(fake.model_calls()) == 1


def test_401_fails_the_turn_with_unauthorized(repo: Path, tmp_path: Path) -> None:
    script = Script.write_then_say(str(repo / "x.txt"), "x\n", mode=Mode.UNAUTHORIZED)
    with fake_server("codex", script) as fake:
        cli = cli_env("codex", tmp_path / "home", fake.base_url)
        out = run(headless_argv("codex", cli, "write x.txt", repo), cli, repo)

    assert out.returncode == 1, out.describe()
    assert "401 Unauthorized" in out.last("turn.failed")["error"]["message"]
    assert len(fake.model_calls()) == 1


def test_resume_sends_the_previous_conversation(repo: Path, tmp_path: Path) -> None:
    script = Script(
        steps=(
            WriteFile("one.txt", "one\n"),
            FinalText("First done."),
            WriteFile("two.txt", "two\n"),
            FinalText("Second done."),
        )
    )
    with fake_server("codex", script) as fake:
        cli = cli_env("codex", tmp_path / "home", fake.base_url)
        first = run(headless_argv("codex", cli, "write one", repo), cli, repo)
        assert first.returncode == 0, first.describe()
        thread = first.last("thread.started")["thread_id"]
        calls_before = len(fake.model_calls())
        # run from elsewhere: -C must carry the worktree into the resumed turn
        second = run(
            headless_argv("codex", cli, "now write two", repo, resume=thread), cli, tmp_path
        )

    assert second.returncode == 0, second.describe()
    assert (repo / "one.txt").read_text() == "one\n"
    assert (repo / "two.txt").read_text() == "two\n"
    assert (cli.home / "last.txt").read_text().strip() == "Second done."
    resumed = repr(fake.model_calls()[calls_before].body["input"])
    for earlier in ("write one", "call_fake_0", "First done.", "now write two"):
        assert earlier in resumed
