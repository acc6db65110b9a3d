"""Worker names become branch names and folder names: hypothesis hunts for escapes."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.domain.errors import InvalidName
from flotilla.domain.names import MAX_NAME_LENGTH, batch_names, validate_name


@given(st.text(max_size=80))
def test_a_valid_name_is_one_safe_path_segment(name: str) -> None:
    try:
        validate_name(name)
    except InvalidName:
        return
    assert "/" not in name and "\\" not in name and ".." not in name
    assert name not in (".", "..") and not name.startswith(("-", "."))
    assert 1 <= len(name) <= MAX_NAME_LENGTH
    assert name.isascii() and not any(c.isspace() for c in name)


@settings(max_examples=60, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}[A-Za-z0-9]", fullmatch=True))
def test_every_valid_name_is_a_valid_git_branch(name: str) -> None:
    try:
        validate_name(name)
    except InvalidName:
        return
    proc = subprocess.run(
        ["git", "check-ref-format", "--branch", f"flotilla/{name}"], capture_output=True
    )
    assert proc.returncode == 0, name


@pytest.mark.parametrize("bad", ["", "../x", "/abs", "a/b", "a..b", "x.lock", "-x", "a b", "é"])
def test_bad_names_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate_name(bad)
    assert str(info.value)


def test_batch_names_count_in_letters() -> None:
    assert batch_names(3, "fix") == ["fix-A", "fix-B", "fix-C"]
    names = batch_names(28, "p")
    assert names[25:] == ["p-Z", "p-AA", "p-AB"]
    assert len(set(batch_names(800, "p"))) == 800
