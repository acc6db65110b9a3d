"""MessageService over the real store and FleetService, with worker rows in chosen states
(no agent processes: the end-to-end test runs real ones). Delivery states, failures with
reasons, concurrent deliverers, a deliverer that died mid-way, broadcasts, replies."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from bus_support import (
    PROJECT,
    add_worker,
    kinds,
    message_service,
    supervisor_takes_prompts,
)

from flotilla.bus.envelope import new_id
from flotilla.bus.message import Message, MessageKind, MessageState, agent_text
from flotilla.domain.errors import IllegalTransition, NotFound, UsageError
from flotilla.domain.states import WorkerState
from flotilla.store import SqlStore
from flotilla.store.bus_sql import bus_store
from flotilla.store.schema import prompts

S = MessageState
W = WorkerState


def prompt_texts(store: SqlStore) -> list[str]:
    with store.engine.connect() as conn:
        return [row.text for row in conn.execute(sa.select(prompts.c.text))]


def test_a_message_to_a_busy_headless_agent_waits_for_its_next_turn(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    service = message_service(sql_store, tmp_path)
    worker = add_worker(sql_store, "w1", W.RUNNING)
    sent = service.send(PROJECT, "lead", "w1", "please also add tests")
    assert sent.state is S.PENDING and sent.prompt_id is not None  # queued as the next turn
    assert sent.kind is MessageKind.DIRECT and sent.attempts == 1
    assert sql_store.get_worker(worker.id).state is W.RUNNING  # its turn goes on
    [text] = prompt_texts(sql_store)
    assert text == agent_text(sent) and "please also add tests" in text
    assert service.deliver_pending() == 0  # the turn has not started yet
    assert supervisor_takes_prompts(sql_store, worker) == 1
    assert service.deliver_pending() == 1
    delivered = service.get(sent.id)
    assert delivered.state is S.DELIVERED and delivered.delivered_at is not None
    assert kinds(sql_store, sent.id) == ["message.sent", "message.queued", "message.delivered"]
    read = service.mark_read(sent.id, reader="w1")
    assert read.state is S.READ and service.mark_read(sent.id).state is S.READ
    assert kinds(sql_store, sent.id)[-1] == "message.read"


def test_a_message_resumes_a_finished_headless_agent(sql_store: SqlStore, tmp_path: Path) -> None:
    service = message_service(sql_store, tmp_path)
    worker = add_worker(sql_store, "w1", W.SUCCEEDED)
    sent = service.send(PROJECT, "lead", "w1", "one more thing")
    assert sent.state is S.PENDING and sent.prompt_id is not None
    again = sql_store.get_worker(worker.id)
    assert again.state is W.QUEUED and again.settings["next_turn"] == "prompt"


def test_an_unknown_agent_is_refused_and_nothing_is_stored(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    service = message_service(sql_store, tmp_path)
    add_worker(sql_store, "w1")
    with pytest.raises(NotFound, match="no agent named 'nobody'"):
        service.send(PROJECT, "lead", "nobody", "hello")
    with pytest.raises(NotFound, match="no message"):
        service.send(PROJECT, "lead", "w1", "hello", reply_to="m-missing")
    with pytest.raises(UsageError, match="empty"):
        service.send(PROJECT, "lead", "w1", "   ")
    assert bus_store(sql_store).list_messages(PROJECT) == [] and kinds(sql_store) == []
    assert prompt_texts(sql_store) == []


def test_undeliverable_messages_fail_with_the_reason_and_stay_in_the_inbox(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    service = message_service(sql_store, tmp_path)
    add_worker(sql_store, "gone", W.CANCELLED)
    add_worker(sql_store, "tty", W.SUCCEEDED, interactive=True)
    cancelled = service.send(PROJECT, "lead", "gone", "hello")
    assert cancelled.state is S.FAILED and "cancelled" in (cancelled.error or "")
    pane = service.send(PROJECT, "lead", "tty", "hello")
    assert pane.state is S.FAILED and "not running" in (pane.error or "")
    assert [m.id for m in service.inbox(PROJECT, "gone")] == [cancelled.id]
    assert [m.id for m in service.inbox(PROJECT, "gone", unread_only=True)] == [cancelled.id]
    assert kinds(sql_store, cancelled.id) == ["message.sent", "message.failed"]
    with pytest.raises(IllegalTransition, match="not delivered"):
        service.mark_read(cancelled.id)


def test_a_message_fails_when_its_agent_is_removed_before_the_turn(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    service = message_service(sql_store, tmp_path)
    worker = add_worker(sql_store, "w1", W.RUNNING)
    sent = service.send(PROJECT, "lead", "w1", "hello")
    sql_store.delete_worker(worker.id)  # `fleet kill`: its prompts go with it
    service.deliver_pending()
    failed = service.get(sent.id)
    assert failed.state is S.FAILED and "removed" in (failed.error or "")


def test_an_interactive_agent_not_yet_started_keeps_its_message_pending(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    service = message_service(sql_store, tmp_path)
    add_worker(sql_store, "tty", W.QUEUED, interactive=True)
    sent = service.send(PROJECT, "lead", "tty", "hello")
    assert sent.state is S.PENDING and sent.prompt_id is None
    assert service.deliver_pending() == 0 and service.get(sent.id).attempts == 2


def test_concurrent_deliverers_hand_each_message_over_once(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    """Eight deliverers (as if eight daemons: each its own service and locks) race over
    the same 30 pending messages; each becomes exactly one follow-up prompt, and each is
    marked delivered once."""
    workers = [add_worker(sql_store, f"w{i}", W.RUNNING) for i in range(3)]
    db = bus_store(sql_store)
    first = message_service(sql_store, tmp_path)
    db.add_messages(
        [
            Message(
                id=new_id("m"),
                project=PROJECT,
                sender="lead",
                recipient=workers[i % 3].name,
                kind=MessageKind.DIRECT,
                body=f"note {i}",
                worker_id=workers[i % 3].id,
            )
            for i in range(30)
        ]
    )
    services = [first] + [message_service(sql_store, tmp_path) for _ in range(7)]
    barrier = threading.Barrier(len(services))

    def deliver(index: int) -> int:
        barrier.wait()
        return services[index].deliver_pending()

    with ThreadPoolExecutor(len(services)) as pool:
        list(pool.map(deliver, range(len(services))))
    texts = prompt_texts(sql_store)
    assert len(texts) == 30 and len(set(texts)) == 30
    queued = db.list_messages(PROJECT)
    assert all(m.state is S.PENDING and m.prompt_id is not None for m in queued)
    assert sorted(m.attempts for m in queued) == [1] * 30
    for worker in workers:
        supervisor_takes_prompts(sql_store, worker)
    with ThreadPoolExecutor(len(services)) as pool:
        list(pool.map(deliver, range(len(services))))
    assert all(m.state is S.DELIVERED for m in db.list_messages(PROJECT))
    assert kinds(sql_store).count("message.delivered") == 30
    assert kinds(sql_store).count("message.queued") == 30


def test_a_dead_deliverers_message_is_taken_over_without_a_second_prompt(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    service = message_service(sql_store, tmp_path, lease_s=0.2)
    worker = add_worker(sql_store, "w1", W.RUNNING)
    db = bus_store(sql_store)
    made = [
        Message(
            id=new_id("m"),
            project=PROJECT,
            sender="lead",
            recipient="w1",
            kind=MessageKind.DIRECT,
            body=body,
            worker_id=worker.id,
        )
        for body in ("reached the agent", "did not")
    ]
    db.add_messages(made)
    # A deliverer claimed both, queued the first as a prompt, then died.
    for message in made:
        assert db.claim(message.id, lease_s=0.2) is not None
    sql_store.add_prompt(worker.id, agent_text(made[0]))
    assert service.deliver_pending() == 0  # leases still running: hands off
    time.sleep(0.3)
    service.deliver_pending()
    texts = prompt_texts(sql_store)
    assert sorted(texts) == sorted(agent_text(m) for m in made)  # one prompt each
    for message in made:
        after = service.get(message.id)
        assert after.state is S.PENDING and after.prompt_id is not None


def test_a_prompt_stranded_by_a_turn_ending_meanwhile_is_started(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    """The supervisor ended the turn just before the message's prompt was queued."""
    service = message_service(sql_store, tmp_path)
    worker = add_worker(sql_store, "w1", W.RUNNING)
    sent = service.send(PROJECT, "lead", "w1", "hello")
    sql_store.update_worker(worker.id, state=W.SUCCEEDED)  # ended without seeing it
    service.deliver_pending()
    again = sql_store.get_worker(worker.id)
    assert again.state is W.QUEUED and again.settings["next_turn"] == "prompt"
    assert service.get(sent.id).state is S.PENDING


