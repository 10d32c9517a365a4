"""From a request's ``traitscope`` field to what one row of a batch needs: steering terms
(:func:`traitscope.steering.build_terms`), monitor vectors and a condition vector
(:func:`traitscope.monitor.load_trait_vectors`), read from ``<run-root>/<model>/<trait>/``.
Every problem becomes an :class:`ApiError` whose ``param`` names the field."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel
from traitscope.models.sites import check_site
from traitscope.monitor import TraitVector, load_trait_vectors
from traitscope.serve.protocol import (
    MAX_MONITOR_TRAITS,
    MAX_STEER_TERMS,
    ConditionOption,
    MonitorOption,
    SteerOption,
    TraitscopeOptions,
    bad,
)
from traitscope.specs import parse_layers, parse_position
from traitscope.steering import SteerTerm, build_terms
from traitscope.store import RunDir, VectorSet, load_vectors
from traitscope.store.layout import model_dir


@dataclass
class RowPlan:
    """Steering terms, monitored vectors and condition of one request."""

    terms: list[SteerTerm] = field(default_factory=list)
    monitor: list[TraitVector] = field(default_factory=list)
    monitor_site: str | None = None
    condition: TraitVector | None = None
    condition_threshold: float = 0.0
    condition_below: bool = False


class TraitSource:
    """Vectors of one model under a run root, cached by file and modification time."""

    def __init__(self, lm: LoadedModel, run_root: Path | None, model_slug: str | None = None) -> None:
        self.lm = lm
        self.run_root = Path(run_root) if run_root is not None else None
        self.slug = model_slug or lm.slug
        self._vsets: dict[tuple[str, int], VectorSet] = {}
        self._banks: dict[tuple, list[TraitVector]] = {}

    def traits(self) -> list[str]:
        base = self._base()
        if not base.is_dir():
            return []
        inside = [p for p in base.iterdir() if p.resolve().is_relative_to(base.resolve())]
        return sorted(p.name for p in inside if RunDir(p).vectors_dir.is_dir())

    def _base(self) -> Path:
        if self.run_root is None:
            raise bad("this server was started without --run-root, so it has no trait vectors", "traitscope")
        return model_dir(self.run_root, self.slug)

    def _trait_dir(self, trait: str, param: str) -> RunDir:
        run = RunDir.of(self.slug, trait, self._base().parent)
        inside = run.root.resolve().is_relative_to(self._base().resolve())  # a symlink out of the root is no trait
        if Path(trait).name != trait or not inside or not run.vectors_dir.is_dir():
            have = ", ".join(self.traits()) or f"none (no runs under {self._base()})"
            raise bad(f"unknown trait {trait!r} for model {self.lm.name}; traits available: {have}", param)
        return run

    def vector_set(
        self, trait: str, site: str, method: str, position: str, param: str, trait_param: str | None = None
    ) -> VectorSet:
        run = self._trait_dir(trait, trait_param or f"{param}.trait")
        try:
            path = run.vector_file(parse_position(position), check_site(site), method)
        except TraitscopeError as exc:
            raise bad(str(exc), param) from None
        if not path.is_file():
            have = ", ".join(sorted(str(p.relative_to(run.vectors_dir)) for p in run.vector_files()))
            raise bad(f"{trait}: no {site}/{method} vectors at position {position}; files there: {have}", param)
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._vsets:
            vset = load_vectors(path)
            vset.check_model(self.lm.n_layers, self.lm.hidden_size, self.lm.site_dim(site), self.lm.name)
            self._vsets[key] = vset
        return self._vsets[key]

    def steer_terms(self, opt: SteerOption, param: str) -> list[SteerTerm]:
        for name in ("ratio", "coef"):
            value = getattr(opt, name)
            if value is not None and not math.isfinite(value):
                raise bad(f"{name} {value!r} must be a finite number", f"{param}.{name}")
        if opt.ratio is not None and opt.coef is not None:
            raise bad("give ratio or coef, not both", f"{param}.coef")
        if opt.ratio is not None and opt.ratio < 0:
            raise bad(
                f"ratio {opt.ratio!r} must be >= 0 (typical: 0.2-1.0); use a negative coef to push away",
                f"{param}.ratio",
            )
        vset = self.vector_set(opt.trait, opt.site, opt.method, opt.position, param)
        layers = self._layers(opt.layers, vset, f"{param}.layers")
        ratio = None if opt.coef is not None else (0.3 if opt.ratio is None else opt.ratio)
        try:
            return build_terms(vset, layers, ratio, opt.coef, "single" if len(layers) == 1 else opt.mode)
        except TraitscopeError as exc:
            raise bad(str(exc), param) from None

    def _layers(self, spec: str | int, vset: VectorSet, param: str) -> list[int]:
        try:
            layers = parse_layers(spec, self.lm.n_layers)
        except TraitscopeError as exc:
            raise bad(f"{exc} ({self.lm.name} has layers 0-{self.lm.n_layers - 1})", param) from None
        missing = [layer for layer in layers if layer not in vset.vectors]
        if missing:
            raise bad(f"no vector for layer(s) {missing}; the vectors have layers {sorted(vset.vectors)}", param)
        return layers

    def _trait_vectors(
        self, trait: str, opt: MonitorOption | ConditionOption, layers: object, param: str, trait_param: str
    ) -> list[TraitVector]:
        vset = self.vector_set(trait, opt.site, opt.method, opt.position, param, trait_param)
        if layers not in (None, "best"):
            where = f"{param}.layer" if isinstance(opt, ConditionOption) else f"{param}.layers"
            self._layers(layers, vset, where)  # type: ignore[arg-type]
        run = self._trait_dir(trait, trait_param)
        # the vectors, thresholds and best layer change only when the run's files do
        stamps = tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in (run.evaluation, *run.vector_files()))
        key = (trait, opt.site, opt.method, opt.position, str(layers), stamps)
        if key not in self._banks:
            try:
                self._banks[key] = load_trait_vectors(
                    self.lm, self.run_root, trait, opt.site, opt.method, opt.position,  # type: ignore[arg-type]
                    None if layers in (None, "best") else layers, self.slug,  # type: ignore[arg-type]
                )  # fmt: skip
            except TraitscopeError as exc:
                raise bad(str(exc), param) from None
        return self._banks[key]

    def plan(self, opts: TraitscopeOptions | None) -> RowPlan:
        plan = RowPlan()
        if opts is None:
            return plan
        if len(opts.steer) > MAX_STEER_TERMS:
            raise bad(f"{len(opts.steer)} steer terms; at most {MAX_STEER_TERMS} per request", "traitscope.steer")
        for i, opt in enumerate(opts.steer):
            plan.terms.extend(self.steer_terms(opt, f"traitscope.steer[{i}]"))
        if opts.monitor is not None:
            m = opts.monitor
            if len(m.traits) > MAX_MONITOR_TRAITS:
                raise bad(f"{len(m.traits)} traits; at most {MAX_MONITOR_TRAITS}", "traitscope.monitor.traits")
            for i, trait in enumerate(dict.fromkeys(m.traits)):
                vectors = self._trait_vectors(
                    trait, m, m.layers, "traitscope.monitor", f"traitscope.monitor.traits[{i}]"
                )
                plan.monitor.extend(vectors)
            plan.monitor_site = m.site
        if opts.condition is not None:
            c = opts.condition
            if c.threshold is not None and not math.isfinite(c.threshold):
                raise bad("threshold must be a finite number", "traitscope.condition.threshold")
            layer = None if c.layer is None else str(c.layer)
            plan.condition = self._trait_vectors(
                c.trait, c, layer, "traitscope.condition", "traitscope.condition.trait"
            )[0]
            plan.condition_threshold = plan.condition.threshold if c.threshold is None else c.threshold
            plan.condition_below = c.below
        return plan
