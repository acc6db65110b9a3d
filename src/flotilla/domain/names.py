"""Worker names: they become branch names and folder names, so they are strict."""

from __future__ import annotations

import re

from flotilla.domain.errors import InvalidName

MAX_NAME_LENGTH = 64
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$", re.IGNORECASE)


def validate_name(name: str) -> str:
    """Return `name` if it is a valid worker name, else raise InvalidName saying why.

    Valid: 1-64 characters of letters, digits, '.', '_' and '-', starting and
    ending with a letter or digit, no '..', not ending in '.lock'. This keeps
    every name a valid git branch component and a single path segment, so a
    name can never escape the worktree root.
    """
    if not name:
        raise InvalidName("worker name is empty: give a name like 'fix-login'")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"worker name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    if "/" in name or "\\" in name:
        raise InvalidName(
            f"worker name {name!r} contains a path separator: use letters, digits, '.', '_', '-'"
        )
    if ".." in name or name.endswith(".lock") or not _NAME.match(name):
        raise InvalidName(
            f"worker name {name!r} is not valid: use letters, digits, '.', '_', '-', "
            "starting and ending with a letter or digit"
        )
    return name


def batch_names(count: int, prefix: str) -> list[str]:
    """Names for a fan-out batch: PREFIX-A, PREFIX-B, ..., PREFIX-Z, PREFIX-AA, ..."""
    names = []
    for index in range(count):
        letters = ""
        n = index
        while True:
            letters = chr(ord("A") + n % 26) + letters
            n = n // 26 - 1
            if n < 0:
                break
        names.append(f"{prefix}-{letters}")
    return names