def test_a_broadcast_reaches_the_teams_unfinished_agents_but_not_the_sender(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    service = message_service(sql_store, tmp_path)
    add_worker(sql_store, "lead", W.RUNNING, team="red")
    add_worker(sql_store, "a", W.RUNNING, team="red")
    add_worker(sql_store, "b", W.QUEUED, batch="red")
    add_worker(sql_store, "done", W.SUCCEEDED, team="red")
    add_worker(sql_store, "other", W.RUNNING, team="blue")
    sent = service.broadcast(PROJECT, "lead", "red", "stand-up in 5")
    assert sorted(m.recipient for m in sent) == ["a", "b"]
    assert len({m.broadcast_id for m in sent}) == 1 and len({m.id for m in sent}) == 2
    assert all(m.kind is MessageKind.BROADCAST and m.team == "red" for m in sent)
    assert all(m.prompt_id is not None for m in sent)
    everyone = service.broadcast(PROJECT, "user", "default", "hi all")
    assert sorted(m.recipient for m in everyone) == ["a", "b", "lead", "other"]
    with pytest.raises(NotFound, match="team 'green'"):
        service.broadcast(PROJECT, "lead", "green", "anyone?")


def test_a_reply_to_a_person_lands_in_their_inbox(sql_store: SqlStore, tmp_path: Path) -> None:
    service = message_service(sql_store, tmp_path)
    add_worker(sql_store, "w1", W.RUNNING)
    question = service.send(PROJECT, "user", "w1", "which file?")
    answer = service.send(PROJECT, "w1", "user", "app.py", reply_to=question.id)
    assert answer.kind is MessageKind.REPLY and answer.reply_to == question.id
    assert answer.state is S.DELIVERED and answer.worker_id is None
    assert [m.id for m in service.inbox(PROJECT, "user", unread_only=True)] == [answer.id]
    with pytest.raises(UsageError, match="cannot mark it read"):
        service.mark_read(answer.id, reader="w1")
    service.mark_read(answer.id, reader="user")
    assert service.inbox(PROJECT, "user", unread_only=True) == []
    with pytest.raises(NotFound, match="no agent named 'user2'"):
        service.send(PROJECT, "w1", "user2", "x", reply_to=question.id)
