"""Carrying an agent session to a new worktree (executors.session_files, Executor.carry_session)
and the checkpoint restore that uses it: real files laid out as the real CLIs lay them out
(checked against claude 2.1.197, gemini 0.61.0, codex 0.169.0; tests/e2e_realcli/
test_checkpoint_real_agents.py runs the CLIs themselves), real git and a real store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from coord_support import make_repo

from flotilla import counters
from flotilla.executors import session_files as sf
from flotilla.executors.base import SessionPlace
from flotilla.executors.registry import get_executor
from flotilla.orchestrator.checkpoints import Checkpoints
from flotilla.orchestrator.creation import CreateRequest
from flotilla.orchestrator.service import FleetService

SESSION = "6c1e24ba-cdea-4808-bda0-91dcff7886c5"


def _lines(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# -- paths ----------------------------------------------------------------------------------


def test_a_folder_is_rewritten_only_where_it_is_a_whole_path() -> None:
    text = (
        '/wt/a /wt/a/x.py (/wt/a) /wt/a. /wt/ab /wt/a.txt /wt/a-2 /x/wt/a {"cwd":"/wt/a"} `/wt/a/`'
    )
    assert sf.rewrite_paths(text, [("/wt/a", "/wt/b")]) == (
        '/wt/b /wt/b/x.py (/wt/b) /wt/b. /wt/ab /wt/a.txt /wt/a-2 /x/wt/a {"cwd":"/wt/b"} `/wt/b/`'
    )


def test_a_folder_is_rewritten_inside_json_strings_and_backslashes_stay_literal() -> None:
    old, new = '/wt/say "hi"', "/wt/new\\1"
    line = json.dumps({"cwd": old, "text": f"wrote {old}/f.txt"})
    rewritten = json.loads(sf.rewrite_paths(line, [(old, new)]))
    assert rewritten == {"cwd": new, "text": f"wrote {new}/f.txt"}


def test_claude_keys_match_what_claude_code_names_its_project_folders() -> None:
    assert sf.claude_key("/tmp/carryexp/claude/a") == "-tmp-carryexp-claude-a"
    # Past 200 characters: cut, plus a hash of the path (the name claude 2.1.197 made for
    # this path; the emoji is two UTF-16 units, so two dashes).
    long = "/tmp/carryexp/claude4/long-é😀-" + "x" * 90 + "/" + "y" * 120
    key = sf.claude_key(long)
    assert len(key) == 200 + len("-ie4xms") and key.endswith("-ie4xms")
    assert key.startswith("-tmp-carryexp-claude4-long-----xxx")


# -- claude ---------------------------------------------------------------------------------


def _claude_session(home: Path, folder: Path, session: str = SESSION) -> Path:
    path = sf.claude_projects({"HOME": str(home)}) / sf.claude_key(str(folder))
    path /= f"{session}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(
        _lines(
            {"type": "queue-operation", "sessionId": session, "content": "say one"},
            {"type": "user", "cwd": str(folder), "message": {"content": "say one"}},
            {"type": "assistant", "cwd": str(folder), "message": {"content": f"{folder}/a.txt"}},
        )
    )
    sub = path.with_suffix("") / "subagents" / "agent-1.jsonl"
    sub.parent.mkdir(parents=True)
    sub.write_text(_lines({"cwd": str(folder)}))
    return path


def test_claude_session_is_copied_under_the_new_folder_with_its_paths(tmp_path: Path) -> None:
    home, old, new = tmp_path / "home", tmp_path / "wt" / "a", tmp_path / "wt" / "b"
    original = _claude_session(home, old)
    before = original.read_text()
    env = {"HOME": str(home)}
    carried = get_executor("claude").carry_session(
        SESSION, SessionPlace(old, env), SessionPlace(new, env)
    )
    assert carried
    copy = sf.claude_projects(env) / sf.claude_key(str(new)) / f"{SESSION}.jsonl"
    assert copy.read_text() == before.replace(str(old), str(new))
    assert str(old) not in copy.read_text()
    sub = copy.with_suffix("") / "subagents" / "agent-1.jsonl"
    assert json.loads(sub.read_text()) == {"cwd": str(new)}
    assert original.read_text() == before  # the first worker's own copy is untouched
    assert not list(copy.parent.glob(".*partial"))


def test_claude_finds_a_session_by_id_when_its_worker_is_gone(tmp_path: Path) -> None:
    home, old, new = tmp_path / "home", tmp_path / "wt" / "a", tmp_path / "wt" / "b"
    _claude_session(home, old)
    config = tmp_path / "claude-config"  # CLAUDE_CONFIG_DIR wins over HOME for the target
    target = SessionPlace(new, {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(config)})
    source = SessionPlace(new, {"HOME": str(home)})  # no hint of the old folder
    assert get_executor("claude").carry_session(SESSION, source, target)
    copy = config / "projects" / sf.claude_key(str(new)) / f"{SESSION}.jsonl"
    assert str(new) in copy.read_text() and str(old) not in copy.read_text()


def test_claude_cannot_carry_a_missing_or_malformed_session(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home")}
    claude = get_executor("claude")
    _claude_session(tmp_path / "home", tmp_path / "a")
    here, there = SessionPlace(tmp_path / "a", env), SessionPlace(tmp_path / "b", env)
    assert not claude.carry_session("0000aaaa-0000-0000-0000-000000000000", here, there)
    assert not claude.carry_session("../" + SESSION, here, there)
    assert not claude.carry_session("*", here, there)
    assert not (sf.claude_projects(env) / sf.claude_key(str(tmp_path / "b"))).exists()


# -- gemini ---------------------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _gemini_session(root: Path, slug: str, folder: Path, session: str = SESSION) -> Path:
    (root / "tmp" / slug).mkdir(parents=True, exist_ok=True)
    (root / "tmp" / slug / ".project_root").write_text(str(folder))
    path = root / "tmp" / slug / "chats" / f"session-2026-11-22T04-44-{session[:8]}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        _lines(
            {"sessionId": session, "projectHash": _sha(str(folder)), "kind": "main"},
            {"type": "user", "content": [{"text": f"Workspace: {folder}"}]},
            {"type": "gemini", "content": "First done."},
        )
    )
    return path


def _gemini_carry(tmp_path: Path, old: Path, new: Path) -> Path:
    env = {"HOME": str(tmp_path / "home")}
    carried = get_executor("gemini").carry_session(
        SESSION, SessionPlace(old, env), SessionPlace(new, env)
    )
    assert carried
    found = sf.find_gemini_session(sf.gemini_root(env), SESSION, str(new))
    assert found is not None
    return found


def test_gemini_session_goes_under_a_slug_claimed_for_the_new_folder(tmp_path: Path) -> None:
    root, old, new = tmp_path / "home" / ".gemini", tmp_path / "wt" / "a", tmp_path / "wt" / "b"
    original = _gemini_session(root, "a", old)
    before = original.read_text()
    (root / "tmp" / "b").mkdir(parents=True)  # "b" belongs to another project already
    (root / "tmp" / "b" / ".project_root").write_text("/elsewhere/b")
    copy = _gemini_carry(tmp_path, old, new)
    assert copy == root / "tmp" / "b-1" / "chats" / original.name
    for base in ("tmp", "history"):  # marked as gemini marks it, so gemini adopts the slug
        assert (root / base / "b-1" / ".project_root").read_text() == str(new)
    records = [json.loads(line) for line in copy.read_text().splitlines()]
    assert records[0] == {"sessionId": SESSION, "projectHash": _sha(str(new)), "kind": "main"}
    assert records[1]["content"][0]["text"] == f"Workspace: {new}"
    assert original.read_text() == before


def test_gemini_uses_the_registered_slug_and_ignores_lookalike_sessions(tmp_path: Path) -> None:
    root, old, new = tmp_path / "home" / ".gemini", tmp_path / "wt" / "a", tmp_path / "wt" / "b"
    lookalike = SESSION[:8] + "-ffff-ffff-ffff-ffffffffffff"  # same file name prefix
    _gemini_session(root, "zz", tmp_path / "other", lookalike)
    _gemini_session(root, "a", old)
    (root / "projects.json").write_text(json.dumps({"projects": {str(new): "my-b"}}))
    copy = _gemini_carry(tmp_path, old, new)
    assert copy.parent == root / "tmp" / "my-b" / "chats"
    assert sf.gemini_session_id(copy) == SESSION
    assert sf.gemini_slug(root, str(new)) == "my-b"  # asked again: the same answer


def test_gemini_cannot_carry_a_session_it_does_not_have(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home")}
    here, there = SessionPlace(tmp_path / "a", env), SessionPlace(tmp_path / "b", env)
    assert not get_executor("gemini").carry_session(SESSION, here, there)
    assert not (tmp_path / "home" / ".gemini" / "tmp").exists()  # nothing claimed


# -- codex ----------------------------------------------------------------------------------


def test_codex_keeps_one_store_so_it_only_checks_the_rollout_is_there(tmp_path: Path) -> None:
    codex_home = tmp_path / "codex-home"
    env = {"HOME": str(tmp_path / "home"), "CODEX_HOME": str(codex_home)}
    here, there = SessionPlace(tmp_path / "a", env), SessionPlace(tmp_path / "b", env)
    codex = get_executor("codex")
    assert not codex.carry_session(SESSION, here, there)
    rollout = codex_home / "sessions" / "2026" / "11" / "22"
    rollout /= f"rollout-2026-11-22T04-44-52-{SESSION}.jsonl"
    rollout.parent.mkdir(parents=True)
    rollout.write_text(_lines({"type": "session_meta", "payload": {"id": SESSION}}))
    assert codex.carry_session(SESSION, here, there)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codex-home"]  # nothing written


# -- restoring a checkpoint -------------------------------------------------------------------


@pytest.fixture
def claude_repo(tmp_path: Path) -> Path:
    """A project whose claude agent keeps its sessions under a HOME of its own. No agent
    runs here (no supervisor): /bin/true stands in for the binary plan_worker looks for."""
    home = tmp_path / "agent-home"
    config = (
        '[project]\ndefault_agent = "claude"\n'
        f'worktree_root = "{tmp_path / "worktrees"}"\n'
        '[agents.claude]\nbinary = "/bin/true"\n'
        f'[agents.claude.env]\nHOME = "{home}"\n'
    )
    return make_repo(tmp_path / "repo", config)


def _checkpointed_claude_worker(service: FleetService, repo: Path, env: dict[str, str]) -> Path:
    worker = service.create_worker(
        CreateRequest(project=str(repo), name="w1", prompt="build", env=env)
    )
    service.store.update_worker(worker.id, session_id=SESSION, result={"summary": "did a"})
    Checkpoints(service).create(str(repo), "w1", "half", notes="b is next")
    return Path(worker.worktree)


def test_restore_files_the_session_under_the_new_worktree_and_resumes_it(
    service: FleetService, claude_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    first_tree = _checkpointed_claude_worker(service, claude_repo, env)
    _claude_session(tmp_path / "agent-home", first_tree)
    restored = Checkpoints(service).restore(str(claude_repo), "half", "w2", "do b", env=env)
    assert restored["resumed_session"] == SESSION
    worker = service.get_worker(str(claude_repo), "w2")
    assert worker.session_id == SESSION and worker.settings["next_turn"] == "prompt"
    assert Path(worker.worktree) == tmp_path / "worktrees" / "w2" != first_tree
    env_of_agent = {"HOME": str(tmp_path / "agent-home")}
    copy = sf.find_claude_session(sf.claude_projects(env_of_agent), SESSION, worker.worktree)
    assert copy is not None and copy.parent.name == sf.claude_key(worker.worktree)
    assert sf.claude_recorded_folder(copy) == worker.worktree


def test_restore_falls_back_to_a_new_session_when_the_session_is_gone(
    service: FleetService, claude_repo: Path, env: dict[str, str]
) -> None:
    _checkpointed_claude_worker(service, claude_repo, env)  # no transcript on disk
    before = counters.snapshot().get("checkpoints.session_not_carried", 0)
    restored = Checkpoints(service).restore(str(claude_repo), "half", "w2", "do b", env=env)
    assert restored["resumed_session"] is None
    assert counters.snapshot()["checkpoints.session_not_carried"] == before + 1
    worker = service.get_worker(str(claude_repo), "w2")
    assert worker.session_id is None and "next_turn" not in worker.settings
    assert "did a" in worker.prompt and "b is next" in worker.prompt
    assert [w.name for w in service.store.list_workers()] == ["w1", "w2"]


def test_restore_falls_back_when_carrying_fails_on_disk(
    service: FleetService, claude_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    first_tree = _checkpointed_claude_worker(service, claude_repo, env)
    _claude_session(tmp_path / "agent-home", first_tree)
    projects = sf.claude_projects({"HOME": str(tmp_path / "agent-home")})
    (projects / sf.claude_key(str(tmp_path / "worktrees" / "w2"))).write_text("not a folder")
    before = counters.snapshot().get("checkpoints.session_carry_failed", 0)
    restored = Checkpoints(service).restore(str(claude_repo), "half", "w2", "do b", env=env)
    assert restored["resumed_session"] is None
    assert counters.snapshot()["checkpoints.session_carry_failed"] == before + 1
    assert service.get_worker(str(claude_repo), "w2").session_id is None
