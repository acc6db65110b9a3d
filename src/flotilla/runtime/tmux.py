"""Interactive agents in tmux sessions on a dedicated socket.

No shell ever sees an agent's argv or a text typed into it: new-session gets the
argv as separate arguments (tmux then execs them directly), text goes through
`send-keys -l` or a paste buffer. The agent's whole environment, PATH included, is
passed with `-e`, so a tmux server started elsewhere with another PATH does not
change which binary runs. The same `/bin/sh` shim as for headless agents records
the exit status in the attempt folder.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from flotilla.counters import count
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.executors.base import Command
from flotilla.runtime.launcher import EXIT, agent_env, check_cwd, resolve_program
from flotilla.runtime.process import ProcessIdentity, kill_tree

DEFAULT_SOCKET = "flotilla"
WIDTH, HEIGHT = 200, 50
_TIMEOUT_S = 10.0
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
# Set by tmux itself for the pane; the daemon's values would be wrong there.
_PANE_OWNED_ENV = frozenset({"TERM", "TMUX", "TMUX_PANE", "COLUMNS", "LINES"})
# $1 exit file, $2 PATH, then the agent's argv; the terminal stays the agent's
# stdin/out/err. PATH is set here because tmux overrides `-e PATH=...` with the PATH
# of the client that created the session. SIGHUP is not trapped: when the pane goes
# away (kill-server, a crashed server) the shim, controlling process of the pane's
# terminal, dies of it and the kernel hangs up the agent too instead of orphaning it.
TMUX_SHIM_SCRIPT = (
    'ex=$1 PATH=$2; export PATH; shift 2; trap : INT TERM; "$@"; '
    'echo $? >"$ex.tmp" && mv -f "$ex.tmp" "$ex"'
)
_NO_SERVER = ("no server running", "error connecting to", "can't find session")


def _arg(value: str) -> str:
    """Protect one argument from tmux's own parsing: a trailing ';' ends a command."""
    return value[:-1] + "\\;" if value.endswith(";") else value


def _format_literal(value: str) -> str:
    """Escape '#' in arguments that tmux expands as formats (e.g. -c)."""
    return value.replace("#", "##")


def check_session_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"tmux session name {name!r} is not valid: use 1-100 letters, digits, '_' or '-'"
        )
    return name


