"""A worker's life end to end: real git, the real CLI and daemon, the scripted agent."""

from __future__ import annotations

import itertools
from pathlib import Path

import psutil
import pytest
from e2e_support import Fleet, git

WRITE_AND_COMMIT = """
[[steps]]
action = "say"
text = "working on {prompt}"
[[steps]]
action = "write"
path = "feature.txt"
content = "done\\n"
[[steps]]
action = "commit"
message = "add feature"
[[steps]]
action = "write"
path = "notes.md"
content = "uncommitted\\n"
[[steps]]
action = "usage"
input_tokens = 1200
output_tokens = 300
cost_usd = 0.25
[[steps]]
action = "next_steps"
items = ["write docs"]
[[steps]]
action = "summary"
text = "Added the feature."
"""


def configure(fleet: Fleet, text: str) -> None:
    (fleet.repo / ".flotilla").mkdir(exist_ok=True)
    (fleet.repo / ".flotilla" / "config.toml").write_text(text)


def scripted(fleet: Fleet, script: str, extra: str = "") -> None:
    path = fleet.script("agent", script)
    configure(
        fleet,
        f'[project]\ndefault_agent = "scripted"\n{extra}\n[agents.scripted]\nscript = "{path}"\n',
    )


def test_create_runs_agent_and_reports_facts_from_git(fleet: Fleet) -> None:
    scripted(fleet, WRITE_AND_COMMIT)
    created = fleet.json("create", "feat", "-p", "add a feature")
    assert created[0]["branch"] == "flotilla/feat"
    worker = fleet.wait_terminal("feat")["feat"]
    assert worker["state"] == "succeeded", worker
    result = fleet.json("result", "feat")
    assert result["outcome"] == "success"
    assert {f["path"] for f in result["files"]} == {"feature.txt", "notes.md"}
    assert len(result["commits"]) == 1 and "add feature" in result["commits"][0]
    assert result["input_tokens"] == 1200 and result["output_tokens"] == 300
    assert result["cost_usd"] == pytest.approx(0.25)
    assert result["summary"] == "Added the feature."
    assert result["next_steps"] == ["write docs"]
    run_dir = Path(worker["run_dir"])
    assert (run_dir / "result.json").exists()
    stat = fleet.run("diff", "feat", "--stat").stdout
    assert "feature.txt" in stat and "notes.md" in stat
    logs = fleet.run("logs", "feat").stdout
    assert "working on add a feature" in logs and '{"kind"' not in logs
    raw = fleet.run("logs", "feat", "--raw").stdout
    assert '"kind"' in raw


def test_agent_that_changes_nothing_is_reported_as_no_changes(fleet: Fleet) -> None:
    scripted(fleet, '[[steps]]\naction = "say"\ntext = "nothing to do"\n')
    fleet.run("create", "idle", "-p", "look around")
    worker = fleet.wait_terminal("idle")["idle"]
    assert worker["state"] == "succeeded"
    assert worker["outcome"] == "no_changes"


def test_test_command_runs_in_worktree_after_agent(fleet: Fleet) -> None:
    scripted(
        fleet,
        '[[steps]]\naction = "write"\npath = "check.sh"\ncontent = "exit 3\\n"\n',
        extra='test_command = "sh check.sh"',
    )
    fleet.run("create", "breaker", "-p", "break it")
    worker = fleet.wait_terminal("breaker")["breaker"]
    assert worker["outcome"] == "tests_failed"
    assert worker["result"]["tests"]["exit_code"] == 3


def test_failing_agent_fails_with_its_error(fleet: Fleet) -> None:
    scripted(fleet, '[[steps]]\naction = "fail"\nmessage = "cannot compile"\n')
    fleet.run("create", "broken", "-p", "x")
    worker = fleet.wait_terminal("broken")["broken"]
    assert worker["state"] == "failed" and worker["outcome"] == "error"
    assert "cannot compile" in worker["error"]


