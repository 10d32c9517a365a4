"""traitscope against steering-vectors (and repeng when importable) on the same examples, folds
and batch size, in one run: time and best held-out AUROC (over layers, mean over folds) each.

Examples: the trait's minimal pairs, each prompt formatted as the model reads it; read at the
last prompt token of every layer's residual stream; 5 folds grouped by minimal pair. Peers train
their own vectors per fold (their own forward passes); every vector is scored on the same held-out
activations (traitscope's capture), so only the direction differs.

    python bench/peers.py [TRAIT] [--model M] [--folds 5] [--batch-size 8] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.simplefilter("ignore")  # sklearn's deprecation notes, once per layer and fold

import torch  # noqa: E402

from traitscope.activations import Example, capture  # noqa: E402
from traitscope.evaluation.crossval import kfold  # noqa: E402
from traitscope.evaluation.metrics import auroc  # noqa: E402
from traitscope.methods import METHODS  # noqa: E402
from traitscope.models import load_model  # noqa: E402
from traitscope.traits import load_trait  # noqa: E402

OURS = ("mean_diff", "probe", "probe_cv", "lda")


def emit(name: str, value: float | str) -> None:
    print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}", flush=True)


def fold_auroc(
    X: torch.Tensor, y: torch.Tensor, train: torch.Tensor, test: torch.Tensor, vectors: torch.Tensor
) -> torch.Tensor:
    """Per-layer held-out AUROC of ``vectors`` [L, d], each oriented on the training fold."""
    sign = torch.sign(auroc(torch.einsum("nld,ld->nl", X[train], vectors), y[train]) - 0.5)
    sign[sign == 0] = 1
    return auroc(torch.einsum("nld,ld->nl", X[test], vectors * sign[:, None]), y[test])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trait", nargs="?", default="sycophancy-natural")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="first N minimal pairs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm, trait = load_model(args.model), load_trait(args.trait)
    pairs: dict[str, dict[str, object]] = {}
    for s in trait.scenarios:
        if s.pair:
            pairs.setdefault(s.pair, {})[s.polarity] = s
    pairs = {k: v for k, v in pairs.items() if len(v) == 2}
    keys = list(pairs)[: args.limit]
    rows = [pairs[k][p] for k in keys for p in ("positive", "negative")]
    texts = [lm.format_prompt(s.prompt, s.system, trait.raw) for s in rows]
    y = torch.tensor([1 if s.polarity == "positive" else 0 for s in rows])
    groups = [s.pair for s in rows]
    layers = list(range(lm.n_layers))
    emit("examples", f"{len(rows)} ({len(keys)} minimal pairs of {trait.name}), {lm.name}, {len(layers)} layers")

    start = time.perf_counter()
    ids = [lm.prompt_ids(s.prompt, s.system, trait.raw) for s in rows]
    X = capture(lm, [Example(i, []) for i in ids], ["residual"], layers, "prompt[-1]", args.batch_size).acts["residual"]
    splits = kfold(y.tolist(), groups, args.folds)
    capture_s = time.perf_counter() - start
    for method in OURS:
        t0 = time.perf_counter()
        per_fold = [
            fold_auroc(
                X,
                y,
                sp.train,
                sp.val,
                METHODS[method](X[sp.train], y[sp.train], 0, [groups[i] for i in sp.train]).vectors,
            )
            for sp in splits
        ]
        mean = torch.stack(per_fold).mean(0)
        emit(f"traitscope {method} best auroc", float(mean.max()))
        emit(f"traitscope {method} best layer", str(int(mean.argmax())))
        emit(f"traitscope {method} seconds (capture once + {len(splits)} folds)", capture_s + time.perf_counter() - t0)

    try:
        from steering_vectors import train_steering_vector
    except ImportError as exc:
        emit("steering-vectors", f"skipped ({exc})")
    else:
        t0, per_fold = time.perf_counter(), []
        for sp in splits:
            train = [int(i) for i in sp.train]
            pos = [texts[i] for i in train if y[i] == 1]
            neg = [texts[i] for i in train if y[i] == 0]
            sv = train_steering_vector(
                lm.model,
                lm.tokenizer,
                list(zip(pos, neg, strict=False)),
                layers=layers,
                read_token_index=-1,
                batch_size=args.batch_size,
            )
            vectors = torch.stack([sv.layer_activations[la].float().cpu() for la in layers])
            per_fold.append(fold_auroc(X, y, sp.train, sp.val, vectors / vectors.norm(dim=-1, keepdim=True)))
        mean = torch.stack(per_fold).mean(0)
        emit("steering-vectors best auroc", float(mean.max()))
        emit("steering-vectors best layer", str(int(mean.argmax())))
        emit(f"steering-vectors seconds ({len(splits)} folds of training)", time.perf_counter() - t0)
    try:
        import repeng  # noqa: F401
    except Exception as exc:  # repeng 0.4.0 imports numpy<2 APIs and fails on numpy 2
        emit(
            "repeng",
            f"skipped: it does not import here ({type(exc).__name__}: {str(exc)[:80]}); "
            "repeng 0.4.0 needs numpy<2, which this venv cannot take",
        )


if __name__ == "__main__":
    main()
