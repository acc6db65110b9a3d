"""Finding an agent the previous daemon started but died before recording.

Between launching an agent's shim and writing its identity the daemon can be
killed. The shim runs on (it leads its own session), so a restarted daemon must
find it rather than start the agent a second time: the shim's command line
names its attempt folder's `exit` file, which no other process's does.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import psutil

from flotilla.counters import count
from flotilla.runtime.launcher import EXIT, STDOUT
from flotilla.runtime.process import ProcessIdentity


class Start(Enum):
    NEVER = "never"  # no trace of a process: start it (again)
    ENDED = "ended"  # it ran and is gone: its exit file (or its absence) tells how it ended


def find_shim(folder: Path) -> ProcessIdentity | None:
    """The live shim whose exit file is `folder`/exit, or None."""
    marker = str(folder.resolve() / EXIT)
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        try:
            cmdline = proc.info["cmdline"] or []
        except (psutil.Error, KeyError):
            count("orchestrator.adoption_process_gone")
            continue
        if marker in cmdline:
            return ProcessIdentity(proc.pid, float(proc.info["create_time"]))
    return None


def _traces(folder: Path) -> bool:
    """The shim opened its output files: it was started."""
    return (folder / STDOUT).exists() or (folder / EXIT).exists()


def unrecorded_start(folder: Path) -> ProcessIdentity | Start:
    """What became of a start whose identity was never stored: the running shim's identity,
    ENDED when the shim ran and is gone, NEVER when no process was ever started."""
    ran = _traces(folder)  # looked at first: a shim that ends during the search left them
    found = find_shim(folder)
    if found is not None:
        return found
    return Start.ENDED if ran or _traces(folder) else Start.NEVER
