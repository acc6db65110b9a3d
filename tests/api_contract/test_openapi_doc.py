"""docs/openapi.json is the API the daemon serves: rebuilt here by scripts/export-openapi.py
(in process, as the daemon builds its app) and compared with the checked-in file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "export-openapi.py"
DOC = ROOT / "docs" / "openapi.json"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_openapi", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _operations(document: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{method.upper()} {path}": operation
        for path, methods in document.get("paths", {}).items()
        for method, operation in methods.items()
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    before, after = _operations(old), _operations(new)
    lines = [f"new: {op}" for op in sorted(after.keys() - before.keys())]
    lines += [f"gone: {op}" for op in sorted(before.keys() - after.keys())]
    lines += [
        f"changed: {op}" for op in sorted(before.keys() & after.keys()) if before[op] != after[op]
    ]
    if old.get("components") != new.get("components"):
        lines.append("changed: components (request or response schemas)")
    if old.get("info") != new.get("info"):
        lines.append("changed: info (title or version)")
    return lines or ["formatting only"]


def test_the_checked_in_openapi_document_is_up_to_date() -> None:
    script = _script()
    expected = script.render(script.build_document())
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if current != expected:
        old = json.loads(current) if current else {}
        changes = "; ".join(_differences(old, json.loads(expected))[:10])
        pytest.fail(
            f"docs/openapi.json is out of date ({changes}): run {script.REFRESH} and commit it",
            pytrace=False,
        )


def test_the_document_describes_every_operation_with_its_parameters() -> None:
    document = json.loads(DOC.read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.")
    operations = _operations(document)
    assert {"POST /auth", "GET /health", "POST /workers", "GET /workers/{name}"} <= set(operations)
    get_worker = operations["GET /workers/{name}"]
    names = {(p["name"], p["in"]) for p in get_worker["parameters"]}
    assert {("name", "path"), ("project", "query")} <= names
    assert "requestBody" in operations["POST /workers"]
