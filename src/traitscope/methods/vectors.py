"""The extraction methods. ``probe`` and ``gradient`` are the research log's reliable ones,
``mean_diff`` the interpretable baseline, ``random`` the baseline every table shows;
``pca_diff`` (repeng's method) and ``ica`` are kept for analysis only — the log found them no
better than random."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from traitscope.methods.base import Fit, check_xy, orient, pair_index, unit


def mean_diff(X: torch.Tensor, y: torch.Tensor, seed: int = 0, pairs: Sequence[str | None] | None = None) -> Fit:
    """Difference of class means."""
    X, y = check_xy(X, y)
    v = X[y == 1].mean(0) - X[y == 0].mean(0)
    return Fit(unit(v), [{} for _ in range(X.shape[1])])


def probe(
    X: torch.Tensor, y: torch.Tensor, seed: int = 0, pairs: Sequence[str | None] | None = None, C: float = 1.0
) -> Fit:
    """L2-regularised logistic regression on row-normalised activations (scale-free, so one C
    suits every layer even though residual norms grow ~100x with depth)."""
    from sklearn.linear_model import LogisticRegression

    X, y = check_xy(X, y)
    Xn = unit(X).double().numpy()
    yn = y.numpy()
    vectors, extras = [], []
    for layer in range(X.shape[1]):
        clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
        clf.fit(Xn[:, layer], yn)
        coef = torch.from_numpy(clf.coef_[0]).float()
        vectors.append(coef)
        extras.append(
            {
                "bias": float(clf.intercept_[0]),
                "coef_norm": float(coef.norm()),
                "train_accuracy": float(clf.score(Xn[:, layer], yn)),
            }
        )
    return Fit(unit(torch.stack(vectors)), extras)


def gradient(
    X: torch.Tensor,
    y: torch.Tensor,
    seed: int = 0,
    pairs: Sequence[str | None] | None = None,
    steps: int = 150,
    lr: float = 0.05,
    shrinkage: float = 1.0,
) -> Fit:
    """A direction optimised by gradient ascent on a shrunk Fisher criterion,
    ``(m1 - m0)^2 / (s1^2 + s0^2 + shrinkage * trace(Cov)/d)``, from a seeded random start.
    The shrinkage term (the projected variance of an average direction) keeps it from chasing
    directions with no variance, which overfit when d exceeds n. All layers train at once."""
    X, y = check_xy(X, y)
    Xc = X - X.mean(0, keepdim=True)
    scale = Xc.pow(2).mean(dim=(0, 2)).clamp_min(1e-12)  # [L]: per-layer average variance per dim
    Xs = Xc / scale.sqrt()[None, :, None]  # unit average variance: one lr fits all layers
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(X.shape[1], X.shape[2], generator=g).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)
    pos, neg = Xs[y == 1], Xs[y == 0]
    with torch.enable_grad():
        for _ in range(steps):
            u = v / v.norm(dim=-1, keepdim=True)
            p1 = torch.einsum("nld,ld->nl", pos, u)
            p0 = torch.einsum("nld,ld->nl", neg, u)
            fisher = (p1.mean(0) - p0.mean(0)) ** 2 / (p1.var(0) + p0.var(0) + shrinkage)
            opt.zero_grad()
            (-fisher.sum()).backward()
            opt.step()
    vec = unit(v.detach() / scale.sqrt()[:, None])  # back to activation coordinates
    vec = orient(vec, X, y)
    return Fit(vec, [{"fisher": float(f)} for f in fisher.detach()])


def random(X: torch.Tensor, y: torch.Tensor, seed: int = 0, pairs: Sequence[str | None] | None = None) -> Fit:
    """A seeded random unit vector per layer (oriented on the data like every other method)."""
    X, y = check_xy(X, y)
    g = torch.Generator().manual_seed(10_000 + seed)
    vec = unit(torch.randn(X.shape[1], X.shape[2], generator=g))
    return Fit(orient(vec, X, y), [{} for _ in range(X.shape[1])])


def pca_diff(X: torch.Tensor, y: torch.Tensor, seed: int = 0, pairs: Sequence[str | None] | None = None) -> Fit:
    """First principal component of (positive - negative) differences, centred as repeng does."""
    X, y = check_xy(X, y)
    pos, neg = pair_index(pairs, y, seed)
    diffs = X[pos] - X[neg]  # [m, L, d]
    diffs = diffs - diffs.mean(0, keepdim=True)
    vecs = []
    for layer in range(X.shape[1]):
        _, _, vh = torch.linalg.svd(diffs[:, layer].double(), full_matrices=False)
        vecs.append(vh[0].float())
    vec = orient(unit(torch.stack(vecs)), X, y)
    return Fit(vec, [{} for _ in range(X.shape[1])])


def ica(
    X: torch.Tensor, y: torch.Tensor, seed: int = 0, pairs: Sequence[str | None] | None = None, components: int = 8
) -> Fit:
    """FastICA on the activations; the component whose projections best separate the classes."""
    from sklearn.decomposition import FastICA

    X, y = check_xy(X, y)
    vecs, extras = [], []
    k = max(1, min(components, X.shape[0] - 1, X.shape[2]))
    for layer in range(X.shape[1]):
        data = X[:, layer].double().numpy()
        ica_model = FastICA(n_components=k, random_state=seed, max_iter=400, tol=1e-3, whiten="unit-variance")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sources = ica_model.fit_transform(data)
        yn = y.numpy()
        gaps = np.abs(sources[yn == 1].mean(0) - sources[yn == 0].mean(0)) / (sources.std(0) + 1e-9)
        best = int(np.argmax(gaps))
        vecs.append(torch.from_numpy(ica_model.components_[best]).float())
        extras.append({"component": best})
    return Fit(orient(unit(torch.stack(vecs)), X, y), extras)


PROBE_CS = (0.01, 0.1, 1.0, 10.0, 100.0)


def probe_cv(X: torch.Tensor, y: torch.Tensor, seed: int = 0, pairs: Sequence[str | None] | None = None) -> Fit:
    """The probe with its regularisation chosen per layer by inner cross-validation (3 folds,
    grouped by minimal pair when ``pairs`` is given, so a pair's halves never straddle a split)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    X, y = check_xy(X, y)
    Xn, yn = unit(X).double().numpy(), y.numpy()
    groups = [p if p is not None else f"row{i}" for i, p in enumerate(pairs)] if pairs is not None else None
    n_splits = max(2, min(3, int(min((yn == 0).sum(), (yn == 1).sum()))))
    splitter = (
        GroupKFold(n_splits)
        if groups is not None and len(set(groups)) >= n_splits
        else StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    )
    folds = list(splitter.split(Xn[:, 0], yn, groups))
    vectors, extras = [], []
    for layer in range(X.shape[1]):
        clf = LogisticRegressionCV(Cs=list(PROBE_CS), cv=folds, max_iter=2000, random_state=seed)
        clf.fit(Xn[:, layer], yn)
        vectors.append(torch.from_numpy(clf.coef_[0]).float())
        extras.append({"C": float(clf.C_[0]), "bias": float(clf.intercept_[0])})
    return Fit(unit(torch.stack(vectors)), extras)


def ledoit_wolf(Xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ledoit-Wolf shrinkage of centred ``Xc`` [L, n, d] for all layers at once, as sklearn's
    ``LedoitWolf`` computes it: ``(shrinkage [L], mu [L])`` with the shrunk covariance
    ``(1 - shrinkage) Xc'Xc/n + shrinkage * mu * I``. Every term comes from row sums and the n x n
    Gram matrix, never the d x d covariance."""
    n, d = Xc.shape[1], Xc.shape[2]
    sq = Xc.pow(2)
    mu = sq.sum(dim=(1, 2)) / (n * d)  # trace(emp_cov) / d
    beta_ = sq.sum(dim=2).pow(2).sum(dim=1)  # sum of <X2', X2>
    gram = Xc @ Xc.transpose(1, 2)
    delta_ = gram.pow(2).sum(dim=(1, 2)) / n**2  # sum of squared <X', X> / n^2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * sq.sum(dim=(1, 2)) / n + d * mu**2) / d
    beta = torch.minimum(beta, delta)
    shrinkage = torch.where(beta == 0, torch.zeros_like(beta), beta / delta)
    return shrinkage, mu


def _shrunk_solve(Xc: torch.Tensor, shrinkage: torch.Tensor, mu: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``S^-1 m`` per layer for ``S = (1 - s) Xc'Xc/n + s mu I``; through the n x n system
    (Woodbury) when n < d and the shrinkage is positive, else the d x d one."""
    n, d = Xc.shape[1], Xc.shape[2]
    a = (shrinkage * mu)[:, None]  # [L, 1]
    if n < d and bool((a > 0).all()):
        U = Xc * ((1 - shrinkage) / n).sqrt()[:, None, None]  # [L, n, d], S = a I + U'U
        inner = a[:, :, None] * torch.eye(n, dtype=Xc.dtype) + U @ U.transpose(1, 2)
        z = torch.linalg.solve(inner, (U @ m[:, :, None]))  # [L, n, 1]
        return (m - (U.transpose(1, 2) @ z)[:, :, 0]) / a
    cov = (1 - shrinkage)[:, None, None] * (Xc.transpose(1, 2) @ Xc) / n
    cov = cov + (shrinkage * mu)[:, None, None] * torch.eye(d, dtype=Xc.dtype)
    return torch.linalg.solve(cov, m[:, :, None])[:, :, 0]


def lda(X: torch.Tensor, y: torch.Tensor, seed: int = 0, pairs: Sequence[str | None] | None = None) -> Fit:
    """Shrinkage LDA: the mean difference whitened by the Ledoit-Wolf within-class covariance,
    ``w = S^-1 (mu1 - mu0)`` (a mean difference that discounts directions of high shared variance).
    All layers at once in float64; matches sklearn's ``LedoitWolf`` + ``solve`` (tests check it)."""
    X, y = check_xy(X, y)
    A = X.double().transpose(0, 1)  # [L, n, d]
    mu1, mu0 = A[:, y == 1].mean(1), A[:, y == 0].mean(1)
    centred = torch.cat([A[:, y == 1] - mu1[:, None], A[:, y == 0] - mu0[:, None]], dim=1)
    centred = centred - centred.mean(1, keepdim=True)  # LedoitWolf centres again (a ~0 shift)
    shrinkage, mu = ledoit_wolf(centred)
    w = _shrunk_solve(centred, shrinkage, mu, mu1 - mu0)
    return Fit(unit(w.float()), [{"shrinkage": float(s)} for s in shrinkage])


METHODS = {
    "mean_diff": mean_diff,
    "probe": probe,
    "gradient": gradient,
    "random": random,
    "pca_diff": pca_diff,
    "ica": ica,
    "probe_cv": probe_cv,
    "lda": lda,
}
DEFAULT_METHODS = ("mean_diff", "probe", "gradient", "random")
