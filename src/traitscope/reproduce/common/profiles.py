"""How much work a reproduction does: one :class:`Profile` type for both reproductions. The
``full`` profiles follow the research log's setup on the bundled models; ``quick`` cuts them down to
finish in minutes on a 2-core CPU and says how (:meth:`Profile.describe`).

Scenario subsets are balanced across a trait's tags (round-robin over tag groups, whole minimal
pairs), because the bundled files are sorted by tag: a plain "first N" would keep only English
science questions and leave the cross-language and cross-topic matrices with one group."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from traitscope.activations import parse_position
from traitscope.errors import TraitscopeError
from traitscope.traits.schema import Scenario, Trait

DEFAULT_BASE_MODEL = "gemma3-270m"  # the bundled base model: source of the cross-model findings
DEFAULT_OUT = Path("runs/reproduce")

# Tags to balance a subset over, per bundled trait; the default is the trait's `topic` tag.
# uncertainty feeds the cross-language (lang) and cross-topic (English rows by topic) matrices;
# optimism feeds the cross-distribution table (domain).
BALANCE_TAGS: dict[str, tuple[str, ...]] = {
    "uncertainty": ("lang", "topic"),
    "optimism": ("domain", "topic"),
    "optimism-instruction": ("domain", "topic"),
}


@dataclass(frozen=True)
class SteeringSizes:
    """The steering reproduction's own sizes. Layers are relative depths (0 = first block, 1 = last).

    Findings 2-4, 6 and 7 steer at multiples of the model's *working ratio*: the median best
    coherent ratio of the finding-1 sweep (the log's practical rule, "calibrate a target ratio, then
    coef = ratio·‖h‖/‖v‖"). A 135M model breaks at far smaller ratios than gemma-2-2b, so fixed
    ratios taken from the log would test these findings only with broken answers."""

    questions: int  # steering questions per configuration (optimism)
    answer_tokens: int
    sweep_depths: tuple[float, ...]  # 1: ratio sweep layers
    sweep_ratios: tuple[float, ...]
    scan_factors: tuple[float, ...]  # 3/4: x working ratio
    multi_factors: tuple[float, ...]  # 2: total ratio split over a layer range, x working ratio
    refusal_sites: tuple[str, ...]
    refusal_depths: tuple[float, ...]  # 6: layers searched for the jailbreak configuration
    refusal_factors: tuple[float, ...]  # x working ratio
    monitor_tokens: int  # 5: response tokens per monitored prompt
    cross_factors: tuple[float, ...]  # 7, x working ratio
    fallback_ratio: float = 0.6  # the log's target ratio, when no sweep point raised the trait coherently
    steer_batch_size: int = 64


@dataclass(frozen=True)
class Profile:
    """``layer_step``: the layers the experiments look at (detection extracts at those; steering
    extracts at every layer and scans these). ``steering``: set on the steering profiles only."""

    name: str
    position: str  # where the extraction runs read activations
    rollout_tokens: int  # greedy rollout length, for response positions
    folds: int
    layer_step: int  # 1 = every layer; 3 = layers 0, 3, 6, ...
    pairs: int | None  # minimal pairs per trait (None = all)
    n_random: int  # random directions behind each layer's baseline
    neutral_cap: int | None  # texts used to fit a cross-model map (None = all)
    batch_size: int = 16
    seed: int = 0
    pairs_override: dict[str, int] = field(default_factory=dict)
    steering: SteeringSizes | None = None

    def layers(self, n_layers: int) -> list[int]:
        return list(range(0, n_layers, self.layer_step))

    def pairs_for(self, trait: str) -> int | None:
        return self.pairs_override.get(trait, self.pairs)

    @property
    def generates(self) -> bool:
        return parse_position(self.position).needs_response

    @property
    def sizes(self) -> SteeringSizes:
        if self.steering is None:
            raise TraitscopeError(f"profile {self.name!r} has no steering sizes; use a steering profile")
        return self.steering

    def describe(self) -> str:
        """One line for the report: what this profile changes against the log's setup."""
        return _describe_steering(self) if self.steering else _describe_detection(self)

    def with_overrides(self, path: Path) -> Profile:
        """This profile with the fields of a JSON object replaced (e.g. a tiny smoke-test profile)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TraitscopeError(
                f"cannot read the sizes file {path}: {exc}; want a JSON object of profile fields"
            ) from exc
        if not isinstance(data, dict):
            raise TraitscopeError(f"{path}: want a JSON object of profile fields, got {type(data).__name__}")
        return _override(self, data, str(path))


def _override(profile: Profile, data: dict[str, Any], where: str) -> Profile:
    top = {f.name for f in fields(Profile)} - {"steering"}
    sub = {f.name for f in fields(SteeringSizes)}
    unknown = sorted(set(data) - top - sub)
    if unknown:
        raise TraitscopeError(f"{where}: unknown profile fields {unknown}; valid: {sorted(top | sub)}")
    if set(data) & sub and profile.steering is None:
        raise TraitscopeError(f"{where}: steering fields {sorted(set(data) & sub)} given for a detection profile")
    fix = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    steering = profile.steering and replace(profile.steering, **{k: v for k, v in fix.items() if k in sub})
    return replace(profile, steering=steering, **{k: v for k, v in fix.items() if k in top})


def _describe_detection(p: Profile) -> str:
    parts = [f"position `{p.position}`" + ("" if p.generates else " (no generation: prompts only)")]
    if p.generates:
        parts.append(f"greedy rollouts of {p.rollout_tokens} tokens")
    step = p.layer_step
    parts.append("every layer" if step == 1 else f"every {step} layers (0, {step}, {2 * step}, …)")
    if p.pairs is None:
        parts.append("all scenarios")
    else:
        extra = ", ".join(f"{k}: {v}" for k, v in sorted(p.pairs_override.items()))
        parts.append(f"≤ {p.pairs} minimal pairs per trait ({extra}), balanced over tags")
    parts.append(f"{p.folds}-fold CV")
    parts.append(f"{p.n_random} random directions per baseline")
    parts.append("all neutral texts" if p.neutral_cap is None else f"≤ {p.neutral_cap} neutral texts")
    return "; ".join(parts)


def _describe_steering(p: Profile) -> str:
    s = p.sizes
    pairs = "all scenarios" if p.pairs is None else f"≤ {p.pairs} minimal pairs per trait (balanced over tags)"

    def xs(factors: tuple[float, ...]) -> str:
        return ", ".join(f"{f:g}×" for f in factors)

    return (
        f"extraction at `{p.position}` on greedy {p.rollout_tokens}-token rollouts, {pairs}, every layer, "
        f"{p.folds}-fold CV; {s.questions} steering questions × {s.answer_tokens}-token greedy answers "
        f"per configuration; ratio sweep {len(s.sweep_depths)} layers × {len(s.sweep_ratios)} ratios; layer "
        f"scan every {p.layer_step} layer(s) at {xs(s.scan_factors)} the working ratio; multi-layer totals "
        f"{xs(s.multi_factors)}; refusal search {xs(s.refusal_factors)}; cross-model "
        f"{xs(s.cross_factors)}; {s.monitor_tokens}-token monitored answers; "
        + ("all neutral texts" if p.neutral_cap is None else f"≤ {p.neutral_cap} neutral texts")
        + " for the cross-model map"
    )


def balanced_subset(trait: Trait, max_pairs: int | None, tags: tuple[str, ...] | None = None) -> Trait:
    """At most ``max_pairs`` minimal pairs (both halves kept), taken round-robin over the groups
    the ``tags`` define, in file order within a group, so every group is represented."""
    if max_pairs is None:
        return trait
    if tags is None:
        tags = BALANCE_TAGS.get(trait.name, ("topic",) if "topic" in trait.tag_names() else ())
    units: OrderedDict[str, list[Scenario]] = OrderedDict()  # pair (or lone id) -> its scenarios
    for s in trait.scenarios:
        units.setdefault(s.group, []).append(s)
    groups: OrderedDict[tuple[str, ...], list[str]] = OrderedDict()
    for unit, members in units.items():
        key = tuple(members[0].tags.get(t, "") for t in tags)
        groups.setdefault(key, []).append(unit)
    order = _interleave(list(groups))
    chosen: set[str] = set()
    depth = 0
    while len(chosen) < max_pairs and any(depth < len(g) for g in groups.values()):
        for members in (groups[k] for k in order):
            if depth < len(members) and len(chosen) < max_pairs:
                chosen.add(members[depth])
        depth += 1
    return trait.subset([s for s in trait.scenarios if s.group in chosen])


def _interleave(keys: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Group keys reordered to cycle through the values of the first tag, so a cut-off mid-round
    leaves the first tag (domain, language) balanced: (a, x), (b, x), (a, y), (b, y), ..."""
    buckets: OrderedDict[str, list[tuple[str, ...]]] = OrderedDict()
    for k in keys:
        buckets.setdefault(k[0] if k else "", []).append(k)
    lists = list(buckets.values())
    return [b[i] for i in range(max(map(len, lists), default=0)) for b in lists if i < len(b)]


# --- the profiles ---------------------------------------------------------------------------------

# The log's setup: vectors from the model's own responses, every layer, every scenario. Both full
# profiles extract this way; the steering one adds its sizes.
FULL_EXTRACTION = Profile(
    name="full",
    position="response[:]",
    rollout_tokens=32,
    folds=5,
    layer_step=1,
    pairs=None,
    n_random=200,
    neutral_cap=None,
)

DETECTION_PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        position="prompt[-1]",
        rollout_tokens=32,  # unused: prompt positions never generate
        folds=3,
        layer_step=3,
        pairs=24,
        n_random=50,
        neutral_cap=240,
        # 5 pairs per (lang, topic) cell: 20 per language (all of es/fr/zh) and 5 per English topic
        pairs_override={"uncertainty": 80},
    ),
    "full": FULL_EXTRACTION,
}

