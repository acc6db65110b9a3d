"""The envelope and filters, pure: round trips, canonical bytes, signatures, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotilla.bus.envelope import Envelope, Event, check, sign, verify
from flotilla.bus.filters import EventFilter, kind_matches
from flotilla.bus.message import (
    MESSAGE_MOVES,
    Message,
    MessageKind,
    MessageState,
    agent_text,
    check_body,
    check_move,
)
from flotilla.domain.errors import IllegalTransition, UsageError

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda s: s.strip() != ""
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
envelopes = st.builds(
    Envelope,
    id=st.from_regex(r"e-[0-9a-f]{20}", fullmatch=True),
    sender=names,
    kind=st.from_regex(r"[a-z]{1,10}(\.[a-z_]{1,10}){0,3}", fullmatch=True),
    payload=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    recipient=st.none() | names,
    subject=st.none() | names,
    team=st.none() | names,
    created_at=st.floats(0, 4e9, allow_nan=False),
    signature=st.none() | st.text(max_size=80),
)


@given(envelopes)
def test_an_envelope_survives_json_and_back_unchanged(envelope: Envelope) -> None:
    wire = json.dumps(envelope.to_dict())
    again = Envelope.from_dict(json.loads(wire))
    assert again == envelope
    assert again.canonical_bytes() == envelope.canonical_bytes()


@given(envelopes, st.integers(1, 2**40))
def test_an_event_survives_json_and_back(envelope: Envelope, seq: int) -> None:
    event = Event(seq, envelope)
    assert Event.from_dict(json.loads(json.dumps(event.to_dict()))) == event


@given(envelopes, st.binary(min_size=16, max_size=64))
def test_a_signature_verifies_after_a_round_trip_and_breaks_on_any_change(
    envelope: Envelope, key: bytes
) -> None:
    signed = sign(envelope, key)
    assert verify(Envelope.from_dict(json.loads(json.dumps(signed.to_dict()))), key)
    assert not verify(signed, key + b"x")
    assert not verify(replace(signed, sender=signed.sender + "!"), key)
    assert not verify(replace(signed, payload={**signed.payload, "extra": 1}), key)
    assert not verify(replace(envelope, signature=None), key)


def test_canonical_bytes_leave_out_the_signature_and_sort_keys() -> None:
    envelope = Envelope("e-1", "a", "k", {"b": 1, "a": [1, "é"]}, created_at=1.5)
    raw = envelope.canonical_bytes()
    assert raw == replace(envelope, signature="x").canonical_bytes()
    assert b"signature" not in raw
    assert raw.index(b'"a":') < raw.index(b'"b":')
    assert "é".encode() in raw


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ([], "JSON object"),
        ({"id": "e", "sender": "a", "kind": "k", "payload": {}}, "created_at"),
        ({"id": "e", "sender": "a", "kind": "k", "payload": [], "created_at": 1}, "payload"),
        ({"id": "e", "sender": "a", "kind": "k", "payload": {}, "created_at": "x"}, "number"),
        ({"id": "e", "sender": "", "kind": "k", "payload": {}, "created_at": 1}, "sender"),
        ({"id": "e", "sender": "a", "kind": "k", "payload": {}, "created_at": 1, "x": 1}, "x"),
        ({"id": "e", "sender": "a", "kind": "k" * 65, "payload": {}, "created_at": 1}, "kind"),
    ],
)
def test_a_malformed_envelope_is_refused_naming_the_field(raw: Any, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        Envelope.from_dict(raw)


def test_a_payload_that_is_not_plain_json_is_refused() -> None:
    with pytest.raises(UsageError, match="plain JSON"):
        Envelope.new("k", "a", {"x": {1, 2}})
    with pytest.raises(UsageError, match="plain JSON"):
        check(Envelope("e-1", "a", "k", {"x": float("nan")}))


def test_new_envelopes_get_distinct_ids_and_a_time() -> None:
    one, two = Envelope.new("k", "a"), Envelope.new("k", "a")
    assert one.id != two.id and one.created_at > 0


@pytest.mark.parametrize(
    ("prefix", "kind", "matches"),
    [
        ("worker", "worker", True),
        ("worker", "worker.state", True),
        ("worker", "workers.state", False),
        ("worker.state", "worker", False),
        ("message.sent", "message.sent", True),
    ],
)
def test_kind_prefixes_match_whole_segments(prefix: str, kind: str, matches: bool) -> None:
    assert kind_matches(prefix, kind) is matches


def test_a_filter_needs_every_dimension_and_any_value_within_one() -> None:
    wanted = EventFilter.of("worker, message.", subjects=["w1", "m1"], teams="red")
    hit = Envelope("e-1", "a", "message.sent", subject="m1", team="red")
    assert wanted.kinds == ("message", "worker")
    assert wanted.matches(hit)
    assert not wanted.matches(replace(hit, team="blue"))
    assert not wanted.matches(replace(hit, subject="m2"))
    assert not wanted.matches(replace(hit, kind="task.created"))
    assert EventFilter.of("*,worker").everything
    assert EventFilter().matches(hit)


def test_a_filter_with_too_many_terms_is_refused() -> None:
    with pytest.raises(UsageError, match="at most 50"):
        EventFilter.of([f"k{i}" for i in range(51)])


def test_message_moves_never_lead_back_out_of_delivered_or_failed() -> None:
    for state in (MessageState.DELIVERED, MessageState.READ, MessageState.FAILED):
        assert MessageState.PENDING not in MESSAGE_MOVES[state]
        assert MessageState.DELIVERING not in MESSAGE_MOVES[state]
    with pytest.raises(IllegalTransition, match="not delivered"):
        check_move(MessageState.PENDING, MessageState.READ)
    with pytest.raises(IllegalTransition):
        check_move(MessageState.FAILED, MessageState.PENDING)


def test_the_agent_reads_who_wrote_how_to_answer_and_the_body() -> None:
    message = Message("m-1", "/p", "lead", "w1", MessageKind.REPLY, "do X", reply_to="m-0")
    text = agent_text(message)
    first = text.splitlines()[0]
    assert "m-1" in first and "lead" in first and "m-0" in first
    assert "do X" in text and "--reply-to m-1" in text


def test_an_empty_or_huge_body_is_refused() -> None:
    with pytest.raises(UsageError, match="empty"):
        check_body("  \n")
    with pytest.raises(UsageError, match="limit"):
        check_body("x" * 70_000)
