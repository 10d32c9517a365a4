"""The trait data model: plain dataclasses, no torch."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

POLARITIES = ("positive", "negative")
ELICITATIONS = ("natural", "instruction")
TEMPLATES = ("auto", "raw")
DIRECTIONS = ("positive", "negative")
MIN_PER_CLASS = 4
MIN_STEERING_QUESTIONS = 10


@dataclass(frozen=True)
class Scenario:
    """One contrastive prompt. ``positive`` means the model's continuation should show the trait."""

    id: str
    polarity: str
    prompt: str
    system: str | None = None
    pair: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)  # "file:line" it was read from

    @property
    def label(self) -> int:
        return 1 if self.polarity == "positive" else 0

    @property
    def group(self) -> str:
        """Cross-validation group: both halves of a minimal pair stay on one side of a split."""
        return self.pair or self.id

    def fingerprint(self, raw: bool = False) -> str:
        """Hash of everything a rollout of this scenario depends on (text, system, polarity, template)."""
        blob = json.dumps([self.id, self.polarity, self.prompt, self.system, self.pair, raw], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ABQuestion:
    """A two-choice behavioural question: one answer shows the trait, the other its opposite."""

    question: str
    trait_answer: str
    opposite_answer: str


@dataclass(frozen=True)
class Trait:
    name: str
    description: str
    elicitation: str
    scenarios: list[Scenario]
    steering_questions: list[str]
    steering_direction: str = "positive"
    template: str = "auto"
    path: Path | None = None
    source_format: str = "traitscope"  # or "trait-interp"
    ab_questions: tuple[ABQuestion, ...] = ()  # optional, for the judge-free A/B evaluation

    @property
    def steering_sign(self) -> float:
        """+1 to steer toward the trait, -1 when its steering direction is negative (push away)."""
        return -1.0 if self.steering_direction == "negative" else 1.0

    @property
    def raw(self) -> bool:
        """Prompts are read as raw text even by instruct models (document completions)."""
        return self.template == "raw"

    def counts(self) -> dict[str, int]:
        c = Counter(s.polarity for s in self.scenarios)
        return {p: c.get(p, 0) for p in POLARITIES}

    def tag_values(self, tag: str) -> dict[str, int]:
        return dict(Counter(s.tags.get(tag, "") for s in self.scenarios if tag in s.tags))

    def tag_names(self) -> list[str]:
        return sorted({k for s in self.scenarios for k in s.tags})

    def fingerprint(self) -> str:
        """Content hash of the trait's files (or, for a trait built in code, of its fields)."""
        h = hashlib.sha256()
        files = sorted(p for p in self.path.rglob("*") if p.is_file()) if self.path and self.path.is_dir() else []
        for f in files:
            h.update(f.relative_to(self.path).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")  # type: ignore[arg-type]
        if not files:
            h.update(
                json.dumps(
                    [self.name, self.description, self.template, [s.fingerprint() for s in self.scenarios]]
                ).encode()
            )
        return h.hexdigest()[:16]

    def subset(self, keep: list[Scenario]) -> Trait:
        from dataclasses import replace

        return replace(self, scenarios=keep)
