"""Workers: create, read, list, update (with its state rules), delete — on each backend."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flotilla.domain.errors import IllegalTransition, InvalidName, NotFound, UsageError
from flotilla.domain.states import Outcome, WorkerState
from flotilla.domain.worker import Worker
from flotilla.store import StaleState, Store

S = WorkerState
Factory = Callable[..., Worker]


def full_worker(new_worker: Factory) -> Worker:
    """A worker with every field set to something other than its default."""
    return new_worker(
        "every-field",
        project="/repo/full",
        agent="codex",
        prompt="fix it\nall of it: 'quotes' \"too\" ✓",
        state=S.RUNNING,
        batch="b1",
        model="gpt-5",
        base_ref="main",
        branch="flotilla/every-field",
        worktree="/wt/every-field",
        run_dir="/runs/every-field",
        interactive=True,
        quick=True,
        depth=2,
        parent="parent-id",
        session_id="sess-1",
        pid=4242,
        pid_started_at=1_700_000_000.123456,
        attempt=3,
        restarts=1,
        retries=2,
        not_before=1_700_000_100.5,
        created_at=1_700_000_000.25,
        started_at=1_700_000_001.5,
        ended_at=1_700_000_002.75,
        last_output_at=1_700_000_002.5,
        input_tokens=10_000_000_000,
        output_tokens=7,
        cost_usd=1.25,
        outcome=Outcome.TESTS_FAILED,
        error="tests failed",
        result={"files": [{"path": "a.py", "insertions": 3}], "ok": False, "n": None},
        settings={"model": "x", "flags": ["--a", "--b"]},
        out_offset=123_456,
    )


def test_every_field_round_trips(store: Store, new_worker: Factory) -> None:
    original = full_worker(new_worker)
    created = store.create_worker(original)
    assert created.seq == 1
    stored = store.get_worker(original.id)
    assert stored == created
    assert stored.to_dict() == {**original.to_dict(), "seq": 1}
    assert isinstance(stored.state, WorkerState)
    assert isinstance(stored.outcome, Outcome)


def test_create_numbers_admissions_and_stamps_time(store: Store, new_worker: Factory) -> None:
    made = [store.create_worker(new_worker(f"w{i}")) for i in range(3)]
    assert [w.seq for w in made] == [1, 2, 3]
    assert all(w.created_at > 1_600_000_000 for w in made)
    store.delete_worker(made[2].id)
    # Numbers are never reused, even after a delete.
    assert store.create_worker(new_worker("w3")).seq == 4


def test_duplicate_name_in_project_is_refused(store: Store, new_worker: Factory) -> None:
    store.create_worker(new_worker("fix-login"))
    with pytest.raises(UsageError) as caught:
        store.create_worker(new_worker("fix-login"))
    assert str(caught.value) == (
        "a worker named 'fix-login' already exists in this project "
        "(pick another name or `fleet kill fix-login` first)"
    )
    # The same name in another project is fine, and the refusal used no number.
    assert store.create_worker(new_worker("fix-login", project="/repo/b")).seq == 2


def test_duplicate_id_and_bad_name_are_refused(store: Store, new_worker: Factory) -> None:
    first = store.create_worker(new_worker("one"))
    with pytest.raises(UsageError, match="already exists"):
        store.create_worker(new_worker("two", id=first.id))
    with pytest.raises(InvalidName):
        store.create_worker(new_worker("../escape"))
    assert [w.name for w in store.list_workers()] == ["one"]


def test_get_find_and_not_found(store: Store, new_worker: Factory) -> None:
    made = store.create_worker(new_worker("a"))
    assert store.find_worker("/repo/a", "a") == made
    assert store.find_worker("/repo/a", "b") is None
    assert store.find_worker("/repo/b", "a") is None
    with pytest.raises(NotFound, match="no worker with id 'nope'"):
        store.get_worker("nope")


def test_list_filters_and_order(store: Store, new_worker: Factory) -> None:
    store.create_worker(new_worker("fix-b", batch="x"))
    store.create_worker(new_worker("fix-a", batch="x", state=S.RUNNING))
    store.create_worker(new_worker("docs", state=S.FAILED))
    store.create_worker(new_worker("fix-c", project="/repo/b", state=S.RUNNING))

    def names(**query: object) -> list[str]:
        return [w.name for w in store.list_workers(**query)]  # type: ignore[arg-type]

    assert names() == ["fix-b", "fix-a", "docs", "fix-c"]  # admission order, not name
    assert names(project="/repo/a") == ["fix-b", "fix-a", "docs"]
    assert names(states=[S.RUNNING]) == ["fix-a", "fix-c"]
    assert names(states=["running", "failed"], project="/repo/a") == ["fix-a", "docs"]
    assert names(states=[]) == []
    assert names(batch="x") == ["fix-b", "fix-a"]
    assert names(names_glob="fix-*") == ["fix-b", "fix-a", "fix-c"]
    assert names(names_glob="fix-[ab]", project="/repo/a") == ["fix-b", "fix-a"]
    assert names(names_glob="FIX-*") == []  # names match case-sensitively


def test_update_fields_without_state(store: Store, new_worker: Factory) -> None:
    made = store.create_worker(new_worker("a"))
    updated = store.update_worker(
        made.id,
        out_offset=2048,
        result={"summary": "done"},
        settings={"k": 1},
        outcome="success",
        pid=99,
    )
    assert updated.out_offset == 2048
    assert updated.result == {"summary": "done"}
    assert updated.outcome is Outcome.SUCCESS
    assert store.get_worker(made.id) == updated
    assert store.history(made.id) == []  # no state change, no history
    assert store.update_worker(made.id) == updated  # nothing to change: a read


def test_update_refuses_unknown_fields(store: Store, new_worker: Factory) -> None:
    made = store.create_worker(new_worker("a"))
    with pytest.raises(UsageError, match="cannot update worker field"):
        store.update_worker(made.id, colour="red")
    with pytest.raises(UsageError, match="seq"):
        store.update_worker(made.id, seq=7)
    with pytest.raises(NotFound):
        store.update_worker("nope", pid=1)
    with pytest.raises(UsageError, match="'done' is not a worker state: use one of queued"):
        store.update_worker(made.id, state="done")
    with pytest.raises(UsageError, match="'won' is not an outcome"):
        store.update_worker(made.id, outcome="won")
    with pytest.raises(UsageError, match="'done' is not a worker state"):
        store.list_workers(states=["done"])
    assert store.get_worker(made.id) == made


def test_state_move_is_checked_and_recorded(store: Store, new_worker: Factory) -> None:
    made = store.create_worker(new_worker("a"))
    moved = store.update_worker(made.id, state=S.STARTING, pid=10, started_at=5.0)
    assert (moved.state, moved.pid, moved.started_at) == (S.STARTING, 10, 5.0)
    store.update_worker(made.id, state="running")
    rows = store.history(made.id)
    assert [(r.kind, r.detail) for r in rows] == [
        ("state", {"from": "queued", "to": "starting"}),
        ("state", {"from": "starting", "to": "running"}),
    ]
    assert rows[0].at <= rows[1].at

    with pytest.raises(IllegalTransition, match="a running worker cannot become running"):
        store.update_worker(made.id, state=S.RUNNING, pid=11)
    store.update_worker(made.id, state=S.CANCELLED)
    with pytest.raises(IllegalTransition, match="a cancelled worker cannot become queued"):
        store.update_worker(made.id, state=S.QUEUED, error="retry")
    # A refused move changes nothing at all.
    after = store.get_worker(made.id)
    assert (after.state, after.pid, after.error) == (S.CANCELLED, 10, None)
    assert len(store.history(made.id)) == 3


def test_expect_state(store: Store, new_worker: Factory) -> None:
    made = store.create_worker(new_worker("a"))
    with pytest.raises(StaleState) as caught:
        store.update_worker(made.id, expect_state=S.RUNNING, state=S.SUCCEEDED)
    assert (caught.value.expected, caught.value.actual) == (S.RUNNING, S.QUEUED)
    assert "is queued, not running" in str(caught.value)
    # Also guards updates that do not move the state.
    with pytest.raises(StaleState):
        store.update_worker(made.id, expect_state=S.RUNNING, pid=3)
    assert store.get_worker(made.id).pid is None
    ok = store.update_worker(made.id, expect_state=S.QUEUED, state=S.STARTING)
    assert ok.state is S.STARTING


def test_delete_takes_prompts_and_history(store: Store, new_worker: Factory) -> None:
    keep = store.create_worker(new_worker("keep"))
    gone = store.create_worker(new_worker("gone"))
    for worker in (keep, gone):
        store.add_prompt(worker.id, "more")
        store.update_worker(worker.id, state=S.STARTING)
    store.delete_worker(gone.id)
    with pytest.raises(NotFound):
        store.get_worker(gone.id)
    assert store.history(gone.id) == []
    assert store.pending_prompts(gone.id) == []
    assert len(store.history(keep.id)) == 1
    assert len(store.pending_prompts(keep.id)) == 1
    with pytest.raises(NotFound):
        store.delete_worker(gone.id)
    # The name is free again.
    store.create_worker(new_worker("gone"))


def test_count_active(store: Store, new_worker: Factory) -> None:
    for state in S:
        store.create_worker(new_worker(f"w-{state}", state=state))
        store.create_worker(new_worker(f"w-{state}", project="/repo/other", state=S.RUNNING))
    assert store.count_active("/repo/a") == 3  # starting, running, waiting
    assert store.count_active("/repo/other") == len(S)
    assert store.count_active("/repo/none") == 0
