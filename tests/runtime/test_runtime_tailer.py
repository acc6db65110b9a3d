from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.domain.errors import OperationFailed
from flotilla.runtime.tailer import OutputTail, read_exit


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def test_missing_file_gives_nothing_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    tail = OutputTail(path)
    assert tail.read_lines() == []
    append(path, b"first\n")
    assert tail.read_lines() == ["first"]


def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    tail = OutputTail(path)
    append(path, b"one\ntw")
    assert tail.read_lines() == ["one"]
    assert tail.offset == 4
    assert tail.read_lines() == []
    append(path, b"o\nthree\n")
    assert tail.read_lines() == ["two", "three"]
    assert tail.offset == path.stat().st_size


def test_resume_from_stored_offset_reads_each_line_once(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    append(path, b'{"a": 1}\n{"b": 2}\n{"c"')
    first = OutputTail(path)
    assert first.read_lines() == ['{"a": 1}', '{"b": 2}']
    stored = first.offset
    append(path, b": 3}\n")
    resumed = OutputTail(path, offset=stored)
    assert resumed.read_lines() == ['{"c": 3}']


def test_final_read_returns_the_unterminated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    append(path, b"done\nno newline at end")
    tail = OutputTail(path)
    assert tail.read_lines() == ["done"]
    assert tail.read_lines(final=True) == ["no newline at end"]
    assert tail.read_lines(final=True) == []


def test_crlf_and_bad_utf8_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "log"
    append(path, b"pane line\r\n\xff\xfeok \xc3\xa9\n")
    assert OutputTail(path).read_lines() == ["pane line", "\ufffd\ufffdok \u00e9"]


def test_multibyte_character_split_across_writes(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    tail = OutputTail(path)
    append(path, "caf\u00e9".encode()[:-1])
    assert tail.read_lines() == []
    append(path, "caf\u00e9".encode()[-1:] + b"\n")
    assert tail.read_lines() == ["caf\u00e9"]


def test_overlong_line_comes_in_pieces(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    append(path, b"x" * 25 + b"\n")
    tail = OutputTail(path, chunk_bytes=10)
    pieces = tail.read_lines() + tail.read_lines() + tail.read_lines()
    assert "".join(pieces) == "x" * 25
    assert tail.read_lines() == []


def test_truncated_file_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    append(path, b"aaaa\nbbbb\n")
    tail = OutputTail(path)
    tail.read_lines()
    path.write_bytes(b"new\n")
    assert tail.read_lines() == ["new"]


def test_read_exit(tmp_path: Path) -> None:
    assert read_exit(tmp_path) is None
    (tmp_path / "exit").write_text("137\n")
    assert read_exit(tmp_path) == 137
    (tmp_path / "exit").write_text('{"code": 3}')
    assert read_exit(tmp_path) == 3
    (tmp_path / "exit").write_text("garbage")
    with pytest.raises(OperationFailed, match="not a status"):
        read_exit(tmp_path)
