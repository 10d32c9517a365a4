"""Methods and metrics on synthetic data, checked against reference implementations."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from traitscope.evaluation import auroc, cohens_d, evaluate, kfold
from traitscope.methods import METHODS, mean_diff, probe


def _data(n=80, d=32, L=3, sep=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    direction = torch.randn(d, generator=g)
    direction /= direction.norm()
    X = torch.randn(n, L, d, generator=g) * 2 + 5  # offset: methods must not rely on centred data
    X += (y.float() * 2 - 1)[:, None, None] * sep / 2 * direction
    return X, y, direction


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_gives_unit_oriented_vectors(method):
    X, y, _ = _data()
    fit = METHODS[method](X, y, seed=0, pairs=[str(i // 2) for i in range(len(y))])
    assert fit.vectors.shape == (3, 32)
    assert torch.allclose(fit.vectors.norm(dim=-1), torch.ones(3), atol=1e-5)
    proj = torch.einsum("nld,ld->nl", X, fit.vectors)
    assert (proj[y == 1].mean(0) > proj[y == 0].mean(0)).all()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_same_seed_same_vectors(method):
    X, y, _ = _data()
    a = METHODS[method](X, y, seed=3).vectors
    b = METHODS[method](X, y, seed=3).vectors
    assert torch.equal(a, b)


def test_probe_separable_is_perfect_and_finds_the_direction():
    X, y, direction = _data(sep=12.0)
    fit = probe(X, y)
    proj = torch.einsum("nld,ld->nl", X, fit.vectors)
    thr = (proj[y == 1].mean(0) + proj[y == 0].mean(0)) / 2
    assert ((proj > thr) == y.bool()[:, None]).all()
    assert all(e["train_accuracy"] == 1.0 for e in fit.extras)
    assert (fit.vectors @ direction).min() > 0.6


def test_mean_diff_matches_numpy_reference():
    X, y, _ = _data()
    ref = X[y == 1].numpy().mean(0) - X[y == 0].numpy().mean(0)
    ref /= np.linalg.norm(ref, axis=-1, keepdims=True)
    assert np.allclose(mean_diff(X, y).vectors.numpy(), ref, atol=1e-6)


def test_gradient_beats_random_on_signal():
    X, y, direction = _data(sep=2.0)
    g = METHODS["gradient"](X, y).vectors
    r = METHODS["random"](X, y).vectors
    assert (g @ direction).abs().min() > (r @ direction).abs().max()


def test_auroc_matches_sklearn_with_ties():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (200,))
    y[:2] = torch.tensor([0, 1])
    scores = torch.randint(0, 10, (200, 4), generator=g).float()  # many ties
    ours = auroc(scores, y)
    for j in range(4):
        assert abs(float(ours[j]) - roc_auc_score(y.numpy(), scores[:, j].numpy())) < 1e-6


def test_cohens_d_reference():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    b = torch.tensor([0.0, 1.0, 1.0, 2.0])
    scores = torch.cat([a, b])[:, None]
    y = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    pooled = np.sqrt((3 * a.numpy().var(ddof=1) + 3 * b.numpy().var(ddof=1)) / 6)
    assert abs(float(cohens_d(scores, y)[0]) - (2.5 - 1.0) / pooled) < 1e-6


def test_kfold_keeps_pairs_together_and_is_deterministic():
    y = [i % 2 for i in range(40)]
    groups = [str(i // 2) for i in range(40)]
    a = kfold(y, groups, k=5, seed=1)
    b = kfold(y, groups, k=5, seed=1)
    assert [s.val.tolist() for s in a] == [s.val.tolist() for s in b]
    for s in a:
        val_groups = {groups[i] for i in s.val.tolist()}
        assert not val_groups & {groups[i] for i in s.train.tolist()}
    assert sorted(i for s in a for i in s.val.tolist()) == list(range(40))


def test_evaluate_separates_signal_from_random_baseline():
    X, y, _ = _data(n=80, sep=6.0)
    splits = kfold(y.tolist(), [str(i // 2) for i in range(80)], 5, 0)
    rows = evaluate(X, y, splits, ["probe", "random"], [0, 1, 2], n_random=100)
    probe_rows = [r for r in rows if r["method"] == "probe"]
    assert all(r["auroc"] > 0.9 and r["polarity_correct"] for r in probe_rows)
    assert all(r["auroc"] > r["random_auroc_p95"] for r in probe_rows)
    assert all(0.4 < r["random_auroc_p95"] < 0.9 for r in rows)
    lo, hi = probe_rows[0]["effect_size_ci95"]
    assert lo < probe_rows[0]["effect_size_pooled"] < hi


@pytest.mark.parametrize(("n", "d"), [(40, 64), (120, 16)])  # the n x n path (n < d) and the d x d one
def test_lda_matches_sklearn_ledoit_wolf(n, d):
    from sklearn.covariance import LedoitWolf

    X, y, _ = _data(n=n, d=d)
    X = X * torch.linspace(0.2, 5.0, d)  # unequal variances: whitening must matter
    fit = METHODS["lda"](X, y)
    for layer in range(X.shape[1]):
        A = X[:, layer].double().numpy()
        yn = y.numpy()
        mu1, mu0 = A[yn == 1].mean(0), A[yn == 0].mean(0)
        lw = LedoitWolf().fit(np.concatenate([A[yn == 1] - mu1, A[yn == 0] - mu0]))
        ref = np.linalg.solve(lw.covariance_, mu1 - mu0)
        ref /= np.linalg.norm(ref)
        assert abs(fit.extras[layer]["shrinkage"] - lw.shrinkage_) < 1e-9
        assert np.allclose(fit.vectors[layer].numpy(), ref, atol=1e-6)
        assert abs(float(fit.vectors[layer] @ mean_diff(X, y).vectors[layer])) < 0.999  # not the plain mean difference