STEERING_PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        position="response[:]",  # the log's vectors are means over the model's own response
        rollout_tokens=24,
        folds=5,
        layer_step=3,
        pairs=40,
        n_random=30,
        neutral_cap=240,
        batch_size=32,
        steering=SteeringSizes(
            questions=6,
            answer_tokens=32,
            sweep_depths=(0.2, 0.4, 0.6, 0.8),
            sweep_ratios=(0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.6),
            scan_factors=(1.0, 2.0),
            multi_factors=(1.0, 2.0, 3.0),
            refusal_sites=("residual",),
            refusal_depths=(0.2, 0.33, 0.45),
            refusal_factors=(1.0, 2.0, 4.0),
            monitor_tokens=40,
            cross_factors=(1.0, 2.0),
        ),
    ),
    "full": replace(
        FULL_EXTRACTION,
        batch_size=32,
        steering=SteeringSizes(
            questions=18,
            answer_tokens=48,
            sweep_depths=(0.15, 0.3, 0.45, 0.6, 0.75, 0.9),
            sweep_ratios=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.15, 1.3, 1.6),
            scan_factors=(0.5, 1.0, 1.5, 2.0),
            multi_factors=(1.0, 1.5, 2.0, 3.0, 4.0),
            refusal_sites=("residual", "attn_out"),
            refusal_depths=(0.2, 0.27, 0.33, 0.4, 0.5),
            refusal_factors=(0.5, 1.0, 2.0, 3.0, 4.0),
            monitor_tokens=64,
            cross_factors=(0.5, 1.0, 1.5, 2.0),
        ),
    ),
}
