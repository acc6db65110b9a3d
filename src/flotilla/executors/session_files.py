"""The agent CLIs' session stores on disk: finding a session, and filing a copy of it under
another working folder (a checkpoint restored into a new worktree).

Claude Code and Gemini CLI file each session under the folder it ran in, so a resume from
another folder finds nothing (gemini: "No previous sessions found for this project", exit
42; claude: "No conversation found with session ID", exit 1, unless the session's folder is
another live worktree of the same repository, whose transcript it then appends to). The
copy filed under the new folder has the old folder's paths rewritten to the new one, so the
model, reading its history, goes on working where it now is, and the two copies continue
apart. Codex keeps one store for every folder.

Layouts, as claude 2.1.197, gemini 0.61.0 and codex 0.169.0 use them:

- claude: `$CLAUDE_CONFIG_DIR`, else `~/.claude`; then `projects/<key>/<id>.jsonl`, and an
  `<id>/` folder beside it (subagent transcripts, tool results). `<key>` is the folder's
  real path with each UTF-16 unit other than [a-zA-Z0-9] replaced by `-`; a key longer than
  200 is cut to 200 and given `-<base 36 of |Java-style string hash of the path|>`.
- gemini: `$GEMINI_CLI_HOME`, else `~`; then `.gemini/tmp/<slug>/chats/session-<time>-<id[:8]>
  .jsonl` (older: `.json`) whose first record names the `sessionId`, and `.gemini/tmp/<slug>/
  <id>/` (plans, tasks). A folder's slug is in `.gemini/projects.json`; each slug folder in
  `tmp/` and `history/` holds a `.project_root` marker naming its folder. Gemini trusts a
  marker when the registry lacks the folder, so a new folder's slug is claimed here the way
  gemini claims one (markers created exclusively), and the registry is left to gemini.
- codex: `$CODEX_HOME`, else `~/.codex`; then `sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from flotilla.counters import count
from flotilla.executors.base import SessionPlace

CLAUDE_KEY_MAX = 200
GEMINI_MARKER = ".project_root"
GEMINI_MAX_SLUGS = 1000  # suffixes tried for a new gemini slug before giving up
HEAD_LINES = 50  # lines read from the top of a session file to find its metadata
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

Replacements = Sequence[tuple[str, str]]


# -- shared ---------------------------------------------------------------------------------


def valid_session_id(session_id: str) -> bool:
    """Session ids become file names and glob patterns: only plain ids are looked up."""
    return _SESSION_ID.fullmatch(session_id) is not None


def home_of(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def real_folder(folder: Path) -> str:
    """The path the CLI sees as its working folder (its getcwd: symlinks resolved)."""
    return unicodedata.normalize("NFC", os.path.realpath(folder))


def rewrite_paths(text: str, replacements: Replacements) -> str:
    """`text` with each `old` (a whole path or name, never the start of a longer one: `/wt/a`
    is not in `/wt/ab` or `/wt/a.txt`, but is in `/wt/a/x.py`) replaced by its `new`, as
    written raw or inside a JSON string."""
    for old, new in replacements:
        if not old or old == new:
            continue
        for was, now in dict.fromkeys([(old, new), (_json_inner(old), _json_inner(new))]):
            pattern = rf"(?<![\w.-]){re.escape(was)}(?![\w-]|\.[\w-])"
            text = re.sub(pattern, _literal(now), text)
    return text


def _literal(value: str) -> Callable[[re.Match[str]], str]:
    return lambda _: value  # a function, so backslashes in `value` are not escapes


def _json_inner(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def copy_rewritten(src: Path, dst: Path, replacements: Replacements) -> None:
    """Copy `src` to `dst` (atomically: a reader never sees half a file), rewriting paths.
    Bytes that are not UTF-8 go through unchanged."""
    text = src.read_bytes().decode("utf-8", errors="surrogateescape")
    data = rewrite_paths(text, replacements).encode("utf-8", errors="surrogateescape")
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)


def copy_tree_rewritten(src: Path, dst: Path, replacements: Replacements) -> None:
    """Every regular file under `src`, copied to the same place under `dst`."""
    for path in sorted(src.rglob("*")):
        if path.is_file() and not path.is_symlink():
            copy_rewritten(path, dst / path.relative_to(src), replacements)


def _head_records(path: Path) -> Iterable[dict[str, object]]:
    """The JSON objects on the first lines of a JSON-lines file; a `.json` file is one."""
    if path.suffix == ".json":
        yield from _whole_document(path)
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle):
            if number >= HEAD_LINES:
                return
            try:
                record = json.loads(line)
            except ValueError:
                count("session_files.unreadable_line")
                continue
            if isinstance(record, dict):
                yield record


def _whole_document(path: Path) -> Iterable[dict[str, object]]:
    try:
        record = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError:
        count("session_files.unreadable_file")
        return
    if isinstance(record, dict):
        yield record


def _newest(paths: Iterable[Path]) -> Path | None:
    found = [p for p in paths if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


# -- claude ---------------------------------------------------------------------------------


def claude_projects(env: Mapping[str, str]) -> Path:
    configured = env.get("CLAUDE_CONFIG_DIR") or str(home_of(env) / ".claude")
    return Path(unicodedata.normalize("NFC", configured)) / "projects"


def claude_key(folder: str) -> str:
    """The name of the folder Claude Code files `folder`'s sessions in."""
    units = _utf16_units(folder)
    key = "".join(chr(u) if chr(u).isascii() and chr(u).isalnum() else "-" for u in units)
    if len(key) <= CLAUDE_KEY_MAX:
        return key
    return f"{key[:CLAUDE_KEY_MAX]}-{_base36(abs(_java_hash(units)))}"


