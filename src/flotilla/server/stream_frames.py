"""What the live streams send and what their clients ask for: event frames (as JSON,
made once per event however many clients get it), worker.log frames read from a
worker's transcript file, and the stream parameters (filters and cursors).

Pure but for `read_transcript`, which reads the file. Used by routes_stream.py and
ws_connection.py.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from flotilla.bus.envelope import Event
from flotilla.bus.filters import EventFilter
from flotilla.counters import count
from flotilla.domain.errors import UsageError
from flotilla.domain.worker import Worker

LOG_KIND = "worker.log"
LOG_CHUNK = 1 << 20  # transcript bytes read per step at most
BATCHES_KEPT = 256

BatchKey = tuple[EventFilter, int, int]  # filter, first seq, last seq


def event_frame(event: Event) -> dict[str, Any]:
    env = event.envelope
    return {
        "seq": event.seq,
        "id": env.id,
        "kind": env.kind,
        "sender": env.sender,
        "recipient": env.recipient,
        "subject": env.subject,
        "team": env.team,
        "payload": dict(env.payload),
        "created_at": env.created_at,
    }


class FrameCache:
    """The JSON text of recent events, made once however many clients receive them."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._texts: collections.OrderedDict[int, str] = collections.OrderedDict()
        # Batched frames too: clients with one filter that keep up get the same batches.
        self._batches: collections.OrderedDict[BatchKey, str] = collections.OrderedDict()

    def text(self, event: Event) -> str:
        found = self._texts.get(event.seq)
        if found is None:
            found = dumps(event_frame(event))
            self._texts[event.seq] = found
            if len(self._texts) > self._size:
                self._texts.popitem(last=False)
        return found

    def batch(self, event_filter: EventFilter, events: list[Event]) -> str:
        """One frame of several events, `{"events": [...]}`. A subscription gets every
        event of its filter in order, so the filter and the first and last seq name the
        batch: made once for every client that gets it."""
        key = (event_filter, events[0].seq, events[-1].seq)
        found = self._batches.get(key)
        if found is None:
            found = '{"events":[' + ",".join(self.text(event) for event in events) + "]}"
            self._batches[key] = found
            if len(self._batches) > BATCHES_KEPT:
                self._batches.popitem(last=False)
        return found


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def log_frame(worker: Worker, record: Any, offset: int) -> dict[str, Any]:
    team = worker.settings.get("team")
    at = record.get("t") if isinstance(record, dict) else None
    return {
        "seq": None,
        "id": f"{worker.id}:{offset}",
        "kind": LOG_KIND,
        "sender": "flotilla",
        "recipient": None,
        "subject": worker.id,
        "team": team if isinstance(team, str) else None,
        "payload": {"worker_id": worker.id, "name": worker.name, "offset": offset, "line": record},
        "created_at": at if isinstance(at, int | float) else time.time(),
    }


def read_transcript(path: Path, offset: int) -> tuple[list[tuple[Any, int]], int]:
    """Complete lines of the transcript after `offset`: ([(record, end offset)], new offset)."""
    try:
        with path.open("rb") as handle:
            if handle.seek(0, 2) < offset:
                count("stream.log_truncated")  # replaced under us: start it over
                offset = 0
            handle.seek(offset)
            data = handle.read(LOG_CHUNK)
    except FileNotFoundError:
        count("stream.log_not_written_yet")
        return [], offset
    end = data.rfind(b"\n") + 1
    if end == 0 and len(data) >= LOG_CHUNK:
        end = len(data)  # an overlong line: hand it over in pieces rather than never
    lines: list[tuple[Any, int]] = []
    position = offset
    for raw in data[:end].splitlines(keepends=True):
        position += len(raw)
        text = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if not text.strip():
            continue
        try:
            record: Any = json.loads(text)
        except ValueError:
            count("stream.log_line_not_json")
            record = {"text": text}
        lines.append((record, position))
    return lines, offset + end


# -- parameters ------------------------------------------------------------------------


@dataclass
class Params:
    event_filter: EventFilter
    since: int | None = None
    log_offsets: dict[str, int] = field(default_factory=dict)  # per worker id
    log_offset_all: int | None = None  # for every worker not in log_offsets
    batch: bool = False  # frames of several events: {"events": [...]}

    @property
    def wants_logs(self) -> bool:
        return LOG_KIND in self.event_filter.kinds


def parse_params(raw: Mapping[str, Any]) -> Params:
    """From query parameters or a `subscribe` frame; UsageError naming what is wrong."""
    texts = {k: raw.get(k) for k in ("kind", "subject", "team")}
    for name, value in texts.items():
        if value is not None and not isinstance(value, str | list):
            raise UsageError(f"'{name}' is a comma-separated text or a list")
    params = Params(EventFilter.of(texts["kind"], texts["subject"], texts["team"]))
    params.since = cursor(raw.get("since"), "since")
    params.batch = flag(raw.get("batch"), "batch")
    offsets = raw.get("log_offset")
    if isinstance(offsets, str) and ":" in offsets:
        for item in offsets.split(","):
            worker_id, _, number = item.rpartition(":")
            params.log_offsets[worker_id.strip()] = cursor(number, "log_offset") or 0
    else:
        params.log_offset_all = cursor(offsets, "log_offset")
    if params.wants_logs and not params.event_filter.subjects:
        raise UsageError(f"name the worker(s) whose lines you want: kind={LOG_KIND}&subject=ID")
    return params


def flag(value: Any, name: str) -> bool:
    """A query parameter's text, or a subscribe frame's JSON true/false/1/0."""
    if isinstance(value, bool):
        return value
    if value is None or value in (0, "", "0", "false"):
        return False
    if value in (1, "1", "true"):
        return True
    raise UsageError(f"'{name}' is 1 or 0 (true or false), not {value!r}")


def cursor(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UsageError(f"'{name}' must be a whole number >= 0, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"'{name}' must be a whole number >= 0, not {value!r}") from None
    if number < 0:
        raise UsageError(f"'{name}' must be >= 0 (0: from the start), not {number}")
    return number
