"""Dotted keys such as `limits.max_concurrent` or `prices."gpt-5.5".input_per_mtok`.

Model names contain dots, so segments that are not bare TOML keys are quoted,
exactly as TOML itself spells them.
"""

from __future__ import annotations

import re
import tomllib

from flotilla.config.errors import ConfigError

KeyPath = tuple[str, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(text: str) -> str:
    """A TOML basic string literal for `text` (control characters escaped)."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def format_segment(segment: str) -> str:
    return segment if _BARE.fullmatch(segment) else toml_string(segment)


def format_key(path: KeyPath) -> str:
    return ".".join(format_segment(segment) for segment in path)


def parse_key(key: str) -> KeyPath:
    """Inverse of `format_key`; quoted segments may use TOML basic-string escapes."""
    path: list[str] = []
    pos = 0
    while True:
        match = _SEGMENT.match(key, pos)
        if match is None:
            raise ConfigError(_malformed(key))
        bare, quoted = match.group("bare"), match.group("quoted")
        path.append(bare if bare is not None else _unquote(quoted, key))
        pos = match.end()
        if pos == len(key):
            return tuple(path)
        if key[pos] != ".":
            raise ConfigError(_malformed(key))
        pos += 1


_SEGMENT = re.compile(r'\s*(?:(?P<bare>[A-Za-z0-9_-]+)|(?P<quoted>"(?:[^"\\\n]|\\.)*"))\s*')


def _unquote(quoted: str, key: str) -> str:
    try:
        value = tomllib.loads(f"v = {quoted}")["v"]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed configuration key {key!r}: bad quoted segment") from exc
    assert isinstance(value, str)
    return value


def _malformed(key: str) -> str:
    return f"malformed configuration key {key!r}: write it like limits.timeout_s"
