#!/usr/bin/env python3
"""Write docs/openapi.json: the OpenAPI document of the daemon's HTTP API.

The app is built in process the way the daemon builds it (build_app with the
coordination side's routers), over a throwaway SQLite store, so the document is
exactly what a running `fleet serve` serves at /openapi.json. No daemon, secret or
repository is needed.

    .venv/bin/python scripts/export-openapi.py          # rewrite docs/openapi.json
    .venv/bin/python scripts/export-openapi.py --check  # exit 1 if it is out of date

tests/api_contract/test_openapi_doc.py fails when the checked-in file is stale.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "openapi.json"
REFRESH = ".venv/bin/python scripts/export-openapi.py"


def build_document() -> dict[str, Any]:
    """The OpenAPI document of the app the daemon serves."""
    from flotilla.orchestrator.service import FleetService
    from flotilla.server.apikeys import ApiKeys
    from flotilla.server.app import build_app
    from flotilla.server.auth import Authority
    from flotilla.server.coordination_wiring import CoordinationSide
    from flotilla.store import open_store

    with tempfile.TemporaryDirectory(prefix="flotilla-openapi-") as tmp:
        home = Path(tmp)
        store = open_store(f"sqlite:///{home / 'openapi.db'}")
        service = FleetService(store, home)

        async def document() -> dict[str, Any]:
            side = await CoordinationSide.start(service)
            try:
                authority = Authority(tokens=None, api_keys=ApiKeys.at(home))
                # As server/daemon.py's serve() builds it (keep the two in step).
                app = build_app(service, authority, routers=side.routers(service), bus=side.bus)
                return app.openapi()
            finally:
                await side.close()

        try:
            return asyncio.run(document())
        finally:
            store.close()


def render(document: dict[str, Any]) -> str:
    """The file's text: stable (same app, same bytes), diff-friendly."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    parser.add_argument("--output", type=Path, default=DOC, help=f"default: {DOC}")
    args = parser.parse_args(argv)
    text = render(build_document())
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    if args.check:
        if current != text:
            print(f"{args.output} is out of date: run {REFRESH}", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(f"{args.output} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
