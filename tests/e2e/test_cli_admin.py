"""init, config, doctor and demo through the real CLI."""

from __future__ import annotations

import json
import tomllib

from e2e_support import Fleet


def test_init_detects_python_and_refuses_to_overwrite(fleet: Fleet) -> None:
    (fleet.repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    fleet.run("init")
    config = tomllib.loads((fleet.repo / ".flotilla" / "config.toml").read_text())
    assert "pytest" in config["project"]["test_command"]
    again = fleet.run("init", check=False)
    assert again.returncode == 2 and "exists" in again.stderr
    fleet.run("init", "--type", "node", "--force")
    config = tomllib.loads((fleet.repo / ".flotilla" / "config.toml").read_text())
    assert "npm" in config["project"]["test_command"]


def test_config_shows_origin_of_each_value(fleet: Fleet) -> None:
    (fleet.repo / ".flotilla").mkdir()
    (fleet.repo / ".flotilla" / "config.toml").write_text("[limits]\nmax_concurrent = 7\n")
    data = fleet.json("config", "--show-origin", env={"FLOTILLA_PROJECT__DEFAULT_AGENT": "codex"})
    assert data["values"]["limits"]["max_concurrent"] == 7
    assert data["origins"]["limits.max_concurrent"].endswith("config.toml")
    assert data["origins"]["project.default_agent"] == "env FLOTILLA_PROJECT__DEFAULT_AGENT"
    assert data["origins"]["limits.timeout_s"] == "default"
    text = fleet.run("config", "--show-origin").stdout
    assert "max_concurrent" in text and "config.toml" in text


def test_config_validate_reports_every_problem_with_exit_2(fleet: Fleet) -> None:
    (fleet.repo / ".flotilla").mkdir()
    (fleet.repo / ".flotilla" / "config.toml").write_text(
        "[limits]\nmax_concurrent = 0\nbogus = 1\n[retry]\nmax_retries = 'x'\n"
    )
    proc = fleet.run("config", "--validate", check=False)
    assert proc.returncode == 2
    for key in ("limits.max_concurrent", "limits.bogus", "retry.max_retries"):
        assert key in proc.stderr
    assert fleet.run("--json", "config", "--validate", check=False).returncode == 2


def test_doctor_reports_each_check_and_fix(fleet: Fleet) -> None:
    proc = fleet.run("--json", "doctor", check=False, env={"PATH": "/usr/bin:/bin"})
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["git"]["ok"]
    assert checks["config"]["ok"]
    claude = checks["agent claude"]
    assert not claude["ok"] and "npm install" in claude["fix"]


def test_demo_runs_offline_and_cleans_up(fleet: Fleet) -> None:
    proc = fleet.run("demo", timeout=120)
    out = proc.stdout
    assert "careful" in out and "tests pass in: careful, thorough" in out
    assert "hasty" in out and "cautious" in out
    assert not list(fleet.home.glob("*"))  # the demo used a private home and removed it
