"""Streaming activations to disk in shards, so a killed capture resumes where it stopped.

While running: ``activations/<position>/shards/<start>.safetensors`` (all sites for a fixed block
of rows). When every shard is there they are joined into one ``<site>.safetensors`` per site
(``acts`` [n, L, d], ``norms`` [n, L], row ids and layers in the metadata) and the shards go.

Every file also records its position spec and a digest of its rows' token ids, and is reused only
when both match: a regenerated rollout or another position never reads old activations."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from traitscope.activations import Captured, Example, Position, capture
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.store import atomic_write_bytes


def rows_digest(rows: Sequence[dict[str, Any]]) -> str:
    """Hash of the token ids activations were captured from, row by row."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r["id"], r["prompt_ids"], r["response_ids"]]).encode())
    return h.hexdigest()[:16]


def _meta(
    rows: Sequence[dict[str, Any]], layers: Sequence[int], sites: Sequence[str], position: Position
) -> dict[str, str]:
    return {
        "ids": json.dumps([r["id"] for r in rows]),
        "layers": json.dumps(list(layers)),
        "sites": json.dumps(list(sites)),
        "position": str(position),
        "rows": rows_digest(rows),
    }


def _read(path: Path, want: dict[str, str]) -> dict[str, torch.Tensor] | None:
    """Tensors of a shard/site file if its metadata matches ``want``, else None (it will be redone)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if any(meta.get(k) != want[k] for k in ("ids", "layers", "position", "rows")):
                return None
            if not set(json.loads(want["sites"])) <= set(json.loads(meta["sites"])):
                return None
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (OSError, KeyError, ValueError, json.JSONDecodeError, Exception):
        return None


def capture_to_disk(
    lm: LoadedModel,
    rows: Sequence[dict[str, Any]],
    sites: Sequence[str],
    layers: Sequence[int],
    position: Position,
    directory: Path,
    batch_size: int = 16,
    shard_rows: int = 64,
    reporter: Reporter = Silent(),
) -> Captured:
    finished = {s: _read(directory / f"{s}.safetensors", _meta(rows, layers, [s], position)) for s in sites}
    if all(v is not None for v in finished.values()):
        return Captured(
            list(layers), {s: v["acts"] for s, v in finished.items()}, {s: v["norms"] for s, v in finished.items()}
        )  # type: ignore[index]
    shard_dir = directory / "shards"
    advance = reporter.stage(f"activations {position}", len(rows))
    parts: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(rows), shard_rows):
        block = rows[start : start + shard_rows]
        path = shard_dir / f"{start:07d}.safetensors"
        want = _meta(block, layers, sites, position)
        tensors = _read(path, want) if path.exists() else None
        if tensors is None:
            examples = [Example(r["prompt_ids"], r["response_ids"]) for r in block]
            cap = capture(lm, examples, sites, layers, position, batch_size=batch_size, on_batch=advance)
            tensors = {**{s: cap.acts[s] for s in sites}, **{f"{s}.norm": cap.norms[s] for s in sites}}
            atomic_write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=want))
        else:
            advance(len(block))
        parts.append(tensors)
    acts = {s: torch.cat([p[s] for p in parts]) for s in sites}
    norms = {s: torch.cat([p[f"{s}.norm"] for p in parts]) for s in sites}
    for s in sites:
        meta = _meta(rows, layers, [s], position)
        data = save({"acts": acts[s].contiguous(), "norms": norms[s].contiguous()}, metadata=meta)
        atomic_write_bytes(directory / f"{s}.safetensors", data)
    shutil.rmtree(shard_dir, ignore_errors=True)
    return Captured(list(layers), acts, norms)
