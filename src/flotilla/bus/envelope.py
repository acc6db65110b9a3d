"""The envelope every message and event travels in, whatever the transport.

Pure: no I/O. An envelope names who sent it, to whom (an agent, or nobody for a
fleet-wide event), what kind it is, a JSON payload, when it was made, and
optionally what it is about (`subject`: a worker, task or message id) and the
team it belongs to, which subscribers filter on. `canonical_bytes` is the one
encoding a signature covers, so the in-process transport and a networked one
(NATS JetStream) verify the same bytes. An `Event` is an envelope as the log
stored it: with its sequence number, the cursor a subscriber resumes from.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from flotilla.domain.errors import UsageError

MAX_FIELD = 128  # sender, recipient, subject, team
MAX_KIND = 64
_OPTIONAL = ("recipient", "subject", "team", "signature")


def new_id(prefix: str = "e") -> str:
    """A random id, unique enough to deduplicate republished envelopes by."""
    return f"{prefix}-{secrets.token_hex(10)}"


@dataclass(frozen=True)
class Envelope:
    id: str
    sender: str
    kind: str  # dotted: worker.state, message.sent, task.claimed ...
    payload: Mapping[str, Any] = field(default_factory=dict)
    recipient: str | None = None
    subject: str | None = None
    team: str | None = None
    created_at: float = 0.0
    signature: str | None = None

    @classmethod
    def new(
        cls,
        kind: str,
        sender: str,
        payload: Mapping[str, Any] | None = None,
        *,
        recipient: str | None = None,
        subject: str | None = None,
        team: str | None = None,
        created_at: float | None = None,
    ) -> Envelope:
        envelope = cls(
            id=new_id(),
            sender=sender,
            kind=kind,
            payload=dict(payload or {}),
            recipient=recipient,
            subject=subject,
            team=team,
            created_at=time.time() if created_at is None else created_at,
        )
        return check(envelope)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sender": self.sender,
            "recipient": self.recipient,
            "kind": self.kind,
            "subject": self.subject,
            "team": self.team,
            "payload": dict(self.payload),
            "created_at": self.created_at,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Envelope:
        """UsageError naming the first field that is missing or of the wrong type."""
        if not isinstance(raw, Mapping):
            raise UsageError(f"an envelope is a JSON object, not {type(raw).__name__}")
        unknown = sorted(set(raw) - _FIELDS)
        if unknown:
            raise UsageError(f"unknown envelope field(s): {', '.join(unknown)}")
        for name in ("id", "sender", "kind", "payload", "created_at"):
            if name not in raw:
                raise UsageError(f"the envelope has no {name!r}")
        created = raw["created_at"]
        if isinstance(created, bool) or not isinstance(created, int | float):
            raise UsageError("the envelope's 'created_at' must be a number (seconds since 1970)")
        payload = raw["payload"]
        if not isinstance(payload, Mapping):
            raise UsageError("the envelope's 'payload' must be a JSON object")
        return check(
            cls(
                id=raw["id"],
                sender=raw["sender"],
                kind=raw["kind"],
                payload=dict(payload),
                recipient=raw.get("recipient"),
                subject=raw.get("subject"),
                team=raw.get("team"),
                created_at=float(created),
                signature=raw.get("signature"),
            )
        )

    def canonical_bytes(self) -> bytes:
        """Every field but the signature, as sorted compact JSON in UTF-8."""
        unsigned = self.to_dict()
        del unsigned["signature"]
        return json.dumps(
            unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()


_FIELDS = frozenset(Envelope.__dataclass_fields__)


def check(envelope: Envelope) -> Envelope:
    """The envelope if every field is well-formed, else UsageError saying which is not."""
    for name, limit in (("id", 64), ("sender", MAX_FIELD), ("kind", MAX_KIND)):
        value = getattr(envelope, name)
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise UsageError(f"the envelope's {name!r} must be a text of 1 to {limit} characters")
    for name in _OPTIONAL:
        value = getattr(envelope, name)
        if value is not None and (not isinstance(value, str) or len(value) > 4096):
            raise UsageError(f"the envelope's {name!r} must be a text or null")
    for name in ("recipient", "subject", "team"):
        value = getattr(envelope, name)
        if value is not None and len(value) > MAX_FIELD:
            raise UsageError(f"the envelope's {name!r} is longer than {MAX_FIELD} characters")
    if not math.isfinite(envelope.created_at):
        raise UsageError("the envelope's 'created_at' must be a finite number")
    try:
        json.dumps(dict(envelope.payload), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the envelope's payload is not plain JSON: {exc}") from exc
    return envelope


def sign(envelope: Envelope, key: bytes) -> Envelope:
    """The envelope with an HMAC-SHA256 signature of its canonical bytes."""
    digest = hmac.new(key, envelope.canonical_bytes(), hashlib.sha256).hexdigest()
    return replace(envelope, signature=f"hmac-sha256:{digest}")


def verify(envelope: Envelope, key: bytes) -> bool:
    if envelope.signature is None:
        return False
    expected = sign(envelope, key).signature
    assert expected is not None
    return hmac.compare_digest(expected, envelope.signature)


@dataclass(frozen=True)
class Event:
    """An envelope as the event log holds it; `seq` is the cursor to resume after."""

    seq: int
    envelope: Envelope

    @property
    def kind(self) -> str:
        return self.envelope.kind

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, **self.envelope.to_dict()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        seq = raw.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise UsageError("an event's 'seq' must be a positive integer")
        rest = {k: v for k, v in raw.items() if k != "seq"}
        return cls(seq, Envelope.from_dict(rest))
