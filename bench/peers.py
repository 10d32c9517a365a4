"""traitscope against steering-vectors and repeng on the same examples, folds and batch size, in
one run: time and best held-out AUROC (over layers, mean over folds) each.

Examples: the trait's minimal pairs, each prompt formatted as the model reads it; read at the
last prompt token of every layer's residual stream; 5 folds grouped by minimal pair. Peers train
their own vectors per fold (their own forward passes); every vector is scored on the same held-out
activations (traitscope's capture), so only the direction differs. ``stack(...)`` rows are the
multi-layer detector (:mod:`traitscope.evaluation.ensemble`): one score from all layers, so no
layer is picked on the test folds as the per-layer rows' "best layer" is.

repeng 0.4.0 needs numpy<2, so it runs in its own venv (``make bench-peers-venv`` builds
``.venv-repeng``: torch 2.13 CPU, numpy<2, transformers<5, repeng 0.4.0) as a subprocess
(``bench/repeng_worker.py``; JSON in, safetensors out). Without that venv its row says skipped.

Times are wall seconds and this process's CPU seconds (steadier on a shared box); traitscope's
"validated extraction" is one capture of all examples plus fitting and scoring every fold.

    python bench/peers.py [TRAIT] [--model M] [--folds 5] [--batch-size 8] [--limit N]
                          [--repeng-python .venv-repeng/bin/python] [--stack-bases mean_diff,lda]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.simplefilter("ignore")  # sklearn's deprecation notes, once per layer and fold

import torch  # noqa: E402

from traitscope.activations import Example, capture  # noqa: E402
from traitscope.evaluation.crossval import Split, evaluate, kfold  # noqa: E402
from traitscope.evaluation.ensemble import evaluate_stack  # noqa: E402
from traitscope.evaluation.metrics import auroc  # noqa: E402
from traitscope.methods import METHODS  # noqa: E402
from traitscope.models import load_model  # noqa: E402
from traitscope.traits import load_trait  # noqa: E402

OURS = ("mean_diff", "probe", "probe_cv", "lda")
ROOT = Path(__file__).resolve().parent.parent
REPENG_PYTHON = ROOT / ".venv-repeng" / "bin" / "python"


class Clock:
    """Wall and process-CPU seconds since creation."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def emit(name: str, value: float | str) -> None:
    print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}", flush=True)


def emit_row(name: str, per_fold: list[torch.Tensor], seconds: tuple[float, float], what: str) -> None:
    mean = torch.stack(per_fold).mean(0)
    emit(f"{name} best auroc", float(mean.max()))
    emit(f"{name} best layer", str(int(mean.argmax())))
    emit(f"{name} seconds ({what})", seconds[0])
    emit(f"{name} cpu seconds", seconds[1])


def fold_auroc(
    X: torch.Tensor, y: torch.Tensor, train: torch.Tensor, test: torch.Tensor, vectors: torch.Tensor
) -> torch.Tensor:
    """Per-layer held-out AUROC of ``vectors`` [L, d], each oriented on the training fold."""
    sign = torch.sign(auroc(torch.einsum("nld,ld->nl", X[train], vectors), y[train]) - 0.5)
    sign[sign == 0] = 1
    return auroc(torch.einsum("nld,ld->nl", X[test], vectors * sign[:, None]), y[test])


def examples(
    lm, trait_name: str, limit: int | None
) -> tuple[list[list[int]], tuple[float, float], list[str], torch.Tensor, list[str]]:
    """Rows (positive, negative per complete minimal pair), their token ids and formatted texts."""
    trait = load_trait(trait_name)
    pairs: dict[str, dict[str, object]] = {}
    for s in trait.scenarios:
        if s.pair:
            pairs.setdefault(s.pair, {})[s.polarity] = s
    keys = [k for k, v in pairs.items() if len(v) == 2][:limit]
    rows = [pairs[k][p] for k in keys for p in ("positive", "negative")]
    clock = Clock()  # traitscope's tokenisation counts in its time, as the peers' does in theirs
    ids = [lm.prompt_ids(s.prompt, s.system, trait.raw) for s in rows]
    tokenise = clock.read()
    texts = [lm.format_prompt(s.prompt, s.system, trait.raw) for s in rows]
    y = torch.tensor([1 if s.polarity == "positive" else 0 for s in rows])
    emit("examples", f"{len(rows)} ({len(keys)} minimal pairs of {trait.name}), {lm.name}, {lm.n_layers} layers")
    return ids, tokenise, texts, y, [s.pair for s in rows]


