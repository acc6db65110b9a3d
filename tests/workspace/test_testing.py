from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from workspace_helpers import GitRunner

from flotilla.workspace import create_worktree, parse_test_counts, run_test_command

SAMPLES: dict[str, tuple[str, tuple[int | None, int | None]]] = {
    "pytest": (
        "tests/test_a.py ..F\n=== FAILURES ===\n"
        "========================= 3 failed, 5 passed in 0.12s =========================\n",
        (5, 3),
    ),
    "pytest-quiet": ("..F.\n1 failed, 3 passed, 2 skipped, 1 warning in 0.10s\n", (3, 1)),
    "pytest-errors": ("=== 1 failed, 2 passed, 2 errors in 1.20s ===\n", (2, 3)),
    "pytest-long": ("==== 40 passed in 65.31s (0:01:05) ====\n", (40, 0)),
    "pytest-colour": ("\x1b[32m\x1b[1m7 passed\x1b[0m\x1b[32m in 0.03s\x1b[0m\n", (7, 0)),
    "jest": (
        "PASS src/a.test.js\nFAIL src/b.test.js\n"
        "Test Suites: 1 failed, 1 passed, 2 total\n"
        "Tests:       1 failed, 4 passed, 5 total\nSnapshots:   0 total\n",
        (4, 1),
    ),
    "jest-skipped": ("Tests:       2 skipped, 9 passed, 11 total\n", (9, 0)),
    "vitest": (
        " Test Files  1 failed | 2 passed (3)\n      Tests  2 failed | 10 passed (12)\n",
        (10, 2),
    ),
    "go-verbose": (
        "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n"
        "    --- PASS: TestB/sub (0.00s)\n--- FAIL: TestB (0.00s)\n--- PASS: TestC (0.00s)\n"
        "FAIL\nFAIL\texample.com/m\t0.003s\n",
        (2, 1),
    ),
    "go-packages": (
        "ok  \texample.com/m/a\t0.003s\nok  \texample.com/m/b\t(cached)\n"
        "FAIL\texample.com/m/c\t0.010s\nFAIL\n",
        (2, 1),
    ),
    "cargo": (
        "running 3 tests\ntest a ... ok\n"
        "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n"
        "   Doc-tests m\n"
        "test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
        (6, 1),
    ),
    "mocha": ("  12 passing (30ms)\n  2 failing\n\n  1) thing:\n", (12, 2)),
    "minitest": ("10 runs, 25 assertions, 1 failures, 2 errors, 0 skips\n", (7, 3)),
    "rspec": ("Finished in 0.5 seconds\n12 examples, 3 failures\n", (9, 3)),
    "unittest-ok": ("....\n----\nRan 4 tests in 0.001s\n\nOK\n", (4, 0)),
    "unittest-failed": (
        "Ran 6 tests in 0.01s\n\nFAILED (failures=1, errors=1, skipped=1)\n",
        (3, 2),
    ),
    "plain": ("running my suite\nresult: 8 passed, 2 failed\n", (8, 2)),
    "nothing": ("compiling...\nall good\n", (None, None)),
    "tap-is-not-go": ("ok 1 - first\nnot ok 2 - second\n", (None, None)),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_parse_sample_outputs(name: str) -> None:
    output, expected = SAMPLES[name]
    assert parse_test_counts(output) == expected


def tiny_project(repo: Path, git: GitRunner) -> None:
    (repo / "tests").mkdir()
    (repo / "tests" / "test_tiny.py").write_text(
        textwrap.dedent(
            """
            def test_one():
                assert 1 == 1

            def test_two():
                assert "a" * 2 == "aa"

            def test_broken():
                assert 2 + 2 == 5
            """
        )
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tests")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # a faster start; the tiny project needs none
    return env


def test_real_pytest_run_in_a_worktree(repo: Path, tmp_path: Path, git: GitRunner) -> None:
    tiny_project(repo, git)
    wt = create_worktree(repo, tmp_path / "wt", "t", "HEAD").path
    log = tmp_path / "run" / "tests.log"
    command = f"{sys.executable} -m pytest -q -p no:cacheprovider tests"
    report = run_test_command(wt, command, clean_env(), 120, log_path=log)
    assert report.command == command
    assert report.exit_code == 1
    assert not report.ok
    assert (report.passed, report.failed) == (2, 1)
    assert "1 failed, 2 passed" in report.output_tail
    assert "1 failed, 2 passed" in log.read_text()

    (wt / "tests" / "test_tiny.py").write_text("def test_fixed():\n    pass\n")
    report = run_test_command(wt, command, clean_env(), 120)
    assert report.ok
    assert (report.passed, report.failed) == (1, 0)


def test_unknown_output_keeps_only_the_exit_code(repo: Path) -> None:
    report = run_test_command(repo, "echo checking; exit 2", clean_env(), 30)
    assert (report.exit_code, report.passed, report.failed) == (2, None, None)
    assert report.output_tail == "checking"


def test_test_timeout(repo: Path) -> None:
    started = time.monotonic()
    report = run_test_command(repo, "echo '3 passed'; sleep 30", clean_env(), 0.3)
    assert time.monotonic() - started < 10
    assert report.exit_code == 124
    assert report.passed == 3
    assert report.output_tail.splitlines()[-1].startswith("[flotilla] timed out after 0.3s")
