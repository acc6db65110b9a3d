"""The dashboard in a real browser (Playwright, the system's Chromium, headless) against a
real `fleet serve` with scripted agents: live updates without a reload, a streaming
transcript, a kill from the page, and what a monitor's token may not do."""

from __future__ import annotations

import re
import time
from typing import Any

import psutil
import pytest
from dashboard_support import GATED, LIVE_S, LONG, QUICK, Served, open_dashboard, row
from playwright.sync_api import expect

pytestmark = pytest.mark.slow


def worker(served: Served, name: str) -> dict[str, Any] | None:
    return served.workers().get(name)


def test_the_page_needs_no_token_and_runs_only_its_own_scripts(served: Served, page: Any) -> None:
    answer = page.goto(served.url)
    assert answer is not None and answer.status == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    expect(page.locator("#login-view")).to_be_visible()  # the data needs a token
    expect(page.locator("#login-error")).to_have_text("this service needs a token")


def test_workers_table_updates_live_without_reload(served: Served, page: Any) -> None:
    open_dashboard(page, served, served.token("coordinator"))
    expect(page.locator("#mode")).to_have_text("live · WebSocket")
    expect(row(page, "quick")).to_have_count(0)

    served.create("quick", QUICK)  # after the page loaded, through the CLI
    expect(row(page, "quick")).to_be_visible(timeout=LIVE_S)
    state = row(page, "quick").locator(".state")
    expect(state).to_have_text("running", timeout=LIVE_S)
    expect(state).to_have_text("succeeded", timeout=LIVE_S)
    expect(row(page, "quick")).to_contain_text("$0.01")
    assert page.evaluate("window.loadedOnce") is True  # the same document all along

    scripted = page.locator('#leaderboard-kind tr[data-key="scripted"]')
    expect(scripted).to_contain_text("100%")
    page.select_option("#filter-state", "failed")
    expect(row(page, "quick")).to_have_count(0)
    page.select_option("#filter-state", "")
    page.fill("#filter-text", "uic")
    expect(row(page, "quick")).to_be_visible()
    expect(page.locator("#workers tbody tr")).to_have_count(1)


def test_transcript_streams_and_kill_stops_the_agent(served: Served, page: Any) -> None:
    gate = served.fleet.home.parent / "go-signal"
    open_dashboard(page, served, served.token("team-lead"))
    served.create("streamer", GATED, prompt=str(gate))
    expect(row(page, "streamer").locator(".state")).to_have_text("running", timeout=LIVE_S)
    row(page, "streamer").click()

    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text("first line from the agent", timeout=LIVE_S)
    assert "second line" not in transcript.inner_text()  # the agent is still waiting
    gate.touch()
    expect(transcript).to_contain_text("second line, after the signal", timeout=LIVE_S)
    expect(transcript).to_contain_text("still working", timeout=LIVE_S)  # heartbeats go on
    assert page.evaluate("window.loadedOnce") is True

    running = worker(served, "streamer")
    assert running is not None and running["state"] == "running" and running["pid"]
    pid = running["pid"]
    assert psutil.pid_exists(pid)

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#kill")
    expect(page.locator("#detail h2 .state")).to_have_text("cancelled", timeout=LIVE_S)
    expect(page.locator("#notices")).to_contain_text("kill streamer: done")
    expect(page.locator("#kill")).to_be_disabled()
    expect(row(page, "streamer")).to_have_count(0, timeout=LIVE_S)  # its record is removed

    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert worker(served, "streamer") is None


def test_monitor_cannot_kill_and_the_page_polls_without_a_websocket(
    served: Served, page: Any
) -> None:
    page.route_web_socket(re.compile(r"/ws\b"), lambda socket: socket.close())  # refused
    page.goto(served.url)
    page.fill("#token", "not-a-token")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("invalid token")
    expect(page.locator("#app")).to_be_hidden()

    open_dashboard(page, served, served.token("monitor"))
    expect(page.locator("#mode")).to_have_text("live · polling")
    served.create("watched", LONG)  # after the page loaded: it shows up by polling
    expect(page.locator("#viewer")).to_contain_text("monitor")
    expect(row(page, "watched").locator(".state")).to_have_text("running", timeout=LIVE_S)
    row(page, "watched").click()
    kill = page.locator("#kill")
    expect(kill).to_be_disabled()
    expect(kill).to_have_attribute("title", "your role 'monitor' may not 'kill'")
    expect(page.locator("#prompt-send")).to_be_disabled()
    expect(page.locator("#merge")).to_be_disabled()

    # Forced: enable the button and click it; the server refuses and the page says so.
    page.on("dialog", lambda dialog: dialog.accept())
    page.evaluate(
        "() => { const b = document.querySelector('#kill'); b.disabled = false; b.click(); }"
    )
    expect(page.locator("#notices .error")).to_contain_text(
        "kill watched: 403: role 'monitor' may not 'kill' (roles that may: coordinator, team-lead)"
    )
    still = worker(served, "watched")
    assert still is not None and still["state"] == "running"
    assert psutil.pid_exists(still["pid"])
    with served.api(served.token("coordinator")) as api:  # done with it
        assert api.delete("/workers/watched", params={"project": still["project"]}).is_success


def test_expired_token_shows_the_login_again(served: Served, page: Any) -> None:
    open_dashboard(page, served, served.token("monitor", ttl_s=4))
    expect(page.locator("#login-view")).to_be_visible(timeout=LIVE_S)
    expect(page.locator("#login-error")).to_contain_text("token expired at")
    expect(page.locator("#app")).to_be_hidden()
