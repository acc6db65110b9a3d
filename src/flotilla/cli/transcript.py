"""One readable line per transcript record (normalized agent events)."""

from __future__ import annotations

import json
import time
from typing import Any

_LIMIT = 400


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _LIMIT else text[:_LIMIT] + " ..."


def format_record(record: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(record.get("t", 0)))
    kind = record.get("kind", "?")
    text = record.get("text", "")
    if kind == "tool_call":
        body = f"{record.get('tool')}: {_clip(json.dumps(record.get('data', {})))}"
    elif kind == "tool_result":
        flag = " (error)" if record.get("is_error") else ""
        body = f"{record.get('tool') or ''}{flag} {_clip(text)}"
    elif kind == "usage":
        usage = record.get("usage", {})
        cost = usage.get("cost_usd")
        money = f", ${cost:.4f}" if cost is not None else ""
        body = f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out{money}"
    elif kind == "session_started":
        body = f"session {record.get('session_id')}"
    elif kind == "rate_limited":
        wait = record.get("retry_after")
        body = _clip(text) + (f" (retry after {wait:g}s)" if wait else "")
    else:
        body = _clip(text)
    return f"{stamp} [{record.get('attempt', 1)}] {kind:<15} {body}"
