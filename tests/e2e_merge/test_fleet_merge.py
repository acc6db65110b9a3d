"""`fleet merge`, `fleet merge --all` and `fleet conflicts` on real repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_support import Fleet, git
from merge_support import COMMIT_AND_LEAVE, RUN_PROMPT, head, multi, scripted, status


def test_merge_commits_leftover_work_and_brings_the_branch_into_main(fleet: Fleet) -> None:
    scripted(fleet, COMMIT_AND_LEAVE)
    fleet.run("create", "feat", "-p", "add a feature")
    worker = fleet.wait_terminal("feat")["feat"]
    assert worker["state"] == "succeeded", worker
    worktree = Path(worker["worktree"])
    before = head(fleet)

    bad = fleet.run("merge", "feat", "--into", "nosuch", check=False)
    assert bad.returncode == 2, bad.stderr
    assert "'nosuch' does not exist" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert "?? notes.md" in status(worktree)  # bad input touched nothing
    assert head(fleet) == before

    merged = fleet.json("merge", "feat")
    assert merged["changed"] and merged["into"] == "main" and merged["strategy"] == "merge"
    assert merged["previous"] == before and merged["commit"] == head(fleet)
    assert set(merged["files"]) == {"feature.txt", "notes.md"}
    assert git(fleet.repo, "show", "main:notes.md") == "uncommitted\n"
    assert (fleet.repo / "feature.txt").read_text() == "done\n"  # the checkout followed
    assert status(worktree) == ""  # the leftover file was committed on the branch
    assert git(fleet.repo, "rev-parse", "flotilla/feat^{commit}").strip() in git(
        fleet.repo, "rev-list", "main"
    )

    again = fleet.run("merge", "feat")
    assert "nothing to merge" in again.stdout
    assert head(fleet) == merged["commit"]


def test_conflicting_merge_exits_1_lists_files_and_leaves_main_as_it_was(fleet: Fleet) -> None:
    scripted(fleet, RUN_PROMPT)
    multi(fleet, "left:printf 'A\\n' > app.py", "right:printf 'B\\n' > app.py; echo x > x.txt")
    fleet.wait_terminal("left", "right")
    fleet.run("merge", "left", "--squash")
    before = head(fleet)
    tree_before = status(fleet.repo)
    assert (fleet.repo / "app.py").read_text() == "A\n"

    proc = fleet.run("merge", "right", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "conflicts in app.py" in proc.stderr and "x.txt" not in proc.stderr
    assert head(fleet) == before
    assert status(fleet.repo) == tree_before
    assert (fleet.repo / "app.py").read_text() == "A\n"
    assert not (fleet.repo / "x.txt").exists()
    assert not (fleet.repo / ".git" / "MERGE_HEAD").exists()

    flags = fleet.run("merge", "right", "--squash", "--rebase", check=False)
    assert flags.returncode == 2 and "at most one" in flags.stderr
    running = fleet.run("merge", "--all", "nosuch", check=False)
    assert running.returncode == 2 and "nosuch" in running.stderr


def test_merge_all_skips_the_worker_whose_merge_breaks_the_tests(fleet: Fleet) -> None:
    # Each change passes the tests alone; a.txt and b.txt together break them.
    (fleet.repo / "check.sh").write_text(
        'if [ -e a.txt ] && [ -e b.txt ]; then echo "a and b clash"; exit 1; fi\n'
    )
    git(fleet.repo, "add", "check.sh")
    git(fleet.repo, "commit", "-q", "-m", "tests")
    scripted(fleet, RUN_PROMPT, extra='test_command = "sh check.sh"')
    batch = multi(fleet, "a:echo a > a.txt", "b:echo b > b.txt", "c:echo c > c.txt")
    workers = fleet.wait_terminal("a", "b", "c")
    assert all(w["outcome"] == "success" for w in workers.values()), workers

    proc = fleet.run("--json", "merge", "--all", batch, "--order", "seq", check=False)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    by_name = {o["name"]: o for o in report["outcomes"]}
    assert [o["name"] for o in report["outcomes"]] == ["a", "b", "c"]
    assert {n: o["status"] for n, o in by_name.items()} == {
        "a": "merged",
        "b": "tests_failed",
        "c": "merged",
    }
    assert by_name["b"]["tests"]["exit_code"] == 1
    assert report["merged"] == 2 and report["test_command"] == "sh check.sh"
    assert head(fleet) == by_name["c"]["commit"]
    tree = git(fleet.repo, "ls-tree", "--name-only", "main").split()
    assert "a.txt" in tree and "c.txt" in tree and "b.txt" not in tree

    # Run again: a and c are already in main, b still breaks the tests.
    text = fleet.run("merge", "--all", batch, check=False)
    assert text.returncode == 1
    assert "tests_failed" in text.stdout and "merged 0 of 3" in text.stdout


@pytest.mark.slow
def test_conflicts_lists_a_file_changed_by_two_workers_even_while_running(
    fleet: Fleet,
) -> None:
    scripted(fleet, RUN_PROMPT)
    batch = multi(
        fleet,
        "slow:echo slow >> app.py && touch started && sleep 60",
        "fast:echo fast >> app.py",
        "other:echo other > other.txt",
    )
    fleet.wait_terminal("fast", "other")
    slow = fleet.wait(
        lambda ws: (Path(ws["slow"]["worktree"]) / "started").exists(), what="slow to start"
    )["slow"]
    assert slow["state"] == "running"

    found = fleet.json("conflicts", batch)
    assert found["conflicts"] == [{"path": "app.py", "workers": ["slow", "fast"]}]
    assert sorted(found["checked"]) == ["fast", "other", "slow"]
    text = fleet.run("conflicts").stdout  # the whole project
    assert "app.py: slow, fast" in text and "other.txt" not in text

    busy = fleet.run("merge", "slow", check=False)
    assert busy.returncode == 2 and "running" in busy.stderr
    missing = fleet.run("conflicts", "nosuch", check=False)
    assert missing.returncode == 2 and "nosuch" in missing.stderr
    fleet.run("kill", "slow", "--force")
