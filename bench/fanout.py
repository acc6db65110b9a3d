"""Fan-out benchmark: N fake Claude agents on a 2,000-file repository, through the daemon.

Everything is real but the model: a generated git repository, the `fleet` CLI and
its daemon (own state home, own socket), git worktrees, the `/bin/sh` shims, and
`bench/fake-claude`, a shell script that speaks Claude Code's stream-json, works
FAKE_WORK_S seconds and changes one file. Measured per run:

- request -> all created: the CLI returned (or the in-process requests did);
- request -> all running: every agent process had started (it writes a marker);
- request -> all stored: every worker's result was in the store;
- peak RSS of Flotilla's own processes: the daemon, the CLI, and the daemon's
  direct children (the shims and git), never the agents (the shims' children),
  sampled every 50 ms; also the daemon's own high-water mark (VmHWM);
- CPU seconds of the daemon (psutil, before/after), of the CLI (wait4), and of
  the daemon's reaped children (git, shims) net of what the agents report.

Usage: python bench/fanout.py --n 20 --n 100 --mode cold --mode warm [--via cli]
Only local resources are used; every loop has a deadline; the temp folder and the
daemon are removed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
FAKE_CLAUDE = BENCH_DIR / "fake-claude"
FLEET = [sys.executable, "-m", "flotilla.cli"]
PROMPT = "Add a line saying who you are to README.md."


def run_deadline_s(n: int) -> float:
    """A run not done by then is reported as such (cold checkouts take ~0.3-0.7 s each)."""
    return 60.0 + 2.0 * n


SAMPLE_S = 0.02
GIT_ID = {
    "GIT_AUTHOR_NAME": "Flotilla Bench",
    "GIT_AUTHOR_EMAIL": "bench@flotilla.invalid",
    "GIT_COMMITTER_NAME": "Flotilla Bench",
    "GIT_COMMITTER_EMAIL": "bench@flotilla.invalid",
}


@dataclass
class RunFigures:
    n: int
    mode: str  # cold: no pool; warm: pool pre-filled with n worktrees
    via: str  # cli: `fleet fanout`; client: one POST per worker; batch: POST /workers/batch
    created_s: float = 0.0
    running_s: float = 0.0
    stored_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_rss_at_running: int = 0  # agents running when the peak was sampled
    daemon_hwm_mb: float = 0.0
    daemon_cpu_s: float = 0.0
    cli_cpu_s: float = 0.0
    children_cpu_s: float = 0.0  # git + shims (reaped children), net of the agents' own CPU
    agents_cpu_s: float = 0.0
    budget_mb: float = 0.0
    succeeded: int = 0
    load1: float = 0.0  # the machine's 1-minute load average just before the request
    notes: list[str] = field(default_factory=list)


# -- the repository and the environment ------------------------------------------------


def make_repo(root: Path, files: int) -> Path:
    repo = root / "repo"
    repo.mkdir()
    per_dir = 50
    for i in range(files):
        folder = repo / "src" / f"pkg{i // per_dir:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "".join(f"def f{i}_{j}(x):\n    return x + {j}\n\n" for j in range(12))
        (folder / f"mod{i % per_dir:03d}.py").write_text(body)
    (repo / "README.md").write_text("# bench\n")
    git = ["git", "-C", str(repo)]
    env = {**os.environ, **GIT_ID}
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True, env=env)
    subprocess.run([*git, "add", "-A"], check=True, env=env)
    subprocess.run([*git, "commit", "-q", "-m", "generated"], check=True, env=env)
    return repo


def write_config(repo: Path, n: int, pool: int) -> None:
    folder = repo / ".flotilla"
    folder.mkdir(exist_ok=True)
    (folder / "config.toml").write_text(
        "[project]\n"
        'default_agent = "claude"\n'
        "[limits]\n"
        f"max_concurrent = {max(n, 1)}\n"
        + (f"worktree_pool = {pool}\n" if pool else "")
        + "[agents.claude]\n"
        f'binary = "{FAKE_CLAUDE}"\n'
    )


def bench_env(root: Path, work_s: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    env.update(GIT_ID)
    if ARGS.flotilla_src:  # run the CLI and daemon of another checkout (e.g. a baseline)
        env["PYTHONPATH"] = str(ARGS.flotilla_src.resolve())
    env.update(
        {
            "FLOTILLA_HOME": str(root / "home"),
            "FLOTILLA_USER_CONFIG": str(root / "user-config.toml"),
            "FLOTILLA_TMUX_SOCKET": f"flotilla-bench-{os.getpid()}",
            "BENCH_MARKS": str(root / "marks"),
            "FAKE_WORK_S": f"{work_s:g}",
        }
    )
    return env


def fleet(env: dict[str, str], repo: Path, *args: str, timeout: float = 60) -> str:
    proc = subprocess.run(
        [*FLEET, *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fleet {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


# -- watching a run ------------------------------------------------------------------


class Monitor(threading.Thread):
    """Samples, until every result is stored: markers, the store, RSS of Flotilla."""

    def __init__(self, n: int, t0: float, daemon: psutil.Process, marks: Path, db: Path):
        super().__init__(daemon=True)
        self.n, self.t0, self.proc, self.marks, self.db = n, t0, daemon, marks, db
        self.extra: list[psutil.Process] = []  # the CLI, once started
        self.stored_at: float | None = None
        self.peak_rss = 0
        self.peak_at_running = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._watch()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
            self.error = exc

    def _watch(self) -> None:
        deadline = self.t0 + run_deadline_s(self.n)
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        tick = 0
        try:
            while not self.stop.is_set() and time.time() < deadline:
                tick += 1
                started = sum(1 for p in self.marks.iterdir() if p.name.startswith("start."))
                if tick % 2 == 0:
                    self._sample_rss(started)
                stored = conn.execute(
                    "select count(*) from workers where result is not null"
                ).fetchone()[0]
                if stored >= self.n:
                    self.stored_at = time.time()
                    return
                time.sleep(SAMPLE_S)
        finally:
            conn.close()

    def _sample_rss(self, started: int) -> None:
        total = 0
        own_name = self.proc.name()
        try:
            total += self.proc.memory_info().rss
            children = self.proc.children()
        except psutil.Error:
            return
        for proc in [*children, *self.extra]:
            try:
                if proc in children and proc.name() == own_name:
                    continue  # forked but not yet exec'd: its pages are the daemon's
                total += proc.memory_info().rss
            except psutil.Error:
                continue  # it ended between the listing and the read
        ended = sum(1 for p in self.marks.iterdir() if p.name.startswith("end."))
        if total > self.peak_rss:
            self.peak_rss = total
            self.peak_at_running = max(0, started - ended)


def _cpu(proc: psutil.Process) -> tuple[float, float]:
    times = proc.cpu_times()
    return times.user + times.system, times.children_user + times.children_system


def _agents_cpu(marks: Path) -> float:
    total = 0.0
    for path in marks.glob("end.*"):
        for line in path.read_text().splitlines():
            for part in line.split():
                minutes, _, seconds = part.rstrip("s").partition("m")
                total += float(minutes) * 60 + float(seconds)
    return total


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- one run ----------------------------------------------------------------------------


def _request(via: str, n: int, env: dict[str, str], repo: Path, mon: Monitor) -> float:
    """Make the n workers; return the requester's CPU seconds."""
    if via == "cli":
        cmd = [*FLEET, "--json", "fanout", str(n), "bench", "-p", PROMPT]
        proc = subprocess.Popen(
            cmd, cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        try:
            mon.extra.append(psutil.Process(proc.pid))
        except psutil.Error:
            mon.extra = []  # it ended already
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"fleet fanout exited {proc.returncode}")
        return float(usage.ru_utime + usage.ru_stime)
    from flotilla.domain.names import batch_names
    from flotilla.server.client import DaemonClient

    client = DaemonClient(env)
    before = time.thread_time()
    try:
        bodies = [
            {"project": str(repo), "name": name, "prompt": PROMPT, "batch": "bench", "env": env}
            for name in batch_names(n, "bench")
        ]
        if via == "batch":
            reply = client.call("POST", "/workers/batch", json={"workers": bodies})
            for failure in reply["failed"]:
                print(f"creating {failure['name']} failed: {failure['error']}", file=sys.stderr)
        else:
            for body in bodies:
                client.call("POST", "/workers", json=body)
        return time.thread_time() - before
    finally:
        client.close()


