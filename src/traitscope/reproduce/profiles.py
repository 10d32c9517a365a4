"""How much work a reproduction does: the ``full`` profile follows the research log's setup on the
bundled models; ``quick`` cuts it down to finish in minutes on a 2-core CPU and says how.

Scenario subsets are balanced across a trait's tags (round-robin over tag groups, whole minimal
pairs), because the bundled files are sorted by tag: a plain "first N" would keep only English
science questions and leave the cross-language and cross-topic matrices with one group."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from traitscope.activations import parse_position
from traitscope.traits.schema import Scenario, Trait

# Tags to balance a subset over, per bundled trait; the default is the trait's `topic` tag.
# uncertainty feeds the cross-language (lang) and cross-topic (English rows by topic) matrices;
# optimism feeds the cross-distribution table (domain).
BALANCE_TAGS: dict[str, tuple[str, ...]] = {
    "uncertainty": ("lang", "topic"),
    "optimism": ("domain", "topic"),
    "optimism-instruction": ("domain", "topic"),
}


@dataclass(frozen=True)
class Profile:
    name: str
    position: str
    max_new_tokens: int
    folds: int
    layer_step: int  # 1 = every layer; 3 = layers 0, 3, 6, ...
    max_pairs: int | None  # minimal pairs per trait (None = all)
    n_random: int  # random directions behind each layer's baseline
    neutral_cap: int | None  # texts used to fit a cross-model map (None = all)
    batch_size: int = 16
    seed: int = 0
    pairs_override: dict[str, int] = field(default_factory=dict)

    def layers(self, n_layers: int) -> list[int]:
        return list(range(0, n_layers, self.layer_step))

    def pairs_for(self, trait: str) -> int | None:
        return self.pairs_override.get(trait, self.max_pairs)

    @property
    def generates(self) -> bool:
        return parse_position(self.position).needs_response

    def describe(self) -> str:
        """One line for the report: what this profile changes against the log's setup."""
        parts = [f"position `{self.position}`" + ("" if self.generates else " (no generation: prompts only)")]
        if self.generates:
            parts.append(f"greedy rollouts of {self.max_new_tokens} tokens")
        step = self.layer_step
        parts.append("every layer" if step == 1 else f"every {step} layers (0, {step}, {2 * step}, …)")
        if self.max_pairs is None:
            parts.append("all scenarios")
        else:
            extra = ", ".join(f"{k}: {v}" for k, v in sorted(self.pairs_override.items()))
            parts.append(f"≤ {self.max_pairs} minimal pairs per trait ({extra}), balanced over tags")
        parts.append(f"{self.folds}-fold CV")
        parts.append(f"{self.n_random} random directions per baseline")
        parts.append("all neutral texts" if self.neutral_cap is None else f"≤ {self.neutral_cap} neutral texts")
        return "; ".join(parts)


QUICK = Profile(
    name="quick",
    position="prompt[-1]",
    max_new_tokens=32,  # unused: prompt positions never generate
    folds=3,
    layer_step=3,
    max_pairs=24,
    n_random=50,
    neutral_cap=240,
    # 5 pairs per (lang, topic) cell: 20 per language (all of es/fr/zh) and 5 per English topic
    pairs_override={"uncertainty": 80},
)
FULL = Profile(
    name="full",
    position="response[:]",
    max_new_tokens=32,
    folds=5,
    layer_step=1,
    max_pairs=None,
    n_random=200,
    neutral_cap=None,
)
PROFILES = {p.name: p for p in (QUICK, FULL)}


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
