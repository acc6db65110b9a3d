from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.domain.errors import UsageError
from flotilla.workspace import defaults_for, detect_project_type
from flotilla.workspace.project_type import PROJECT_TYPES


def make(root: Path, *files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["pyproject.toml"], "python"),
        (["requirements.txt"], "python"),
        (["setup.py", "package.json"], "python"),
        (["package.json"], "node"),
        (["Gemfile", "config/application.rb", "package.json"], "rails"),
        (["Gemfile"], "generic"),
        (["go.mod"], "go"),
        (["Cargo.toml", "package.json"], "rust"),
        (["README.md"], "generic"),
    ],
)
def test_detect(tmp_path: Path, files: list[str], expected: str) -> None:
    assert detect_project_type(make(tmp_path / "p", *files)) == expected


@pytest.mark.parametrize("kind", PROJECT_TYPES)
def test_defaults_have_every_key(kind: str) -> None:
    found = defaults_for(kind)
    assert set(found) == {"setup_commands", "quick_setup", "test_command", "credential_files"}
    assert isinstance(found["setup_commands"], list)
    assert isinstance(found["quick_setup"], list)
    assert ".env" in found["credential_files"]


def test_defaults_are_fresh_copies() -> None:
    defaults_for("go")["setup_commands"].append("mutated")
    assert defaults_for("go")["setup_commands"] == ["go mod download"]


def test_lock_files_refine_defaults(tmp_path: Path) -> None:
    assert defaults_for("python")["test_command"] == ".venv/bin/python -m pytest -q"
    uv = make(tmp_path / "uv", "pyproject.toml", "uv.lock")
    assert defaults_for("python", uv)["setup_commands"] == ["uv sync"]
    reqs = make(tmp_path / "reqs", "requirements.txt")
    assert defaults_for("python", reqs)["setup_commands"][-1].endswith("-r requirements.txt")
    yarn = make(tmp_path / "yarn", "package.json", "yarn.lock")
    assert defaults_for("node", yarn)["test_command"] == "yarn test"
    npm = make(tmp_path / "npm", "package.json", "package-lock.json")
    assert defaults_for("node", npm)["setup_commands"] == ["npm ci --no-audit --no-fund"]
    assert defaults_for("rails")["test_command"] == "bin/rails test"


def test_unknown_type() -> None:
    with pytest.raises(UsageError, match="unknown project type 'cobol'"):
        defaults_for("cobol")