def run_once(root: Path, n: int, mode: str, via: str, work_s: float) -> RunFigures:
    figures = RunFigures(n=n, mode=mode, via=via, budget_mb=150 + 3 * n)
    run_root = Path(tempfile.mkdtemp(prefix=f"n{n}-{mode}-", dir=root))
    env = bench_env(run_root, work_s)
    repo = make_repo(run_root, ARGS.files)
    marks = Path(env["BENCH_MARKS"])
    marks.mkdir()
    write_config(repo, n, n if mode == "warm" else 0)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "config"], check=True, env=env)
    fleet(env, repo, "daemon", "start")
    try:
        pid = json.loads((run_root / "home" / "daemon.pid").read_text())["pid"]
        daemon = psutil.Process(pid)
        if mode == "warm":
            _prefill(repo, env, n)
        time.sleep(0.5)  # let the machine settle after the set-up
        own0, kids0 = _cpu(daemon)
        figures.load1 = round(os.getloadavg()[0], 2)
        t0 = time.time()
        mon = Monitor(n, t0, daemon, marks, run_root / "home" / "flotilla.db")
        mon.start()
        profiler = _start_profiler(pid, run_root.name) if ARGS.profile else None
        figures.cli_cpu_s = round(_request(via, n, env, repo, mon), 3)
        figures.created_s = round(time.time() - t0, 3)
        mon.join(run_deadline_s(n))
        mon.stop.set()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        if mon.error is not None:
            raise mon.error
        own1, kids1 = _cpu(daemon)
        figures.daemon_hwm_mb = round(_hwm_mb(pid), 1)
        starts = [float(p.read_text()) for p in marks.glob("start.*")]
        if mon.stored_at is None or len(starts) < n:
            figures.notes.append("not all results were stored before the deadline")
        figures.running_s = round(max(starts, default=time.time()) - t0, 3)
        figures.stored_s = round((mon.stored_at or time.time()) - t0, 3)
        figures.peak_rss_mb = round(mon.peak_rss / 2**20, 1)
        figures.peak_rss_at_running = mon.peak_at_running
        figures.daemon_cpu_s = round(own1 - own0, 3)
        figures.agents_cpu_s = round(_agents_cpu(marks), 3)
        figures.children_cpu_s = round(kids1 - kids0 - figures.agents_cpu_s, 3)
        workers = json.loads(fleet(env, repo, "--json", "list"))
        figures.succeeded = sum(
            1
            for w in workers
            if w["state"] == "succeeded" and len((w.get("result") or {}).get("files", [])) == 1
        )
        if figures.succeeded != n:
            figures.notes.append(f"only {figures.succeeded}/{n} succeeded with one file changed")
    finally:
        _stop_daemon(env, repo)
        shutil.rmtree(run_root, ignore_errors=True)
    return figures


