"""Judges by name: ``get_judge("default" | "api" | "local" | "embedding" | "lexicon", ...)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from traitscope.errors import TraitscopeError
from traitscope.judges.base import CombinedJudge, Judge, Pair, Score
from traitscope.traits.schema import Trait

if TYPE_CHECKING:  # torch is imported only when a model is actually used
    from traitscope.models.loader import LoadedModel

JUDGE_NAMES: dict[str, str] = {
    "default": "offline: lexicon for traits that have one, else the rubric judge; coherence from perplexity, "
    "repetition, relevance and gibberish checks (loads the model)",
    "api": "logprob-weighted rubric judge over an OpenAI-compatible API (TRAITSCOPE_JUDGE_BASE_URL / _MODEL / _API_KEY)",
    "local": "the same rubric prompts through a local instruct model's number distribution (loads the model)",
    "embedding": "MiniLM embeddings + logistic regression trained on the run's rollouts or the trait's scenarios",
    "rubric": "zero-shot from the trait's rubric anchors (SmolLM2 likelihood ratio, MiniLM similarity) averaged "
    "with the embedding classifier (loads the model)",
    "lexicon": "word lists: VADER for optimism, decline phrases for refusal, hedges for uncertainty, style for formality",
}


def needs_model(name: str) -> bool:
    """Whether the judge reads a LoadedModel (so a CLI loads one only when needed)."""
    return name in ("default", "local", "rubric")


class OfflineTraitJudge:
    """Per trait: the lexicon when one exists for it, else the rubric judge (zero-shot from the
    trait's rubric, averaged with the embedding classifier; it generalises to traits it never saw:
    bench/heldout, bench/RESULTS.md)."""

    name = "offline"

    def __init__(self, run_dir: Path | None = None, lm: LoadedModel | None = None) -> None:
        from traitscope.judges.lexicon import LexiconJudge
        from traitscope.judges.rubric import RubricJudge

        self.lexicon = LexiconJudge()
        self.rubric = RubricJudge(_model(lm), run_dir)

    def pick(self, trait: Trait) -> Judge:
        from traitscope.judges.lexicon import has_lexicon

        return self.lexicon if has_lexicon(trait) else self.rubric

    def score_trait(self, trait: Trait, pairs: Sequence[Pair]) -> list[Score]:
        return self.pick(trait).score_trait(trait, pairs)

    def score_coherence(self, pairs: Sequence[Pair]) -> list[Score]:
        return self.lexicon.score_coherence(pairs)


def _model(lm: LoadedModel | None) -> LoadedModel:
    if lm is not None:
        return lm
    from traitscope.models import load_model

    return load_model()


def get_judge(
    name: str, trait: Trait | None = None, run_dir: Path | None = None, lm: LoadedModel | None = None
) -> Judge:
    """A judge by name. ``lm`` is the UNSTEERED model for perplexity (default) or the judging model
    (local); when omitted the default bundled model is loaded. ``trait`` lets ``default`` name the
    trait judge it will use; scoring works for any trait passed later."""
    if name not in JUDGE_NAMES:
        raise TraitscopeError(f"unknown judge {name!r}; use one of: {', '.join(JUDGE_NAMES)}")
    if run_dir is not None and not Path(run_dir).is_dir():
        raise TraitscopeError(f"{run_dir}: run directory not found")
    if name == "api":
        from traitscope.judges.api import ApiJudge

        return ApiJudge()
    if name == "lexicon":
        from traitscope.judges.lexicon import LexiconJudge

        return LexiconJudge()
    if name == "embedding":
        from traitscope.judges.embedding import EmbeddingJudge

        return EmbeddingJudge(run_dir)
    model = _model(lm)
    if name == "rubric":
        from traitscope.judges.rubric import RubricJudge

        return RubricJudge(model, run_dir)
    if name == "local":
        from traitscope.judges.local import LocalJudge

        if not model.uses_template():
            raise TraitscopeError(
                f"the local judge needs an instruct model with a chat template; {model.name!r} has none"
            )
        return LocalJudge(model)
    from traitscope.judges.coherence import CoherenceJudge

    trait_judge = OfflineTraitJudge(run_dir, model)
    label = trait_judge.pick(trait).name if trait is not None else trait_judge.name
    return CombinedJudge(trait_judge, CoherenceJudge(model), name=f"default ({label} + coherence)")
