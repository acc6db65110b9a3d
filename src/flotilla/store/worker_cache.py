"""The workers as last committed, kept in memory for the daemon's status reads.

A status read (GET /workers/{name}, the most frequent request) would otherwise hop to
a store thread and run a SELECT; served from here it costs a dict lookup on the event
loop. The cache is exact only while this process is the store's one writer, which the
daemon is (server/daemon.py holds the state home's lock, and the CLI goes through the
daemon), so only the daemon switches it on (`SqlStore.cache_workers`).

Reads may race writes, and writes each other (two commits' cache updates may land in
either order), so a write does not put its row here: once committed, it drops the
worker and bumps a generation. A reader notes the generation before it reads and keeps
what it read only if no write came in meanwhile; a stale row kept just before a
write's drop is dropped by it. The next read after a write goes to the store.
"""

from __future__ import annotations

import threading

from flotilla.domain.worker import Worker

MAX_WORKERS = 20_000  # beyond this the cache starts over (it refills on reads)


class WorkerCache:
    def __init__(self, size: int = MAX_WORKERS) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._generation = 0
        self._by_id: dict[str, Worker] = {}
        self._ids: dict[tuple[str, str], str] = {}  # (project, name) -> id

    def get(self, worker_id: str) -> Worker | None:
        return self._by_id.get(worker_id)

    def find(self, project: str, name: str) -> Worker | None:
        worker_id = self._ids.get((project, name))
        return None if worker_id is None else self._by_id.get(worker_id)

    @property
    def generation(self) -> int:
        """Note it before a read; pass it to `read` with what was read."""
        return self._generation

    def read(self, worker: Worker, generation: int) -> None:
        """Keep a row read from the store, unless a write happened since `generation`."""
        with self._lock:
            if generation == self._generation:
                self._keep(worker)

    def changed(self, worker_id: str) -> None:
        """A write of the worker committed (or it was deleted)."""
        with self._lock:
            self._generation += 1
            gone = self._by_id.pop(worker_id, None)
            if gone is not None:
                self._ids.pop((gone.project, gone.name), None)

    def _keep(self, worker: Worker) -> None:
        if len(self._by_id) >= self._size and worker.id not in self._by_id:
            self._by_id.clear()
            self._ids.clear()
        self._by_id[worker.id] = worker
        self._ids[(worker.project, worker.name)] = worker.id
