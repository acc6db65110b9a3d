"""Interactive workers end to end: the real CLI and daemon, agents in real tmux panes.

Each test talks to its own tmux server (FLOTILLA_TMUX_SOCKET) and checks what an
operator would see from outside: the pane, `tmux ls`, processes, git.
"""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import pytest
from e2e_support import Fleet, git
from interactive_support import (
    configure,
    details,
    gone,
    hook_records,
    pane,
    process_tree,
    scripted_interactive,
    sessions,
    tmux,
    toml_string,
    transcript,
    wait_for,
    wait_state,
)

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

# Everything a shell, tmux or a TOML/format substitution could get wrong.
NASTY_PROMPT = (
    "it's \"double\" and 'single'; $HOME ${PATH} `whoami` $(whoami) \\$x\n"
    "second line #{session_name} ## {attempt} %s\n"
    "\tlast line ends with a semicolon;"
)

# A stand-in agent: records its argv, environment and whether it has a terminal.
RECORDER = """\
import json, os, sys
out = os.environ["RECORD_TO"]
with open(out + ".tmp", "w") as handle:
    json.dump({"argv": sys.argv[1:], "env": dict(os.environ), "tty": sys.stdin.isatty()}, handle)
os.replace(out + ".tmp", out)
"""


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_shell_agent_gets_the_prompt_intact_in_its_terminal(fleet: Fleet) -> None:
    # The shell executor's interactive contract: the command runs in the pane, the
    # prompt is in env FLOTILLA_PROMPT (a person types the rest).
    record = fleet.home.parent / "record.json"
    recorder = fleet.home.parent / "recorder.py"
    recorder.write_text(RECORDER)
    command = f"{sys.executable} {recorder} first 'sec ond'"
    configure(
        fleet,
        '[project]\ndefault_agent = "shell"\n'
        f"[agents.shell]\ncommand = {toml_string(command)}\n"
        f"env = {{ RECORD_TO = {toml_string(str(record))} }}\n",
    )
    created = fleet.json("create", "sh1", "-p", NASTY_PROMPT, "--interactive")
    assert created[0]["interactive"] is True
    worker = fleet.wait_terminal("sh1")["sh1"]
    assert worker["state"] == "succeeded", worker
    seen = json.loads(record.read_text())
    assert seen["env"]["FLOTILLA_PROMPT"] == NASTY_PROMPT
    assert seen["argv"] == ["first", "sec ond"]
    assert seen["tty"] is True  # it runs in the pane, not headless
    assert seen["env"]["FLOTILLA_WORKER"] == "sh1"
    assert Path(seen["env"]["FLOTILLA_WORKTREE"]).resolve() == Path(worker["worktree"]).resolve()
    assert "TMUX" in seen["env"]


def test_scripted_agent_gets_the_prompt_as_one_argv_element(fleet: Fleet) -> None:
    # A wrapper in front of the scripted agent records the argv tmux gave it, then
    # becomes the agent, which writes the prompt from that argv to FLOTILLA_NOTES.md.
    record = fleet.home.parent / "argv.json"
    wrapper = executable(
        fleet.home.parent / "bin" / "wrapped-agent",
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n",
    )
    configure(
        fleet,
        '[project]\ndefault_agent = "scripted"\n'
        f"[agents.scripted]\nbinary = {toml_string(str(wrapper))}\n",
    )
    fleet.run("create", "argv1", "-p", NASTY_PROMPT, "--interactive")
    worker = fleet.wait_terminal("argv1")["argv1"]
    assert worker["state"] == "succeeded", worker
    argv = json.loads(record.read_text())
    assert argv[-2:] == ["--", NASTY_PROMPT]
    assert argv.count(NASTY_PROMPT) == 1
    notes = (Path(worker["worktree"]) / "FLOTILLA_NOTES.md").read_text()
    assert notes == f"# Notes from Flotilla\n\n{NASTY_PROMPT}\n"


def test_pane_path_is_the_callers_even_with_an_older_tmux_server(fleet: Fleet) -> None:
    # The tmux server and the daemon both start first, with other PATHs.
    server_env = {**fleet.env, "PATH": "/usr/bin:/bin"}
    assert tmux(fleet, "new-session", "-d", "-s", "other", env=server_env) == ""
    assert "PATH=/usr/bin:/bin" in tmux(fleet, "show-environment", "-g", "PATH")
    fleet.run("daemon", "start")
    bindir = fleet.home.parent / "caller-bin"
    record = fleet.home.parent / "path.txt"
    executable(bindir / "my-agent", f'#!/bin/sh\nprintf "%s" "$PATH" > {record}\n')
    configure(fleet, '[project]\ndefault_agent = "shell"\n[agents.shell]\nbinary = "my-agent"\n')
    caller_path = f"{bindir}:/usr/local/bin:/usr/bin:/bin"
    fleet.run("create", "pathy", "-p", "x", "--interactive", env={"PATH": caller_path})
    worker = fleet.wait_terminal("pathy")["pathy"]
    assert worker["state"] == "succeeded", worker
    assert record.read_text() == caller_path
    assert "other" in sessions(fleet)  # the older server was the one used


