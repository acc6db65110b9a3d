"""What a fake model answers: a script of steps, a failure mode, and the request log.

The answer to a model call is chosen from the conversation the CLI sends, not from a
call counter: with `k` model turns already in the conversation, step `k` is answered.
That keeps the fake stateless across processes, so a resumed session (which resends
the earlier turns) continues the script where the first run stopped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class WriteFile:
    """A turn that calls the CLI's file-writing tool."""

    path: str  # absolute, or relative to the CLI's working directory
    content: str
    input_tokens: int = 100
    output_tokens: int = 20


@dataclass(frozen=True)
class FinalText:
    """A turn that ends the conversation with prose."""

    text: str
    input_tokens: int = 150
    output_tokens: int = 10


Step = WriteFile | FinalText


class Mode(StrEnum):
    NORMAL = "normal"
    RATE_LIMITED = "rate_limited"  # every model call: 429 with Retry-After
    RATE_LIMITED_FIRST = "rate_limited_first"  # the first `fail_first` model calls: 429
    UNAUTHORIZED = "unauthorized"  # every model call: 401


@dataclass(frozen=True)
class Script:
    steps: tuple[Step, ...]
    mode: Mode = Mode.NORMAL
    fail_first: int = 0  # for RATE_LIMITED_FIRST
    retry_after: int = 1  # seconds, sent in the Retry-After header of each 429

    @classmethod
    def write_then_say(cls, path: str, content: str, text: str = "Done.", **kwargs: Any) -> Script:
        return cls(steps=(WriteFile(path, content), FinalText(text)), **kwargs)

    def step(self, turn: int) -> Step:
        """The answer for a conversation that already holds `turn` model turns."""
        if turn < len(self.steps):
            return self.steps[turn]
        return FinalText("(the fake model's script is over)")

    def usage_until(self, turns: int) -> tuple[int, int]:
        """Summed (input, output) tokens of the first `turns` steps."""
        chosen = [self.step(i) for i in range(turns)]
        return sum(s.input_tokens for s in chosen), sum(s.output_tokens for s in chosen)


@dataclass(frozen=True)
class Request:
    """One HTTP request as the fake saw it."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    model_call: bool  # True when this hit the provider's generate endpoint
    status: int = 200  # what the fake answered


@dataclass
class RequestLog:
    """Thread-safe list of requests, in arrival order."""

    _items: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: Request) -> None:
        with self._lock:
            self._items.append(request)

    def all(self) -> list[Request]:
        with self._lock:
            return list(self._items)

    def model_calls(self) -> list[Request]:
        return [r for r in self.all() if r.model_call]
