"""Make `import fakemodels` work however pytest names this package.

With `tests/__init__.py` present pytest imports it as `tests.fakemodels`; tests in
other folders import it as `fakemodels`, so the tests folder must be on sys.path
(the same as `pythonpath = ["tests"]` in the pytest configuration would do).
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
