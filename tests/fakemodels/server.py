"""A threaded HTTP server on 127.0.0.1 that plays one model provider's API for a test.

Each provider (anthropic, openai, gemini) supplies a `Provider`: which requests are
model calls, how many model turns a request's conversation holds, how a script step
is streamed as SSE, and what its error bodies look like. This module does the HTTP:
request logging, failure modes, chunked SSE, and harmless answers to anything else.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

from flotilla.counters import count

from .script import Mode, Request, RequestLog, Script, Step

Answer = Iterator[bytes] | dict[str, Any]


class Provider(Protocol):
    name: str

    def is_model_call(self, method: str, path: str) -> bool: ...

    def model_turns(self, body: Any) -> int:
        """How many model (assistant) turns the request's conversation already holds."""
        ...

    def answer(self, step: Step, turn: int, body: Any, path: str) -> Answer:
        """SSE events (already framed), or a JSON body, answering a model call with `step`."""
        ...

    def error_body(self, status: int) -> dict[str, Any]: ...

    def other(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """(status, JSON body or None) for requests that are not model calls."""
        ...


class FakeModelServer:
    """Start with `with FakeModelServer(provider, script) as fake:`; `fake.base_url`."""

    def __init__(self, provider: Provider, script: Script) -> None:
        self.provider = provider
        self.script = script
        self.log = RequestLog()
        self._lock = threading.Lock()
        self._model_calls = 0
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits for one poll
            name=f"fake-{provider.name}",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Request]:
        return self.log.all()

    def model_calls(self) -> list[Request]:
        return self.log.model_calls()

    def start(self) -> FakeModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def failure_status(self) -> int | None:
        """Claim the next model-call slot; the error status it must get, if any."""
        with self._lock:
            index = self._model_calls
            self._model_calls += 1
        mode = self.script.mode
        if mode is Mode.RATE_LIMITED:
            return 429
        if mode is Mode.UNAUTHORIZED:
            return 401
        if mode is Mode.RATE_LIMITED_FIRST and index < self.script.fail_first:
            return 429
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a CLI that keeps a connection open must not hang stop()
    fake: FakeModelServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr logging; the request log is the record."""

    def do_HEAD(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        body = _parse_json(self._read_body(), self.headers.get("Content-Encoding", ""))
        headers = {k.lower(): v for k, v in self.headers.items()}
        model_call = fake.provider.is_model_call(self.command, split.path)
        status = fake.failure_status() if model_call else None
        fake.log.add(
            Request(
                method=self.command,
                path=split.path,
                query=split.query,
                headers=headers,
                body=body,
                model_call=model_call,
                status=status or 200,
            )
        )
        if status is not None:
            extra = {"Retry-After": str(fake.script.retry_after)} if status == 429 else {}
            self._send_json(status, fake.provider.error_body(status), extra)
        elif model_call:
            turn = fake.provider.model_turns(body)
            step = fake.script.step(turn)
            answer = fake.provider.answer(step, turn, body, split.path)
            if isinstance(answer, dict):
                self._send_json(200, answer, {})
            else:
                self._send_sse(answer)
        else:
            code, answer = fake.provider.other(self.command, split.path, body)
            self._send_json(code, answer, {})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, answer: Any, extra: dict[str, str]) -> None:
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_sse(self, events: Iterator[bytes]) -> None:
        """Chunked SSE; the connection closes after the last event."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True


def _parse_json(raw: bytes, encoding: str) -> Any:
    """The request body as JSON; None when empty; the text when it is not JSON."""
    if not raw:
        return None
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding == "deflate":
        raw = zlib.decompress(raw)
    try:
        return json.loads(raw)
    except ValueError:
        count("fakemodels.non_json_body")
        return raw.decode("utf-8", "replace")


def sse(event: str | None, data: Any) -> bytes:
    """One SSE frame; `event` None gives a data-only frame (Gemini's alt=sse)."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()
