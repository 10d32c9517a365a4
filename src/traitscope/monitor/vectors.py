"""Which trait vectors a monitor projects onto: one site, any number of (trait, layer) pairs.

Vectors come from run directories ``<run-root>/<model-slug>/<trait>/vectors/<position>/<site>/
<method>.safetensors``; the default layer of each trait is the best layer of that site/method in
its ``evaluation.json``. Each (trait, layer) also gets a threshold for "the trait is on": the
midpoint between the class means of the extraction rollouts' projections (from the stored
activations), or 0 when those are not on disk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import parse_layers, parse_position
from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel
from traitscope.models.sites import check_site
from traitscope.store import RunDir, VectorSet, load_vectors, read_jsonl


@dataclass
class TraitVector:
    """One direction to project onto: unit ``vector`` [dim] of ``trait`` at ``layer``."""

    trait: str
    layer: int
    vector: torch.Tensor
    threshold: float = 0.0
    threshold_source: str = "zero"  # "class-midpoint" (extraction rollouts) or "zero"
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class VectorBank:
    """All vectors of one monitor run, at one site, grouped by layer for one matmul per hook."""

    site: str
    entries: list[TraitVector]

    def __post_init__(self) -> None:
        check_site(self.site)
        if not self.entries:
            raise TraitscopeError("nothing to monitor: no trait vectors were given")
        seen = set()
        for e in self.entries:
            if (e.trait, e.layer) in seen:
                raise TraitscopeError(f"trait {e.trait!r} layer {e.layer} is listed twice")
            seen.add((e.trait, e.layer))

    @property
    def traits(self) -> list[str]:
        return list(dict.fromkeys(e.trait for e in self.entries))

    @property
    def layers(self) -> list[int]:
        return sorted({e.layer for e in self.entries})

    def at(self, layer: int) -> list[TraitVector]:
        return [e for e in self.entries if e.layer == layer]

    def get(self, trait: str, layer: int) -> TraitVector:
        for e in self.entries:
            if e.trait == trait and e.layer == layer:
                return e
        raise KeyError((trait, layer))

    def layers_of(self, trait: str) -> list[int]:
        return [e.layer for e in self.entries if e.trait == trait]

    def matrix(self, layer: int) -> torch.Tensor:
        """``[dim, k]``: the unit vectors at ``layer``, in the order of :meth:`at`."""
        return torch.stack([e.vector.float() for e in self.at(layer)], dim=1)

    def check_dim(self, lm: LoadedModel) -> None:
        dim = lm.site_dim(self.site)
        for e in self.entries:
            if e.vector.shape != (dim,):
                raise TraitscopeError(
                    f"vector {e.trait} layer {e.layer} has shape {tuple(e.vector.shape)}; site {self.site} on "
                    f"{lm.name} has dimension {dim}"
                )
            if not 0 <= e.layer < lm.n_layers:
                raise TraitscopeError(f"layer {e.layer} of {e.trait} is out of range; {lm.name} has {lm.n_layers}")

    @classmethod
    def from_vectors(
        cls, site: str, vectors: Mapping[str, Mapping[int, torch.Tensor]], provenance: Mapping[str, dict] | None = None
    ) -> VectorBank:
        """A bank from raw tensors (``{trait: {layer: [dim]}}``), normalised to unit length."""
        entries = [
            TraitVector(t, int(layer), _unit(v), provenance=dict((provenance or {}).get(t, {"trait": t})))
            for t, by_layer in vectors.items()
            for layer, v in sorted(by_layer.items())
        ]
        return cls(site, entries)


def _unit(v: torch.Tensor) -> torch.Tensor:
    # Stored vectors are unit already; renormalising keeps "cosine = dot / norm" exact anyway.
    v = v.detach().float().cpu()
    return v / v.norm().clamp_min(1e-12)


def trait_run_dir(run_root: Path, model_slug: str, trait: str) -> Path:
    return Path(run_root) / model_slug / Path(trait).name


def _available(root: Path) -> str:
    files = sorted(str(p.relative_to(root / "vectors")) for p in RunDir(root).vector_files())
    return ", ".join(files[:12]) or "none"


def _no_run_error(run_root: Path, lm: LoadedModel, trait: str, slug: str) -> TraitscopeError:
    model_dir = Path(run_root) / slug
    have = sorted(p.name for p in model_dir.iterdir() if (p / "vectors").is_dir()) if model_dir.is_dir() else []
    listing = f"traits with vectors there: {', '.join(have)}" if have else f"no runs under {model_dir}"
    return TraitscopeError(
        f"no vectors for trait {trait!r} on model {lm.name} ({model_dir / trait} missing; {listing}); "
        f"run `traitscope extract {trait} --model {lm.name}` first"
    )


def best_layer(run: Path, site: str, method: str) -> int:
    """The best layer of ``site/method`` in a run's evaluation.json (by cross-validated AUROC)."""
    path = RunDir(run).evaluation
    try:
        ev = json.loads(path.read_text(encoding="utf-8"))
        return int(ev["best"][f"{site}/{method}"]["layer"])
    except FileNotFoundError:
        raise TraitscopeError(f"{path}: missing, so there is no default layer; pass --layers") from None
    except (ValueError, KeyError, TypeError):
        raise TraitscopeError(
            f"{path}: no best layer for {site}/{method} (file unreadable or method not extracted); pass --layers"
        ) from None