def ours(lm, ids, tokenise, y, groups, layers, args) -> tuple[torch.Tensor, list[Split]]:
    """Capture once, then every method's 5-fold validation; each timed as capture + its folds."""
    clock = Clock()
    X = capture(lm, [Example(i, []) for i in ids], ["residual"], layers, "prompt[-1]", args.batch_size).acts["residual"]
    splits = kfold(y.tolist(), groups, args.folds)
    cap = tuple(a + b for a, b in zip(clock.read(), tokenise, strict=True))
    emit("traitscope tokenise + capture seconds", cap[0])
    for method in OURS:
        clock = Clock()
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
        t = clock.read()
        emit_row(
            f"traitscope {method}", per_fold, (cap[0] + t[0], cap[1] + t[1]), f"capture once + {len(splits)} folds"
        )
    for base in [b for b in args.stack_bases.split(",") if b]:
        clock = Clock()
        row = evaluate_stack(X, y, splits, groups, base=base)
        t = clock.read()
        emit(f"traitscope stack({base}) auroc (all layers, no layer picked)", row["auroc"])
        emit(f"traitscope stack({base}) seconds (capture once + {len(splits)} folds)", cap[0] + t[0])
        emit(f"traitscope stack({base}) cpu seconds", cap[1] + t[1])
    # what `traitscope extract` runs: every fold's metrics per layer, 200 random directions, bootstrap CIs
    clock = Clock()
    rows = evaluate(X, y, splits, ["probe_cv"], layers, pairs=groups)
    t = clock.read()
    emit("traitscope probe_cv via crossval.evaluate best auroc", max(r["auroc"] for r in rows))
    emit("traitscope probe_cv via crossval.evaluate seconds (capture once + the pipeline's validation)", cap[0] + t[0])
    emit("traitscope probe_cv via crossval.evaluate cpu seconds", cap[1] + t[1])
    return X, splits


def steering_vectors(lm, ids, texts, X, y, splits, layers, args) -> None:
    try:
        from steering_vectors import train_steering_vector
    except ImportError as exc:
        emit("steering-vectors", f"skipped ({exc})")
        return
    same = sum(lm.tokenizer(t)["input_ids"] == i for t, i in zip(texts, ids, strict=True))
    emit("steering-vectors reads the same tokens as traitscope", f"{same} of {len(ids)} prompts")
    clock, per_fold = Clock(), []
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
            show_progress=False,
        )
        vectors = torch.stack([sv.layer_activations[la].float().cpu() for la in layers])
        per_fold.append(fold_auroc(X, y, sp.train, sp.val, vectors / vectors.norm(dim=-1, keepdim=True)))
    emit_row("steering-vectors", per_fold, clock.read(), f"{len(splits)} folds of training")


def repeng(lm, ids, texts, X, y, splits, layers, args) -> None:
    """repeng in its own venv: JSON job in, safetensors vectors out (never pickle)."""
    from safetensors import safe_open

    python = Path(args.repeng_python)
    if not python.exists():
        emit("repeng", f"skipped: no {python} (build it with `make bench-peers-venv`)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        job = {
            "model_dir": lm.source,
            "texts": texts,
            "labels": y.tolist(),
            "folds": [sp.train.tolist() for sp in splits],
            "layers": layers,
            "batch_size": args.batch_size,
            "threads": torch.get_num_threads(),
        }
        (Path(tmp) / "job.json").write_text(json.dumps(job))
        out = Path(tmp) / "vectors.safetensors"
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
        env.pop("PYTHONPATH", None)
        proc = subprocess.run(
            [str(python), str(ROOT / "bench" / "repeng_worker.py"), str(Path(tmp) / "job.json"), str(out)],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            emit("repeng", f"failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
            return
        with safe_open(str(out), framework="pt") as f:
            vectors, meta = f.get_tensor("vectors"), f.metadata()
    same = sum(a == len(b) for a, b in zip(json.loads(meta["n_tokens"]), ids, strict=True))
    emit("repeng reads as many tokens as traitscope", f"{same} of {len(ids)} prompts")
    per_fold = [fold_auroc(X, y, sp.train, sp.val, vectors[k]) for k, sp in enumerate(splits)]
    emit("repeng versions", meta["versions"])
    emit_row(
        "repeng", per_fold, (float(meta["seconds"]), float(meta["cpu_seconds"])), f"{len(splits)} folds of training"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trait", nargs="?", default="sycophancy-natural")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="first N minimal pairs")
    parser.add_argument("--repeng-python", default=str(REPENG_PYTHON), help="python of the repeng venv")
    parser.add_argument("--stack-bases", default="mean_diff,lda", help="base methods of the stack rows ('' for none)")
    parser.add_argument("--skip", default="", help="comma-separated: steering-vectors,repeng")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm = load_model(args.model)
    ids, tokenise, texts, y, groups = examples(lm, args.trait, args.limit)
    layers = list(range(lm.n_layers))
    X, splits = ours(lm, ids, tokenise, y, groups, layers, args)
    skip = set(args.skip.split(","))
    if "steering-vectors" not in skip:
        steering_vectors(lm, ids, texts, X, y, splits, layers, args)
    if "repeng" not in skip:
        repeng(lm, ids, texts, X, y, splits, layers, args)


if __name__ == "__main__":
    main()
