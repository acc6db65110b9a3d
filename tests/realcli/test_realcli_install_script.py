"""scripts/install-agent-clis.sh: idempotent, prints the launchers' directory."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.real_cli, pytest.mark.slow]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-agent-clis.sh"
BASH = shutil.which("bash") or "/bin/bash"


def run_script(cache: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(cache.parent), "PATH": path, "FLOTILLA_CLI_CACHE": str(cache)}
    return subprocess.run(
        [BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_present_launchers_are_not_reinstalled(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    bin_dir = cache / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    for name in ("claude", "codex", "gemini"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    # no npm on this PATH: any install attempt would fail
    done = run_script(cache, "/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(bin_dir)


def test_missing_launchers_without_npm_fail_with_a_clear_message(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    done = run_script(cache, str(empty))
    assert done.returncode == 1
    assert "npm not found" in done.stderr
    assert done.stdout == ""
