"""Errors of the config part.

UsageError (flotilla.domain.errors)
+-- ConfigError   a configuration file, variable or key is wrong; `problems` lists them all
"""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.domain.errors import UsageError


class ConfigError(UsageError):
    """Bad configuration. The message is the first problem; `problems` holds every one."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        first = self.problems[0] if self.problems else "invalid configuration"
        extra = len(self.problems) - 1
        if extra > 0:
            first += f" (and {extra} more problem{'s' if extra > 1 else ''})"
        super().__init__(first)
