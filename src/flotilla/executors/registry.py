"""Look up executors by kind. The built-in ones are imported here, once."""

from __future__ import annotations

import importlib

from flotilla.domain.errors import UsageError
from flotilla.executors.base import Executor, registered

BUILTIN_MODULES = (
    "flotilla.executors.claude",
    "flotilla.executors.codex",
    "flotilla.executors.gemini",
    "flotilla.executors.shell",
    "flotilla.executors.scripted",
)

_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def kinds() -> list[str]:
    _load_builtins()
    return sorted(registered())


def get_executor(kind: str) -> Executor:
    _load_builtins()
    cls = registered().get(kind)
    if cls is None:
        raise UsageError(f"unknown agent kind {kind!r}: choose one of {', '.join(kinds())}")
    executor: Executor = cls()
    return executor
