"""Shell executor: any command line as the agent, run through sh for real."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_support import NASTY_PROMPTS, drive, kinds, run_command

from flotilla.domain.errors import UsageError
from flotilla.domain.events import EventKind
from flotilla.executors.base import AgentSettings, LaunchSpec
from flotilla.executors.shell import ShellExecutor


def _run(tmp_path: Path, command: str, prompt: str = "do it", **kw: object):  # type: ignore[no-untyped-def]
    spec = LaunchSpec(prompt, tmp_path, tmp_path / "run", AgentSettings(command=command), **kw)  # type: ignore[arg-type]
    cmd = ShellExecutor().headless(spec)
    done = run_command(cmd)
    events = drive(ShellExecutor().parser(), done.stdout.splitlines(), done.returncode, done.stderr)
    return done, events


@pytest.mark.parametrize("prompt", NASTY_PROMPTS)
def test_prompt_arrives_intact_on_stdin_and_in_env(tmp_path: Path, prompt: str) -> None:
    script = 'cat > stdin.txt; printf %s "$FLOTILLA_PROMPT" > env.txt; echo done'
    done, events = _run(tmp_path, script, prompt)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "stdin.txt").read_text() == prompt
    assert (tmp_path / "env.txt").read_text() == prompt
    assert events[-1].kind is EventKind.RESULT and events[-1].text == "done"


def test_every_line_is_text_and_result_keeps_the_last_twenty(tmp_path: Path) -> None:
    _, events = _run(tmp_path, 'for i in $(seq 1 30); do echo "line $i"; echo; done')
    assert kinds(events) == [EventKind.TEXT] * 30 + [EventKind.RESULT]
    result = events[-1]
    assert not result.is_error
    assert result.text.splitlines() == [f"line {i}" for i in range(11, 31)]
    assert result.data == {"exit_code": 0}


def test_failure_is_error_with_stderr(tmp_path: Path) -> None:
    done, events = _run(tmp_path, "echo working; echo 'tests failed' >&2; exit 3")
    assert done.returncode == 3
    assert kinds(events) == [EventKind.TEXT, EventKind.ERROR, EventKind.RESULT]
    assert events[1].text == "tests failed"
    assert events[-1].is_error and events[-1].text == "working"


@pytest.mark.parametrize(
    ("code", "kind"), [(75, EventKind.RATE_LIMITED), (77, EventKind.AUTH_FAILED)]
)
def test_sysexits_codes_map_to_retryable_and_auth_failures(
    tmp_path: Path, code: int, kind: EventKind
) -> None:
    _, events = _run(tmp_path, f"exit {code}")
    assert kinds(events) == [kind, EventKind.RESULT]
    assert events[-1].is_error


def test_follow_up_runs_the_command_again_with_the_new_prompt(tmp_path: Path) -> None:
    _run(tmp_path, 'echo "$FLOTILLA_PROMPT:${FLOTILLA_RESUME:-0}" >> log.txt', "first")
    _run(
        tmp_path, 'echo "$FLOTILLA_PROMPT:${FLOTILLA_RESUME:-0}" >> log.txt', "second", resume=True
    )
    assert (tmp_path / "log.txt").read_text() == "first:0\nsecond:1\n"


def test_binary_with_extra_flags(tmp_path: Path) -> None:
    settings = AgentSettings(binary="printf", extra_flags=("%s|%s\n", "a b", "c"))
    cmd = ShellExecutor().headless(LaunchSpec("p", tmp_path, tmp_path, settings))
    assert cmd.argv == ["printf", "%s|%s\n", "a b", "c"]
    assert run_command(cmd).stdout == "a b|c\n"


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\[agents.shell\] command"):
        ShellExecutor().headless(LaunchSpec("p", tmp_path, tmp_path))


def test_interactive_leaves_stdin_to_the_terminal(tmp_path: Path) -> None:
    cmd = ShellExecutor().interactive(
        LaunchSpec("p", tmp_path, tmp_path, AgentSettings(command="cat"))
    )
    assert cmd.stdin is None
    assert cmd.env["FLOTILLA_PROMPT"] == "p"