def test_rate_limited_run_is_retried_then_succeeds(fleet: Fleet) -> None:
    script = """
[[steps]]
action = "rate_limit"
retry_after = 0.2
attempt = 1
[[steps]]
action = "write"
path = "x.txt"
content = "ok"
"""
    scripted(fleet, script, extra="[retry]\nbase_delay_s = 0.1\nmax_delay_s = 1.0\n")
    fleet.run("create", "limited", "-p", "x")
    worker = fleet.wait_terminal("limited")["limited"]
    assert worker["state"] == "succeeded", worker
    assert worker["attempt"] == 2 and worker["retries"] == 1


def test_auth_failure_is_not_retried(fleet: Fleet) -> None:
    scripted(fleet, '[[steps]]\naction = "auth_fail"\n')
    fleet.run("create", "noauth", "-p", "x")
    worker = fleet.wait_terminal("noauth")["noauth"]
    assert worker["outcome"] == "auth_failed" and worker["attempt"] == 1


def test_stale_agent_is_restarted_and_resumes(fleet: Fleet) -> None:
    script = """
[[steps]]
action = "silent"
seconds = 60
[[on_prompt]]
action = "write"
path = "after-restart.txt"
content = "{attempt} {prompt}"
"""
    scripted(fleet, script, extra="[limits]\nstale_timeout_s = 1.5\nmax_restarts = 1\n")
    fleet.run("create", "sleepy", "-p", "x")
    worker = fleet.wait_terminal("sleepy", timeout=60)["sleepy"]
    assert worker["state"] == "succeeded", worker
    assert worker["restarts"] == 1 and worker["attempt"] == 2
    text = (Path(worker["worktree"]) / "after-restart.txt").read_text()
    assert text.startswith("2 Continue the task")


def test_timeout_is_enforced(fleet: Fleet) -> None:
    script = '[[steps]]\naction = "sleep"\nseconds = 60\nheartbeat = 0.2\n'
    scripted(fleet, script, extra="[limits]\ntimeout_s = 1.5\n")
    fleet.run("create", "slow", "-p", "x")
    worker = fleet.wait_terminal("slow", timeout=30)["slow"]
    assert worker["outcome"] == "timed_out"
    assert not psutil.pid_exists(worker["pid"]) or not psutil.Process(worker["pid"]).is_running()


def test_workers_beyond_max_concurrent_wait_and_start_in_order(fleet: Fleet) -> None:
    script = '[[steps]]\naction = "sleep"\nseconds = 0.8\n'
    scripted(fleet, script, extra="[limits]\nmax_concurrent = 1\n")
    fleet.run("multi", "q1:one", "q2:two", "q3:three")
    workers = fleet.wait_terminal("q1", "q2", "q3", timeout=60)
    assert all(w["state"] == "succeeded" for w in workers.values()), workers
    runs = [(workers[n]["started_at"], workers[n]["ended_at"]) for n in ("q1", "q2", "q3")]
    assert [start for start, _ in runs] == sorted(start for start, _ in runs)  # in order
    for (_, ended), (started, _) in itertools.pairwise(runs):
        assert started >= ended  # one at a time: each starts after the one before ended


def test_follow_up_prompt_resumes_the_session(fleet: Fleet) -> None:
    script = """
[[steps]]
action = "write"
path = "a.txt"
content = "first"
[[on_prompt]]
action = "write"
path = "b.txt"
content = "{prompt} in {session_id}"
"""
    scripted(fleet, script)
    fleet.run("create", "talker", "-p", "start")
    first = fleet.wait_terminal("talker")["talker"]
    reply = fleet.json("prompt", "talker", "now b")
    assert reply["status"] == "queued"
    worker = fleet.wait(
        lambda ws: ws["talker"]["attempt"] == 2 and ws["talker"]["state"] == "succeeded",
        what="follow-up turn",
    )["talker"]
    assert (Path(worker["worktree"]) / "b.txt").read_text() == f"now b in {first['session_id']}"
    assert worker["session_id"] == first["session_id"]