def _utf16_units(text: str) -> list[int]:
    raw = text.encode("utf-16-le", errors="surrogatepass")
    return [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]


def _java_hash(units: Sequence[int]) -> int:
    value = 0
    for unit in units:
        value = (value * 31 + unit) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


def find_claude_session(projects: Path, session_id: str, folder: str) -> Path | None:
    """The session's file: under `folder`'s key if there, else under any folder's."""
    name = f"{session_id}.jsonl"
    own = projects / claude_key(folder) / name
    return own if own.is_file() else _newest(projects.glob(f"*/{name}"))


def claude_recorded_folder(path: Path) -> str | None:
    """The working folder a Claude transcript says it ran in (each entry has `cwd`)."""
    for record in _head_records(path):
        cwd = record.get("cwd")
        if isinstance(cwd, str) and cwd:
            return cwd
    return None


def carry_claude(session_id: str, source: SessionPlace, target: SessionPlace) -> bool:
    """File a copy of a Claude Code session under `target.folder` (see the module doc)."""
    if not valid_session_id(session_id):
        return False
    source_folder, target_folder = real_folder(source.folder), real_folder(target.folder)
    found = find_claude_session(claude_projects(source.env), session_id, source_folder)
    if found is None:
        return False
    old = claude_recorded_folder(found) or source_folder
    dst = claude_projects(target.env) / claude_key(target_folder) / found.name
    if dst == found:
        return True
    replacements = [(old, target_folder)]
    copy_rewritten(found, dst, replacements)
    beside = found.with_suffix("")
    if beside.is_dir():
        copy_tree_rewritten(beside, dst.with_suffix(""), replacements)
    return True


# -- gemini ---------------------------------------------------------------------------------


def gemini_root(env: Mapping[str, str]) -> Path:
    return Path(env.get("GEMINI_CLI_HOME") or home_of(env)) / ".gemini"


def _gemini_bases(root: Path) -> list[Path]:
    return [root / "tmp", root / "history"]


def gemini_session_id(path: Path) -> str | None:
    for record in _head_records(path):
        found = record.get("sessionId")
        return found if isinstance(found, str) else None
    return None


def _marker(slug_dir: Path) -> str | None:
    marker = slug_dir / GEMINI_MARKER
    if not marker.is_file():
        return None
    return marker.read_text(encoding="utf-8").strip() or None


