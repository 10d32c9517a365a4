"""An append-only JSONL cache of judge scores, so re-scoring the same prompt costs nothing.

Each line is one whole JSON record written with a single ``write`` on an ``O_APPEND``
descriptor, so concurrent writers (threads or processes) never interleave inside a line and a
crash leaves at most one torn last line, which the reader skips.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from traitscope.judges.base import Score
from traitscope.models.registry import cache_root


def judge_cache_dir() -> Path:
    return cache_root() / "judge"


def cache_key(base_url: str | None, model: str, prompt: str) -> str:
    """Key one score by where it came from and what was asked: the endpoint (a local server that
    answers as ``gpt-4.1-mini`` must not poison later real calls), the judge model, and the
    sha256 of the full prompt (rubric, question and answer)."""
    endpoint = (base_url or "default").strip().rstrip("/")
    prompt_hash = hashlib.sha256(prompt.encode()).hexdigest()
    return hashlib.sha256(f"{endpoint}\n{model}\n{prompt_hash}".encode()).hexdigest()


class ScoreCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or judge_cache_dir() / "api.jsonl"
        self._lock = threading.Lock()
        self._scores: dict[str, Score] = {}
        self._load()

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                rec = json.loads(line)
                value = rec["value"]
                self._scores[str(rec["key"])] = Score(None if value is None else float(value), rec.get("reason"))
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line: skip it, the score is recomputed

    def get(self, key: str) -> Score | None:
        with self._lock:
            return self._scores.get(key)

    def put(self, key: str, score: Score, model: str, base_url: str | None = None) -> None:
        record = {
            "key": key,
            "value": score.value,
            "reason": score.reason,
            "model": model,
            "base_url": base_url,
            "time": round(time.time()),
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            self._scores[key] = score
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def __len__(self) -> int:
        return len(self._scores)