# The pause before the question keeps these tests clear of the start-up race that
# test_hook_written_while_the_daemon_is_down_is_not_lost pins down.
WAIT_THEN_CONTINUE = """
[[steps]]
action = "say"
text = "looked at the code"
[[steps]]
action = "sleep"
seconds = 1.0
[[steps]]
action = "wait_input"
text = "which database should I use?"
seconds = 60
[[steps]]
action = "write"
path = "after.txt"
content = "resumed after input"
[[steps]]
action = "sleep"
seconds = 2.0
[[steps]]
action = "summary"
text = "Finished after the answer."
"""


def test_waiting_from_hooks_then_prompt_is_typed_into_the_pane(fleet: Fleet) -> None:
    scripted_interactive(fleet, WAIT_THEN_CONTINUE)
    fleet.run("create", "asker", "-p", "pick a database", "--interactive")
    worker = wait_state(fleet, "asker", "waiting")
    hooks = [json.loads(line) for line in hook_records(worker["run_dir"])]
    assert [h["event"] for h in hooks] == ["waiting"]
    assert hooks[0]["source"] == "scripted"
    assert hooks[0]["message"] == "which database should I use?"
    waiting = [r for r in transcript(worker["run_dir"]) if r["kind"] == "waiting"]
    assert waiting and waiting[0]["data"]["hook"] is True
    session = details(fleet, "asker")["tmux_session"]
    assert session in sessions(fleet)
    assert "continue please" not in pane(fleet, session)

    reply = fleet.json("prompt", "asker", "continue please")
    assert reply == {"status": "delivered"}
    wait_for(
        lambda: "received input: continue please" in pane(fleet, session),
        "the agent to read the typed line",
        timeout=5,
    )
    assert "continue please" in pane(fleet, session).split("received input")[0]  # the echo

    worker = fleet.wait_terminal("asker")["asker"]
    assert worker["state"] == "succeeded", worker
    assert (Path(worker["worktree"]) / "after.txt").read_text() == "resumed after input"
    exit_file = Path(worker["run_dir"]) / "attempt-1" / "exit"
    assert exit_file.read_text().strip() == "0"
    raw = fleet.run("logs", "asker", "--raw").stdout
    assert "received input: continue please" in raw  # the agent read what was typed
    assert worker["result"]["summary"] == "Finished after the answer."
    wait_for(lambda: session not in sessions(fleet), "the pane to close")


def test_hook_written_while_the_daemon_is_down_is_not_lost(fleet: Fleet) -> None:
    # Agents outlive the daemon; a question asked while it was down must still make
    # the worker `waiting` once a new daemon re-adopts it. (The same loss happens
    # without a restart when the agent's hook fires before the supervisor's first
    # look at a new turn.)
    # The agent asks only once the test has seen it running and stopped the daemon.
    trigger = fleet.home.parent / "ask-now"
    wait = f"for i in $(seq 600); do [ -e {trigger} ] && break; sleep 0.1; done"
    script = WAIT_THEN_CONTINUE.replace(
        'action = "sleep"\nseconds = 1.0', f'action = "run"\ncommand = {toml_string(wait)}', 1
    )
    assert script != WAIT_THEN_CONTINUE
    scripted_interactive(fleet, script)
    fleet.run("create", "patient", "-p", "x", "--interactive")
    worker = wait_state(fleet, "patient", "running")
    fleet.run("daemon", "stop")
    trigger.touch()
    wait_for(lambda: bool(hook_records(worker["run_dir"])), "the agent's waiting hook")
    worker = wait_state(fleet, "patient", "waiting", timeout=15)  # starts a new daemon
    assert [r["kind"] for r in transcript(worker["run_dir"])].count("waiting") == 1
    assert fleet.json("prompt", "patient", "go on")["status"] == "delivered"
    worker = fleet.wait_terminal("patient")["patient"]
    assert worker["state"] == "succeeded", worker


def test_waiting_comes_from_hooks_not_from_the_screen(fleet: Fleet) -> None:
    # The agent prints what a screen scraper would take for a question, but the
    # worker is `waiting` only once a hook line says so.
    trigger = fleet.home.parent / "trigger"
    hook = f"{sys.executable} -m flotilla.executors.hooks"
    command = (
        'echo \'{"kind": "waiting", "text": "Do you want to proceed?"}\'; '
        "echo 'Do you want to proceed? (y/n)'; "
        f"while [ ! -e {trigger} ]; do sleep 0.1; done; "
        f'{hook} waiting shell "$FLOTILLA_RUN_DIR/hooks.jsonl" \'{{"message": "proceed?"}}\'; '
        f"while [ ! -e {trigger}.2 ]; do sleep 0.1; done; exit 3"
    )
    configure(
        fleet,
        f'[project]\ndefault_agent = "shell"\n[agents.shell]\ncommand = {toml_string(command)}\n',
    )
    fleet.run("create", "quiet", "-p", "x", "--interactive")
    worker = wait_state(fleet, "quiet", "running")
    session = details(fleet, "quiet")["tmux_session"]
    wait_for(lambda: "(y/n)" in pane(fleet, session), "the question on screen")
    time.sleep(1.0)  # several supervisor passes
    assert fleet.workers()["quiet"]["state"] == "running"
    trigger.touch()
    worker = wait_state(fleet, "quiet", "waiting")
    assert transcript(worker["run_dir"])[-1]["text"] == "proceed?"
    (fleet.home.parent / "trigger.2").touch()
    worker = fleet.wait_terminal("quiet")["quiet"]
    assert worker["state"] == "failed" and worker["outcome"] == "error", worker
    assert "3" in (worker["error"] or ""), worker
    assert (Path(worker["run_dir"]) / "attempt-1" / "exit").read_text().strip() == "3"


