"""`fleet init`: write a commented `.flotilla/config.toml` suited to the project's type."""

from __future__ import annotations

import importlib.resources
import string
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from flotilla.config.errors import ConfigError
from flotilla.config.paths import project_config_path
from flotilla.config.render import toml_value
from flotilla.config.schema import Config, LimitsConfig, RetryConfig

AUTO = "auto"


def init_project(repo: Path, project_type: str = AUTO, force: bool = False) -> Path:
    """Create `<repo>/.flotilla/config.toml`; refuse to overwrite it unless `force`."""
    # Imported here: detection belongs to the workspace part, and only `init` needs it.
    from flotilla.workspace.project_type import defaults_for, detect_project_type

    if not repo.is_dir():
        raise ConfigError(f"{repo} is not a directory: pass the repository's root")
    kind = detect_project_type(repo) if project_type == AUTO else project_type
    text = render_project_file(kind, defaults_for(kind, repo))
    path = project_config_path(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("w" if force else "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists: edit it, or pass --force to replace it") from exc
    return path


def render_project_file(project_type: str, defaults: dict[str, Any]) -> str:
    """The file's text for a type's defaults (setup_commands, quick_setup, ...)."""
    template = importlib.resources.files("flotilla.config") / "templates" / "project.toml"
    values = {
        "project_type": toml_value(project_type),
        "setup_commands": toml_value(list(defaults.get("setup_commands", []))),
        "quick_setup": toml_value(list(defaults.get("quick_setup", []))),
        "test_command": toml_value(defaults.get("test_command") or ""),
        "credential_files": toml_value(list(defaults.get("credential_files", []))),
        "limits": _commented_defaults(LimitsConfig()),
        "retry": _commented_defaults(RetryConfig()),
    }
    text = string.Template(template.read_text(encoding="utf-8")).substitute(values)
    try:
        # Never write a file that `load_config` would then refuse.
        Config.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(
            f"cannot write a valid config for project type {project_type!r}: {exc}"
        ) from exc
    return text


def _commented_defaults(section: BaseModel) -> str:
    items = section.model_dump().items()
    return "\n".join(f"# {key} = {toml_value(value)}" for key, value in items)
