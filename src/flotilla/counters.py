"""Named counters of every caught error path, shown at /health and by `fleet doctor`.

Rule: an `except` block either re-raises or calls `count("<part>.<what>")`.
Counters live in the process that caught the error (the daemon's are the ones
/health shows).
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_counts: Counter[str] = Counter()


def count(name: str, amount: int = 1) -> None:
    with _lock:
        _counts[name] += amount


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(sorted(_counts.items()))


def reset() -> None:
    """For tests only."""
    with _lock:
        _counts.clear()
