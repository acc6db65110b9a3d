"""What every command needs: the project it runs in, and a client of the daemon."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from flotilla.server.client import DaemonClient
from flotilla.workspace.repo import current_worktree_root, find_project, resolve_ref


@dataclass
class CliContext:
    json_output: bool = False
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    _client: DaemonClient | None = None

    @property
    def client(self) -> DaemonClient:
        if self._client is None:
            self._client = DaemonClient(self.env)
        return self._client

    def project(self) -> Path:
        return find_project(Path.cwd())

    def params(self, **extra: object) -> dict[str, object]:
        return {"project": str(self.project()), **{k: v for k, v in extra.items() if v is not None}}

    def spawn_depth(self) -> tuple[int, str | None]:
        """An agent that runs `fleet` creates children one level deeper."""
        parent = self.env.get("FLOTILLA_WORKER_ID")
        if not parent:
            return 0, None
        return int(self.env.get("FLOTILLA_DEPTH", "0")) + 1, parent

    def default_base(self) -> str | None:
        """Inside a linked worktree (an agent's), children start from that worktree's HEAD."""
        here = current_worktree_root(Path.cwd())
        if here != self.project():
            return resolve_ref(here, "HEAD")
        return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
