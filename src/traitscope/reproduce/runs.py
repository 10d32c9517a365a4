"""Extraction runs behind a reproduction: one resumable run directory per (model, trait) under
``<out>/runs/<profile>/<model>/<trait>``, read back into memory as :class:`RunData`.

The runs capture four sites but fit and validate only ``probe`` and ``mean_diff`` (the vectors
every experiment uses); the six-method comparison re-scores the residual site itself, so ICA is
not fitted 4 × (layers × folds) times for sites no table shows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import format_layers, parse_position
from traitscope.evaluation import Split, kfold
from traitscope.extraction import ExtractConfig, extract, load_evaluation, read_rollouts
from traitscope.extraction.activations import load_site
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.reproduce.profiles import Profile, balanced_subset
from traitscope.store import RunDir, load_vectors
from traitscope.traits import load_trait
from traitscope.traits.schema import Trait

RUN_SITES = ("residual", "attn_out", "mlp_out", "v")
RUN_METHODS = ("probe", "mean_diff")


@dataclass
class RunData:
    """One finished run in memory: activations per site ``[n, L, d]`` in rollout order."""

    trait: str
    model: str
    run_dir: Path
    position: str
    layers: list[int]
    n_layers: int  # of the model, for relative depths
    acts: dict[str, torch.Tensor]
    y: torch.Tensor
    rows: list[dict[str, Any]]
    evaluation: list[dict[str, Any]]
    seconds: float = 0.0
    resumed: bool = False  # the run directory already held a finished extraction

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def groups(self) -> list[str]:
        return [r["pair"] or r["id"] for r in self.rows]

    @property
    def pairs(self) -> list[str | None]:
        return [r["pair"] for r in self.rows]

    def tags(self, tag: str) -> list[str]:
        return [r["tags"].get(tag, "") for r in self.rows]

    def at(self, site: str, layer: int) -> torch.Tensor:
        """Activations ``[n, d]`` at one site and layer."""
        return self.acts[site][:, self.layers.index(layer)]

    def splits(self, folds: int, seed: int = 0) -> list[Split]:
        # the same call extract() makes, so every table here scores on the run's own folds
        return kfold(self.y.tolist(), self.groups, folds, seed)

    def best(self, site: str = "residual", method: str = "probe") -> dict[str, Any]:
        """The run's best layer row for a site and method (CV AUROC, ties by effect size)."""
        rows = [r for r in self.evaluation if r["site"] == site and r["method"] == method]
        return max(rows, key=lambda r: (r["auroc"], r["effect_size"]))

    def row(self, site: str, method: str, layer: int) -> dict[str, Any]:
        return next(r for r in self.evaluation if r["site"] == site and r["method"] == method and r["layer"] == layer)

    def vector(self, site: str, method: str, layer: int) -> torch.Tensor:
        """The unit vector extract() fitted on all rows of the run."""
        slug = parse_position(self.position).slug
        return load_vectors(RunDir(self.run_dir).vector_file(slug, site, method))[layer]

    def nearest_layer(self, layer: float) -> int:
        return min(self.layers, key=lambda x: (abs(x - layer), x))


def run_dir_for(out: Path, profile: Profile, lm: LoadedModel, trait: str) -> Path:
    return Path(out) / "runs" / profile.name / lm.slug / trait


def trait_for(profile: Profile, name: str) -> Trait:
    return balanced_subset(load_trait(name), profile.pairs_for(name))


def ensure_run(
    lm: LoadedModel,
    trait: str,
    out: Path,
    profile: Profile,
    sites: tuple[str, ...] = RUN_SITES,
    reporter: Reporter = Silent(),
) -> RunData:
    """Extract (or resume) one trait on one model with the profile's settings and load it."""
    t0 = time.perf_counter()
    run_dir = run_dir_for(out, profile, lm, trait)
    config = ExtractConfig(
        model=lm.name,
        layers=format_layers(profile.layers(lm.n_layers)),
        sites=sites,
        methods=RUN_METHODS,
        position=profile.position,
        max_new_tokens=profile.max_new_tokens,
        seed=profile.seed,
        batch_size=profile.batch_size,
        folds=profile.folds,
        n_random=profile.n_random,
    )
    reporter.note(f"{lm.name} / {trait}: {run_dir}")
    resumed = RunDir(run_dir).evaluation.exists()
    extract(lm, trait_for(profile, trait), run_dir, config, reporter=reporter)
    data = load_run(run_dir, sites)
    data.n_layers = lm.n_layers
    data.seconds = time.perf_counter() - t0
    data.resumed = resumed
    return data


def load_run(run_dir: Path, sites: tuple[str, ...] = RUN_SITES) -> RunData:
    """Read a finished run directory (activations in rollout order, labels, evaluation rows)."""
    ev = load_evaluation(run_dir)
    act_dir = RunDir(Path(run_dir)).activations(parse_position(ev["position"]).slug)
    acts: dict[str, torch.Tensor] = {}
    ids: list[str] = []
    layers: list[int] = []
    for site in sites:
        acts[site], _, ids, layers = load_site(act_dir, site)
    by_id = {r["id"]: r for r in read_rollouts(run_dir)}
    rows = [by_id[i] for i in ids]
    y = torch.tensor([1 if r["polarity"] == "positive" else 0 for r in rows])
    return RunData(
        trait=ev["trait"],
        model=ev["model"],
        run_dir=Path(run_dir),
        position=ev["position"],
        layers=list(layers),
        n_layers=max(layers) + 1,
        acts=acts,
        y=y,
        rows=rows,
        evaluation=ev["results"],
    )
