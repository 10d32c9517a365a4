"""Files on disk: run-directory layout, vector files, atomic writes, resumable JSONL, run locks.

Names load lazily (PEP 562), so the CLI can name run paths without importing torch."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "append_jsonl": "atomic",
    "atomic_write_bytes": "atomic",
    "atomic_write_json": "atomic",
    "atomic_write_text": "atomic",
    "read_jsonl": "atomic",
    "DEFAULT_RUN_ROOT": "layout",
    "RunDir": "layout",
    "model_slug": "layout",
    "locked": "lock",
    "Provenance": "vectors",
    "VectorSet": "vectors",
    "load_vectors": "vectors",
    "save_vectors": "vectors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'traitscope.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"traitscope.store.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
