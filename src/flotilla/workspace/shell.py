"""Running the user's shell command lines (setup, tests) with streamed output and a timeout.

These are shell command lines by nature (`npm ci && npm run build`), so they
run through `sh -c`; everything else in this package uses argv lists.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flotilla.counters import count
from flotilla.domain.errors import OperationFailed

TAIL_LINES = 60
TIMED_OUT = 124  # the exit code `timeout(1)` uses
_KILL_GRACE_S = 3.0
_READER_GRACE_S = 0.5  # output still arriving after the command exited

LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class ShellRun:
    command: str
    exit_code: int
    timed_out: bool
    output_tail: str
    duration_s: float


class _Log:
    """The log file, shared by the reader thread and the caller; writes after close are dropped."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "ab")  # noqa: SIM115 - closed by close()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(data)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _read(stream: BinaryIO, tail: deque[str], log: _Log, callbacks: list[LineCallback]) -> None:
    for raw in iter(stream.readline, b""):
        log.write(raw)
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        tail.append(line)
        for callback in callbacks:
            try:
                callback(line)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the command
                count("workspace.output_callback_error")


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        count("workspace.process_group_gone")
        return False
    return True


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _signal_group(proc.pid, sig):
            return
        try:
            proc.wait(timeout=_KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            count("workspace.kill_term_ignored")


def run_shell(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None,
    log_path: Path | None = None,
    on_output: LineCallback | None = None,
    extra_callbacks: list[LineCallback] | None = None,
) -> ShellRun:
    """Run one command line through the shell, in its own process group.

    `env` is the complete environment. Output (stdout and stderr merged) is
    appended to `log_path`, passed line by line to the callbacks, and its last
    lines kept as `output_tail`. On timeout the whole process group is killed
    and the exit code is 124; background children still holding the output
    open after the command exits are killed too (nothing is left running).
    """
    callbacks = [c for c in (on_output, *(extra_callbacks or [])) if c is not None]
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    log = _Log(log_path)
    log.write(f"$ {command}\n".encode())
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        log.close()
        raise OperationFailed(f"cannot run {command!r} in {cwd}: {exc}") from exc
    assert proc.stdout is not None
    reader = threading.Thread(target=_read, args=(proc.stdout, tail, log, callbacks), daemon=True)
    reader.start()
    timed_out = False
    try:
        exit_code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        count("workspace.command_timed_out")
        timed_out = True
        _kill_group(proc)
        proc.wait()
        exit_code = TIMED_OUT
    reader.join(_READER_GRACE_S)
    if reader.is_alive():
        # A leftover background child still holds the output pipe: a setup or
        # test command must not leave processes behind, so end its group.
        count("workspace.leftover_processes_killed")
        _signal_group(proc.pid, signal.SIGKILL)
        reader.join(_READER_GRACE_S)
    if reader.is_alive():  # it escaped the group (setsid) and keeps the pipe
        count("workspace.output_pipe_held_open")
    else:
        proc.stdout.close()
    if timed_out:
        note = f"[flotilla] timed out after {timeout}s: process group killed"
        tail.append(note)
        log.write(f"{note}\n".encode())
    log.close()
    return ShellRun(
        command=command,
        exit_code=exit_code,
        timed_out=timed_out,
        output_tail="\n".join(tail),
        duration_s=time.monotonic() - started,
    )
