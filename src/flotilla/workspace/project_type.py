"""Guessing what kind of project a repository is, to suggest setup and test commands.

Only suggestions: `fleet init` writes them into the project's config where the
user can change them; nothing here runs anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from flotilla.domain.errors import UsageError

ProjectType = Literal["python", "node", "rails", "go", "rust", "generic"]
PROJECT_TYPES: tuple[ProjectType, ...] = ("python", "node", "rails", "go", "rust", "generic")

_PYTHON_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "Pipfile")


def detect_project_type(repo: Path) -> ProjectType:
    """The project's type from marker files at its root; the most specific marker wins.

    Rails before Python and Node (a Rails app often has a package.json),
    Python before Node (a web app with a frontend still tests with pytest).
    """
    repo = Path(repo)
    if (repo / "Gemfile").is_file() and (
        (repo / "config" / "application.rb").is_file() or (repo / "bin" / "rails").is_file()
    ):
        return "rails"
    if (repo / "Cargo.toml").is_file():
        return "rust"
    if (repo / "go.mod").is_file():
        return "go"
    if any((repo / marker).is_file() for marker in _PYTHON_MARKERS):
        return "python"
    if (repo / "package.json").is_file():
        return "node"
    return "generic"


def _python(repo: Path | None) -> dict[str, Any]:
    def has(name: str) -> bool:
        return repo is not None and (repo / name).is_file()

    if has("uv.lock"):
        setup, test = ["uv sync"], "uv run pytest -q"
    elif has("poetry.lock"):
        setup, test = ["poetry install"], "poetry run pytest -q"
    else:
        installable = repo is None or has("pyproject.toml") or has("setup.py")
        install = "-e ." if installable else "-r requirements.txt"
        setup = ["python3 -m venv .venv", f".venv/bin/pip install --quiet {install}"]
        test = ".venv/bin/python -m pytest -q"
    return {"setup_commands": setup, "quick_setup": [], "test_command": test}


def _node(repo: Path | None) -> dict[str, Any]:
    def has(name: str) -> bool:
        return repo is not None and (repo / name).is_file()

    if has("pnpm-lock.yaml"):
        install, test = "pnpm install --frozen-lockfile", "pnpm test"
    elif has("yarn.lock"):
        install, test = "yarn install --frozen-lockfile", "yarn test"
    elif repo is None or has("package-lock.json"):
        install, test = "npm ci --no-audit --no-fund", "npm test"
    else:
        install, test = "npm install --no-audit --no-fund", "npm test"
    quick = [f"{install} --prefer-offline"] if install.startswith("npm") else [install]
    return {"setup_commands": [install], "quick_setup": quick, "test_command": test}


_FIXED: dict[str, dict[str, Any]] = {
    # No `db:prepare`: parallel workers would share one development database.
    "rails": {
        "setup_commands": ["bundle install"],
        "quick_setup": ["bundle install --local"],
        "test_command": "bin/rails test",
        "credential_files": ["config/master.key", ".env"],
    },
    "go": {
        "setup_commands": ["go mod download"],
        "quick_setup": [],
        "test_command": "go test ./...",
    },
    "rust": {"setup_commands": ["cargo fetch"], "quick_setup": [], "test_command": "cargo test"},
    "generic": {"setup_commands": [], "quick_setup": [], "test_command": None},
}


def defaults_for(project_type: str, repo: Path | None = None) -> dict[str, Any]:
    """Suggested `setup_commands`, `quick_setup`, `test_command` and `credential_files`.

    `quick_setup` is the cheaper setup for quick launches (often nothing).
    With `repo`, lock files refine the choice (uv, poetry, pnpm, yarn, npm).
    """
    if project_type not in PROJECT_TYPES:
        raise UsageError(
            f"unknown project type {project_type!r}: use one of {', '.join(PROJECT_TYPES)}"
        )
    repo = Path(repo) if repo is not None else None
    if project_type == "python":
        found = _python(repo)
    elif project_type == "node":
        found = _node(repo)
    else:
        found = {
            k: (list(v) if isinstance(v, list) else v) for k, v in _FIXED[project_type].items()
        }
    found.setdefault(
        "credential_files", [".env", ".env.local"] if project_type == "node" else [".env"]
    )
    return found
