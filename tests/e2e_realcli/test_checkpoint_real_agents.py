"""A checkpoint of a real claude, codex or gemini worker, restored into a new worker in a new
worktree, resumes the same conversation there.

`fleet checkpoint save` after the first worker's turn, `fleet checkpoint restore` into a
second worker: its first turn must resume the checkpointed session from the new worktree.
The fake model answers step k of its script when the conversation it is sent already holds
k model turns, so a resume that silently started afresh would redo step 0 (write one.txt in
the first worktree) instead of step 2 (write two.txt in the second).

Without the session carried over, gemini refuses the resume ("No previous sessions found
for this project"), and claude finds it only while the first worktree exists (it looks in
the repository's other live worktrees), then appends to the first worker's transcript.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_support import Fleet, git
from realfleet import KINDS, changed_paths, configure, create, describe, wait_done

from fakemodels import FinalText, Request, Script, WriteFile, fake_server
from flotilla.executors import session_files
from realcli.drive import require

pytestmark = [pytest.mark.real_cli, pytest.mark.slow, pytest.mark.timeout(300)]

FIRST_PROMPT = "write one.txt"
NEXT_PROMPT = "now write two.txt"


def _script(first_tree: Path, second_tree: Path) -> Script:
    return Script(
        steps=(
            WriteFile(str(first_tree / "one.txt"), "one\n"),
            FinalText("First done."),
            WriteFile(str(second_tree / "two.txt"), "two\n"),
            FinalText("Second done."),
        )
    )


def _restore(
    fleet: Fleet, kind: str, tmp_path: Path, *, kill_first: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[Request], Path]:
    """Run `first`, checkpoint it, (kill it,) restore into `second`; what each gave, the
    model calls of the restored worker, and the CLI's HOME."""
    first_tree = tmp_path / "worktrees" / "first"
    second_tree = tmp_path / "worktrees" / "second"
    with fake_server(kind, _script(first_tree, second_tree)) as fake:
        setup = configure(fleet, kind, fake)
        create(fleet, setup, "first", FIRST_PROMPT)
        first = wait_done(fleet, "first")
        assert first["state"] == "succeeded", describe(fleet, "first")
        assert first["session_id"], first

        saved = fleet.json("checkpoint", "save", "half", "--worker", "first")
        assert saved["session_id"] == first["session_id"] and saved["agent"] == kind, saved
        if kill_first:
            fleet.run("kill", "first")
            assert not first_tree.exists()
        calls_before = len(fake.model_calls())
        restored = fleet.json("checkpoint", "restore", "half", "second", "-p", NEXT_PROMPT)
        assert restored["resumed_session"] == first["session_id"], restored
        second = wait_done(fleet, "second")
        resumed = fake.model_calls()[calls_before:]
    assert second["state"] == "succeeded", describe(fleet, "second")
    return first, saved, second, resumed, setup.agent_home


def _assert_continued(
    first: dict[str, Any],
    saved: dict[str, Any],
    second: dict[str, Any],
    resumed: list[Request],
    tmp_path: Path,
) -> str:
    """The restored worker is new (worktree, branch) and went on with the same conversation;
    returns what the model was sent on the resumed turn."""
    first_tree = tmp_path / "worktrees" / "first"
    second_tree = tmp_path / "worktrees" / "second"
    assert second["worktree"] == str(second_tree) != first["worktree"]
    assert second["branch"] == "flotilla/second" != first["branch"]
    assert git(second_tree, "branch", "--show-current").strip() == "flotilla/second"
    git(second_tree, "merge-base", "--is-ancestor", saved["commit"], "HEAD")  # raises if not
    assert (second_tree / "one.txt").read_text() == "one\n"
    assert resumed, "the restored worker never called the model"
    conversation = repr(resumed[0].body)
    for earlier in (FIRST_PROMPT, "First done.", NEXT_PROMPT):
        assert earlier in conversation, f"{earlier!r} not sent on the resumed turn"
    assert str(second_tree) in conversation  # the CLI knows where it runs now
    # The model answered with the step after the first turn's: it saw those turns.
    assert (second_tree / "two.txt").read_text() == "two\n"
    assert not (first_tree / "two.txt").exists()
    assert second["session_id"] == first["session_id"]
    return conversation


def _first_worktree_copy(kind: str, home: Path, session: str, folder: Path) -> Path | None:
    """The session file the CLI filed under the first worktree (claude, gemini)."""
    env = {"HOME": str(home)}
    here = session_files.real_folder(folder)
    if kind == "claude":
        projects = session_files.claude_projects(env)
        path = projects / session_files.claude_key(here) / f"{session}.jsonl"
        return path if path.is_file() else None
    return session_files.find_gemini_session(session_files.gemini_root(env), session, here)


@pytest.mark.parametrize("kind", KINDS)
def test_a_restored_checkpoint_resumes_the_session_in_a_new_worktree(
    kind: str, fleet: Fleet, tmp_path: Path
) -> None:
    require(kind)
    first, saved, second, resumed, home = _restore(fleet, kind, tmp_path, kill_first=False)
    conversation = _assert_continued(first, saved, second, resumed, tmp_path)
    result = fleet.json("result", "second")
    assert result["outcome"] == "success" and result["summary"] == "Second done."
    assert changed_paths(result) == {"two.txt"}
    if kind == "codex":
        return  # one store for every folder: the thread went on where it was
    # claude and gemini: the carried copy names the new worktree only, and the first
    # worker's own copy did not get the restored worker's turn.
    first_tree = tmp_path / "worktrees" / "first"
    assert str(first_tree) not in conversation
    original = _first_worktree_copy(kind, home, first["session_id"], first_tree)
    assert original is not None
    assert FIRST_PROMPT in original.read_text()
    assert NEXT_PROMPT not in original.read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_a_checkpoint_resumes_after_its_worker_and_worktree_are_gone(
    kind: str, fleet: Fleet, tmp_path: Path
) -> None:
    require(kind)
    first, saved, second, resumed, _ = _restore(fleet, kind, tmp_path, kill_first=True)
    _assert_continued(first, saved, second, resumed, tmp_path)
    assert fleet.json("result", "second")["outcome"] == "success"