def find_gemini_session(root: Path, session_id: str, folder: str) -> Path | None:
    """The session's chat file: the one filed under `folder` if any, else the newest."""
    pattern = f"*/chats/session-*-{session_id[:8]}.json*"
    found = [
        path
        for path in (root / "tmp").glob(pattern)
        if path.suffix in (".json", ".jsonl") and gemini_session_id(path) == session_id
    ]
    own = [path for path in found if _marker(path.parent.parent) == folder]
    return _newest(own) or _newest(found)


def gemini_slug(root: Path, folder: str) -> str:
    """The slug Gemini CLI will file `folder`'s sessions under: the registered or marked
    one, else a new one claimed as gemini claims it (so gemini then adopts it)."""
    bases = _gemini_bases(root)
    registered = _gemini_registry(root / "projects.json")
    slug = registered.get(folder)
    if slug and all(_marker(base / slug) in (None, folder) for base in bases):
        return slug
    for base in bases:
        for marker in sorted(base.glob(f"*/{GEMINI_MARKER}")):
            if _marker(marker.parent) == folder:
                return marker.parent.name
    taken = set(registered.values())
    stem = _slugify(os.path.basename(folder))
    for number in range(GEMINI_MAX_SLUGS):
        candidate = f"{stem}-{number}" if number else stem
        if candidate not in taken and _claim_slug(bases, candidate, folder):
            return candidate
    raise FileExistsError(f"no free gemini project slug for {folder} under {root}")


def _gemini_registry(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        count("session_files.gemini_registry_unreadable")  # gemini resets it the same way
        return {}
    projects = raw.get("projects") if isinstance(raw, dict) else None
    if not isinstance(projects, dict):
        return {}
    return {k: v for k, v in projects.items() if isinstance(k, str) and isinstance(v, str)}


def _slugify(name: str) -> str:
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", name.lower())).strip("-")
    return slug or "project"


def _claim_slug(bases: Sequence[Path], slug: str, folder: str) -> bool:
    """Mark `slug` as `folder`'s in every base, each marker created exclusively; False when
    another folder owns it."""
    if any(_marker(base / slug) not in (None, folder) for base in bases):
        return False
    for base in bases:
        (base / slug).mkdir(parents=True, exist_ok=True)
        try:
            with (base / slug / GEMINI_MARKER).open("x", encoding="utf-8") as handle:
                handle.write(folder)
        except FileExistsError:
            count("session_files.gemini_slug_race")  # someone marked it since we looked
            if _marker(base / slug) != folder:
                return False
    return True


def carry_gemini(session_id: str, source: SessionPlace, target: SessionPlace) -> bool:
    """File a copy of a Gemini CLI session under `target.folder` (see the module doc)."""
    if not valid_session_id(session_id):
        return False
    source_folder, target_folder = real_folder(source.folder), real_folder(target.folder)
    found = find_gemini_session(gemini_root(source.env), session_id, source_folder)
    if found is None:
        return False
    old = _marker(found.parent.parent) or source_folder
    root = gemini_root(target.env)
    slug_dir = root / "tmp" / gemini_slug(root, target_folder)
    dst = slug_dir / "chats" / found.name
    if dst == found:
        return True
    # The file names its project by the hash gemini filed projects under before slugs.
    replacements = [(old, target_folder), (_sha256(old), _sha256(target_folder))]
    copy_rewritten(found, dst, replacements)
    beside = found.parent.parent / session_id
    if beside.is_dir():
        copy_tree_rewritten(beside, slug_dir / session_id, replacements)
    return True


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- codex ----------------------------------------------------------------------------------


def codex_sessions(env: Mapping[str, str]) -> Path:
    return Path(env.get("CODEX_HOME") or home_of(env) / ".codex") / "sessions"


def codex_has_session(env: Mapping[str, str], session_id: str) -> bool:
    """Whether codex (one store for every folder) has the session's rollout."""
    if not valid_session_id(session_id):
        return False
    return any(codex_sessions(env).rglob(f"rollout-*-{session_id}.jsonl"))
