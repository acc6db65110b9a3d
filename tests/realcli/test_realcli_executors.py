"""Flotilla's executors driving the real CLIs: their argv works and their parsers read
the real output (tokens, cost, session id, rate-limit and auth failures)."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakemodels import FakeModelServer, FinalText, Mode, Script, WriteFile, cli_env, fake_server
from fakemodels.clienv import MODELS, CliEnv
from flotilla.domain.events import AgentEvent, EventKind
from flotilla.executors.base import AgentSettings, LaunchSpec
from flotilla.executors.registry import get_executor
from realcli.drive import require

pytestmark = [pytest.mark.real_cli, pytest.mark.slow]
KINDS = ["claude", "codex", "gemini"]
WRITE_TOOL = {"claude": "Write", "codex": "file_change", "gemini": "write_file"}


@dataclass
class Turn:
    exit_code: int
    events: list[AgentEvent]
    stderr: str

    def of(self, kind: EventKind) -> list[AgentEvent]:
        return [e for e in self.events if e.kind is kind]

    @property
    def result(self) -> AgentEvent:
        results = self.of(EventKind.RESULT)
        assert len(results) == 1, f"{len(results)} RESULT events: {self.events}\n{self.stderr}"
        return results[0]


def launch(
    kind: str,
    cli: CliEnv,
    repo: Path,
    prompt: str,
    session_id: str | None = None,
    resume: bool = False,
) -> Turn:
    """One headless turn: the executor's argv and env, the real CLI, the executor's parser."""
    executor = get_executor(kind)
    run_dir = cli.home / f"run-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir()
    if session_id is None and executor.new_session_id and not resume:
        session_id = str(uuid.uuid4())
    settings = AgentSettings(
        binary=str(require(kind)), env=dict(cli.env), extra_flags=cli.extra_flags
    )
    spec = LaunchSpec(
        prompt=prompt,
        worktree=repo,
        run_dir=run_dir,
        settings=settings,
        model=MODELS[kind],
        session_id=session_id,
        resume=resume,
    )
    command = executor.headless(spec)
    assert command.stdin is None
    proc = subprocess.run(
        command.argv,
        cwd=command.cwd or repo,
        env={**cli.env, **command.env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    parser = executor.parser(spec)
    events = [e for line in proc.stdout.splitlines() for e in parser.feed(line)]
    events += parser.finish(proc.returncode, proc.stderr[-4000:])
    return Turn(proc.returncode, events, proc.stderr)


def start(
    kind: str, script: Script, home: Path, max_attempts: int = 1
) -> tuple[FakeModelServer, CliEnv]:
    require(kind)
    fake = fake_server(kind, script).start()
    return fake, cli_env(kind, home, fake.base_url, max_attempts=max_attempts)


@pytest.mark.parametrize("kind", KINDS)
def test_success_gives_session_tool_events_tokens_and_one_result(
    kind: str, repo: Path, tmp_path: Path
) -> None:
    target = repo / "hello.txt"
    fake, cli = start(kind, Script.write_then_say(str(target), "hi\n", "Wrote it."), tmp_path / "h")
    try:
        turn = launch(kind, cli, repo, "write hello.txt")
    finally:
        fake.stop()

    assert turn.exit_code == 0, turn.stderr
    assert target.read_text() == "hi\n"
    (started,) = turn.of(EventKind.SESSION_STARTED)
    assert started.session_id
    assert WRITE_TOOL[kind] in {e.tool for e in turn.of(EventKind.TOOL_RESULT)}
    if kind != "codex":  # codex reports an apply_patch only once it is done
        assert [e.tool for e in turn.of(EventKind.TOOL_CALL)] == [WRITE_TOOL[kind]]
    assert not turn.of(EventKind.RATE_LIMITED) and not turn.of(EventKind.AUTH_FAILED)
    result = turn.result
    assert not result.is_error
    assert result.text == "Wrote it."
    assert result.session_id == started.session_id
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (250, 30)
    if kind == "claude":
        assert result.usage.cost_usd is not None and result.usage.cost_usd > 0
    else:
        assert result.usage.cost_usd is None  # no figure from the CLI: priced by Flotilla
    assert result.usage.model is not None


@pytest.mark.parametrize("kind", KINDS)
def test_persistent_429_becomes_rate_limited(kind: str, repo: Path, tmp_path: Path) -> None:
    script = Script.write_then_say(str(repo / "x.txt"), "x\n", mode=Mode.RATE_LIMITED)
    fake, cli = start(kind, script, tmp_path / "h")
    try:
        turn = launch(kind, cli, repo, "write x.txt")
    finally:
        fake.stop()

    assert turn.exit_code != 0
    assert turn.of(EventKind.RATE_LIMITED), turn.events
    assert not turn.of(EventKind.AUTH_FAILED)
    assert turn.result.is_error
    assert not (repo / "x.txt").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_401_becomes_auth_failed(kind: str, repo: Path, tmp_path: Path) -> None:
    script = Script.write_then_say(str(repo / "x.txt"), "x\n", mode=Mode.UNAUTHORIZED)
    fake, cli = start(kind, script, tmp_path / "h")
    try:
        turn = launch(kind, cli, repo, "write x.txt")
    finally:
        fake.stop()

    assert turn.exit_code != 0
    assert turn.of(EventKind.AUTH_FAILED), turn.events
    assert not turn.of(EventKind.RATE_LIMITED)
    assert turn.result.is_error


@pytest.mark.parametrize("kind", KINDS)
def test_resume_continues_the_session(kind: str, repo: Path, tmp_path: Path) -> None:
    script = Script(
        steps=(
            WriteFile(str(repo / "one.txt"), "one\n"),
            FinalText("First done."),
            WriteFile(str(repo / "two.txt"), "two\n"),
            FinalText("Second done."),
        )
    )
    fake, cli = start(kind, script, tmp_path / "h")
    try:
        first = launch(kind, cli, repo, "write one")
        session = first.result.session_id
        assert session and not first.result.is_error, first.events
        calls_before = len(fake.model_calls())
        second = launch(kind, cli, repo, "now write two", session_id=session, resume=True)
    finally:
        fake.stop()

    assert second.exit_code == 0, second.stderr
    assert (repo / "two.txt").read_text() == "two\n"
    assert second.result.text == "Second done."
    assert second.result.session_id == session
    resumed = repr(fake.model_calls()[calls_before].body)
    for earlier in ("write one", "First done.", "now write two"):
        assert earlier in resumed
