"""Error tree shared by every part of Flotilla.

FlotillaError            base; `exit_code` is what the CLI exits with
+-- UsageError           bad input from the user: exit 2, nothing created
|   +-- InvalidName
|   +-- IllegalTransition  (a programming or race error, but reported the same way)
+-- OperationFailed      something we tried failed: exit 1
    +-- NotFound
"""

from __future__ import annotations


class FlotillaError(Exception):
    exit_code = 1


class UsageError(FlotillaError):
    exit_code = 2


class InvalidName(UsageError):
    pass


class IllegalTransition(UsageError):
    pass


class OperationFailed(FlotillaError):
    exit_code = 1


class NotFound(UsageError):
    pass
