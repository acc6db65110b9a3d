"""The scripted agent: an offline coding agent that follows a TOML script.

It powers the demo, dry runs and tests: it really edits files, runs commands and
commits in its working directory; only the language model is replaced by the
script. Output is one JSON object a line, each a normalized `AgentEvent`
(`AgentEvent.to_dict()`), so its parser is trivial.

    python -m flotilla.executors.scripted_agent [--script FILE] [--session-id ID]
        [--resume] [--hooks FILE] [--] [PROMPT]

PROMPT defaults to env FLOTILLA_PROMPT, FILE to env FLOTILLA_SCRIPT; the attempt
number comes from env FLOTILLA_ATTEMPT (default 1). With no script, the default
one writes FLOTILLA_NOTES.md containing the prompt and says so (a dry run).

Script format (TOML):

    [[steps]]
    action = "write"              # write | append: path, content
    path = "hello.py"
    content = "print('hello')\\n"

    [[steps]]
    action = "rate_limit"         # only on the first attempt
    attempt = 1                   # or a list: attempt = [1, 2]
    retry_after = 5

    [[steps]]
    action = "commit"
    message = "Add hello for {prompt}"

    [[on_prompt]]                 # run instead of [[steps]] for a follow-up (--resume)
    action = "say"
    text = "follow-up done"

Actions and their fields (those in brackets are optional):

- write, append: path, content (paths stay inside the working directory)
- replace: path, old, new (every occurrence; a miss is a failed tool call)
- run: command (through sh; TOOL_CALL + TOOL_RESULT with output and exit code),
  [check = true: a non-zero exit fails the run]
- commit: message (`git add -A` then `git commit`)
- sleep: seconds, [heartbeat: emit a TEXT every N seconds]
- silent: seconds (print nothing: trips stale detection)
- say: text (TEXT; also the final summary unless a later say/summary replaces it)
- summary: text (the final summary, without a TEXT event)
- usage: [input_tokens, output_tokens, cached_input_tokens, cost_usd, model]
  (added up into the one final USAGE; cost_usd defaults to 0.0, or to unknown
  when a model is named, to be priced)
- wait_input: [text, seconds=3600] (WAITING, then waits for a line on a
  terminal's stdin or sleeps)
- next_steps: items (a list of strings for the final RESULT's data)
- blocked: text (ends the run: RESULT with data {"blocked": true})
- fail: [message, exit_code=1] (ERROR + RESULT is_error, then exit)
- rate_limit: [retry_after, message] (RATE_LIMITED + RESULT is_error, exit 75)
- auth_fail: [message] (AUTH_FAILED + RESULT is_error, exit 77)
- exit: [code=0] (ends the run)

Every step may carry `attempt`. `{prompt}`, `{attempt}` and `{session_id}` are
replaced in every string field. The run starts with SESSION_STARTED and ends
with a final USAGE and a RESULT whose text is the last say/summary. A script
that does not load exits 2 with an ERROR and a RESULT. On a follow-up
(`--resume`) the `[[on_prompt]]` steps run, or, if there are none, the prompt
is appended to FLOTILLA_NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from flotilla import counters
from flotilla.domain.errors import UsageError
from flotilla.domain.events import AgentEvent, EventKind, Usage
from flotilla.executors import hooks
from flotilla.executors.common import EXIT_NOPERM, EXIT_TEMPFAIL
from flotilla.executors.scripted_script import (
    DEFAULT_ON_PROMPT,
    DEFAULT_SCRIPT,
    Script,
    Step,
    load_script,
    substitute,
)

_MAX_OUTPUT = 20_000  # characters of a command's output kept in its TOOL_RESULT
_GIT_IDENTITY = [
    "-c",
    "user.name=Flotilla scripted agent",
    "-c",
    "user.email=scripted@flotilla.invalid",
]


class Runner:
    """Follows one script for one turn, printing events; `run()` returns the exit code."""

    def __init__(
        self,
        script: Script,
        prompt: str,
        session_id: str,
        attempt: int,
        resume: bool,
        out: TextIO,
        hooks_file: Path | None = None,
    ) -> None:
        self.script, self.prompt, self.session_id = script, prompt, session_id
        self.attempt, self.resume, self.out, self.hooks_file = attempt, resume, out, hooks_file
        self.cwd = Path.cwd().resolve()
        self.summary = ""
        self.usage: Usage | None = None
        self.result_data: dict[str, Any] = {}
        self.values = {"prompt": prompt, "attempt": str(attempt), "session_id": session_id}

    def emit(self, kind: EventKind, **fields: Any) -> None:
        self.out.write(json.dumps(AgentEvent(kind, **fields).to_dict()) + "\n")
        self.out.flush()

    def hook(self, event: str, **payload: Any) -> None:
        if self.hooks_file is not None:
            record = hooks.hook_record(
                event, "scripted", {"session_id": self.session_id, **payload}
            )
            hooks.append_line(self.hooks_file, record)

    def run(self) -> int:
        self.emit(EventKind.SESSION_STARTED, session_id=self.session_id, data={"model": "scripted"})
        steps = self.script.steps
        if self.resume:
            steps = self.script.on_prompt or DEFAULT_ON_PROMPT
        for step in steps:
            if not step.applies(self.attempt):
                continue
            try:
                code: int | None = getattr(self, f"do_{step.action}")(self._resolved(step))
            except OSError as exc:  # a tool failing is part of an agent's life: report, go on
                counters.count("executors.scripted_step_failed")
                self.emit(EventKind.TOOL_RESULT, tool=step.action, text=str(exc), is_error=True)
                continue
            if code is not None:  # the step ended the run
                return code
        self.finish()
        return 0

    def _resolved(self, step: Step) -> Step:
        params = {k: substitute(v, self.values) for k, v in step.params.items()}
        return Step(step.action, params, step.attempts)

    def finish(self, text: str | None = None, is_error: bool = False, **data: Any) -> None:
        usage = self.usage or Usage(cost_usd=0.0, model="scripted")
        self.emit(EventKind.USAGE, usage=usage, data={"final": True})
        final = self.summary if text is None else text
        self.emit(
            EventKind.RESULT,
            text=final,
            is_error=is_error,
            usage=usage,
            session_id=self.session_id,
            data={**self.result_data, **data},
        )
        self.hook("stopped", last_assistant_message=final)

    # -- files -------------------------------------------------------------

    def _path(self, step: Step) -> Path | None:
        target = (self.cwd / str(step.get("path"))).resolve()
        if target.is_relative_to(self.cwd):
            return target
        self._tool(
            step.action, {"path": step.get("path")}, "path leaves the working directory", True
        )
        return None

    def _tool(
        self, tool: str, data: dict[str, Any], output: str, is_error: bool, **extra: Any
    ) -> None:
        self.emit(EventKind.TOOL_CALL, tool=tool, data=data)
        self.emit(EventKind.TOOL_RESULT, tool=tool, text=output, is_error=is_error, data=extra)

    def do_write(self, step: Step) -> None:
        target = self._path(step)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.get("content"), encoding="utf-8")
            self._tool("write", {"path": step.get("path")}, f"wrote {step.get('path')}", False)

    def do_append(self, step: Step) -> None:
        target = self._path(step)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a", encoding="utf-8") as handle:
                handle.write(step.get("content"))
            self._tool(
                "append", {"path": step.get("path")}, f"appended to {step.get('path')}", False
            )

    def do_replace(self, step: Step) -> None:
        target = self._path(step)
        if target is None:
            return
        data = {"path": step.get("path"), "old": step.get("old"), "new": step.get("new")}
        text = target.read_text(encoding="utf-8") if target.is_file() else None
        if text is None or step.get("old") not in text:
            self._tool(
                "replace", data, f"{step.get('old')!r} not found in {step.get('path')}", True
            )
            return
        target.write_text(text.replace(step.get("old"), step.get("new")), encoding="utf-8")
        self._tool("replace", data, f"edited {step.get('path')}", False)

    # -- processes ---------------------------------------------------------

    def _run(self, argv: list[str]) -> tuple[int, str]:
        done = subprocess.run(
            argv,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
        return done.returncode, done.stdout[-_MAX_OUTPUT:]

    def do_run(self, step: Step) -> int | None:
        code, output = self._run(["sh", "-c", step.get("command")])
        self._tool("run", {"command": step.get("command")}, output, code != 0, exit_code=code)
        if code != 0 and step.get("check", False):
            return self.do_fail(
                Step("fail", {"message": f"command `{step.get('command')}` exited {code}"})
            )
        return None

    def do_commit(self, step: Step) -> None:
        identity = [] if self._run(["git", "config", "user.email"])[0] == 0 else _GIT_IDENTITY
        code, output = self._run(["git", "add", "-A"])
        if code == 0:
            code, output = self._run(["git", *identity, "commit", "-m", step.get("message")])
        extra: dict[str, Any] = {"exit_code": code}
        if code == 0:
            extra["commit"] = self._run(["git", "rev-parse", "HEAD"])[1].strip()
        self._tool("commit", {"message": step.get("message")}, output, code != 0, **extra)

    # -- time --------------------------------------------------------------

    def do_sleep(self, step: Step) -> None:
        seconds, beat = float(step.get("seconds")), float(step.get("heartbeat", 0))
        start = time.monotonic()
        while (left := start + seconds - time.monotonic()) > 0:
            time.sleep(min(left, beat) if beat > 0 else left)
            if beat > 0 and start + seconds - time.monotonic() > 0:
                self.emit(EventKind.TEXT, text=f"still working ({time.monotonic() - start:.0f}s)")

    def do_silent(self, step: Step) -> None:
        time.sleep(float(step.get("seconds")))

    def do_wait_input(self, step: Step) -> None:
        text = step.get("text", "waiting for input")
        self.emit(EventKind.WAITING, text=text)
        self.hook("waiting", message=text, notification_type="idle_prompt")
        seconds = float(step.get("seconds", 3600))
        if sys.stdin is not None and sys.stdin.isatty():
            ready, _, _ = select.select([sys.stdin], [], [], seconds)
            if ready:
                self.emit(EventKind.TEXT, text=f"received input: {sys.stdin.readline().strip()}")
        else:
            time.sleep(seconds)

    # -- talk and outcome --------------------------------------------------

    def do_say(self, step: Step) -> None:
        self.summary = step.get("text")
        self.emit(EventKind.TEXT, text=self.summary)

    def do_summary(self, step: Step) -> None:
        self.summary = step.get("text")

    def do_usage(self, step: Step) -> None:
        model = step.get("model")
        default_cost = None if model else 0.0
        usage = Usage(
            input_tokens=step.get("input_tokens", 0),
            output_tokens=step.get("output_tokens", 0),
            cached_input_tokens=step.get("cached_input_tokens", 0),
            cost_usd=float(step.get("cost_usd")) if "cost_usd" in step.params else default_cost,
            model=model or "scripted",
        )
        # Reported once, in the final USAGE, like the real CLIs do: consumers may sum USAGE events.
        total = usage if self.usage is None else self.usage + usage
        if self.usage is not None and None in (self.usage.cost_usd, usage.cost_usd):
            total = replace(total, cost_usd=None)  # part is unpriced: let the price table do it all
        self.usage = total

    def do_next_steps(self, step: Step) -> None:
        self.result_data["next_steps"] = list(step.get("items"))

    def do_blocked(self, step: Step) -> int:
        self.finish(text=step.get("text"), blocked=True)
        return 0

    def do_fail(self, step: Step) -> int:
        message = step.get("message", "the scripted agent failed")
        self.emit(EventKind.ERROR, text=message)
        self.finish(text=message, is_error=True)
        code: int = step.get("exit_code", 1)
        return code

    def do_rate_limit(self, step: Step) -> int:
        message = step.get("message", "rate limited (429 Too Many Requests)")
        retry = step.get("retry_after")
        self.emit(
            EventKind.RATE_LIMITED,
            text=message,
            retry_after=None if retry is None else float(retry),
        )
        self.finish(text=message, is_error=True)
        return EXIT_TEMPFAIL

    def do_auth_fail(self, step: Step) -> int:
        message = step.get("message", "authentication failed (401 Unauthorized)")
        self.emit(EventKind.AUTH_FAILED, text=message)
        self.finish(text=message, is_error=True)
        return EXIT_NOPERM

    def do_exit(self, step: Step) -> int:
        code: int = step.get("code", 0)
        self.finish(is_error=code != 0, exit_code=code)
        return code


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m flotilla.executors.scripted_agent")
    parser.add_argument("--script", default=os.environ.get("FLOTILLA_SCRIPT"))
    parser.add_argument("--session-id", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--hooks", type=Path, default=None, help="append hook lines to this file")
    parser.add_argument("prompt", nargs="?", default=os.environ.get("FLOTILLA_PROMPT", ""))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = _arguments(argv)
    stream = out or sys.stdout
    session_id = args.session_id or str(uuid.uuid4())
    try:
        attempt = int(os.environ.get("FLOTILLA_ATTEMPT", "1"))
        script = load_script(Path(args.script)) if args.script else DEFAULT_SCRIPT
    except (UsageError, ValueError) as exc:
        counters.count("executors.scripted_bad_script")
        message = f"scripted agent: {exc}"
        print(message, file=sys.stderr)
        for event in (
            AgentEvent(EventKind.ERROR, text=message),
            AgentEvent(EventKind.RESULT, text=message, is_error=True),
        ):
            stream.write(json.dumps(event.to_dict()) + "\n")
        stream.flush()
        return 2
    runner = Runner(script, args.prompt, session_id, attempt, args.resume, stream, args.hooks)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
