"""The sweep grid: one job per (model, trait), running the requested stages in order."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.store.layout import RunDir, model_slug

STAGES = ("extract", "steer-eval")


@dataclass(frozen=True)
class SweepSettings:
    """What every job does; the defaults are the CLI's."""

    layers: str = "all"
    sites: tuple[str, ...] = ("residual",)
    methods: tuple[str, ...] = ("mean_diff", "probe")
    position: str = "response[:]"
    max_new_tokens: int = 32
    limit: int | None = None
    folds: int = 5
    batch_size: int = 16
    n_random: int = 200
    steer_method: str = "probe"
    steer_layers: str = "20%,30%,40%,50%,60%"
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.8)
    judge: str = "default"
    questions: int | None = None
    steer_tokens: int = 48
    device_map: str | None = None
    max_memory: str | None = None  # as --max-memory spells it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SweepJob:
    model: str
    trait: str
    stages: tuple[str, ...]
    run_root: Path
    settings: SweepSettings = field(default_factory=SweepSettings)

    @property
    def name(self) -> str:
        return f"{model_slug(self.model)}/{Path(self.trait).name}"

    @property
    def run(self) -> RunDir:
        return RunDir.of(self.model, self.trait, self.run_root)


def plan_jobs(
    traits: list[str], models: list[str], stages: list[str], run_root: Path, settings: SweepSettings
) -> list[SweepJob]:
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise TraitscopeError(f"--stages: unknown stage(s) {', '.join(bad)}; use some of: {', '.join(STAGES)}")
    if not traits or not models or not stages:
        raise TraitscopeError("a sweep needs at least one trait, one model and one stage")
    ordered = tuple(s for s in STAGES if s in stages)  # extract always before steer-eval
    return [SweepJob(m, t, ordered, Path(run_root), settings) for m in models for t in traits]
