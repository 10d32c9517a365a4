"""Reading text records, on the ground floor (no torch): the one strict JSONL parser for user
files and the one resume-tolerant reader for files traitscope appends to.

- :func:`parse_jsonl` is for input a person wrote (trait scenarios, answers to judge, finetuning
  data): every non-blank line must be a JSON object; the first bad one is an error naming
  ``file:line``.
- :func:`read_jsonl` is for traitscope's own append-only files: a torn final line (a killed
  writer) is dropped, a corrupt line elsewhere is an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError


def read_text(path: Path) -> str:
    """A UTF-8 file's text; a missing, unreadable or non-UTF-8 file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise TraitscopeError(f"{path}: file is missing")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraitscopeError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TraitscopeError(f"{path}:{line}: not valid UTF-8 (byte {exc.start})") from None


def parse_jsonl(path: Path, example: str = '{"key": "value"}') -> list[tuple[int, dict[str, Any]]]:
    """``[(line number, object)]`` of a user's JSONL file; blank lines are skipped."""
    text = read_text(path)
    if not text.strip():
        raise TraitscopeError(f"{path}: file is empty; write one JSON object per line, e.g. {example}")
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraitscopeError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise TraitscopeError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        rows.append((lineno, obj))
    return rows


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file traitscope appends to, skipping a torn final line; a corrupt line
    elsewhere is an error."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines):  # torn last line (no newline after it): an interrupted append
                break
            raise TraitscopeError(f"{path}:{i}: corrupt JSON line; delete the line or the file to redo it") from None
    return rows
