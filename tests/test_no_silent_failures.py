"""Zero silent failures: every `except` in src/ re-raises or counts the error by name."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "flotilla"


def _handles(handler: ast.ExceptHandler) -> bool:
    """True if the handler raises, or calls count(...) / counters.count(...)."""
    for node in ast.walk(ast.Module(body=handler.body, type_ignores=[])):
        if isinstance(node, ast.Raise):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "count":
                return True
    return False


def test_every_except_reraises_or_counts() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and not _handles(node):
                offenders.append(f"{path.relative_to(SRC.parent)}:{node.lineno}")
    assert not offenders, "except blocks that neither re-raise nor count:\n" + "\n".join(offenders)
