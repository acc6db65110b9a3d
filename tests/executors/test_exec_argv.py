"""Every adapter, run for real with a stand-in binary: the prompt arrives as one intact argument."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from executor_support import NASTY_PROMPTS, run_command
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.domain.errors import UsageError
from flotilla.domain.events import AgentEvent
from flotilla.executors.base import AgentSettings, LaunchSpec
from flotilla.executors.registry import get_executor, kinds

CLI_KINDS = ["claude", "codex", "gemini"]


def test_registry_lists_every_builtin_and_each_honours_the_interface() -> None:
    assert kinds() == ["claude", "codex", "gemini", "scripted", "shell"]
    for kind in kinds():
        executor = get_executor(kind)
        assert executor.kind == kind
        assert executor.default_binary and executor.install_hint
        assert isinstance(executor.supports_resume, bool)
        assert isinstance(executor.new_session_id, bool)
        parser = executor.parser()
        assert callable(parser.feed) and callable(parser.finish)
    assert get_executor("shell").supports_resume is False
    assert get_executor("codex").new_session_id is False


def test_unknown_kind_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown agent kind 'clod'"):
        get_executor("clod")


@pytest.mark.parametrize("kind", CLI_KINDS)
@pytest.mark.parametrize("prompt", NASTY_PROMPTS)
@pytest.mark.parametrize("mode", ["headless", "interactive"])
def test_prompt_reaches_the_binary_as_one_argument(
    kind: str, prompt: str, mode: str, tmp_path: Path, argv_dumper: Path
) -> None:
    worktree = tmp_path / "wt"
    worktree.mkdir()
    spec = LaunchSpec(
        prompt=prompt,
        worktree=worktree,
        run_dir=tmp_path / "run",
        settings=AgentSettings(binary=str(argv_dumper)),
        session_id="11111111-2222-4333-8444-555555555555",
    )
    command = getattr(get_executor(kind), mode)(spec)
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["cwd"] == str(worktree)
    # A prompt that looks like a flag gets one leading space; otherwise it is untouched.
    expected = f" {prompt}" if prompt.startswith("-") else prompt
    assert seen["argv"].count(expected) == 1
    assert seen["argv"] == command.argv[1:]


@pytest.mark.parametrize("kind", ["claude", "codex", "gemini", "shell", "scripted"])
@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.one_of(st.text(), st.from_regex(r'\{"type": ?"[a-z._]{0,20}".{0,40}\}')), max_size=8
    )
)
def test_parsers_never_raise_on_arbitrary_output(kind: str, lines: list[str]) -> None:
    parser = get_executor(kind).parser()
    events: list[AgentEvent] = []
    for line in lines:
        events += parser.feed(line)
    events += parser.finish(1, "stderr")
    assert all(isinstance(e, AgentEvent) for e in events)