def class_midpoints(run: Path, vset: VectorSet, layers: Sequence[int]) -> dict[int, float]:
    """Per layer, the midpoint between the mean projections of the positive and negative
    extraction rollouts (the same threshold evaluation.json's accuracy uses). Layers whose
    activations are not on disk are left out."""
    from traitscope.extraction.activations import load_site

    p = vset.provenance
    act_dir = RunDir(run).activations(parse_position(p.position).slug)
    if not (act_dir / f"{p.site}.safetensors").is_file():
        return {}
    try:
        acts, _, ids, act_layers = load_site(act_dir, p.site)
        polarity = {r["id"]: r.get("polarity") for r in read_jsonl(RunDir(run).rollouts)}
    except (OSError, ValueError, KeyError, TraitscopeError):
        return {}  # a damaged file only costs the threshold, which falls back to 0
    y = torch.tensor([polarity.get(i) == "positive" for i in ids])
    known = torch.tensor([polarity.get(i) in ("positive", "negative") for i in ids])
    if not (y & known).any() or not (~y & known).any():
        return {}
    out = {}
    for layer in layers:
        if layer in act_layers:
            proj = acts[:, act_layers.index(layer)].float() @ _unit(vset[layer])
            out[layer] = float((proj[y & known].mean() + proj[~y & known].mean()) / 2)
    return out


def load_trait_vectors(
    lm: LoadedModel,
    run_root: Path,
    trait: str,
    site: str = "residual",
    method: str = "probe",
    position: str = "response[:]",
    layers: str | Sequence[int] | None = None,
    model_slug: str | None = None,
) -> list[TraitVector]:
    """The vectors of one trait for this model (under ``model_slug``, default the model's own
    slug), checked against it, with thresholds."""
    run = trait_run_dir(run_root, model_slug or lm.slug, trait)
    if not (run / "vectors").is_dir():
        raise _no_run_error(run_root, lm, trait, model_slug or lm.slug)
    path = RunDir(run).vector_file(parse_position(position).slug, check_site(site), method)
    if not path.is_file():
        raise TraitscopeError(
            f"{run}: no {site}/{method} vectors at position {position}; files there: {_available(run)}"
        )
    vset = load_vectors(path)
    vset.check_model(lm.n_layers, lm.hidden_size, lm.site_dim(site), lm.name)
    spec = layers if layers is None or isinstance(layers, str) else list(layers)
    wanted = [best_layer(run, site, method)] if spec is None else parse_layers(spec, lm.n_layers)
    missing = [layer for layer in wanted if layer not in vset.vectors]
    if missing:
        raise TraitscopeError(
            f"{path}: no vector for layer(s) {missing}; this file has layers {sorted(vset.vectors)} "
            "(pass --layers with those or extract more layers)"
        )
    mids = class_midpoints(run, vset, wanted)
    p = vset.provenance
    prov = {
        "trait": p.trait,
        "method": p.method,
        "site": p.site,
        "position": p.position,
        "model": p.model,
        "file": str(path),
    }
    return [
        TraitVector(
            trait=Path(trait).name,
            layer=layer,
            vector=_unit(vset[layer]),
            threshold=mids.get(layer, 0.0),
            threshold_source="class-midpoint" if layer in mids else "zero",
            provenance=prov,
        )
        for layer in wanted
    ]


def load_bank(
    lm: LoadedModel,
    run_root: Path,
    traits: Sequence[str],
    site: str = "residual",
    method: str = "probe",
    position: str = "response[:]",
    layers: str | Sequence[int] | None = None,
    model_slug: str | None = None,
) -> VectorBank:
    """Vectors for several traits at one site; ``layers=None`` takes each trait's best layer."""
    if not traits:
        raise TraitscopeError("--traits is empty; name at least one extracted trait")
    entries: list[TraitVector] = []
    for trait in traits:
        entries.extend(load_trait_vectors(lm, run_root, trait, site, method, position, layers, model_slug))
    bank = VectorBank(site, entries)
    bank.check_dim(lm)
    return bank
