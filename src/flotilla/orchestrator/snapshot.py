"""The settings a worker runs under, frozen from config when it is created.

A restarted daemon must finish a worker under the settings it started with, not
under a config file edited since, so they are stored on the worker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from flotilla.executors.base import AgentSettings
from flotilla.orchestrator.policy import RetryPolicy


@dataclass(frozen=True)
class RunSettings:
    agent: AgentSettings = field(default_factory=AgentSettings)
    timeout_s: float = 3600.0
    stale_timeout_s: float = 600.0
    max_restarts: int = 2
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    test_command: str = ""
    test_timeout_s: float = 900.0
    base_commit: str = ""
    price: dict[str, float] | None = None  # per-million-token prices of the model, if known
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["agent"]["extra_flags"] = list(self.agent.extra_flags)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunSettings:
        agent = dict(raw.get("agent", {}))
        agent["extra_flags"] = tuple(agent.get("extra_flags", ()))
        return cls(
            agent=AgentSettings(**agent),
            timeout_s=float(raw.get("timeout_s", 3600.0)),
            stale_timeout_s=float(raw.get("stale_timeout_s", 600.0)),
            max_restarts=int(raw.get("max_restarts", 2)),
            retry=RetryPolicy(**raw.get("retry", {})),
            test_command=str(raw.get("test_command", "")),
            test_timeout_s=float(raw.get("test_timeout_s", 900.0)),
            base_commit=str(raw.get("base_commit", "")),
            price=raw.get("price"),
            extra=dict(raw.get("extra", {})),
        )
