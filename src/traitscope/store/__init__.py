"""Files on disk: run-directory layout, vector files, atomic writes, resumable JSONL."""

from traitscope.store.atomic import append_jsonl, atomic_write_bytes, atomic_write_json, atomic_write_text, read_jsonl
from traitscope.store.layout import RunDir, default_run_dir
from traitscope.store.vectors import Provenance, VectorSet, load_vectors, save_vectors

__all__ = [
    "Provenance",
    "RunDir",
    "VectorSet",
    "append_jsonl",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "default_run_dir",
    "load_vectors",
    "read_jsonl",
    "save_vectors",
]
