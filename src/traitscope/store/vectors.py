"""Vector files: one safetensors file per (position, site, method) with one tensor per layer and
the provenance in its metadata, so a vector never gets applied to the wrong model or site."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from traitscope.errors import TraitscopeError
from traitscope.store.atomic import atomic_write_bytes


@dataclass
class Provenance:
    trait: str
    method: str
    site: str
    position: str
    model: str
    model_type: str
    n_layers: int
    hidden_size: int
    dim: int
    layers: list[int]
    act_norms: dict[str, float] = field(default_factory=dict)  # str(layer) -> mean token norm at that site
    extras: dict[str, Any] = field(default_factory=dict)  # per-method (probe bias, train accuracy ...)
    layer_convention: str = "layer i = output of block i = hidden_states[i+1]"
    sign_convention: str = "positive projection = more of the trait"
    unit_norm: bool = True
    tool_version: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)  # the run's: model identity, trait hash, settings


@dataclass
class VectorSet:
    """Unit vectors per layer for one trait/site/method, with where they came from."""

    vectors: dict[int, torch.Tensor]
    provenance: Provenance
    source: Path | None = None  # the file it was loaded from

    @property
    def file_id(self) -> str | None:
        """Content hash of the source file: cached results are keyed by the exact vectors used."""
        if self.source is None:
            return None
        from traitscope.store.runs import file_id

        return file_id(self.source)

    def __getitem__(self, layer: int) -> torch.Tensor:
        try:
            return self.vectors[layer]
        except KeyError:
            raise TraitscopeError(
                f"{self.provenance.trait}/{self.provenance.site}/{self.provenance.method} has no vector for layer "
                f"{layer}; available: {sorted(self.vectors)}"
            ) from None

    def act_norm(self, layer: int) -> float | None:
        value = self.provenance.act_norms.get(str(layer))
        return None if value is None else float(value)

    def check_model(self, n_layers: int, hidden_size: int, dim: int | None = None, model: str = "") -> None:
        """Error naming the mismatch when these vectors cannot apply to a model."""
        p = self.provenance
        where = f"vectors for {p.trait} ({p.site}, {p.method}) were extracted on {p.model}"
        if p.hidden_size != hidden_size:
            raise TraitscopeError(
                f"{where} with hidden size {p.hidden_size}; {model or 'this model'} has {hidden_size}"
            )
        if p.n_layers != n_layers:
            raise TraitscopeError(f"{where} with {p.n_layers} layers; {model or 'this model'} has {n_layers}")
        if dim is not None and p.dim != dim:
            raise TraitscopeError(f"{where} at dimension {p.dim}; site {p.site} here has dimension {dim}")


def save_vectors(path: Path, vset: VectorSet) -> None:
    from traitscope import __version__

    vset.provenance.tool_version = vset.provenance.tool_version or __version__
    tensors = {f"layer.{layer}": v.detach().float().contiguous().cpu() for layer, v in sorted(vset.vectors.items())}
    meta = {"provenance": json.dumps(asdict(vset.provenance))}
    atomic_write_bytes(Path(path), save(tensors, metadata=meta))


def load_vectors(path: Path) -> VectorSet:
    path = Path(path)
    if not path.is_file():
        raise TraitscopeError(f"{path}: no vector file here; run `traitscope extract` first")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            vectors = {int(k.split(".", 1)[1]): f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        prov = Provenance(**json.loads(meta["provenance"]))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise TraitscopeError(f"{path}: not a traitscope vector file ({exc})") from None
    return VectorSet(vectors, prov, path)
