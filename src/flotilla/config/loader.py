"""Loading the configuration: defaults < user file < project file < environment.

`load_config` returns the typed `Config` plus where each value came from;
`validate_config` reports every problem of every source at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla.config import paths
from flotilla.config.errors import ConfigError
from flotilla.config.keys import KeyPath, format_key, parse_key
from flotilla.config.merge import Merged, merge
from flotilla.config.problems import validate, where
from flotilla.config.schema import Config
from flotilla.config.sources import Layer, LayerKind, env_layer, flatten, read_file
from flotilla.executors.pricing import Price, parse_prices

# Refused in project files: a repository must not widen its own permissions, and the
# daemon's own settings (one event log for every project) are not a repository's to make.
USER_ONLY_KEYS: tuple[KeyPath, ...] = (
    ("project", "allowed_repositories"),
    ("bus", "keep_days"),
    ("bus", "keep_events"),
)


@dataclass(frozen=True)
class LoadedConfig:
    """The typed configuration and the origin of each of its values."""

    config: Config
    files: tuple[Path, ...]  # the files read, lowest precedence first
    repo: Path | None
    state_home: Path
    worktree_root: Path | None  # resolved project.worktree_root; None without a repo
    database_url: str  # store.url, or the default SQLite file in the state home
    merged: Merged = field(repr=False, compare=False)

    def origin(self, key: str | Sequence[str]) -> str:
        """Where `key` came from: "default", a file path or "env NAME" (table: latest setting)."""
        path = parse_key(key) if isinstance(key, str) else tuple(key)
        if not any(leaf[: len(path)] == path for leaf, _ in self._leaves()):
            raise ConfigError(f"unknown configuration key '{format_key(path)}'")
        return self.merged.origin_of(path)

    def items_with_origin(self) -> list[tuple[str, Any, str]]:
        """(dotted key, value, origin) for every value, in schema order."""
        return [
            (format_key(path), value, self.merged.origin_of(path)) for path, value in self._leaves()
        ]

    def to_dict(self, show_origin: bool = False) -> dict[str, Any]:
        """JSON-ready values; with `show_origin`, also origins and files."""
        values = self.config.model_dump(mode="json")
        if not show_origin:
            return values
        return {
            "values": values,
            "origins": {key: origin for key, _, origin in self.items_with_origin()},
            "files": [str(path) for path in self.files],
        }

    def prices(self) -> dict[str, Price]:
        """DEFAULT_PRICES with this config's `[prices."<model>"]` tables on top."""
        return parse_prices(self.config.model_dump(mode="python")["prices"])

    def _leaves(self) -> list[tuple[KeyPath, Any]]:
        return list(flatten(self.config.model_dump(mode="python")))


def load_config(repo: Path | None, env: Mapping[str, str] = os.environ) -> LoadedConfig:
    """The configuration for `repo` (None: user file and environment only).

    Raises ConfigError naming the first problem (and how many more there are).
    """
    layers = _layers(repo, env)
    config, merged, problems = _check(layers)
    if config is None or problems:
        raise ConfigError(problems)
    return LoadedConfig(
        config=config,
        files=tuple(layer.file for layer in layers if layer.file is not None),
        repo=repo.absolute() if repo is not None else None,
        state_home=paths.state_home(env),
        worktree_root=_worktree_root(config, repo, env),
        database_url=config.store.url or paths.database_url_default(env),
        merged=merged,
    )


def validate_config(repo: Path | None, env: Mapping[str, str] = os.environ) -> list[str]:
    """Every problem in every source, one line each naming key and file; [] when valid."""
    return _check(_layers(repo, env))[2]


def _layers(repo: Path | None, env: Mapping[str, str]) -> list[Layer]:
    layers: list[Layer] = []
    user = read_file(paths.user_config_path(env), LayerKind.USER)
    if user is not None:
        layers.append(user)
    if repo is not None:
        project = read_file(paths.project_config_path(repo), LayerKind.PROJECT)
        if project is not None:
            layers.append(project)
    layers.append(env_layer(env))
    return layers


def _check(layers: list[Layer]) -> tuple[Config | None, Merged, list[str]]:
    """Each layer alone (so a bad value hidden by a later layer is still reported), then all."""
    problems: list[str] = []
    for layer in layers:
        problems.extend(layer.problems)
        # Required keys may be split across layers, so only the merge can say one is missing.
        problems.extend(validate(merge([layer.settings]), skip_missing=True)[1])
        if layer.kind is LayerKind.PROJECT:
            problems.extend(_user_only(layer))
    merged = merge(layer.settings for layer in layers)
    config, merged_problems = validate(merged)
    problems.extend(merged_problems)
    return config, merged, list(dict.fromkeys(problems))


def _user_only(layer: Layer) -> list[str]:
    found = {s.path[:2]: s.origin for s in layer.settings if s.path[:2] in USER_ONLY_KEYS}
    return [
        f"{format_key(path)} may only be set in the user config file or the environment,"
        f" not in a project file (in {where(origin)})"
        for path, origin in found.items()
    ]


def _worktree_root(config: Config, repo: Path | None, env: Mapping[str, str]) -> Path | None:
    configured = config.project.worktree_root
    if not configured:
        return paths.default_worktree_root(repo, env) if repo is not None else None
    root = Path(configured).expanduser()
    if root.is_absolute():
        return root
    return repo.absolute() / root if repo is not None else None