def test_kill_batch_leaves_no_process_worktree_or_branch(fleet: Fleet) -> None:
    scripted(fleet, '[[steps]]\naction = "sleep"\nseconds = 60\nheartbeat = 1\n')
    created = fleet.json("fanout", "3", "job", "-p", "wait")
    batch = created[0]["batch"]
    workers = fleet.wait(
        lambda ws: all(w["state"] == "running" for w in ws.values()), what="all running"
    )
    pids = [w["pid"] for w in workers.values()]
    fleet.run("kill", "--batch", batch, "--force")
    assert fleet.workers() == {}
    assert "flotilla/job" not in git(fleet.repo, "branch", "--list")
    assert git(fleet.repo, "worktree", "list").strip().count("\n") == 0
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_kill_keep_branch_commits_uncommitted_work(fleet: Fleet) -> None:
    script = """
[[steps]]
action = "write"
path = "wip.txt"
content = "half done"
[[steps]]
action = "sleep"
seconds = 60
heartbeat = 1
"""
    scripted(fleet, script)
    fleet.run("create", "wip", "-p", "x")
    fleet.wait(
        lambda ws: ws["wip"]["state"] == "running" and ws["wip"]["input_tokens"] >= 0,
        what="running",
    )
    worktree = Path(fleet.workers()["wip"]["worktree"])
    fleet.wait(lambda ws: (worktree / "wip.txt").exists(), what="file written")
    fleet.run("kill", "wip", "--keep-branch")
    assert not worktree.exists()
    assert git(fleet.repo, "show", "flotilla/wip:wip.txt") == "half done"


def test_commands_work_from_a_subdirectory(fleet: Fleet) -> None:
    scripted(fleet, WRITE_AND_COMMIT)
    sub = fleet.repo / "deep" / "er"
    sub.mkdir(parents=True)
    fleet.run("create", "fromsub", "-p", "x", cwd=sub)
    assert "fromsub" in fleet.run("list", cwd=sub).stdout


def test_spawn_depth_is_refused_past_the_limit(fleet: Fleet) -> None:
    scripted(fleet, WRITE_AND_COMMIT, extra="[limits]\nmax_spawn_depth = 1\n")
    env = {"FLOTILLA_WORKER_ID": "parent", "FLOTILLA_DEPTH": "1"}
    proc = fleet.run("create", "child", "-p", "x", env=env, check=False)
    assert proc.returncode == 2
    assert "max_spawn_depth" in proc.stderr
    assert fleet.workers() == {}


def test_daemon_restart_readopts_running_agents(fleet: Fleet) -> None:
    script = (
        '[[steps]]\naction = "sleep"\nseconds = 6\nheartbeat = 0.5\n'
        '[[steps]]\naction = "write"\npath = "done.txt"\ncontent = "x"\n'
    )
    scripted(fleet, script, extra="[limits]\nmax_concurrent = 10\n")
    fleet.run("fanout", "10", "pack", "-p", "x")
    fleet.wait(lambda ws: all(w["attempt"] == 1 for w in ws.values()), what="all started")
    pid = int(__import__("json").loads((fleet.home / "daemon.pid").read_text())["pid"])
    psutil.Process(pid).kill()
    psutil.Process(pid).wait(10)
    workers = fleet.wait_terminal(*[f"pack-{c}" for c in "ABCDEFGHIJ"], timeout=90)
    for worker in workers.values():
        assert worker["state"] == "succeeded", worker
        assert worker["attempt"] == 1  # re-adopted, not run twice
        assert any(f["path"] == "done.txt" for f in worker["result"]["files"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "bad/name", "-p", "x"], "path separator"),
        (["create", "../x", "-p", "x"], "worker name"),
        (["create", "ok", "-p", "  "], "prompt is empty"),
        (["create", "ok", "--prompt-file", "/nonexistent/prompt.txt"], "does not exist"),
        (["create", "ok", "-p", "x", "--agent", "nosuch"], "unknown agent kind"),
        (["create", "ok", "-p", "x", "--base", "no-such-ref"], "does not exist"),
        (["create", "ok", "-p", "x", "--agent", "claude"], "not installed"),
        (["fanout", "0", "-p", "x"], "at least 1"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    fleet: Fleet, args: list[str], message: str
) -> None:
    scripted(fleet, WRITE_AND_COMMIT)
    env = {"PATH": "/usr/bin:/bin"} if "claude" in args else None
    proc = fleet.run(*args, check=False, env=env)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert git(fleet.repo, "branch", "--list").strip() == "* main"


