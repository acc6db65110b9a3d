"""launch_detached with real processes: survival, exit status, stdin, argv, env."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from runtime_support import started_agent, wait_exit, wait_until

from flotilla.domain.errors import UsageError
from flotilla.executors.base import Command
from flotilla.runtime.launcher import launch_detached
from flotilla.runtime.process import ProcessIdentity, is_alive, kill_tree
from flotilla.runtime.tailer import read_exit

NASTY = [
    "it's \"quoted\" and 'single'",
    "$HOME ${PATH} $(id) `id` \\$x",
    "line one\nline two\n\ttabbed",
    "ends with a semicolon;",
    "ends with backslash \\",
    "-t --flag",
    "",
    "* ? [a-z] ~ & | > < #{session_name} %s",
    "unicode: caf\u00e9 \u2603 \U0001f680",
]
PRINT_ARGV = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]


def test_agent_outlives_the_process_that_launched_it(tmp_path: Path) -> None:
    attempt = tmp_path / "attempt"
    go = tmp_path / "go"
    launcher = textwrap.dedent(
        f"""
        import json, os
        from pathlib import Path
        from flotilla.executors.base import Command
        from flotilla.runtime.launcher import launch_detached
        cmd = Command(argv=["sh", "-c", "while [ ! -e {go} ]; do sleep 0.02; done; echo done"])
        ident = launch_detached(cmd, Path({str(attempt)!r}), os.environ)
        print(json.dumps([ident.pid, ident.started_at]))
        """
    )
    parent = subprocess.run(
        [sys.executable, "-c", launcher], capture_output=True, text=True, check=True, timeout=30
    )
    pid, started_at = json.loads(parent.stdout)
    identity = ProcessIdentity(pid, started_at)
    assert is_alive(identity), "the agent died with its launcher"
    assert psutil.Process(pid).ppid() != os.getpid()
    assert read_exit(attempt) is None
    go.touch()
    assert wait_exit(attempt) == 0
    assert (attempt / "stdout").read_text() == "done\n"
    wait_until(lambda: not is_alive(identity))


def test_exit_code_is_recorded(tmp_path: Path, base_env: dict[str, str]) -> None:
    launch_detached(Command(argv=["sh", "-c", "echo oops >&2; exit 3"]), tmp_path, base_env)
    assert wait_exit(tmp_path) == 3
    assert (tmp_path / "stderr").read_text() == "oops\n"
    assert not (tmp_path / "exit.tmp").exists()


def test_kill_9_of_the_agent_is_recorded_as_137(tmp_path: Path, base_env: dict[str, str]) -> None:
    identity = launch_detached(Command(argv=["sleep", "30"]), tmp_path, base_env)
    agent = started_agent(identity.pid, "sleep")
    os.kill(agent.pid, signal.SIGKILL)
    assert wait_exit(tmp_path) == 137


def test_kill_tree_records_sigterm_as_143(tmp_path: Path, base_env: dict[str, str]) -> None:
    identity = launch_detached(Command(argv=["sleep", "30"]), tmp_path, base_env)
    started_agent(identity.pid, "sleep")
    assert kill_tree(identity, grace_s=5.0)
    assert wait_exit(tmp_path) == 143
    assert not is_alive(identity)


def test_stdin_text_is_delivered(tmp_path: Path, base_env: dict[str, str]) -> None:
    text = "first line\nsecond 'line' with $dollar\n"
    launch_detached(Command(argv=["cat"], stdin=text), tmp_path, base_env)
    assert wait_exit(tmp_path) == 0
    assert (tmp_path / "stdout").read_text() == text
    assert (tmp_path / "stdin").read_text() == text


def test_without_stdin_text_the_agent_reads_dev_null(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    launch_detached(Command(argv=["cat"]), tmp_path, base_env)
    assert wait_exit(tmp_path, timeout=5.0) == 0
    assert (tmp_path / "stdout").read_text() == ""
    assert not (tmp_path / "stdin").exists()


def test_argv_arrives_intact(tmp_path: Path, base_env: dict[str, str]) -> None:
    launch_detached(Command(argv=[*PRINT_ARGV, *NASTY]), tmp_path, base_env)
    assert wait_exit(tmp_path) == 0
    assert json.loads((tmp_path / "stdout").read_text()) == NASTY


def test_env_and_cwd_are_passed(tmp_path: Path) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    command = Command(
        argv=["sh", "-c", 'pwd; printf "%s|%s\\n" "$FLOT_A" "$FLOT_BASE"'],
        env={"FLOT_A": "a value; $x `y`"},
        cwd=workdir,
    )
    base = {"PATH": os.environ["PATH"], "FLOT_BASE": "from base"}
    launch_detached(command, tmp_path / "attempt", base)
    assert wait_exit(tmp_path / "attempt") == 0
    out = (tmp_path / "attempt" / "stdout").read_text().splitlines()
    assert out == [str(workdir), "a value; $x `y`|from base"]


def test_env_of_base_is_all_the_agent_gets(tmp_path: Path) -> None:
    base = {"PATH": os.environ["PATH"]}
    launch_detached(Command(argv=["env"]), tmp_path, base)
    assert wait_exit(tmp_path) == 0
    names = {line.split("=", 1)[0] for line in (tmp_path / "stdout").read_text().splitlines()}
    assert "HOME" not in names
    assert "PATH" in names


def test_missing_program_is_a_usage_error_and_creates_nothing(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    attempt = tmp_path / "attempt"
    with pytest.raises(UsageError, match="not on PATH"):
        launch_detached(Command(argv=["no-such-agent-cli-xyz", "hi"]), attempt, base_env)
    with pytest.raises(UsageError, match="empty"):
        launch_detached(Command(argv=[]), attempt, base_env)
    with pytest.raises(UsageError, match="does not exist"):
        launch_detached(Command(argv=["true"], cwd=tmp_path / "nope"), attempt, base_env)
    assert not attempt.exists()


def test_an_attempt_folder_is_used_once(tmp_path: Path, base_env: dict[str, str]) -> None:
    launch_detached(Command(argv=["true"]), tmp_path, base_env)
    wait_exit(tmp_path)
    with pytest.raises(UsageError, match="own folder"):
        launch_detached(Command(argv=["true"]), tmp_path, base_env)


def test_no_zombie_is_left_behind(tmp_path: Path, base_env: dict[str, str]) -> None:
    identity = launch_detached(Command(argv=["true"]), tmp_path, base_env)
    wait_exit(tmp_path)
    # Our process is the shim's parent: it must reap it, not keep it as a zombie.
    wait_until(lambda: not psutil.pid_exists(identity.pid), timeout=5.0)


def test_shim_is_small_and_quick_to_start(tmp_path: Path, base_env: dict[str, str]) -> None:
    count = 10
    started = time.perf_counter()
    identities = [
        launch_detached(Command(argv=["sleep", "30"]), tmp_path / str(i), base_env)
        for i in range(count)
    ]
    per_agent = (time.perf_counter() - started) / count
    try:
        rss = psutil.Process(identities[0].pid).memory_info().rss
        assert rss < 3 * 1024 * 1024, f"shim uses {rss} bytes"
        assert per_agent < 0.5, f"{per_agent * 1000:.1f} ms per agent"
    finally:
        for identity in identities:
            kill_tree(identity, grace_s=2.0)
