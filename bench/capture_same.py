"""Does a faster capture give the same results? An older revision's ``capture()`` against this
tree's, on a trait's minimal pairs at the last prompt token of every layer: CPU seconds of each,
the largest activation difference, then every method's fold vectors and per-layer held-out AUROCs
(the folds of ``bench/peers.py``) from either capture.

    python bench/capture_same.py --old-rev REV [TRAIT] [--old-batch-size 8] [--new-rev REV2] [--new-batch-size 8]

``--old-rev REV --new-rev REV --new-batch-size 4`` compares a capture with itself at another
batch size: the float32 rounding a batching change brings, the yardstick for the differences.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.simplefilter("ignore")

import torch  # noqa: E402

from traitscope.activations import Example, capture  # noqa: E402
from traitscope.evaluation.crossval import kfold  # noqa: E402
from traitscope.methods import METHODS  # noqa: E402
from traitscope.models import load_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import OURS, emit, examples, fold_auroc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def capture_at(rev: str, name: str):  # noqa: ANN201
    """``capture`` as it was at git revision ``rev`` (its module imported from a temporary file)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/traitscope/activations/capture.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.capture


def forward_tokens(exs: list[Example], batch_size: int, new: bool) -> int:
    """Token positions the model computes: padded batches in input order (old), or batches by
    length whose shared prefix runs once (new)."""
    from traitscope.activations.capture import MIN_SHARED_PREFIX, shared_prefix

    order = sorted(exs, key=lambda e: len(e.prompt_ids) + len(e.response_ids)) if new else exs
    total = 0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        first = shared_prefix(batch) if new and len(batch) > 1 else 0
        first = first if first >= MIN_SHARED_PREFIX else 0
        total += first + len(batch) * (max(len(e.prompt_ids) + len(e.response_ids) for e in batch) - first)
    return total


def timed(fn, *args) -> tuple[torch.Tensor, float]:  # noqa: ANN001
    cpu = time.process_time()
    X = fn(*args).acts["residual"]
    return X, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trait", nargs="?", default="sycophancy-natural")
    parser.add_argument("--old-rev", required=True, help="git revision of the capture to compare against")
    parser.add_argument("--old-batch-size", type=int, default=8)
    parser.add_argument("--new-rev", default=None, help="git revision for the new side (default: this tree)")
    parser.add_argument("--new-batch-size", type=int, default=8)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm = load_model(args.model)
    ids, _, _, y, groups = examples(lm, args.trait, None)
    exs, layers = [Example(i, []) for i in ids], list(range(lm.n_layers))
    new = capture if args.new_rev is None else capture_at(args.new_rev, "new_capture")
    Xo, old_s = timed(
        capture_at(args.old_rev, "old_capture"), lm, exs, ["residual"], layers, "prompt[-1]", args.old_batch_size
    )
    Xn, new_s = timed(new, lm, exs, ["residual"], layers, "prompt[-1]", args.new_batch_size)
    emit(f"old capture ({args.old_rev}, batch {args.old_batch_size}) cpu seconds", old_s)
    emit(f"new capture ({args.new_rev or 'this tree'}, batch {args.new_batch_size}) cpu seconds", new_s)
    emit(
        "forward tokens, old way -> new way (batch 8)",
        f"{forward_tokens(exs, 8, False)} -> {forward_tokens(exs, 8, True)}",
    )
    emit("activations max relative difference", f"{float(((Xo - Xn).norm(dim=-1) / Xo.norm(dim=-1)).max()):.3g}")
    splits = kfold(y.tolist(), groups, 5)
    for m in OURS:
        dv, da, moved = 0.0, 0.0, 0
        for sp in splits:
            fit = [METHODS[m](X[sp.train], y[sp.train], 0, [groups[i] for i in sp.train]).vectors for X in (Xo, Xn)]
            dv = max(dv, float((fit[0] - fit[1]).abs().max()))
            diff = (fold_auroc(Xo, y, sp.train, sp.val, fit[0]) - fold_auroc(Xn, y, sp.train, sp.val, fit[1])).abs()
            da, moved = max(da, float(diff.max())), moved + int((diff > 1e-6).sum())
        emit(f"{m} max vector difference", f"{dv:.3g}")
        emit(f"{m} max fold AUROC difference", f"{da:.3g} ({moved} of {len(splits) * len(layers)} fold x layer moved)")


if __name__ == "__main__":
    main()
