"""Reading the run root for the dashboard: only names that are plain path segments, only paths
that still lie inside the root after symlinks are resolved, only files of bounded size, and
readers that report a missing or damaged file instead of raising."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitscope.store.layout import RunDir

MAX_FILE_BYTES = 64 * 1024 * 1024  # larger run files are reported, not read
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+=-]{0,199}$")  # no leading dot, no separators
RESERVED = {"monitor"}  # model-level folder of multi-trait traces, not a trait


class OutsideRoot(Exception):
    """A requested path is not a plain name, or resolves outside the run root."""


def plain_name(part: str) -> str:
    """``part`` if it can only ever name one entry of a folder (no separators, no leading dot)."""
    if not isinstance(part, str) or part in (".", "..") or not _SEGMENT.match(part):
        raise OutsideRoot(f"not a plain file name: {part!r:.80}")
    return part


@dataclass
class Read:
    """What a tolerant read got: ``data`` (None if unusable) and what was wrong."""

    data: Any = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.data is not None


class RunRoot:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def path(self, *parts: str) -> Path:
        """``root/parts...`` after checking each part is a plain name and the resolved path
        (symlinks followed) is still inside the root."""
        for part in parts:
            plain_name(part)
        path = self.root.joinpath(*parts).resolve()
        if path != self.root and not path.is_relative_to(self.root):
            raise OutsideRoot("path leaves the run root")
        return path

    def rel_path(self, rel: str) -> Path:
        """A ``/``-separated path relative to the root (as the trace list hands them out)."""
        if not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel or len(rel) > 1000:
            raise OutsideRoot("not a relative path inside the run root")
        return self.path(*rel.split("/"))

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _inside(self, path: Path) -> bool:
        try:
            return path.resolve().is_relative_to(self.root)
        except OSError:
            return False

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _SEGMENT.match(p.name) and p.is_dir() and self._inside(p))

    def traits(self, model: str) -> list[str]:
        base = self.path(model)
        if not base.is_dir():
            return []
        return sorted(
            p.name
            for p in base.iterdir()
            if p.name not in RESERVED
            and _SEGMENT.match(p.name)
            and p.is_dir()
            and self._inside(p)
            and any(m.exists() for m in RunDir(p).markers())
        )

    def traces(self, model: str) -> list[dict[str, str]]:
        """Trace files of a model: ``<model>/<trait>/monitor/<set>/<id>.json`` and the
        multi-trait ``<model>/monitor/<set>/<id>.json``; ``kind`` "diff" marks base-vs-finetuned
        ``<id>.diff.json`` files."""
        base = self.path(model)
        found = [*base.glob("*/monitor/*/*.json"), *base.glob("monitor/*/*.json")]
        out = []
        for p in sorted(found):
            if not self._inside(p) or not all(_SEGMENT.match(s) for s in p.relative_to(base).parts):
                continue
            owner = p.parent.parent.parent.name if p.parent.parent.name == "monitor" else ""
            out.append(
                {
                    "path": self.relative(p),
                    "set": p.parent.name,
                    "id": p.stem,
                    "trait": owner if owner != model else "",
                    "kind": "diff" if p.name.endswith(".diff.json") else "monitor",  # `traitscope diff`
                }
            )
        return out

    def vector_files(self, model: str, trait: str) -> list[dict[str, str]]:
        base = RunDir(self.path(model, trait)).vectors_dir
        return [
            {"position": p.parent.parent.name, "site": p.parent.name, "method": p.stem, "path": self.relative(p)}
            for p in sorted(base.glob("*/*/*.safetensors"))
            if self._inside(p)
        ]


def read_json(path: Path, label: str) -> Read:
    if not path.is_file():
        return Read(None, [f"{label} is missing"])
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return Read(None, [f"{label} is {size // 2**20} MiB, over the dashboard's {MAX_FILE_BYTES // 2**20} MiB limit"])
    try:
        return Read(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Read(None, [f"{label} is truncated or not valid JSON ({exc})"])
    except OSError as exc:
        return Read(None, [f"{label} cannot be read ({exc.strerror})"])


def read_jsonl(path: Path, label: str) -> Read:
    """Rows of a JSONL file; a torn last line (an interrupted append) and corrupt lines are
    skipped and reported."""
    if not path.is_file():
        return Read(None, [f"{label} is missing"])
    if path.stat().st_size > MAX_FILE_BYTES:
        return Read(None, [f"{label} is over the dashboard's {MAX_FILE_BYTES // 2**20} MiB limit"])
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return Read(None, [f"{label} cannot be read ({exc.strerror})"])
    rows, problems = [], []
    lines = text.split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            where = "its last line is torn (an interrupted write)" if i == len(lines) else f"line {i} is corrupt"
            problems.append(f"{label}: {where}; skipped")
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            problems.append(f"{label}: line {i} is not a JSON object; skipped")
    return Read(rows, problems)
