"""Streaming activations to disk in shards, so a killed capture resumes where it stopped.

While running: ``activations/<position>/shards/<start>.safetensors`` (all sites for a fixed block
of rows). When every shard is there they are joined into one ``<site>.safetensors`` per site
(``acts`` [n, L, d], ``norms`` [n, L], row ids and layers in the metadata) and the shards go."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from traitscope.activations import Captured, Example, Position, capture
from traitscope.extraction.progress import Reporter, Silent
from traitscope.models.loader import LoadedModel
from traitscope.store import atomic_write_bytes


def _meta(ids: Sequence[str], layers: Sequence[int], sites: Sequence[str]) -> dict[str, str]:
    return {"ids": json.dumps(list(ids)), "layers": json.dumps(list(layers)), "sites": json.dumps(list(sites))}


def _read(
    path: Path, ids: Sequence[str], layers: Sequence[int], sites: Sequence[str]
) -> dict[str, torch.Tensor] | None:
    """Tensors of a shard/site file if it matches what is asked, else None (it will be redone)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if json.loads(meta["ids"]) != list(ids) or json.loads(meta["layers"]) != list(layers):
                return None
            if not set(sites) <= set(json.loads(meta["sites"])):
                return None
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (OSError, KeyError, ValueError, json.JSONDecodeError, Exception):
        return None


def load_site(directory: Path, site: str) -> tuple[torch.Tensor, torch.Tensor, list[str], list[int]]:
    """(acts [n, L, d], norms [n, L], ids, layers) of a finished site file."""
    with safe_open(str(directory / f"{site}.safetensors"), framework="pt") as f:
        meta = f.metadata()
        return f.get_tensor("acts"), f.get_tensor("norms"), json.loads(meta["ids"]), json.loads(meta["layers"])


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
    ids = [r["id"] for r in rows]
    finished = {s: _read(directory / f"{s}.safetensors", ids, layers, [s]) for s in sites}
    if all(v is not None for v in finished.values()):
        return Captured(
            list(layers), {s: v["acts"] for s, v in finished.items()}, {s: v["norms"] for s, v in finished.items()}
        )  # type: ignore[index]
    shard_dir = directory / "shards"
    advance = reporter.stage(f"activations {position}", len(rows))
    parts: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(rows), shard_rows):
        block = rows[start : start + shard_rows]
        block_ids = ids[start : start + shard_rows]
        path = shard_dir / f"{start:07d}.safetensors"
        tensors = _read(path, block_ids, layers, sites) if path.exists() else None
        if tensors is None:
            examples = [Example(r["prompt_ids"], r["response_ids"]) for r in block]
            cap = capture(lm, examples, sites, layers, position, batch_size=batch_size, on_batch=advance)
            tensors = {**{s: cap.acts[s] for s in sites}, **{f"{s}.norm": cap.norms[s] for s in sites}}
            atomic_write_bytes(
                path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=_meta(block_ids, layers, sites))
            )
        else:
            advance(len(block))
        parts.append(tensors)
    acts = {s: torch.cat([p[s] for p in parts]) for s in sites}
    norms = {s: torch.cat([p[f"{s}.norm"] for p in parts]) for s in sites}
    for s in sites:
        data = save({"acts": acts[s].contiguous(), "norms": norms[s].contiguous()}, metadata=_meta(ids, layers, [s]))
        atomic_write_bytes(directory / f"{s}.safetensors", data)
    shutil.rmtree(shard_dir, ignore_errors=True)
    return Captured(list(layers), acts, norms)
