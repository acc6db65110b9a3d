"""Pass/fail counts from test runners' output, fed line by line (pure, no I/O).

Known formats, tried in this order when several appear: pytest, jest, vitest,
cargo, go test, mocha, minitest, rspec, unittest, then any line saying
"N passed" / "N failed". With none, counts stay None and only the exit code
tells.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PYTEST = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s(?:\s*\(.*\))?\s*=*$")
_COUNT = re.compile(r"(\d+) (\w+)")
_JEST = re.compile(r"^\s*Tests:\s+(.*\d+ total)")
_VITEST = re.compile(r"^\s*Tests\s+(.*)\((\d+)\)\s*$")
_CARGO = re.compile(r"^test result: \w+\. (\d+) passed; (\d+) failed")
_GO_CASE = re.compile(r"^--- (PASS|FAIL): ")
_GO_PKG = re.compile(r"^(ok|FAIL)\s+\S+\s+(?:[\d.]+s|\(cached\)|\[)")
_MOCHA = re.compile(r"^\s*(\d+) (passing|failing)\b")
_MINITEST = re.compile(r"^(\d+) (?:runs|tests), \d+ assertions, (\d+) failures, (\d+) errors")
_RSPEC = re.compile(r"^(\d+) examples?, (\d+) failures?")
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in ")
_UNITTEST_END = re.compile(r"^(OK|FAILED)\b(?: \((.*)\))?")
_UNITTEST_KIND = re.compile(r"([a-z ]+)=(\d+)")
_PLAIN_PASSED = re.compile(r"\b(\d+) (?:passed|passing)\b", re.IGNORECASE)
_PLAIN_FAILED = re.compile(r"\b(\d+) (?:failed|failing)\b", re.IGNORECASE)

Counts = tuple[int | None, int | None]


class TestCountParser:
    """Feed every output line; `result()` gives (passed, failed) or (None, None)."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self) -> None:
        self._found: dict[str, tuple[int, int]] = {}
        self._go = [0, 0, 0, 0]  # case pass, case fail, package ok, package FAIL
        self._unittest_ran: int | None = None

    def feed(self, line: str) -> None:
        line = _ANSI.sub("", line).rstrip()
        if m := _PYTEST.match(line.strip()):
            words = {w: int(n) for n, w in _COUNT.findall(m.group(1))}
            failed = words.get("failed", 0) + words.get("error", 0) + words.get("errors", 0)
            self._found["pytest"] = (words.get("passed", 0), failed)
        elif m := _JEST.match(line):
            words = {w: int(n) for n, w in _COUNT.findall(m.group(1))}
            self._found["jest"] = (words.get("passed", 0), words.get("failed", 0))
        elif m := _VITEST.match(line):
            words = {w: int(n) for n, w in _COUNT.findall(m.group(1))}
            self._found["vitest"] = (words.get("passed", 0), words.get("failed", 0))
        elif m := _CARGO.match(line):
            passed, failed = self._found.get("cargo", (0, 0))
            self._found["cargo"] = (passed + int(m.group(1)), failed + int(m.group(2)))
        elif m := _GO_CASE.match(line):
            self._go[0 if m.group(1) == "PASS" else 1] += 1
        elif m := _GO_PKG.match(line):
            self._go[2 if m.group(1) == "ok" else 3] += 1
        elif m := _MOCHA.match(line):
            passed, failed = self._found.get("mocha", (0, 0))
            n = int(m.group(1))
            self._found["mocha"] = (n, failed) if m.group(2) == "passing" else (passed, n)
        elif m := _MINITEST.match(line):
            runs, failures, errors = (int(g) for g in m.groups())
            self._found["minitest"] = (runs - failures - errors, failures + errors)
        elif m := _RSPEC.match(line):
            examples, failures = int(m.group(1)), int(m.group(2))
            self._found["rspec"] = (examples - failures, failures)
        elif m := _UNITTEST_RAN.match(line):
            self._unittest_ran = int(m.group(1))
        elif self._unittest_ran is not None and (m := _UNITTEST_END.match(line)):
            kinds = {k.strip(): int(v) for k, v in _UNITTEST_KIND.findall(m.group(2) or "")}
            failed = kinds.get("failures", 0) + kinds.get("errors", 0)
            skipped = kinds.get("skipped", 0) + kinds.get("expected failures", 0)
            self._found["unittest"] = (self._unittest_ran - failed - skipped, failed)
        else:
            passed_m, failed_m = _PLAIN_PASSED.search(line), _PLAIN_FAILED.search(line)
            if passed_m or failed_m:
                self._found["plain"] = (
                    int(passed_m.group(1)) if passed_m else 0,
                    int(failed_m.group(1)) if failed_m else 0,
                )

    def _go_counts(self) -> tuple[int, int] | None:
        case_pass, case_fail, pkg_ok, pkg_fail = self._go
        if case_pass or case_fail:
            return case_pass, case_fail
        if pkg_ok or pkg_fail:
            return pkg_ok, pkg_fail  # without -v go reports packages, not tests
        return None

    def result(self) -> Counts:
        for name in ("pytest", "jest", "vitest", "cargo", "go", "mocha"):
            found = self._go_counts() if name == "go" else self._found.get(name)
            if found is not None:
                return found
        for name in ("minitest", "rspec", "unittest", "plain"):
            if name in self._found:
                return self._found[name]
        return None, None


def parse_test_counts(output: str) -> Counts:
    """(passed, failed) from a whole output at once."""
    parser = TestCountParser()
    for line in output.splitlines():
        parser.feed(line)
    return parser.result()
