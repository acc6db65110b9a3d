"""Interactive agents in real tmux sessions on a throwaway socket."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_support import gone, started_agent, wait_exit, wait_until

from flotilla.domain.errors import UsageError
from flotilla.executors.base import Command
from flotilla.runtime.process import is_alive
from flotilla.runtime.tmux import TmuxSession

pytestmark = pytest.mark.tmux

NASTY = [
    "it's \"quoted\"; and 'single'",
    "$HOME ${PATH} $(id) `id` \\$x",
    "line one\nline two",
    "ends with a semicolon;",
    "ends with an escaped semicolon\\;",
    ";",
    "#{session_name} #S ##",
    "-t --",
    "",
    "caf\u00e9 \U0001f680",
]
# An "agent" that appends each line typed into its terminal to a file.
READ_LOOP = (
    "import sys\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin:\n"
    "    with open(sys.argv[1], 'a') as out:\n"
    "        out.write(line)\n"
)


def test_nasty_argv_arrives_intact(
    tmux: TmuxSession, tmp_path: Path, base_env: dict[str, str]
) -> None:
    out = tmp_path / "argv.json"
    program = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    command = Command(argv=[sys.executable, "-c", program, str(out), *NASTY])
    tmux.new_session("nasty", command, tmp_path, base_env, tmp_path / "pane.log", tmp_path / "a")
    assert wait_exit(tmp_path / "a") == 0
    assert json.loads(out.read_text()) == NASTY
    wait_until(lambda: not tmux.session_exists("nasty"))


def test_exit_status_and_log_of_a_tmux_run(
    tmux: TmuxSession, tmp_path: Path, base_env: dict[str, str]
) -> None:
    log = tmp_path / "logs" / "pane.log"
    command = Command(argv=["sh", "-c", "echo first output; echo second output; exit 7"])
    tmux.new_session("exits", command, tmp_path, base_env, log, tmp_path / "a")
    assert wait_exit(tmp_path / "a") == 7
    wait_until(lambda: "second output" in log.read_text(errors="replace"))
    assert "first output" in log.read_text(errors="replace")


def test_path_comes_from_the_caller_not_the_tmux_server(
    tmux: TmuxSession, tmp_path: Path, base_env: dict[str, str]
) -> None:
    # The server starts first, elsewhere, with a PATH that cannot find the agent.
    server_env = {**os.environ, "PATH": "/usr/bin:/bin"}
    subprocess.run(
        ["tmux", "-L", tmux.socket, "new-session", "-d", "-s", "boot", "sleep 600"],
        env=server_env,
        check=True,
    )
    bindir = tmp_path / "agent-bin"
    bindir.mkdir()
    agent = bindir / "my-agent"
    agent.write_text('#!/bin/sh\nprintf "%s\\n" "$PATH" > "$1"\n')
    agent.chmod(agent.stat().st_mode | stat.S_IXUSR)
    env = {**base_env, "PATH": f"{bindir}:{base_env['PATH']}"}
    out = tmp_path / "path.txt"
    tmux.new_session(
        "pathy", Command(argv=["my-agent", str(out)]), tmp_path, env, tmp_path / "l", tmp_path / "a"
    )
    assert wait_exit(tmp_path / "a") == 0
    assert out.read_text().strip() == env["PATH"]


def test_cwd_with_format_characters(
    tmux: TmuxSession, tmp_path: Path, base_env: dict[str, str]
) -> None:
    workdir = tmp_path / "dir #{session_name} ##"
    workdir.mkdir()
    out = tmp_path / "pwd.txt"
    command = Command(argv=["sh", "-c", 'pwd > "$1"', "sh", str(out)])
    tmux.new_session("cwd", command, workdir, base_env, tmp_path / "l", tmp_path / "a")
    assert wait_exit(tmp_path / "a") == 0
    assert out.read_text().strip() == str(workdir)


def test_send_text_capture_and_kill(
    tmux: TmuxSession, tmp_path: Path, base_env: dict[str, str]
) -> None:
    typed = tmp_path / "typed.txt"
    command = Command(argv=[sys.executable, "-c", READ_LOOP, str(typed)])
    identity = tmux.new_session(
        "chat", command, tmp_path, base_env, tmp_path / "pane.log", tmp_path / "a"
    )
    assert is_alive(identity)
    assert tmux.pane_pid("chat") == identity.pid
    wait_until(lambda: "ready" in tmux.capture("chat", 20))

    tmux.send_text("chat", 'it\'s a "test" with $HOME and `id`;')
    wait_until(lambda: typed.exists() and typed.read_text().count("\n") == 1)
    tmux.send_text("chat", "first line\nsecond line\n")
    wait_until(lambda: typed.read_text().count("\n") == 3)
    tmux.send_text("chat", "-n")
    wait_until(lambda: typed.read_text().count("\n") == 4)
    assert typed.read_text().splitlines() == [
        'it\'s a "test" with $HOME and `id`;',
        "first line",
        "second line",
        "-n",
    ]
    screen = tmux.capture("chat", 50)
    assert "with $HOME and `id`;" in screen
    assert "second line" in screen

    assert tmux.list_sessions("ch") == ["chat"]
    assert tmux.kill_session("chat")
    assert not tmux.session_exists("chat")
    assert not is_alive(identity)
    assert wait_exit(tmp_path / "a") == 143
    assert tmux.list_sessions("ch") == []
    assert not tmux.kill_session("chat")
    assert tmux.pane_pid("chat") is None


def test_list_sessions_without_a_server(tmux: TmuxSession) -> None:
    assert tmux.list_sessions() == []
    assert not tmux.session_exists("anything")


def test_bad_requests_are_usage_errors(
    tmux: TmuxSession, tmp_path: Path, base_env: dict[str, str]
) -> None:
    def start(name: str, command: Command) -> None:
        tmux.new_session(name, command, tmp_path, base_env, tmp_path / "l", tmp_path / name)

    with pytest.raises(UsageError, match="not valid"):
        start("has.dot", Command(argv=["true"]))
    with pytest.raises(UsageError, match="not on PATH"):
        start("missing", Command(argv=["no-such-agent-xyz"]))
    with pytest.raises(UsageError, match="send_text"):
        start("stdin", Command(argv=["cat"], stdin="hi"))
    start("twice", Command(argv=["sleep", "30"]))
    with pytest.raises(UsageError, match="already exists"):
        start("twice", Command(argv=["sleep", "30"]))


def test_quick_commands_back_to_back(
    tmux: TmuxSession, tmp_path: Path, base_env: dict[str, str]
) -> None:
    # Each session ends at once; the server must not quit under the next new-session.
    for index in range(8):
        attempt = tmp_path / f"a{index}"
        tmux.new_session(
            f"quick{index}", Command(argv=["true"]), tmp_path, base_env, tmp_path / "l", attempt
        )
        assert wait_exit(attempt) == 0


def test_killing_the_server_takes_the_agents_along(
    tmux: TmuxSession, tmp_path: Path, base_env: dict[str, str]
) -> None:
    command = Command(argv=["sleep", "60"])
    identity = tmux.new_session(
        "doomed", command, tmp_path, base_env, tmp_path / "l", tmp_path / "a"
    )
    agent = started_agent(identity.pid, "sleep")
    tmux.kill_server()
    wait_until(lambda: not is_alive(identity), timeout=5.0)
    wait_until(lambda: gone(agent), timeout=5.0)
