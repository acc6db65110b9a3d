from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from workspace_helpers import GitRunner

from flotilla import counters
from flotilla.workspace import (
    PathEscape,
    SetupFailed,
    copy_credential_files,
    create_worktree,
    run_setup_commands,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credential_files_are_copied(repo: Path, git: GitRunner) -> None:
    (repo / ".gitignore").write_text(
        "*.log\n.env\nconfig/secrets.json\nkeys/\ncerts/\n.flotilla/\n"
    )
    git(repo, "commit", "-qam", "ignore secrets")
    (repo / ".env").write_text("TOKEN=abc\n")
    (repo / ".env").chmod(0o600)
    (repo / "config").mkdir()
    (repo / "config" / "secrets.json").write_text("{}\n")
    (repo / "config" / "secrets.json").chmod(0o640)
    (repo / "keys").mkdir()
    for name in ("a.pem", "b.pem", "c.txt"):
        (repo / "keys" / name).write_text(name)
    (repo / "certs" / "ca").mkdir(parents=True)
    (repo / "certs" / "ca" / "root.crt").write_text("cert")
    # worktrees inside the repository must not be a source of copies
    root = repo / ".flotilla" / "worktrees"
    other = create_worktree(repo, root / "other", "other", "HEAD")
    (other.path / "keys").mkdir()
    (other.path / "keys" / "z.pem").write_text("not mine")
    wt = create_worktree(repo, root / "w", "w", "HEAD").path

    warnings = copy_credential_files(
        repo, wt, [".env", "config/secrets.json", "keys/*.pem", "certs", "missing.env", "**/z.pem"]
    )

    assert (wt / ".env").read_text() == "TOKEN=abc\n"
    assert mode(wt / ".env") == 0o600
    assert mode(wt / "config" / "secrets.json") == 0o640
    assert sorted(p.name for p in (wt / "keys").iterdir()) == ["a.pem", "b.pem"]
    assert (wt / "certs" / "ca" / "root.crt").read_text() == "cert"
    assert len(warnings) == 2
    assert "'missing.env' not found" in warnings[0]
    assert "'**/z.pem' not found" in warnings[1]
    assert all("TOKEN" not in w for w in warnings)
    assert git(wt, "status", "--porcelain") == ""  # all of them are ignored files


@pytest.mark.parametrize("pattern", ["../outside", "/etc/passwd", "a/../../b", " "])
def test_credential_patterns_may_not_escape(repo: Path, tmp_path: Path, pattern: str) -> None:
    wt = create_worktree(repo, tmp_path / "wt", "w", "HEAD").path
    with pytest.raises(PathEscape, match="relative to the repository root"):
        copy_credential_files(repo, wt, [pattern])


def test_credential_copy_never_writes_through_a_symlink(
    repo: Path, tmp_path: Path, git: GitRunner
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "conf").symlink_to(outside)  # a tracked symlinked folder
    git(repo, "add", "conf")
    git(repo, "commit", "-qm", "symlink")
    (outside / "key").write_text("main's key")
    wt = create_worktree(repo, tmp_path / "wt", "w", "HEAD").path
    warnings = copy_credential_files(repo, wt, ["conf/key"])
    assert len(warnings) == 1 and "outside the worktree" in warnings[0]
    assert (outside / "key").read_text() == "main's key"


def base_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "MY_VAR": "from-env"}


def test_setup_commands_stop_at_first_failure(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKED_VAR", "should-not-be-seen")
    wt = create_worktree(repo, tmp_path / "wt", "w", "HEAD").path
    log = tmp_path / "run" / "setup.log"
    lines: list[str] = []
    commands = [
        "echo one > one.txt; echo out-one",
        'echo "err-two" >&2; echo "var=$MY_VAR leaked=$LEAKED_VAR"; exit 3',
        "touch three.txt",
    ]
    with pytest.raises(SetupFailed) as info:
        run_setup_commands(wt, commands, base_env(), 30, lines.append, log_path=log)
    error = info.value
    assert error.exit_code == 3
    assert error.command == commands[1]
    assert str(error) == f"setup command failed with exit code 3: {commands[1]}"
    assert "err-two" in error.output_tail
    assert "var=from-env leaked=" in error.output_tail
    assert "should-not-be-seen" not in error.output_tail
    assert (wt / "one.txt").exists()
    assert not (wt / "three.txt").exists()
    assert lines == ["out-one", "err-two", "var=from-env leaked="]
    text = log.read_text()
    assert text.index("$ echo one") < text.index("out-one") < text.index("err-two")
    assert "touch three.txt" not in text


def test_setup_commands_all_succeed(repo: Path, tmp_path: Path) -> None:
    wt = create_worktree(repo, tmp_path / "wt", "w", "HEAD").path
    run_setup_commands(wt, ["mkdir -p a && cd a && pwd > here", "test -f a/here"], base_env(), 30)
    assert (wt / "a" / "here").read_text().strip() == str(wt / "a")


def test_setup_timeout_kills_the_whole_group(repo: Path, tmp_path: Path) -> None:
    wt = create_worktree(repo, tmp_path / "wt", "w", "HEAD").path
    marker = tmp_path / "late"
    started = time.monotonic()
    with pytest.raises(SetupFailed, match=r"timed out after 0.3s") as info:
        run_setup_commands(
            wt, [f"echo started; (sleep 1; touch {marker}) & sleep 30"], base_env(), 0.3
        )
    assert time.monotonic() - started < 10
    assert info.value.exit_code == 124
    assert "started" in info.value.output_tail
    time.sleep(1.5)
    assert not marker.exists()  # the background child died with its group


def test_a_failing_output_listener_is_counted_not_fatal(repo: Path, tmp_path: Path) -> None:
    wt = create_worktree(repo, tmp_path / "wt", "w", "HEAD").path
    before = counters.snapshot().get("workspace.output_callback_error", 0)

    def broken(line: str) -> None:
        raise RuntimeError(line)

    run_setup_commands(wt, ["echo a; echo b"], base_env(), 30, broken)
    assert counters.snapshot().get("workspace.output_callback_error") == before + 2


def test_leftover_background_processes_are_ended(repo: Path, tmp_path: Path) -> None:
    wt = create_worktree(repo, tmp_path / "wt", "w", "HEAD").path
    marker = tmp_path / "late"
    started = time.monotonic()
    run_setup_commands(wt, [f"(sleep 1; touch {marker}) & echo done"], base_env(), 30)
    assert time.monotonic() - started < 5
    time.sleep(1.5)
    assert not marker.exists()
