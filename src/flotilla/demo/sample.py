"""The demo's sample project (a failing test) and the scripts of its agents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CALC = '''"""A tiny calculator with a bug in `average`."""


def add(a, b):
    return a + b


def average(values):
    return sum(values) / (len(values) + 1)
'''

TESTS = """import unittest

from calc import add, average


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_average(self):
        self.assertEqual(average([2, 4, 6]), 4)


if __name__ == "__main__":
    unittest.main()
"""

# Each agent tries a fix in its own way; the project's tests decide who was right.
SCRIPTS = {
    "careful": """
[[steps]]
action = "say"
text = "Reading calc.py and the failing test."
[[steps]]
action = "sleep"
seconds = 0.6
[[steps]]
action = "replace"
path = "calc.py"
old = "len(values) + 1"
new = "len(values)"
[[steps]]
action = "run"
command = "{python} -m unittest -q"
[[steps]]
action = "commit"
message = "Fix average: divide by the number of values"
[[steps]]
action = "usage"
input_tokens = 1800
output_tokens = 240
[[steps]]
action = "summary"
text = "Fixed the off-by-one in average() and ran the tests."
""",
    "hasty": """
[[steps]]
action = "say"
text = "The test must be wrong; adjusting the expected value."
[[steps]]
action = "sleep"
seconds = 0.3
[[steps]]
action = "replace"
path = "calc.py"
old = "sum(values)"
new = "sum(values) + 1"
[[steps]]
action = "usage"
input_tokens = 900
output_tokens = 120
[[steps]]
action = "summary"
text = "Adjusted average()."
""",
    "cautious": """
[[steps]]
action = "say"
text = "Looking at the code before touching anything."
[[steps]]
action = "sleep"
seconds = 0.4
[[steps]]
action = "usage"
input_tokens = 600
output_tokens = 80
[[steps]]
action = "summary"
text = "I think average() divides by the wrong count, but I changed nothing."
""",
    "thorough": """
[[steps]]
action = "say"
text = "Fixing average and adding a test for the empty list."
[[steps]]
action = "replace"
path = "calc.py"
old = "    return sum(values) / (len(values) + 1)"
new = "    if not values:\\n        return 0.0\\n    return sum(values) / len(values)"
[[steps]]
action = "append"
path = "test_calc.py"
content = '''


class EmptyTest(unittest.TestCase):
    def test_empty(self):
        self.assertEqual(average([]), 0.0)
'''
[[steps]]
action = "sleep"
seconds = 0.8
[[steps]]
action = "usage"
input_tokens = 2600
output_tokens = 410
[[steps]]
action = "summary"
text = "Fixed average(), handled the empty list, added a test."
""",
}


def make_project(root: Path) -> Path:
    """A git repository with a failing test and a Flotilla config that runs the tests."""
    project = root / "sample-project"
    project.mkdir(parents=True)
    (project / "calc.py").write_text(CALC)
    (project / "test_calc.py").write_text(TESTS)
    (project / ".flotilla").mkdir()
    (project / ".flotilla" / "config.toml").write_text(
        "[project]\n"
        'default_agent = "scripted"\n'
        f'test_command = "{sys.executable} -m unittest -q"\n'
        "[limits]\n"
        "max_concurrent = 4\n"
        "stale_timeout_s = 60\n"
    )
    git = ["git", "-c", "user.name=Flotilla Demo", "-c", "user.email=demo@flotilla.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    subprocess.run([*git, "-C", str(project), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(project), "commit", "-q", "-m", "Sample project"], check=True)
    return project


def write_scripts(root: Path) -> dict[str, Path]:
    scripts = {}
    for name, text in SCRIPTS.items():
        path = root / f"{name}.toml"
        path.write_text(text.replace("{python}", sys.executable))
        scripts[name] = path
    return scripts
