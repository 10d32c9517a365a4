"""The run cache behind both reproductions: one resumable extraction run directory per (model,
trait) under ``<out>/runs/<label>/<model>/<trait>``, read back into memory as :class:`RunData`.

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
from traitscope.evaluation import Split, best_row, kfold
from traitscope.extraction import ExtractConfig, extract
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.reproduce.common.profiles import Profile, balanced_subset
from traitscope.store import RunDir, load_vectors
from traitscope.store.runs import load_evaluation, load_labelled
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
        """The run's best layer row for a site and method (traitscope's one rule: CV AUROC, ties by
        effect size)."""
        return best_row(self.evaluation, site, method)

    def row(self, site: str, method: str, layer: int) -> dict[str, Any]:
        return next(r for r in self.evaluation if r["site"] == site and r["method"] == method and r["layer"] == layer)

    def vector(self, site: str, method: str, layer: int) -> torch.Tensor:
        """The unit vector extract() fitted on all rows of the run."""
        slug = parse_position(self.position).slug
        return load_vectors(RunDir(self.run_dir).vector_file(slug, site, method))[layer]

    def nearest_layer(self, layer: float) -> int:
        return min(self.layers, key=lambda x: (abs(x - layer), x))


def runs_root(out: Path, label: str) -> Path:
    """``<out>/runs/<label>``: one reproduction's run root (detection labels by profile name,
    steering by ``steering-<profile>``, so the two never share a run)."""
    return Path(out) / "runs" / label


def run_dir_for(out: Path, label: str, lm: LoadedModel, trait: str) -> Path:
    """The run directory of ``trait`` on ``lm`` under :func:`runs_root` (spelled by ``RunDir``)."""
    return RunDir.of(lm.name, trait, runs_root(out, label)).root


def neutral_cache(out: Path, label: str) -> Path:
    """Where the neutral-text activations behind a ridge map are cached (beside the runs)."""
    return runs_root(out, label) / "_neutral-texts"


def trait_for(profile: Profile, name: str) -> Trait:
    return balanced_subset(load_trait(name), profile.pairs_for(name))


def extract_trait(
    lm: LoadedModel,
    trait: str,
    run_dir: Path,
    profile: Profile,
    layers: list[int],
    sites: tuple[str, ...],
    methods: tuple[str, ...],
    reporter: Reporter = Silent(),
) -> dict[str, Any]:
    """Extract (or resume) one trait on one model with the profile's settings; its evaluation."""
    config = ExtractConfig(
        model=lm.name,
        layers=format_layers(layers),
        sites=sites,
        methods=methods,
        position=profile.position,
        max_new_tokens=profile.rollout_tokens,
        seed=profile.seed,
        batch_size=profile.batch_size,
        folds=profile.folds,
        n_random=profile.n_random,
    )
    reporter.note(f"{lm.name} / {trait}: {run_dir}")
    extract(lm, trait_for(profile, trait), run_dir, config, reporter=reporter)
    return load_evaluation(run_dir)


def ensure_run(
    lm: LoadedModel,
    trait: str,
    out: Path,
    profile: Profile,
    sites: tuple[str, ...] = RUN_SITES,
    reporter: Reporter = Silent(),
) -> RunData:
    """Extract (or resume) one trait at the profile's layers and load it into memory."""
    t0 = time.perf_counter()
    run_dir = run_dir_for(out, profile.name, lm, trait)
    resumed = RunDir(run_dir).evaluation.exists()
    extract_trait(lm, trait, run_dir, profile, profile.layers(lm.n_layers), sites, RUN_METHODS, reporter)
    data = load_run(run_dir, sites)
    data.n_layers = lm.n_layers
    data.seconds = time.perf_counter() - t0
    data.resumed = resumed
    return data


def load_run(run_dir: Path, sites: tuple[str, ...] = RUN_SITES) -> RunData:
    """Read a finished run directory (activations in rollout order, labels, evaluation rows)
    through ``traitscope.store.runs``, the one reader of run files."""
    ev = load_evaluation(run_dir)
    acts: dict[str, torch.Tensor] = {}
    for site in sites:
        labelled = load_labelled(run_dir, ev["position"], site)
        acts[site] = labelled.acts
    return RunData(
        trait=ev["trait"],
        model=ev["model"],
        run_dir=Path(run_dir),
        position=ev["position"],
        layers=list(labelled.layers),
        n_layers=max(labelled.layers) + 1,
        acts=acts,
        y=labelled.y,
        rows=labelled.rows,
        evaluation=ev["results"],
    )
