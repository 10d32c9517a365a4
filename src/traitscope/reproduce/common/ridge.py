"""The ridge map between two models' activation spaces, fitted on the same neutral texts read by
both (labels are never used): the bridge both cross-model findings carry vectors over (detection's
base -> instruct transfer and steering's cross-model steering).

``fit_ridge_map`` picks alpha by k-fold CV on z-scored inputs; ``neutral_texts`` are the prompts of
every bundled trait but the tested one plus the monitor prompt sets not about it;
``capture_texts`` reads raw texts (no chat template) into resumable on-disk activations."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from traitscope.activations import parse_position
from traitscope.extraction.activations import capture_to_disk
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent

ALPHAS = tuple(float(a) for a in np.logspace(-2, 5, 15))  # on z-scored inputs (see fit_ridge_map)
# Prompt sets left out of a map for a trait because they are about that trait.
MAP_EXCLUDE: dict[str, set[str]] = {"refusal": {"harmful", "benign", "jailbreak"}}


@dataclass
class LinearMap:
    """``x_out ≈ x_in @ W + b``; ``r2``: held-out (k-fold) R², averaged over output dimensions."""

    W: torch.Tensor  # [d_in, d_out]
    b: torch.Tensor  # [d_out]
    alpha: float
    r2: float

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return X.float() @ self.W + self.b


def _scale(X: np.ndarray) -> np.ndarray:
    """Per-dimension sd, with constant dimensions left at 1 (nothing to scale)."""
    sd = X.std(0)
    return np.where(sd > 1e-8 * max(float(sd.max()), 1e-30), sd, 1.0)


def _ridge_fits(A: np.ndarray, B: np.ndarray, alphas: Sequence[float]) -> Iterator[np.ndarray]:
    """Ridge coefficients ``[d_in, d_out]`` of centred ``A -> B`` for each alpha, from one SVD:
    ``W(alpha) = V diag(s / (s^2 + alpha)) U^T B``."""
    U, sv, Vt = np.linalg.svd(A, full_matrices=False)
    UtB = U.T @ B
    for alpha in alphas:
        yield Vt.T @ ((sv / (sv**2 + alpha))[:, None] * UtB)


def _r2(pred: np.ndarray, truth: np.ndarray) -> float:
    """R² per output dimension, averaged (sklearn's ``uniform_average``)."""
    sst = ((truth - truth.mean(0)) ** 2).sum(0)
    keep = sst > 0
    sse = ((truth - pred) ** 2).sum(0)
    return float((1.0 - sse[keep] / sst[keep]).mean())


def fit_ridge_map(X_in: torch.Tensor, X_out: torch.Tensor, folds: int = 5, seed: int = 0) -> LinearMap:
    """Multi-output ridge regression from ``X_in`` [n, d_in] to ``X_out`` [n, d_out], alpha by
    k-fold cross-validation (least held-out squared error), with its held-out R².

    Both sides are z-scored per dimension first: residual streams carry a few massive-activation
    dimensions that would otherwise own both the penalty and the fit, and one alpha grid then
    suits any model and layer. The returned map is in the original units either way. (k-fold, not
    the leave-one-out shortcut: with fewer texts than dimensions that picked the smallest alpha
    where every held-out R² preferred a larger one.)"""
    from sklearn.model_selection import KFold

    xi, xo = X_in.double().numpy(), X_out.double().numpy()
    mi, mo = xi.mean(0), xo.mean(0)
    si, so = _scale(xi), _scale(xo)
    A, B = (xi - mi) / si, (xo - mo) / so
    sse = np.zeros(len(ALPHAS))
    r2 = np.zeros(len(ALPHAS))
    splits = list(KFold(n_splits=min(folds, len(A)), shuffle=True, random_state=seed).split(A))
    for tr, te in splits:
        ma, mb = A[tr].mean(0), B[tr].mean(0)
        for k, W in enumerate(_ridge_fits(A[tr] - ma, B[tr] - mb, ALPHAS)):
            pred = (A[te] - ma) @ W + mb
            sse[k] += float(((pred - B[te]) ** 2).sum())
            r2[k] += _r2(pred, B[te]) / len(splits)
    best = int(np.argmin(sse))
    coef = next(_ridge_fits(A, B, [ALPHAS[best]]))  # [d_in, d_out], standardised units
    W = coef / si[:, None] * so[None, :]
    b = mo - mi @ W
    return LinearMap(torch.from_numpy(W).float(), torch.from_numpy(b).float(), ALPHAS[best], float(r2[best]))


# --- neutral texts for the map ------------------------------------------------------------------


def neutral_texts(exclude_trait: str, cap: int | None = None) -> list[str]:
    """Prompts of every bundled trait but the tested one, plus the monitor prompt sets that are
    not about it: unlabeled text the two models both read. Evenly thinned to ``cap``."""
    from traitscope.prompts import bundled_prompt_sets, load_prompt_set
    from traitscope.traits import bundled_names, load_trait

    texts: list[str] = []
    for name in bundled_names():
        if name != exclude_trait:
            texts.extend(s.prompt for s in load_trait(name).scenarios)
    for name in bundled_prompt_sets():
        if name not in MAP_EXCLUDE.get(exclude_trait, set()):
            texts.extend(p.text for p in load_prompt_set(name).prompts)
    texts = list(dict.fromkeys(texts))  # drop repeats (instruction pairs share a prompt)
    if cap is not None and len(texts) > cap:
        step = len(texts) / cap
        texts = [texts[math.floor(i * step)] for i in range(cap)]
    return texts


def map_position(trait_position: str) -> str:
    """Where neutral texts are read: a single-token position maps to the text's last token (both
    models have read the same string there); a token mean maps to the mean over the whole text
    (``all[:]``) — token boundaries differ between tokenizers, a text's mean does not care."""
    return "prompt[-1]" if parse_position(trait_position).index is not None else "all[:]"


def capture_texts(
    lm: LoadedModel,
    texts: Sequence[str],
    sites: Sequence[str],
    layers: Sequence[int],
    position: str,
    directory: Path,
    batch_size: int = 16,
    reporter: Reporter = Silent(),
) -> dict[str, torch.Tensor]:
    """Activations ``[n, L, d]`` per site of raw texts (no chat template, so both models read the
    same characters), resumable on disk like an extraction run."""
    rows = [
        {"id": f"text-{i:05d}", "prompt_ids": lm.prompt_ids(t, raw=True), "response_ids": []}
        for i, t in enumerate(texts)
    ]
    captured = capture_to_disk(
        lm, rows, sites, layers, parse_position(position), directory, batch_size, batch_size * 4, reporter
    )
    return captured.acts
