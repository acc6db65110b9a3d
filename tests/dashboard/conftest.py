"""Fixtures of the dashboard tests: one `fleet serve` with scripted agents for the session,
one headless Chromium for the session, a fresh browser context (and tab) per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashboard_support import CHROMIUM, Served, dashboard_fleet


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with dashboard_fleet(tmp_path_factory.mktemp("dashboard")) as running:
        if httpx.get(running.url, timeout=10).status_code != 200:
            pytest.fail("GET / is not the dashboard: build_app must include dashboard_router()")
        yield running


@pytest.fixture(scope="module")  # not longer: a live sync Playwright holds the thread's
def browser() -> Iterator[Any]:  # event loop, which later asyncio tests need
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/prerequisites.sh (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A tab of its own (sessionStorage starts empty); uncaught script errors fail the test."""
    context = browser.new_context()
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == [], f"the page threw: {errors}"
