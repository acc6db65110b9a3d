"""The real claude, codex and gemini CLIs run end to end through Flotilla.

`fleet create` -> the daemon -> a worktree -> the real agent CLI -> a fake model API on
127.0.0.1; then `fleet list` / `fleet result` show what the supervisor made of it.
Only the model is fake: the CLI, its tools, git, the daemon and its store are real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import Fleet
from realfleet import (
    KINDS,
    Retry,
    changed_paths,
    configure,
    create,
    describe,
    raw_events,
    wait_attempt,
    wait_done,
)

from fakemodels import FinalText, Mode, Script, WriteFile, fake_server
from realcli.drive import require

pytestmark = [pytest.mark.real_cli, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.mark.parametrize("kind", KINDS)
def test_agent_writes_a_file_and_the_result_has_files_tokens_and_cost(
    kind: str, fleet: Fleet, tmp_path: Path
) -> None:
    require(kind)
    target = tmp_path / "worktrees" / "writer" / "hello.txt"
    script = Script.write_then_say(str(target), "hello from the agent\n", "Wrote hello.txt.")
    with fake_server(kind, script) as fake:
        setup = configure(fleet, kind, fake)
        create(fleet, setup, "writer", "write hello.txt")
        worker = wait_done(fleet, "writer")
        assert worker["state"] == "succeeded", describe(fleet, "writer")

    assert target.read_text() == "hello from the agent\n"
    result = fleet.json("result", "writer")
    assert result["outcome"] == "success"
    assert "hello.txt" in changed_paths(result), result["files"]
    assert result["summary"] == "Wrote hello.txt."
    assert worker["session_id"] and result["session_id"] == worker["session_id"]
    in_tokens, out_tokens = script.usage_until(2)  # two model turns: the write, the text
    assert (result["input_tokens"], result["output_tokens"]) == (in_tokens, out_tokens)
    assert (worker["input_tokens"], worker["output_tokens"]) == (in_tokens, out_tokens)
    price = setup.price()
    if price is None:  # claude prints its own cost
        (cli_result,) = [e for e in raw_events(fleet, "writer") if e.get("type") == "result"]
        assert cli_result["total_cost_usd"] > 0
        expected = cli_result["total_cost_usd"]
    else:  # codex and gemini print none: Flotilla prices the usage from [prices]
        expected = (in_tokens * price[0] + out_tokens * price[1]) / 1_000_000
    assert result["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert worker["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert worker["attempt"] == 1 and worker["retries"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_rate_limited_run_is_retried_by_flotilla_and_succeeds(
    kind: str, fleet: Fleet, tmp_path: Path
) -> None:
    require(kind)
    target = tmp_path / "worktrees" / "limited" / "after-429.txt"
    script = Script.write_then_say(
        str(target), "written after a 429\n", mode=Mode.RATE_LIMITED_FIRST, fail_first=1
    )
    with fake_server(kind, script) as fake:
        setup = configure(fleet, kind, fake, Retry(base_delay_s=0.2, max_delay_s=1.0))
        create(fleet, setup, "limited", "write after-429.txt")
        worker = wait_done(fleet, "limited")
        statuses = [r.status for r in fake.model_calls()]

    assert worker["state"] == "succeeded", describe(fleet, "limited")
    assert worker["retries"] >= 1 and worker["attempt"] == worker["retries"] + 1, worker
    assert statuses[0] == 429 and statuses.count(429) == 1, statuses
    assert target.read_text() == "written after a 429\n"
    result = fleet.json("result", "limited")
    assert result["outcome"] == "success"
    assert "after-429.txt" in changed_paths(result)


@pytest.mark.parametrize("kind", KINDS)
def test_unauthorized_run_fails_as_auth_failed_without_retry(
    kind: str, fleet: Fleet, tmp_path: Path
) -> None:
    require(kind)
    target = tmp_path / "worktrees" / "denied" / "never.txt"
    script = Script.write_then_say(str(target), "x\n", mode=Mode.UNAUTHORIZED)
    with fake_server(kind, script) as fake:
        setup = configure(fleet, kind, fake, Retry(base_delay_s=0.1, max_delay_s=0.5))
        create(fleet, setup, "denied", "write never.txt")
        worker = wait_done(fleet, "denied")
        statuses = [r.status for r in fake.model_calls()]

    assert worker["state"] == "failed", describe(fleet, "denied")
    assert worker["outcome"] == "auth_failed", describe(fleet, "denied")
    assert worker["attempt"] == 1 and worker["retries"] == 0, worker
    assert statuses == [401], statuses  # neither the CLI nor Flotilla tried again
    assert worker["error"]
    assert fleet.json("result", "denied")["outcome"] == "auth_failed"
    assert not target.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_follow_up_prompt_resumes_the_same_session(kind: str, fleet: Fleet, tmp_path: Path) -> None:
    require(kind)
    worktree = tmp_path / "worktrees" / "talker"
    script = Script(
        steps=(
            WriteFile(str(worktree / "one.txt"), "one\n"),
            FinalText("First done."),
            WriteFile(str(worktree / "two.txt"), "two\n"),
            FinalText("Second done."),
        )
    )
    with fake_server(kind, script) as fake:
        setup = configure(fleet, kind, fake)
        create(fleet, setup, "talker", "write one.txt")
        first = wait_done(fleet, "talker")
        assert first["state"] == "succeeded", describe(fleet, "talker")
        assert first["session_id"], first
        calls_before = len(fake.model_calls())

        reply = fleet.json("prompt", "talker", "now write two.txt")
        assert reply["status"] == "queued", reply
        second = wait_attempt(fleet, "talker", 2)
        resumed_call = fake.model_calls()[calls_before]

    assert second["state"] == "succeeded", describe(fleet, "talker")
    assert second["attempt"] == 2 and second["retries"] == 0
    assert second["session_id"] == first["session_id"]
    assert (worktree / "one.txt").read_text() == "one\n"
    assert (worktree / "two.txt").read_text() == "two\n"
    conversation = repr(resumed_call.body)
    for earlier in ("write one.txt", "First done.", "now write two.txt"):
        assert earlier in conversation, f"{earlier!r} not resent on resume"
    result = fleet.json("result", "talker")
    assert result["outcome"] == "success"
    assert result["summary"] == "Second done."
    assert result["session_id"] == first["session_id"]
    assert {"one.txt", "two.txt"} <= changed_paths(result)
    # Tokens and cost add up over the turns; each turn makes two model calls.
    first_in, first_out = script.usage_until(2)
    both_in, both_out = script.usage_until(4)
    assert (first["input_tokens"], first["output_tokens"]) == (first_in, first_out)
    totals = (result["input_tokens"], result["output_tokens"])
    # codex reports thread-cumulative usage on resume (openai/codex#17539): Flotilla
    # subtracts what the session reported before, so turns are not counted twice.
    assert totals == (both_in, both_out)
    price = setup.price()
    if price is None:  # claude: the sum of the two runs' own figures
        cli_results = [e for e in raw_events(fleet, "talker") if e.get("type") == "result"]
        assert len(cli_results) == 2
        expected = sum(e["total_cost_usd"] for e in cli_results)
    else:
        expected = (both_in * price[0] + both_out * price[1]) / 1_000_000
    assert result["cost_usd"] == pytest.approx(expected, abs=1e-6)
