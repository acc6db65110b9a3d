"""The daemon's in-memory worker reads: exact after every write, never stale after a race."""

from __future__ import annotations

import threading
from collections.abc import Callable

from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker
from flotilla.store import SqlStore, Store
from flotilla.store.worker_cache import WorkerCache

Factory = Callable[..., Worker]


def cached(store: Store) -> SqlStore:
    assert isinstance(store, SqlStore)
    store.cache_workers()
    return store


def test_reads_are_served_from_memory_until_a_write(store: Store, new_worker: Factory) -> None:
    sql = cached(store)
    made = sql.create_worker(new_worker("alpha"))
    assert sql.cached_worker(made.project, "alpha") is None  # nothing read yet
    first = sql.find_worker(made.project, "alpha")
    assert first is not None
    assert sql.cached_worker(made.project, "alpha") is first
    assert sql.get_worker(made.id) is first

    sql.update_worker(made.id, state=WorkerState.STARTING)
    assert sql.cached_worker(made.project, "alpha") is None  # the write dropped it
    again = sql.find_worker(made.project, "alpha")
    assert again is not None and again.state is WorkerState.STARTING

    sql.delete_worker(made.id)
    assert sql.cached_worker(made.project, "alpha") is None
    assert sql.find_worker(made.project, "alpha") is None


def test_a_read_that_raced_a_write_is_not_kept(new_worker: Factory) -> None:
    cache = WorkerCache()
    old = new_worker("beta")
    generation = cache.generation  # a reader starts reading the old row ...
    cache.changed(old.id)  # ... a write commits ...
    cache.read(old, generation)  # ... and the reader comes back with what it read
    assert cache.find(old.project, "beta") is None
    cache.read(old, cache.generation)
    assert cache.find(old.project, "beta") is old


def test_concurrent_writers_and_readers_end_on_the_stored_row(
    store: Store, new_worker: Factory
) -> None:
    sql = cached(store)
    made = sql.create_worker(new_worker("gamma"))
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():  # until the writers are done
            sql.find_worker(made.project, "gamma")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for offset in range(1, 60):
            sql.update_worker(made.id, out_offset=offset)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    seen = sql.find_worker(made.project, "gamma")
    assert seen is not None and seen.out_offset == 59
