"""The scripted agent, run as a real subprocess in a real git repository."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from executor_support import drive, kinds, only, run_command

from flotilla.domain.errors import UsageError
from flotilla.domain.events import AgentEvent, EventKind
from flotilla.executors.base import AgentSettings, LaunchSpec
from flotilla.executors.hooks import parse_hook_line
from flotilla.executors.scripted import ScriptedExecutor

Run = tuple[subprocess.CompletedProcess[str], list[AgentEvent]]


def _script(repo: Path, body: str) -> Path:
    path = repo.parent / "script.toml"
    path.write_text(textwrap.dedent(body))
    return path


def _run(
    repo: Path,
    run_dir: Path,
    script: Path | None = None,
    prompt: str = "add hello",
    attempt: int = 1,
    resume: bool = False,
    interactive: bool = False,
) -> Run:
    spec = LaunchSpec(
        prompt=prompt,
        worktree=repo,
        run_dir=run_dir,
        settings=AgentSettings(script=str(script) if script else None),
        session_id="sess-1",
        resume=resume,
    )
    executor = ScriptedExecutor()
    command = executor.interactive(spec) if interactive else executor.headless(spec)
    done = run_command(command, extra_env={"FLOTILLA_ATTEMPT": str(attempt)})
    events = drive(executor.parser(spec), done.stdout.splitlines(), done.returncode, done.stderr)
    return done, events


def test_write_run_commit_in_a_real_repo(
    git_repo: Path, run_dir: Path, git: Callable[..., str]
) -> None:
    script = _script(
        git_repo,
        """
        [[steps]]
        action = "write"
        path = "src/hello.py"
        content = "# {prompt}\\nprint('hello')\\n"

        [[steps]]
        action = "run"
        command = "python3 src/hello.py && echo \\"attempt {attempt}\\""

        [[steps]]
        action = "commit"
        message = "Add hello: {prompt}"

        [[steps]]
        action = "usage"
        input_tokens = 1200
        output_tokens = 300
        cost_usd = 0.02

        [[steps]]
        action = "say"
        text = "Added src/hello.py"
        """,
    )
    done, events = _run(git_repo, run_dir, script, prompt="it's `odd` $HOME")
    assert done.returncode == 0, done.stderr

    assert (git_repo / "src/hello.py").read_text() == "# it's `odd` $HOME\nprint('hello')\n"
    assert git(git_repo, "log", "-1", "--format=%s").strip() == "Add hello: it's `odd` $HOME"
    assert git(git_repo, "status", "--porcelain") == ""

    assert events[0].kind is EventKind.SESSION_STARTED and events[0].session_id == "sess-1"
    tool_results = {e.tool: e for e in events if e.kind is EventKind.TOOL_RESULT}
    assert tool_results["run"].text == "hello\nattempt 1\n"
    assert tool_results["run"].data["exit_code"] == 0
    assert tool_results["commit"].data["commit"] == git(git_repo, "rev-parse", "HEAD").strip()
    result = events[-1]
    assert result.kind is EventKind.RESULT and not result.is_error
    assert result.text == "Added src/hello.py"
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1200, 300)
    assert result.usage.cost_usd == pytest.approx(0.02)


def test_rate_limited_on_first_attempt_then_succeeds(git_repo: Path, run_dir: Path) -> None:
    script = _script(
        git_repo,
        """
        [[steps]]
        action = "rate_limit"
        attempt = 1
        retry_after = 7

        [[steps]]
        action = "write"
        path = "done.txt"
        content = "attempt {attempt}"
        """,
    )
    first, events = _run(git_repo, run_dir, script, attempt=1)
    assert first.returncode == 75
    limited = only(events, EventKind.RATE_LIMITED)
    assert limited.retry_after == 7
    assert events[-1].kind is EventKind.RESULT and events[-1].is_error
    assert not (git_repo / "done.txt").exists()

    second, events = _run(git_repo, run_dir, script, attempt=2)
    assert second.returncode == 0
    assert EventKind.RATE_LIMITED not in kinds(events)
    assert (git_repo / "done.txt").read_text() == "attempt 2"


def test_fail_and_auth_fail(git_repo: Path, run_dir: Path) -> None:
    fail = _script(
        git_repo, '[[steps]]\naction = "fail"\nmessage = "tests are red"\nexit_code = 3\n'
    )
    done, events = _run(git_repo, run_dir, fail)
    assert done.returncode == 3
    assert kinds(events) == [
        EventKind.SESSION_STARTED,
        EventKind.ERROR,
        EventKind.USAGE,
        EventKind.RESULT,
    ]
    assert events[-1].is_error and events[-1].text == "tests are red"

    auth = _script(git_repo, '[[steps]]\naction = "auth_fail"\n')
    done, events = _run(git_repo, run_dir, auth)
    assert done.returncode == 77
    assert only(events, EventKind.AUTH_FAILED).text.startswith("authentication failed")


def test_default_script_is_a_dry_run(git_repo: Path, run_dir: Path) -> None:
    prompt = 'multi\nline "prompt" with $(danger)'
    done, events = _run(git_repo, run_dir, prompt=prompt)
    assert done.returncode == 0, done.stderr
    assert prompt in (git_repo / "FLOTILLA_NOTES.md").read_text()
    assert events[-1].text == "Dry run: wrote the prompt to FLOTILLA_NOTES.md."
    assert events[-1].usage is not None and events[-1].usage.cost_usd == 0.0

    done, events = _run(git_repo, run_dir, prompt="and then this", resume=True)
    assert done.returncode == 0
    notes = (git_repo / "FLOTILLA_NOTES.md").read_text()
    assert notes.index(prompt) < notes.index("and then this")
    assert events[0].session_id == "sess-1"


def test_resume_runs_on_prompt_steps(git_repo: Path, run_dir: Path) -> None:
    script = _script(
        git_repo,
        """
        [[steps]]
        action = "say"
        text = "first turn"

        [[on_prompt]]
        action = "append"
        path = "log.txt"
        content = "{prompt}\\n"

        [[on_prompt]]
        action = "next_steps"
        items = ["review {prompt}"]
        """,
    )
    _run(git_repo, run_dir, script, prompt="one", resume=True)
    _, events = _run(git_repo, run_dir, script, prompt="two", resume=True)
    assert (git_repo / "log.txt").read_text() == "one\ntwo\n"
    assert events[-1].data["next_steps"] == ["review two"]
    assert "first turn" not in [e.text for e in events]


def test_blocked_ends_the_run_and_later_steps_do_not_run(git_repo: Path, run_dir: Path) -> None:
    script = _script(
        git_repo,
        """
        [[steps]]
        action = "blocked"
        text = "need the API schema"

        [[steps]]
        action = "write"
        path = "never.txt"
        content = "x"
        """,
    )
    done, events = _run(git_repo, run_dir, script)
    assert done.returncode == 0
    assert events[-1].data == {"blocked": True}
    assert events[-1].text == "need the API schema"
    assert not (git_repo / "never.txt").exists()


def test_failed_tools_are_reported_and_the_run_goes_on(git_repo: Path, run_dir: Path) -> None:
    script = _script(
        git_repo,
        """
        [[steps]]
        action = "replace"
        path = "README.md"
        old = "no such text"
        new = "x"

        [[steps]]
        action = "write"
        path = "../escape.txt"
        content = "x"

        [[steps]]
        action = "replace"
        path = "README.md"
        old = "demo"
        new = "hello"

        [[steps]]
        action = "run"
        command = "exit 4"
        check = true

        [[steps]]
        action = "say"
        text = "never said"
        """,
    )
    done, events = _run(git_repo, run_dir, script)
    results = [(e.tool, e.is_error) for e in events if e.kind is EventKind.TOOL_RESULT]
    assert results == [("replace", True), ("write", True), ("replace", False), ("run", True)]
    assert not (git_repo.parent / "escape.txt").exists()
    assert (git_repo / "README.md").read_text() == "# hello\n"
    assert done.returncode == 1  # run with check = true failed the run
    assert events[-1].is_error and "exited 4" in events[-1].text


def test_sleep_heartbeat_and_exit_code(git_repo: Path, run_dir: Path) -> None:
    script = _script(
        git_repo,
        """
        [[steps]]
        action = "sleep"
        seconds = 0.35
        heartbeat = 0.1

        [[steps]]
        action = "exit"
        code = 9
        """,
    )
    done, events = _run(git_repo, run_dir, script)
    assert done.returncode == 9
    beats = [e for e in events if e.kind is EventKind.TEXT]
    assert 2 <= len(beats) <= 4 and beats[0].text.startswith("still working")
    assert events[-1].is_error and events[-1].data["exit_code"] == 9


def test_interactive_writes_waiting_and_stopped_hook_lines(git_repo: Path, run_dir: Path) -> None:
    script = _script(
        git_repo,
        """
        [[steps]]
        action = "wait_input"
        text = "approve the plan?"
        seconds = 0

        [[steps]]
        action = "say"
        text = "went ahead"
        """,
    )
    done, events = _run(git_repo, run_dir, script, interactive=True)
    assert done.returncode == 0, done.stderr
    assert only(events, EventKind.WAITING).text == "approve the plan?"
    hook_events = [
        parse_hook_line(line) for line in (run_dir / "hooks.jsonl").read_text().splitlines()
    ]
    assert [(e.kind, e.text) for e in hook_events if e] == [
        (EventKind.WAITING, "approve the plan?"),
        (EventKind.RESULT, "went ahead"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[steps]]\naction = "dance"\n', "unknown action 'dance'"),
        ('[[steps]]\naction = "write"\npath = "x"\n', "needs 'content'"),
        ('[[steps]]\naction = "say"\ntext = "x"\nloud = true\n', "does not take 'loud'"),
        ('[[steps]]\naction = "sleep"\nseconds = "long"\n', "must be int/float"),
        ('[[steps]]\naction = "say"\ntext = "x"\nattempt = 0\n', "attempt must be"),
        ("[[steps]\n", "not valid TOML"),
        ("[setup]\n", "unknown top-level keys"),
    ],
)
def test_bad_scripts_fail_the_launch_with_one_line(
    git_repo: Path, run_dir: Path, body: str, message: str
) -> None:
    script = _script(git_repo, body)
    spec = LaunchSpec("p", git_repo, run_dir, AgentSettings(script=str(script)))
    with pytest.raises(UsageError, match=message) as info:
        ScriptedExecutor().headless(spec)
    assert "\n" not in str(info.value)


def test_missing_script_and_relative_path(git_repo: Path, run_dir: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the agent script"):
        ScriptedExecutor().headless(
            LaunchSpec("p", git_repo, run_dir, AgentSettings(script="nope.toml"))
        )
    (git_repo / "agent.toml").write_text('[[steps]]\naction = "say"\ntext = "from the worktree"\n')
    spec = LaunchSpec("p", git_repo, run_dir, AgentSettings(script="agent.toml"))
    events = drive(
        ScriptedExecutor().parser(),
        run_command(ScriptedExecutor().headless(spec)).stdout.splitlines(),
    )
    assert events[-1].text == "from the worktree"


def test_agent_given_a_bad_script_directly_exits_2_with_a_result(
    git_repo: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[steps]]\naction = "nope"\n')
    command = ScriptedExecutor().headless(LaunchSpec("p", git_repo, tmp_path))
    done = run_command(command, extra_env={"FLOTILLA_SCRIPT": str(bad)})
    assert done.returncode == 2
    assert "unknown action" in done.stderr
    events = drive(
        ScriptedExecutor().parser(), done.stdout.splitlines(), done.returncode, done.stderr
    )
    assert kinds(events) == [EventKind.ERROR, EventKind.RESULT]


def test_parser_without_result_uses_exit_code() -> None:
    parser = ScriptedExecutor().parser()
    assert kinds(parser.feed("Traceback (most recent call last):")) == [EventKind.TEXT]
    assert kinds(parser.feed('{"kind": "no_such_kind"}')) == [EventKind.TEXT]
    assert kinds(parser.finish(75, "")) == [EventKind.RATE_LIMITED, EventKind.RESULT]


def test_usage_steps_add_up_into_one_final_usage(git_repo: Path, run_dir: Path) -> None:
    script = _script(
        git_repo,
        """
        [[steps]]
        action = "usage"
        input_tokens = 100
        output_tokens = 10

        [[steps]]
        action = "usage"
        input_tokens = 1000000
        cached_input_tokens = 500000
        model = "gpt-5"
        """,
    )
    _, events = _run(git_repo, run_dir, script)
    usage = only(events, EventKind.USAGE)
    assert usage.data == {"final": True}
    assert usage.usage is not None
    assert (usage.usage.input_tokens, usage.usage.output_tokens) == (1_000_100, 10)
    assert usage.usage.model == "gpt-5"
    assert usage.usage.cost_usd is None  # part of it is unpriced: the price table prices it all


def test_a_tool_that_raises_is_a_failed_tool_call_not_a_crash(
    git_repo: Path, run_dir: Path
) -> None:
    (git_repo / "adir").mkdir()
    script = _script(
        git_repo,
        """
        [[steps]]
        action = "write"
        path = "adir"
        content = "x"

        [[steps]]
        action = "say"
        text = "carried on"
        """,
    )
    done, events = _run(git_repo, run_dir, script)
    assert done.returncode == 0, done.stderr
    failed = only(events, EventKind.TOOL_RESULT)
    assert failed.is_error and "directory" in failed.text
    assert events[-1].text == "carried on"
