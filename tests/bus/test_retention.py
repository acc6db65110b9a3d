"""Retention of the event log on SQLite and PostgreSQL: what is pruned and what survives
(the head, the numbering), bounded batches beside concurrent writers, subscribers that
resume from a pruned cursor, the daemon's retention loop and the `[bus]` settings."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from flotilla import counters
from flotilla.bus.envelope import Envelope, Event
from flotilla.bus.filters import EventFilter
from flotilla.bus.inprocess import InProcessSubscription, InProcessTransport
from flotilla.config import BusConfig, ConfigError, load_config
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.orchestrator.service import FleetService
from flotilla.server.coordination_wiring import CoordinationSide
from flotilla.server.metrics import Metrics
from flotilla.store import SqlStore
from flotilla.store.bus_retention import DAY_S, oldest_seq, prune_events
from flotilla.store.bus_sql import BusStore, bus_store

NOW = 1_800_000_000.0
ALL = EventFilter()


def envelope(i: int, *, age_days: float = 0.0, kind: str = "test.tick") -> Envelope:
    return Envelope.new(kind, "tester", {"i": i}, created_at=NOW - age_days * DAY_S)


def seqs(db: BusStore) -> list[int]:
    return [e.seq for e in db.read(0, limit=100_000)]


def prune(store: SqlStore, **limits: int) -> int:
    values = {"keep_days": 0, "keep_events": 0, **limits}
    return prune_events(store, now=NOW, **values)


async def take(sub: InProcessSubscription, n: int, timeout: float = 30) -> list[Event]:
    got: list[Event] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        event = await sub.next(max(deadline - time.monotonic(), 0.0))
        if event is None:
            raise AssertionError(f"only {len(got)} of {n} events within {timeout}s")
        got.append(event)
    return got


# -- pruning -----------------------------------------------------------------------------


def test_keep_events_keeps_the_newest_and_numbering_goes_on(
    sql_store: SqlStore, db: BusStore
) -> None:
    for i in range(30):
        db.append(envelope(i))
    assert prune(sql_store, keep_events=10, batch=4) == 20  # five batches and a bit
    assert seqs(db) == list(range(21, 31))
    assert oldest_seq(sql_store) == db.oldest() == 21
    assert db.head() == 30
    assert db.append(envelope(30)).seq == 31  # deleting rows never renumbers
    assert prune(sql_store, keep_events=10) == 1
    assert seqs(db) == list(range(22, 32))


def test_keep_days_deletes_the_old_run_from_the_start_only(
    sql_store: SqlStore, db: BusStore
) -> None:
    ages = [10] * 6 + [1] + [9] * 3 + [0] * 2  # 3 events made long before they were appended
    for i, age in enumerate(ages):
        db.append(envelope(i, age_days=age))
    assert prune(sql_store, keep_days=7, batch=4) == 6
    # What is kept is one run of seqs: the stale three stay behind the first young event.
    assert seqs(db) == list(range(7, 13))
    assert db.oldest() == 7


def test_either_limit_prunes_and_zero_turns_both_off(sql_store: SqlStore, db: BusStore) -> None:
    for i in range(20):
        db.append(envelope(i, age_days=3 if i < 5 else 0))
    assert prune(sql_store) == 0
    assert prune(sql_store, keep_days=0, keep_events=0) == 0
    assert seqs(db) == list(range(1, 21))
    # Age keeps 6..20 and count keeps 9..20: an event goes when either says so.
    assert prune(sql_store, keep_days=2, keep_events=12) == 8
    assert seqs(db) == list(range(9, 21))


def test_the_head_survives_and_an_emptied_log_keeps_counting(
    sql_store: SqlStore, db: BusStore
) -> None:
    assert prune(sql_store, keep_days=1) == 0  # an empty log
    assert db.oldest() == 1
    for i in range(5):
        db.append(envelope(i, age_days=30))
    assert prune(sql_store, keep_days=1) == 4
    assert seqs(db) == [5]
    assert db.head() == 5
    with sql_store.engine.begin() as conn:  # emptied by hand: nothing prunes the head
        conn.execute(sa.text("DELETE FROM events"))
    assert db.head() == 0
    assert db.oldest() == 6  # the seq the next event gets
    assert db.append(envelope(5)).seq == 6


def test_one_call_is_bounded_and_the_next_goes_on(sql_store: SqlStore, db: BusStore) -> None:
    for i in range(50):
        db.append(envelope(i))
    done = [prune(sql_store, keep_events=5, batch=10, max_batches=2) for _ in range(4)]
    assert done == [20, 20, 5, 0]
    assert seqs(db) == list(range(46, 51))


def test_bad_limits_and_a_store_without_sql_are_refused(sql_store: SqlStore) -> None:
    with pytest.raises(UsageError, match="keep_days and keep_events must be >= 0"):
        prune(sql_store, keep_days=-1)
    with pytest.raises(UsageError, match="batch and max_batches must be >= 1"):
        prune(sql_store, keep_events=5, batch=0)
    with pytest.raises(OperationFailed, match="needs the SQL store"):
        oldest_seq(object())  # type: ignore[arg-type]


def test_pruning_beside_concurrent_writers_keeps_one_unbroken_run(
    sql_store: SqlStore, db: BusStore
) -> None:
    total = 400

    def write(offset: int) -> None:
        for i in range(total // 2):
            db.append(envelope(offset + i))

    threads = [threading.Thread(target=write, args=(n * total,)) for n in range(2)]
    for thread in threads:
        thread.start()
    pruned = rounds = 0
    while any(thread.is_alive() for thread in threads) or rounds == 0:
        rounds += 1
        pruned += prune(sql_store, keep_events=30, batch=7)
        kept = seqs(db) or [0]  # (the writers may not have begun)
        assert kept == list(range(kept[0], kept[0] + len(kept)))  # no hole, ever
    for thread in threads:
        thread.join()
    pruned += prune(sql_store, keep_events=30, batch=7)
    assert seqs(db) == list(range(total - 29, total + 1))
    assert pruned == total - 30
    assert db.append(envelope(-1)).seq == total + 1


# -- subscribers resuming from a pruned cursor --------------------------------------------


async def test_a_cursor_older_than_the_log_is_marked_pruned(
    sql_store: SqlStore, db: BusStore
) -> None:
    for i in range(20):
        db.append(envelope(i, kind="test.odd" if i % 2 else "test.even"))
    assert prune(sql_store, keep_events=5) == 15  # 16..20 are kept
    before = counters.snapshot().get("bus.cursor_pruned", 0)
    async with InProcessTransport(db) as bus:
        late = bus.subscribe(ALL, since=3)
        assert [e.seq for e in await take(late, 5)] == [16, 17, 18, 19, 20]
        assert late.pruned_before == 16
        odd = bus.subscribe(EventFilter.of(kinds="test.odd"), since=0)
        assert [e.seq for e in await take(odd, 2)] == [16, 18]
        assert odd.pruned_before == 16
        in_time = bus.subscribe(ALL, since=15)  # the next event it needs is still there
        assert [e.seq for e in await take(in_time, 5)] == [16, 17, 18, 19, 20]
        live = bus.subscribe(ALL)
        bus.publish(envelope(20))
        assert [e.seq for e in await take(live, 1)] == [21]
        assert (in_time.pruned_before, live.pruned_before) == (None, None)
        for sub in (late, odd, in_time, live):
            await sub.close()
    assert counters.snapshot().get("bus.cursor_pruned", 0) == before + 2


async def test_events_pruned_before_the_dispatcher_read_them_are_announced(
    lite_store: SqlStore,
) -> None:
    db = bus_store(lite_store)
    async with InProcessTransport(db, poll_s=3600) as bus:  # reads only when woken
        sub = bus.subscribe(ALL)
        bus.publish(envelope(0))
        assert [e.seq for e in await take(sub, 1)] == [1]  # the dispatcher is waiting now
        for i in range(1, 11):
            db.append(envelope(i))  # another process's events, not fanned out yet...
        assert prune(lite_store, keep_events=2) == 9  # ...pruned first: 10 and 11 remain
        bus.notify()
        assert [e.seq for e in await take(sub, 2)] == [10, 11]
        assert sub.pruned_before == 10
        await sub.close()


# -- the daemon's retention loop ---------------------------------------------------------


async def run_side(
    store: SqlStore,
    home: Path,
    retention: BusConfig,
    until: int = 1,
    started: Callable[[], None] | None = None,
) -> CoordinationSide:
    """A CoordinationSide whose loops run until `until` retention runs have ended
    (`started` is called between its start and its loops)."""
    service = FleetService(store, home, tmux_socket="flotilla-retention-test")
    side = await CoordinationSide.start(
        service, retention=retention, retention_first_s=0, retention_every_s=0.05
    )
    if started is not None:
        started()
    stop = asyncio.Event()
    loops = asyncio.create_task(side.run(stop))
    deadline = time.monotonic() + 60
    try:
        while side.prunes < until and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # waiting for the loop, not timing it
    finally:
        stop.set()
        await loops
        await side.close()
    return side


async def test_the_daemon_loop_prunes_and_counts(sql_store: SqlStore, tmp_path: Path) -> None:
    db = bus_store(sql_store)
    for i in range(12):
        db.append(Envelope.new("test.old", "tester", {"i": i}, created_at=time.time() - 3 * DAY_S))
    before = counters.snapshot().get("bus.events_pruned", 0)
    side = await run_side(sql_store, tmp_path / "home", BusConfig(keep_days=1), until=2)
    assert side.prunes >= 2
    assert side.events_pruned == 11
    assert db.oldest() == 12
    assert counters.snapshot().get("bus.events_pruned", 0) == before + 11
    exposition = Metrics(sql_store).render().decode()
    line = next(x for x in exposition.splitlines() if x.startswith("flotilla_events_pruned_total"))
    assert float(line.split()[-1]) >= 11


async def test_a_failed_prune_is_counted_and_the_loop_goes_on(
    lite_store: SqlStore, tmp_path: Path
) -> None:
    def break_the_log() -> None:
        with lite_store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE events RENAME TO events_gone"))

    before = counters.snapshot().get("bus.prune_failed", 0)
    side = await run_side(lite_store, tmp_path / "home", BusConfig(), 2, break_the_log)
    assert side.prunes >= 2 and side.events_pruned == 0
    assert counters.snapshot().get("bus.prune_failed", 0) >= before + 2


async def test_no_limits_no_loop(lite_store: SqlStore, tmp_path: Path) -> None:
    service = FleetService(lite_store, tmp_path / "home", tmux_socket="flotilla-retention-test")
    side = await CoordinationSide.start(
        service, retention=BusConfig(keep_days=0, keep_events=0), retention_first_s=0
    )
    stop = asyncio.Event()
    await asyncio.wait_for(side.prune_events(stop), 30)  # returns at once, stop never set
    assert side.prunes == 0
    await side.close()


# -- the [bus] settings ------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path / "home"),
        "FLOTILLA_HOME": str(tmp_path / "state"),
        "FLOTILLA_USER_CONFIG": str(tmp_path / "user" / "config.toml"),
    }


def user_file(env: dict[str, str], text: str) -> Path:
    path = Path(env["FLOTILLA_USER_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_bus_defaults_and_the_user_file_and_env(env: dict[str, str]) -> None:
    assert load_config(None, env).config.bus == BusConfig(keep_days=7, keep_events=1_000_000)
    path = user_file(env, "[bus]\nkeep_days = 0\nkeep_events = 5000\n")
    loaded = load_config(None, {**env, "FLOTILLA_BUS__KEEP_DAYS": "3"})
    assert loaded.config.bus == BusConfig(keep_days=3, keep_events=5000)
    assert loaded.origin("bus.keep_events") == str(path)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("keep_events = 10", "bus.keep_events must be 0 (no limit) or at least 1000, got 10"),
        ("keep_days = -1", "bus.keep_days must be >= 0"),
        ("keep_days = 1.5", "bus.keep_days must be an integer, got a number (1.5)"),
        ('keep_events = "all"', "bus.keep_events must be an integer, got a string ('all')"),
    ],
)
def test_bad_bus_values_get_one_line(env: dict[str, str], toml: str, expected: str) -> None:
    path = user_file(env, f"[bus]\n{toml}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(None, env)
    assert str(caught.value) == f"{expected} (in {path})"


def test_a_project_file_may_not_set_the_daemons_retention(
    env: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "repo" / ".flotilla" / "config.toml"
    project.parent.mkdir(parents=True)
    project.write_text("[bus]\nkeep_days = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "repo", env)
    assert str(caught.value) == (
        "bus.keep_days may only be set in the user config file or the environment,"
        f" not in a project file (in {project})"
    )
