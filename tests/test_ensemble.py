"""The multi-layer stack: synthetic checks against hand computations, a leakage check that fails
if inner folds leak, and one run on real activations of the bundled model."""

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from traitscope.errors import TraitscopeError
from traitscope.evaluation import auroc, evaluate, evaluate_stack, fit_stack, kfold
from traitscope.evaluation.ensemble import out_of_fold_scores
from traitscope.methods import mean_diff

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _weak_layers(n=120, d=16, L=6, sep=0.8, seed=0):
    """Each layer carries the label weakly along its own direction, with independent noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    dirs = torch.randn(L, d, generator=g)
    dirs /= dirs.norm(dim=-1, keepdim=True)
    X = torch.randn(n, L, d, generator=g) + 3
    X += (y.float() * 2 - 1)[:, None, None] * sep / 2 * dirs
    return X, y, [str(i // 2) for i in range(n)]


def test_stack_matches_hand_computation():
    X, y, pairs = _weak_layers()
    stack = fit_stack(X, y, pairs, base="mean_diff", inner=3, seed=0)
    # base vectors: mean_diff on all rows
    assert torch.allclose(stack.vectors, mean_diff(X, y).vectors, atol=1e-6)
    # combiner: sklearn on out-of-fold scores computed by hand from the same inner folds
    oof = torch.zeros(len(y), X.shape[1])
    for s in kfold(y.tolist(), pairs, 3, 0):
        v = mean_diff(X[s.train], y[s.train]).vectors
        ptr = torch.einsum("nld,ld->nl", X[s.train], v)
        mid = (ptr[y[s.train] == 1].mean(0) + ptr[y[s.train] == 0].mean(0)) / 2
        oof[s.val] = (torch.einsum("nld,ld->nl", X[s.val], v) - mid) / ptr.std(0)
    assert torch.allclose(out_of_fold_scores(X, y, pairs, "mean_diff", 3, 0), oof, atol=1e-5)
    ref = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(oof.double().numpy(), y.numpy())
    assert torch.allclose(stack.weights, torch.tensor(ref.coef_[0], dtype=torch.float32), atol=1e-4)
    # score = weighted standardised projections + bias
    proj = torch.einsum("nld,ld->nl", X, stack.vectors)
    want = ((proj - stack.centre) / stack.scale) @ stack.weights + stack.bias
    assert torch.allclose(stack.score(X), want, atol=1e-5)


def test_stack_beats_every_single_layer_when_evidence_is_spread():
    X, y, pairs = _weak_layers(seed=0)
    splits = kfold(y.tolist(), pairs, 5, 0)
    rows = evaluate(X, y, splits, ["mean_diff"], list(range(X.shape[1])), pairs=pairs, n_random=20)
    best_single = max(r["auroc"] for r in rows)
    row = evaluate_stack(X, y, splits, pairs, base="mean_diff")
    assert row["method"] == "stack(mean_diff)" and row["layer"] is None and row["folds"] == 5
    assert row["auroc"] > best_single + 0.05, (row["auroc"], best_single)


def test_inner_folds_do_not_leak_on_noise():
    """d >> n: vectors fitted on a row separate it perfectly in-sample, so a combiner fed in-sample
    projections would look perfect. Out-of-fold scores of pure noise must sit near chance."""
    g = torch.Generator().manual_seed(2)
    X = torch.randn(60, 4, 400, generator=g)
    y = torch.arange(60) % 2
    pairs = [str(i // 2) for i in range(60)]
    insample = torch.einsum("nld,ld->nl", X, mean_diff(X, y).vectors)
    assert float(auroc(insample, y).min()) > 0.99  # the trap is real
    oof = out_of_fold_scores(X, y, pairs, "mean_diff", 3, 0)
    assert float(auroc(oof, y).max()) < 0.75
    row = evaluate_stack(X, y, kfold(y.tolist(), pairs, 5, 0), pairs)
    assert row["auroc"] < 0.75


def test_unknown_base_is_refused():
    X, y, pairs = _weak_layers(n=20)
    with pytest.raises(TraitscopeError, match="unknown base method 'nope'; use one of: mean_diff"):
        fit_stack(X, y, pairs, base="nope")


def test_stack_on_real_activations(lm):
    from traitscope.activations import Example, capture
    from traitscope.traits import load_trait

    trait = load_trait("sycophancy-natural")
    by_pair: dict[str, dict[str, object]] = {}
    for s in trait.scenarios:
        by_pair.setdefault(s.pair, {})[s.polarity] = s
    keys = [k for k, v in by_pair.items() if len(v) == 2][:20]
    rows = [by_pair[k][p] for k in keys for p in ("positive", "negative")]
    ids = [lm.prompt_ids(s.prompt, s.system, trait.raw) for s in rows]
    layers = [6, 10, 14, 18]
    X = capture(lm, [Example(i, []) for i in ids], ["residual"], layers, "prompt[-1]", 8).acts["residual"]
    y = torch.tensor([1 if s.polarity == "positive" else 0 for s in rows])
    pairs = [s.pair for s in rows]
    splits = kfold(y.tolist(), pairs, 4, 0)
    row = evaluate_stack(X, y, splits, pairs, base="mean_diff")
    assert row["auroc"] > 0.8, row
    # labels scrambled across pairs: the same activations no longer separate
    g = torch.Generator().manual_seed(0)
    flip = (torch.rand(len(keys), generator=g) < 0.5).repeat_interleave(2)
    y_bad = torch.where(flip, 1 - y, y)
    assert evaluate_stack(X, y_bad, kfold(y_bad.tolist(), pairs, 4, 0), pairs)["auroc"] < row["auroc"] - 0.2
