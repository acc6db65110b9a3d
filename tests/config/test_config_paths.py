"""Where Flotilla keeps its files."""

from __future__ import annotations

import os
from pathlib import Path

from flotilla.config import paths


def test_state_home_honours_flotilla_home(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "h"), "XDG_DATA_HOME": str(tmp_path / "x")}
    assert paths.state_home({**env, "FLOTILLA_HOME": str(tmp_path / "f")}) == tmp_path / "f"
    assert paths.state_home(env) == tmp_path / "x" / "flotilla"
    assert paths.state_home({"HOME": env["HOME"]}) == tmp_path / "h" / ".local/share/flotilla"
    # Empty or relative XDG values mean "unset" (XDG base directory spec).
    assert paths.state_home({**env, "XDG_DATA_HOME": "rel", "FLOTILLA_HOME": ""}) == (
        tmp_path / "h" / ".local/share/flotilla"
    )


def test_state_home_defaults_to_the_process_environment() -> None:
    expected = paths.state_home(dict(os.environ))
    assert paths.state_home() == expected


def test_user_config_path(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert paths.user_config_path(home) == tmp_path / ".config/flotilla/config.toml"
    assert paths.user_config_path({**home, "XDG_CONFIG_HOME": "/etc/xdg"}) == Path(
        "/etc/xdg/flotilla/config.toml"
    )
    assert paths.user_config_path({**home, "FLOTILLA_USER_CONFIG": "/srv/f.toml"}) == Path(
        "/srv/f.toml"
    )


def test_project_slug_differs_for_two_clones_with_the_same_name(tmp_path: Path) -> None:
    one, two = tmp_path / "a" / "app", tmp_path / "b" / "app"
    one.mkdir(parents=True)
    two.mkdir(parents=True)
    assert paths.project_slug(one) != paths.project_slug(two)
    assert paths.project_slug(one).startswith("app-")
    assert paths.project_slug(two).startswith("app-")


def test_project_slug_is_stable_and_resolves_links(tmp_path: Path) -> None:
    real = tmp_path / "my repo!"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    slug = paths.project_slug(real)
    assert slug == paths.project_slug(real) == paths.project_slug(link)
    assert slug == paths.project_slug(tmp_path / "x" / ".." / "my repo!")
    assert slug.startswith("my-repo-")
    assert all(c.isalnum() or c in "._-" for c in slug)


def test_per_project_and_global_paths(tmp_path: Path) -> None:
    env = {"FLOTILLA_HOME": str(tmp_path / "s")}
    repo = tmp_path / "repo"
    repo.mkdir()
    state = tmp_path / "s"
    assert paths.default_worktree_root(repo, env) == state / "worktrees" / paths.project_slug(repo)
    assert paths.runs_dir(env) == state / "runs"
    assert paths.socket_path(env) == state / "daemon.sock"
    assert paths.database_url_default(env) == f"sqlite:///{state}/flotilla.db"
    assert paths.project_config_path(repo) == repo / ".flotilla" / "config.toml"


def test_socket_path_stays_short_enough_for_a_unix_socket(tmp_path: Path) -> None:
    long_home = tmp_path / ("d" * 120)
    path = paths.socket_path({"FLOTILLA_HOME": str(long_home)})
    assert len(os.fsencode(path)) <= 100
    assert path == paths.socket_path({"FLOTILLA_HOME": str(long_home)})
    assert path != paths.socket_path({"FLOTILLA_HOME": str(long_home) + "2"})
