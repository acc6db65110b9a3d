"""Process identity, liveness, resource sampling and killing of whole process trees.

A PID alone is never trusted: PIDs are reused (pid_max is often 32768), so every
question about a process is asked of `ProcessIdentity` (PID plus start time), and a
process whose start time differs is a stranger that we neither report nor kill.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from flotilla.counters import count

# psutil's create_time is boot time (whole seconds from /proc/stat, moved by clock
# adjustments) plus start ticks; two reads of the same process can differ by a second.
# Reusing one PID within this window would take > pid_max forks in 2 s.
START_TOLERANCE_S = 2.0
_POLL_S = 0.05


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it can be found again after a restart: PID plus its start time."""

    pid: int
    started_at: float  # psutil create_time: seconds since the epoch


@dataclass(frozen=True)
class TreeUsage:
    """Resources of a process and all its descendants at one moment."""

    cpu_percent: float  # summed over processes: 200.0 is two cores busy
    rss_bytes: int
    num_processes: int


def identify(pid: int) -> ProcessIdentity | None:
    """The identity of a running process, or None if `pid` is gone (or a zombie)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return ProcessIdentity(pid, proc.create_time())
    except psutil.Error:
        count("runtime.identify_gone")
        return None


def _matches(proc: psutil.Process, identity: ProcessIdentity) -> bool:
    return abs(proc.create_time() - identity.started_at) <= START_TOLERANCE_S


def _process(identity: ProcessIdentity) -> psutil.Process | None:
    """The live process behind `identity`, or None (gone, zombie, or PID reused)."""
    try:
        proc = psutil.Process(identity.pid)
        if not _matches(proc, identity) or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        count("runtime.process_gone")
        return None


def is_alive(identity: ProcessIdentity) -> bool:
    """True if the very process of `identity` still runs (zombies count as dead)."""
    return _process(identity) is not None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        count("runtime.process_gone")
        return False


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        count("runtime.process_gone")
        return []


# --- sampling -------------------------------------------------------------------------

_cache_lock = threading.Lock()
_cpu_cache: dict[int, psutil.Process] = {}
_PRUNE_EVERY_S = 10.0
_last_prune = 0.0


def _prune() -> None:
    """Forget dead processes, at most every few seconds (callers hold the lock)."""
    global _last_prune
    now = time.monotonic()
    if now - _last_prune < _PRUNE_EVERY_S:
        return
    _last_prune = now
    for pid in [pid for pid, proc in _cpu_cache.items() if not _alive(proc)]:
        del _cpu_cache[pid]


def _cached(proc: psutil.Process) -> psutil.Process:
    """The same psutil.Process object across calls, so cpu_percent has a previous sample."""
    known = _cpu_cache.get(proc.pid)
    if known is not None and _alive(known):  # is_running() also checks the start time
        return known
    _cpu_cache[proc.pid] = proc
    return proc


def tree_usage(identity: ProcessIdentity) -> TreeUsage:
    """CPU and memory of the process tree of `identity`; all zeros if it is gone.

    CPU percentages come from the difference with the previous call for the same
    processes: a process seen for the first time counts 0.0 until the next call.
    """
    root = _process(identity)
    if root is None:
        return TreeUsage(0.0, 0, 0)
    cpu = 0.0
    rss = 0
    seen: set[int] = set()
    with _cache_lock:
        for proc in [root, *_descendants(root)]:
            try:
                cached = _cached(proc)
                if cached.status() == psutil.STATUS_ZOMBIE:
                    continue
                with cached.oneshot():
                    rss += cached.memory_info().rss
                    cpu += cached.cpu_percent(interval=None)
                seen.add(cached.pid)
            except psutil.Error:
                count("runtime.sample_gone")
        _prune()
    return TreeUsage(cpu, rss, len(seen))


# --- killing --------------------------------------------------------------------------


def _group_members(pgid: int) -> list[psutil.Process]:
    """Processes whose process group or session is `pgid`."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid or os.getsid(proc.pid) == pgid:
                members.append(proc)
        except (OSError, psutil.Error):
            count("runtime.process_gone")
    return members


def _targets(identity: ProcessIdentity) -> tuple[psutil.Process | None, list[psutil.Process]]:
    """The root process (if it is still ours) and every other process of its tree.

    Linux never hands out a PID that is still some process's group or session id, so:
    if the PID now belongs to a stranger, our group is empty; if the PID is free,
    whatever still carries it as group or session id is ours (orphaned agents).
    """
    try:
        root: psutil.Process | None = psutil.Process(identity.pid)
    except psutil.NoSuchProcess:
        count("runtime.process_gone")
        root = None
    if root is not None and not _matches(root, identity):
        return None, []
    if root is not None and not _alive(root):
        root = None
    others: dict[int, psutil.Process] = {}
    if root is not None:
        others.update((p.pid, p) for p in _descendants(root))
    for proc in _group_members(identity.pid):
        if proc.pid != identity.pid:
            others.setdefault(proc.pid, proc)
            others.update((p.pid, p) for p in _descendants(proc))
    return root, [p for p in others.values() if _alive(p)]


def _signal(procs: Iterable[psutil.Process], sig: signal.Signals) -> bool:
    sent = False
    for proc in procs:
        try:
            proc.send_signal(sig)
            sent = True
        except psutil.Error:
            count("runtime.kill_gone")
    return sent


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until every process is gone or a zombie; return the ones still alive."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        alive = [p for p in alive if _alive(p)]
    return alive


def kill_tree(identity: ProcessIdentity, grace_s: float = 3.0) -> bool:
    """SIGTERM the process group and every descendant, then SIGKILL what is left.

    The shim survives SIGTERM (it traps it) so that it can still write the agent's
    exit status; it is killed only if it outlives its agent by a second. Returns
    whether any process was signalled; a dead identity or a reused PID is a no-op.
    """
    root, others = _targets(identity)
    everyone = ([root] if root is not None else []) + others
    if not everyone:
        return False
    killed = _signal(everyone, signal.SIGTERM)
    survivors = _wait_gone(everyone, grace_s)
    rest = [p for p in survivors if p is not root]
    if rest:
        killed = _signal(rest, signal.SIGKILL) or killed
        _wait_gone(rest, 1.0)
    if root is not None and root in survivors and _wait_gone([root], 1.0):
        killed = _signal([root], signal.SIGKILL) or killed
        _wait_gone([root], 1.0)
    return killed