def test_agent_idle_at_its_prompt_after_a_turn_waits_and_is_not_stale(fleet: Fleet) -> None:
    # An interactive agent that ended its turn (Claude's Stop hook, Codex's
    # agent-turn-complete) sits silently at its prompt until someone types: that is
    # waiting for input, not a hung agent to kill and restart.
    hook = f"{sys.executable} -m flotilla.executors.hooks"
    payload = '{"last_assistant_message": "Done. Anything else?"}'
    command = (
        "echo 'working'; "
        f"{hook} stopped shell \"$FLOTILLA_RUN_DIR/hooks.jsonl\" '{payload}'; "
        "exec sleep 60"
    )
    configure(
        fleet,
        '[project]\ndefault_agent = "shell"\n[limits]\nstale_timeout_s = 1.5\n'
        f"[agents.shell]\ncommand = {toml_string(command)}\n",
    )
    fleet.run("create", "idle", "-p", "x", "--interactive")
    first = fleet.wait(lambda ws: bool(ws["idle"]["pid"]), what="idle to start")["idle"]
    wait_for(lambda: bool(hook_records(first["run_dir"])), "the stopped hook")
    time.sleep(4)  # well past stale_timeout_s
    worker = fleet.workers()["idle"]
    assert (worker["restarts"], worker["attempt"], worker["pid"]) == (0, 1, first["pid"]), worker
    assert worker["state"] == "waiting", worker


def test_kill_leaves_no_session_process_worktree_or_branch(fleet: Fleet) -> None:
    scripted_interactive(fleet, WAIT_THEN_CONTINUE)
    fleet.run("create", "doomed", "-p", "x", "--interactive")
    worker = wait_state(fleet, "doomed", "waiting")
    session = details(fleet, "doomed")["tmux_session"]
    assert session in sessions(fleet)
    tree = process_tree(worker["pid"])
    assert len(tree) >= 2, tree  # the shim and the agent under it
    worktree = Path(worker["worktree"])
    assert worktree.is_dir()

    fleet.run("kill", "doomed")
    assert session not in sessions(fleet)
    assert "doomed" not in tmux(fleet, "ls")
    wait_for(lambda: all(gone(p) for p in tree), "the agent's processes to end", timeout=10)
    assert not worktree.exists()
    assert git(fleet.repo, "branch", "--list", "flotilla/doomed").strip() == ""
    assert str(worktree) not in git(fleet.repo, "worktree", "list")
    assert fleet.workers() == {}
    assert not Path(worker["run_dir"]).exists()


def test_prompt_to_a_gone_session_is_not_delivered(fleet: Fleet) -> None:
    scripted_interactive(fleet, WAIT_THEN_CONTINUE)
    fleet.run("create", "lost", "-p", "x", "--interactive")
    worker = wait_state(fleet, "lost", "waiting")
    session = details(fleet, "lost")["tmux_session"]
    tree = process_tree(worker["pid"])
    assert tmux(fleet, "kill-session", "-t", f"={session}") == ""

    proc = fleet.run("prompt", "lost", "are you there?", check=False)
    assert proc.returncode == 1, proc
    assert "not delivered" in proc.stderr
    wait_for(lambda: all(gone(p) for p in tree), "the agent to die with its pane", timeout=10)
    # The agent died without an exit status: the worker says so instead of hanging.
    worker = fleet.wait_terminal("lost", timeout=30)["lost"]
    assert worker["state"] == "failed", worker
    again = fleet.json("prompt", "lost", "still there?")
    assert again["status"] == "not delivered"
    assert "not running" in again["reason"]


def test_prompt_to_a_finished_interactive_worker_is_not_delivered(fleet: Fleet) -> None:
    scripted_interactive(fleet, '[[steps]]\naction = "say"\ntext = "done"\n')
    fleet.run("create", "brief", "-p", "x", "--interactive")
    worker = fleet.wait_terminal("brief")["brief"]
    assert worker["state"] == "succeeded", worker
    proc = fleet.run("prompt", "brief", "one more thing", check=False)
    assert proc.returncode == 1
    assert "not delivered" in proc.stderr
    assert all(gone(p) for p in process_tree(worker["pid"]))
    assert details(fleet, "brief")["tmux_session"] not in sessions(fleet)
