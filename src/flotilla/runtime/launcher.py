"""Start an agent detached from the daemon, under a `/bin/sh` shim that records its exit.

The shim is a plain POSIX shell (about 1 MB resident), not a Python process. It runs
the agent with its stdin, stdout and stderr on files in the attempt folder, then writes
the exit status to `exit` atomically (tmp file, then rename), so the status is on disk
even when the daemon died long before the agent finished. The agent's argv reaches the
shim as positional parameters, never pasted into the script, so no character in a
prompt can change what runs. The shim leads its own session: it survives the daemon
and its whole tree can be signalled as one process group.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

import psutil

from flotilla.counters import count
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.executors.base import Command
from flotilla.runtime.process import ProcessIdentity

STDIN = "stdin"
STDOUT = "stdout"
STDERR = "stderr"
EXIT = "exit"

# $1 exit file, $2 stdin, $3 stdout, $4 stderr, then the agent's argv. The traps keep
# the shim alive through the SIGTERM/SIGHUP/SIGINT sent to its group, so it still writes
# the status (128+N for a signal); children get default handlers back on exec.
SHIM_SCRIPT = (
    'ex=$1 in=$2 out=$3 err=$4; shift 4; trap : HUP INT TERM; "$@" <"$in" >"$out" 2>"$err"; '
    'echo $? >"$ex.tmp" && mv -f "$ex.tmp" "$ex"'
)


def resolve_program(argv: list[str], env: Mapping[str, str], cwd: Path | None) -> str:
    """The path `argv[0]` will run as, or UsageError with one line saying what to fix."""
    if not argv or not argv[0]:
        raise UsageError("the agent command is empty: give the program to run as argv[0]")
    program = argv[0]
    if "/" in program:
        path = Path(program) if cwd is None else cwd / program
        if os.access(path, os.X_OK) and path.is_file():
            return program
        raise UsageError(f"agent program {program!r} is not an executable file")
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise UsageError(
            f"agent program {program!r} is not on PATH: install it or give its full path"
        )
    return found


def agent_env(command: Command, base_env: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of the agent: the base plus the command's additions."""
    env = dict(base_env)
    env.update(command.env)
    return env


def check_cwd(cwd: Path | None) -> None:
    if cwd is not None and not cwd.is_dir():
        raise UsageError(f"working directory {cwd} does not exist: create it or pick another")


def _prepare(attempt_dir: Path, stdin: str | None) -> Path:
    """Create the attempt folder and the stdin file; refuse a folder already used."""
    attempt_dir.mkdir(parents=True, exist_ok=True)
    for name in (STDOUT, EXIT):
        if (attempt_dir / name).exists():
            raise UsageError(
                f"{attempt_dir} already holds a run ({name} exists): "
                "give each attempt its own folder"
            )
    if stdin is None:
        return Path(os.devnull)
    path = attempt_dir / STDIN
    path.write_text(stdin, encoding="utf-8")
    return path


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Wait for the shim in a daemon thread so it never lingers as a zombie of ours."""
    try:
        proc.wait()
    except OSError:
        count("runtime.reap_failed")


def launch_detached(
    command: Command, attempt_dir: Path, base_env: Mapping[str, str]
) -> ProcessIdentity:
    """Start `command` under the shim; return the shim's identity.

    Files in `attempt_dir`: `stdin` (when command.stdin is set), `stdout`, `stderr`,
    and `exit` (the exit status as text, e.g. "0\\n", "137\\n") once the agent ended.
    """
    env = agent_env(command, base_env)
    check_cwd(command.cwd)
    resolve_program(command.argv, env, command.cwd)
    attempt_dir = attempt_dir.resolve()
    stdin_path = _prepare(attempt_dir, command.stdin)
    argv = [
        "/bin/sh",
        "-c",
        SHIM_SCRIPT,
        "sh",
        str(attempt_dir / EXIT),
        str(stdin_path),
        str(attempt_dir / STDOUT),
        str(attempt_dir / STDERR),
        *command.argv,
    ]
    try:
        proc = subprocess.Popen(
            argv,
            cwd=command.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise OperationFailed(f"could not start {command.argv[0]!r}: {exc}") from exc
    # Read the start time before the shim is reaped: even a zombie still has it.
    identity = _identity_of_child(proc.pid)
    threading.Thread(target=_reap, args=(proc,), name=f"reap-{proc.pid}", daemon=True).start()
    return identity


def _identity_of_child(pid: int) -> ProcessIdentity:
    try:
        return ProcessIdentity(pid, psutil.Process(pid).create_time())
    except psutil.Error:
        # Only possible if SIGCHLD is ignored (children reaped by the kernel): the shim
        # already ended, so an identity that matches no process is the honest answer.
        count("runtime.launch_vanished")
        return ProcessIdentity(pid, 0.0)
