"""A fake GitHub REST API on 127.0.0.1: records requests, answers like GitHub does.

POST /repos/{owner}/{repo}/pulls -> 201 {html_url, number, ...}; 422 when a pull
request for the same head is already open; 401 for a token it does not know.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    url: str
    token: str
    requests: list[Recorded] = field(default_factory=list)
    open_heads: set[tuple[str, str]] = field(default_factory=set)
    next_number: int = 1


class _Handler(BaseHTTPRequestHandler):
    state: FakeGitHub  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body: Any = json.loads(raw) if raw else {}
        state = self.state
        state.requests.append(
            Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        if self.headers.get("Authorization") != f"Bearer {state.token}":
            self._answer(
                401,
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                },
            )
            return
        parts = self.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "repos" or parts[3] != "pulls":
            self._answer(404, {"message": "Not Found"})
            return
        owner, repo = parts[1], parts[2]
        key = (f"{owner}/{repo}", body["head"])
        if key in state.open_heads:
            self._answer(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {owner}:{body['head']}.",
                        }
                    ],
                    "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                },
            )
            return
        state.open_heads.add(key)
        number = state.next_number
        state.next_number += 1
        self._answer(
            201,
            {
                "number": number,
                "html_url": f"https://github.com/{owner}/{repo}/pull/{number}",
                "state": "open",
                "title": body["title"],
                "head": {"ref": body["head"]},
                "base": {"ref": body["base"]},
            },
        )


@contextmanager
def fake_github(token: str = "good-token") -> Iterator[FakeGitHub]:
    state = FakeGitHub(url="", token=token)

    class Handler(_Handler):
        pass

    Handler.state = state
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