class TmuxSession:
    """Helpers for the agent sessions of one tmux server (`tmux -L socket`)."""

    def __init__(self, socket: str = DEFAULT_SOCKET, binary: str = "tmux") -> None:
        self.socket = socket
        self.binary = binary

    # --- plumbing -----------------------------------------------------------------

    def _run(
        self, args: Sequence[str], *, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one tmux command line; `args` may hold ";" items between commands."""
        exe = shutil.which(self.binary)
        if exe is None:
            raise OperationFailed(
                f"{self.binary!r} is not installed: install tmux (e.g. apt-get install tmux)"
            )
        try:
            done = subprocess.run(
                [exe, "-L", self.socket, *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OperationFailed(f"tmux {args[0]} failed: {exc}") from exc
        if check and done.returncode != 0:
            raise OperationFailed(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done

    @staticmethod
    def _pane(name: str) -> str:
        return f"={check_session_name(name)}:"

    # --- sessions -----------------------------------------------------------------

    def new_session(
        self,
        name: str,
        command: Command,
        cwd: Path,
        base_env: Mapping[str, str],
        log_path: Path,
        attempt_dir: Path,
    ) -> ProcessIdentity:
        """Start `command` in a detached session NAME; return the shim's identity.

        Pane output is appended to `log_path` (from the first byte: the pipe is set
        in the same tmux call that creates the pane); the exit status lands in
        `attempt_dir/exit`. If the command ended before it could be looked at, the
        identity has started_at 0.0 (it matches no process) and the exit file tells.
        """
        check_session_name(name)
        if command.stdin is not None:
            raise UsageError("an interactive agent reads its terminal: send text with send_text")
        check_cwd(cwd)
        env = agent_env(command, base_env)
        resolve_program(command.argv, env, cwd)
        if self.session_exists(name):
            raise UsageError(f"tmux session {name!r} already exists: kill it or pick another")
        attempt_dir = attempt_dir.resolve()
        attempt_dir.mkdir(parents=True, exist_ok=True)
        if (attempt_dir / EXIT).exists():
            raise UsageError(f"{attempt_dir} already holds a run: give each attempt its own folder")
        log_path = log_path.resolve()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()
        env_args: list[str] = []
        for key, value in env.items():
            if key not in _PANE_OWNED_ENV:
                env_args += ["-e", _arg(f"{key}={value}")]
        create = [
            "new-session", "-d", "-P", "-F", "#{pane_pid}", "-s", name,
            "-x", str(WIDTH), "-y", str(HEIGHT), "-c", _arg(_format_literal(str(cwd.resolve()))),
            *env_args, "--", "/bin/sh", "-c", TMUX_SHIM_SCRIPT, "sh",
            _arg(str(attempt_dir / EXIT)), _arg(env.get("PATH", os.defpath)),
            *(_arg(a) for a in command.argv),
        ]  # fmt: skip
        sink = _format_literal(f"cat >> {shlex.quote(str(log_path))}")
        pipe = ["pipe-pane", "-o", "-t", self._pane(name), _arg(sink)]
        # exit-empty off: a server that quits when its last agent ends races with the
        # next new-session ("server exited unexpectedly"); kill_server stops it.
        keep = ["set-option", "-g", "exit-empty", "off"]
        done = self._run([*keep, ";", *create, ";", *pipe])
        try:
            return _identity(int(done.stdout.split()[0]))
        except (IndexError, ValueError) as exc:
            raise OperationFailed(f"tmux gave no pane pid: {done.stdout!r}") from exc

    def session_exists(self, name: str) -> bool:
        target = f"={check_session_name(name)}"
        return self._run(["has-session", "-t", target], check=False).returncode == 0

    def pane_pid(self, name: str) -> int | None:
        done = self._run(
            ["display-message", "-p", "-t", self._pane(name), "#{pane_pid}"], check=False
        )
        text = done.stdout.strip()
        # With no session left, tmux may answer an empty line instead of an error.
        return int(text) if done.returncode == 0 and text.isdigit() else None

    def kill_session(self, name: str, grace_s: float = 3.0) -> bool:
        """Stop the agent's process tree, then close the session; whether it existed.

        The tree goes first (SIGTERM, then SIGKILL after `grace_s`), so the shim still
        records the agent's exit status (143 for SIGTERM) before the pane closes.
        """
        existed = self.session_exists(name)
        pid = self.pane_pid(name)
        if pid is not None:
            kill_tree(_identity(pid), grace_s)
        self._run(["kill-session", "-t", f"={check_session_name(name)}"], check=False)
        return existed

    def list_sessions(self, prefix: str = "") -> list[str]:
        """Names of this server's sessions starting with `prefix` (none if no server)."""
        done = self._run(["list-sessions", "-F", "#{session_name}"], check=False)
        if done.returncode != 0:
            if any(marker in done.stderr for marker in _NO_SERVER):
                return []
            raise OperationFailed(f"tmux list-sessions failed: {done.stderr.strip()}")
        return [line for line in done.stdout.splitlines() if line.startswith(prefix)]

    def socket_path(self) -> Path:
        """Where tmux puts the socket of `-L socket` (TMUX_TMPDIR or /tmp, per user)."""
        root = os.environ.get("TMUX_TMPDIR") or "/tmp"
        return Path(root) / f"tmux-{os.getuid()}" / self.socket

    def kill_server(self) -> None:
        """Stop this socket's server and every session in it (tests, `fleet` cleanup).

        tmux leaves the socket file behind; it is removed once no server answers on it.
        """
        done = self._run(["kill-server"], check=False)
        if done.returncode == 0 or any(marker in done.stderr for marker in _NO_SERVER):
            self.socket_path().unlink(missing_ok=True)

    # --- the terminal -------------------------------------------------------------

    def capture(self, name: str, lines: int = 50) -> str:
        """The last `lines` non-trailing-blank lines of the pane (history included)."""
        done = self._run(["capture-pane", "-p", "-J", "-t", self._pane(name), "-S", str(-lines)])
        rows = done.stdout.rstrip("\n").split("\n")
        while rows and not rows[-1].strip():
            rows.pop()
        return "\n".join(rows[-lines:])

    def send_text(self, name: str, text: str) -> None:
        """Type `text` into the pane literally, then press Enter.

        One line goes through `send-keys -l`; several lines through a paste buffer
        (bracketed paste when the agent asked for it), so newlines do not submit early.
        """
        pane = self._pane(name)
        text = text.rstrip("\n")
        if "\n" in text:
            buffer = f"flotilla-{name}"
            self._run(["load-buffer", "-b", buffer, "-"], stdin=text)
            self._run(["paste-buffer", "-p", "-d", "-b", buffer, "-t", pane])
        elif text:
            self._run(["send-keys", "-t", pane, "-l", "--", _arg(text)])
        self._run(["send-keys", "-t", pane, "Enter"])


def _identity(pid: int) -> ProcessIdentity:
    try:
        return ProcessIdentity(pid, psutil.Process(pid).create_time())
    except psutil.Error:
        count("runtime.tmux_pane_gone")
        return ProcessIdentity(pid, 0.0)
