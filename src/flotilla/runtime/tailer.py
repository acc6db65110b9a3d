"""Read an agent's output file as it grows, one complete line at a time.

The offset only ever moves past complete lines, so storing `.offset` and building a
new `OutputTail(path, offset)` after a restart resumes exactly where the last reader
stopped: no line is lost or read twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from flotilla.counters import count
from flotilla.domain.errors import OperationFailed
from flotilla.runtime.launcher import EXIT

DEFAULT_CHUNK = 1 << 20  # bytes read per call at most; call again while lines come back


class OutputTail:
    """Incremental reader of complete lines of a file that may not exist yet."""

    def __init__(self, path: Path, offset: int = 0, chunk_bytes: int = DEFAULT_CHUNK) -> None:
        if offset < 0:
            raise ValueError("offset must be >= 0")
        self.path = path
        self.offset = offset
        self._chunk = chunk_bytes

    def read_lines(self, final: bool = False) -> list[str]:
        """Complete lines written since the last call, without their line endings.

        A partial last line stays unread until its newline arrives; with `final=True`
        (the writer has exited) it is returned as a line of its own. A line longer than
        the chunk size is returned in pieces rather than never.
        """
        if not self.path.exists():
            return []
        try:
            with self.path.open("rb") as handle:
                size = handle.seek(0, 2)
                if size < self.offset:
                    # The file was replaced or truncated under us: start it over.
                    count("runtime.tail_truncated")
                    self.offset = 0
                handle.seek(self.offset)
                data = handle.read(self._chunk)
        except FileNotFoundError:
            count("runtime.tail_vanished")
            return []
        end = data.rfind(b"\n") + 1
        if final and len(data) < self._chunk:
            end = len(data)  # the writer is gone: the rest is all there will be
        elif end == 0 and len(data) >= self._chunk:
            end = len(data)  # an overlong line: hand over a piece
        complete = data[:end]
        self.offset += len(complete)
        if not complete:
            return []
        lines = complete.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        return [_decode(line) for line in lines]


def _decode(line: bytes) -> str:
    if line.endswith(b"\r"):
        line = line[:-1]
    return line.decode("utf-8", errors="replace")


def read_exit(attempt_dir: Path) -> int | None:
    """The agent's exit status from the shim's `exit` file, or None while it runs.

    Accepts the shim's plain text ("137\\n") and a JSON object {"code": N}.
    """
    path = attempt_dir / EXIT
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        count("runtime.exit_vanished")
        return None
    try:
        if text.startswith("{"):
            return int(json.loads(text)["code"])
        return int(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise OperationFailed(f"exit file {path} holds {text[:40]!r}, not a status") from exc
