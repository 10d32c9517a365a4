"""Which trait vectors a monitor projects onto: one site, any number of (trait, layer) pairs.

Vectors come from run directories ``<run-root>/<model-slug>/<trait>/vectors/<position>/<site>/
<method>.safetensors``; the default layer of each trait is the best layer of that site/method in
its ``evaluation.json``. Each (trait, layer) also gets a threshold for "the trait is on": the
midpoint between the class means of the extraction rollouts' projections (from the stored
activations), or 0 when those are not on disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import parse_layers
from traitscope.errors import TraitscopeError
from traitscope.evaluation import best_row
from traitscope.models.loader import LoadedModel
from traitscope.models.sites import check_site
from traitscope.store import RunDir, VectorSet
from traitscope.store.runs import load_evaluation, load_labelled, load_run_vectors


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


def _no_run_error(run_root: Path, lm: LoadedModel, trait: str, slug: str) -> TraitscopeError:
    model_dir = RunDir.of(slug, trait, run_root).root.parent
    have = sorted(p.name for p in model_dir.iterdir() if (p / "vectors").is_dir()) if model_dir.is_dir() else []
    listing = f"traits with vectors there: {', '.join(have)}" if have else f"no runs under {model_dir}"
    return TraitscopeError(
        f"no vectors for trait {trait!r} on model {lm.name} ({model_dir / trait} missing; {listing}); "
        f"run `traitscope extract {trait} --model {lm.name}` first"
    )


def best_layer(run: RunDir, site: str, method: str, position: str) -> int:
    """The default layer: the best of ``site/method`` in the run's evaluation (one rule, in evaluation)."""
    try:
        ev = load_evaluation(run, position)
    except TraitscopeError as exc:
        raise TraitscopeError(f"{exc}; or pass --layers") from None
    return int(best_row(ev["results"], site, method)["layer"])


def class_midpoints(run: RunDir, vset: VectorSet, layers: Sequence[int]) -> dict[int, float]:
    """Per layer, the midpoint between the mean projections of the positive and negative
    extraction rollouts (the same threshold evaluation.json's accuracy uses). Layers whose
    activations are not on disk are left out."""
    p = vset.provenance
    try:
        data = load_labelled(run, p.position, p.site)
    except (OSError, ValueError, KeyError, TraitscopeError):
        return {}  # missing or damaged activations only cost the threshold, which falls back to 0
    y = data.y.bool()
    if not y.any() or not (~y).any():
        return {}
    out = {}
    for layer in layers:
        if layer in data.layers:
            proj = data.acts[:, data.layers.index(layer)].float() @ _unit(vset[layer])
            out[layer] = float((proj[y].mean() + proj[~y].mean()) / 2)
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
    run = RunDir.of(model_slug or lm.slug, trait, run_root)
    if not (run.root / "vectors").is_dir():
        raise _no_run_error(run_root, lm, trait, model_slug or lm.slug)
    vset = load_run_vectors(run, check_site(site), method, position)
    path = vset.source
    vset.check_model(lm.n_layers, lm.hidden_size, lm.site_dim(site), lm.name)
    spec = layers if layers is None or isinstance(layers, str) else list(layers)
    wanted = [best_layer(run, site, method, position)] if spec is None else parse_layers(spec, lm.n_layers)
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