def _start_profiler(pid: int, name: str) -> subprocess.Popen[bytes]:
    """py-spy (pip install py-spy) sampling the daemon's threads, native frames included."""
    ARGS.profile.mkdir(parents=True, exist_ok=True)
    out = ARGS.profile / f"{name.rsplit('-', 1)[0]}-{ARGS.via}.txt"
    argv = ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--gil"]
    argv += ["--output", str(out)]
    return subprocess.Popen(
        [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), *argv[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _prefill(repo: Path, env: dict[str, str], n: int) -> None:
    """Fill the project's pool the way the daemon would, and wait for it to be ready."""
    from flotilla.config.loader import load_config
    from flotilla.orchestrator.pooling import pool_for

    pool = pool_for(load_config(repo, env))
    pool.replenish(n)
    if len(pool.ready()) < n:
        raise RuntimeError(f"the pool holds {len(pool.ready())} worktrees, not {n}")


def _stop_daemon(env: dict[str, str], repo: Path) -> None:
    try:
        fleet(env, repo, "daemon", "stop")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"warning: could not stop the bench daemon: {exc}", file=sys.stderr)


# -- reporting ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "")
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": model,
        "python": platform.python_version(),
        "git": git.stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


COLUMNS = (
    ("n", "n"),
    ("mode", "mode"),
    ("via", "via"),
    ("created_s", "created s"),
    ("running_s", "running s"),
    ("stored_s", "stored s"),
    ("peak_rss_mb", "peak RSS MB"),
    ("budget_mb", "budget MB"),
    ("daemon_hwm_mb", "daemon HWM MB"),
    ("daemon_cpu_s", "daemon CPU s"),
    ("cli_cpu_s", "CLI CPU s"),
    ("children_cpu_s", "git+shim CPU s"),
    ("succeeded", "ok"),
    ("load1", "load"),
)


def print_row(figures: RunFigures, header: bool) -> None:
    if header:
        print(" | ".join(label for _, label in COLUMNS), flush=True)
    values = asdict(figures)
    line = " | ".join(str(values[key]) for key, _ in COLUMNS)
    print(line + ("  " + "; ".join(figures.notes) if figures.notes else ""), flush=True)


def median_of(runs: list[RunFigures]) -> RunFigures:
    first = runs[0]
    out = RunFigures(n=first.n, mode=first.mode, via=first.via, budget_mb=first.budget_mb)
    for key in (
        "created_s",
        "running_s",
        "stored_s",
        "peak_rss_mb",
        "daemon_hwm_mb",
        "daemon_cpu_s",
        "cli_cpu_s",
        "children_cpu_s",
        "agents_cpu_s",
        "load1",
    ):
        setattr(out, key, round(statistics.median(getattr(r, key) for r in runs), 3))
    out.succeeded = min(r.succeeded for r in runs)
    out.notes = [f"median of {len(runs)}", *sorted({n for r in runs for n in r.notes})]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="agents (repeatable)")
    parser.add_argument("--mode", choices=("cold", "warm"), action="append")
    parser.add_argument("--via", choices=("cli", "client", "batch"), default="cli")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    parser.add_argument("--files", type=int, default=2000, help="files in the repository")
    parser.add_argument("--work-s", type=float, default=1.0, help="seconds each agent works")
    parser.add_argument("--profile", type=Path, help="py-spy flame graphs of the daemon here")
    parser.add_argument(
        "--flotilla-src", type=Path, help="the src/ folder of another Flotilla to measure"
    )
    parser.add_argument("--json-out", type=Path, help="write every figure here as JSON")
    args = parser.parse_args(argv)
    args.n = args.n or [20, 100]
    args.mode = args.mode or ["cold", "warm"]
    if not 1 <= args.repeat <= 20 or any(not 1 <= n <= 500 for n in args.n):
        parser.error("--repeat must be 1..20 and --n 1..500")
    return args


ARGS = parse_args([])


def main() -> int:
    global ARGS
    ARGS = parse_args()
    info = machine()
    print(json.dumps(info), flush=True)
    root = Path(tempfile.mkdtemp(prefix="flotilla-bench-"))
    results: list[dict[str, Any]] = []
    header = True
    try:
        for n in ARGS.n:
            for mode in ARGS.mode:
                runs = []
                for _ in range(ARGS.repeat):
                    figures = run_once(root, n, mode, ARGS.via, ARGS.work_s)
                    print_row(figures, header)
                    header = False
                    runs.append(figures)
                    results.append(asdict(figures))
                if len(runs) > 1:
                    print_row(median_of(runs), False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if ARGS.json_out:
        ARGS.json_out.write_text(json.dumps({"machine": info, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