def test_duplicate_name_is_refused(fleet: Fleet) -> None:
    scripted(fleet, WRITE_AND_COMMIT)
    fleet.run("create", "twin", "-p", "x")
    proc = fleet.run("create", "twin", "-p", "x", check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_not_a_git_repository(fleet: Fleet, tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    proc = fleet.run("create", "x", "-p", "x", cwd=outside, check=False)
    assert proc.returncode == 2 and "not a git repository" in proc.stderr


def test_malformed_config_names_key_and_file(fleet: Fleet) -> None:
    configure(fleet, "[limits]\nmax_concurrent = 0\n")
    proc = fleet.run("create", "x", "-p", "x", check=False)
    assert proc.returncode == 2
    assert "limits.max_concurrent" in proc.stderr and "config.toml" in proc.stderr


def test_failed_setup_removes_worktree_and_branch(fleet: Fleet) -> None:
    scripted(fleet, WRITE_AND_COMMIT, extra='setup_commands = ["echo preparing", "exit 4"]')
    proc = fleet.run("create", "nosetup", "-p", "x", check=False)
    assert proc.returncode == 1
    assert "exit 4" in proc.stderr
    assert fleet.workers() == {}
    assert git(fleet.repo, "branch", "--list").strip() == "* main"
    assert git(fleet.repo, "worktree", "list").strip().count("\n") == 0


def test_daemon_status_and_stop(fleet: Fleet) -> None:
    fleet.run("daemon", "start")
    status = fleet.json("daemon", "status")
    assert status["running"] and status["health"]["status"] == "ok"
    fleet.run("daemon", "stop")
    assert fleet.run("daemon", "status", check=False).returncode == 1


def test_stale_agent_without_restarts_left_fails_as_stale(fleet: Fleet) -> None:
    script = '[[steps]]\naction = "silent"\nseconds = 60\n'
    scripted(fleet, script, extra="[limits]\nstale_timeout_s = 1\nmax_restarts = 0\n")
    fleet.run("create", "mute", "-p", "x")
    worker = fleet.wait_terminal("mute", timeout=30)["mute"]
    assert worker["state"] == "failed" and worker["outcome"] == "stale"
    assert worker["attempt"] == 1
    assert not psutil.pid_exists(worker["pid"]) or psutil.Process(worker["pid"]).status() == (
        psutil.STATUS_ZOMBIE
    )


def test_prompt_to_a_running_headless_agent_waits_for_its_turn_to_end(fleet: Fleet) -> None:
    go = fleet.home.parent / "go"  # the first turn lasts until the test says so
    script = f"""
[[steps]]
action = "run"
command = "for i in $(seq 1 600); do [ -f {go} ] && break; sleep 0.1; done"
[[on_prompt]]
action = "write"
path = "follow-up.txt"
content = "{{prompt}}"
"""
    scripted(fleet, script)
    fleet.run("create", "busy", "-p", "x")
    fleet.wait(lambda ws: ws["busy"]["state"] == "running", what="running")
    reply = fleet.json("prompt", "busy", "and then this")
    assert reply["status"] == "queued until the current turn ends"
    go.touch()
    worker = fleet.wait(
        lambda ws: ws["busy"]["attempt"] == 2 and ws["busy"]["state"] == "succeeded",
        what="the queued prompt's turn",
    )["busy"]
    assert (Path(worker["worktree"]) / "follow-up.txt").read_text() == "and then this"
