"""Reading a finished run back: its evaluation, rollouts, activations with labels, and vectors.

Selection is explicit: a vector file is named by (position, site, method), never found by
directory order, and its provenance must agree with the position asked for. The defaults are the
extraction defaults: position ``response[:]``, site ``residual``, method ``probe``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from traitscope.errors import TraitscopeError
from traitscope.specs import DEFAULT_POSITION, Position
from traitscope.store.atomic import read_jsonl
from traitscope.store.layout import RunDir, as_position
from traitscope.store.vectors import VectorSet, load_vectors

DEFAULT_SITE = "residual"
DEFAULT_METHOD = "probe"


def _run(run: RunDir | Path | str) -> RunDir:
    return run if isinstance(run, RunDir) else RunDir(Path(run))


def load_evaluation(run: RunDir | Path | str, position: str | Position | None = None) -> dict[str, Any]:
    """``evaluation.json``; with ``position``, an error unless it was made at that position."""
    run = _run(run)
    if not run.evaluation.exists():
        raise TraitscopeError(f"{run.root}: no evaluation.json; run `traitscope extract` first")
    try:
        ev = json.loads(run.evaluation.read_text(encoding="utf-8"))
        ev["results"]  # noqa: B018
    except (ValueError, KeyError, TypeError):
        raise TraitscopeError(f"{run.evaluation}: unreadable; re-run `traitscope extract --force`") from None
    if position is not None and as_position(ev.get("position", "")) != as_position(position):
        raise TraitscopeError(
            f"{run.evaluation} was made at position {ev.get('position')}, not {as_position(position)}; "
            "pass --layers explicitly or re-extract at that position"
        )
    return ev


def read_rollouts(run: RunDir | Path | str) -> list[dict[str, Any]]:
    return read_jsonl(_run(run).rollouts)


def load_site(
    run: RunDir | Path | str, position: str | Position, site: str
) -> tuple[torch.Tensor, torch.Tensor, list[str], list[int]]:
    """(acts [n, L, d], norms [n, L], row ids, layers) of a finished activation file."""
    path = _run(run).activation_file(position, site)
    if not path.is_file():
        raise TraitscopeError(f"{path}: no activations here; run `traitscope extract` first")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if "position" in meta and as_position(meta["position"]) != as_position(position):
            raise TraitscopeError(f"{path} holds activations at {meta['position']}, not {as_position(position)}")
        return f.get_tensor("acts"), f.get_tensor("norms"), json.loads(meta["ids"]), json.loads(meta["layers"])


@dataclass
class LabelledActivations:
    """A site's activations in rollout order with the rollouts and their labels (1 = positive)."""

    acts: torch.Tensor  # [n, L, d]
    layers: list[int]
    rows: list[dict[str, Any]]
    y: torch.Tensor


def load_labelled(run: RunDir | Path | str, position: str | Position, site: str) -> LabelledActivations:
    acts, _, ids, layers = load_site(run, position, site)
    by_id = {r["id"]: r for r in read_rollouts(run)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise TraitscopeError(f"{_run(run).rollouts} lacks rollout {missing[0]!r} of the stored activations")
    rows = [by_id[i] for i in ids]
    y = torch.tensor([1 if r["polarity"] == "positive" else 0 for r in rows])
    return LabelledActivations(acts, list(layers), rows, y)


def load_run_vectors(
    run: RunDir | Path | str,
    site: str = DEFAULT_SITE,
    method: str = DEFAULT_METHOD,
    position: str | Position = DEFAULT_POSITION,
) -> VectorSet:
    """The vectors of a run at exactly (position, site, method); errors list what is there."""
    run = _run(run)
    if not run.root.is_dir():
        raise TraitscopeError(f"run directory {run.root} does not exist; run `traitscope extract` first")
    path = run.vector_file(position, site, method)
    if not path.is_file():
        have = [str(p.relative_to(run.root / "vectors")) for p in run.vector_files()]
        raise TraitscopeError(
            f"{run.root} has no {site}/{method} vectors at position {as_position(position)}; "
            + (
                f"available (position/site/method): {', '.join(have[:12])}"
                if have
                else "run `traitscope extract` first"
            )
        )
    vset = load_vectors(path)
    if as_position(vset.provenance.position) != as_position(position):
        raise TraitscopeError(f"{path} holds vectors made at {vset.provenance.position}, not {as_position(position)}")
    return vset


def file_id(path: Path) -> str:
    """Content hash of a file (16 hex), to key cached results by the exact vectors they used."""
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]
