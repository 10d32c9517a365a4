"""A transfer matrix from a finished run: train on one tag group, test on the others."""

from __future__ import annotations

from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.evaluation import best_row, transfer_matrix
from traitscope.methods import METHODS
from traitscope.store import RunDir
from traitscope.store.runs import load_evaluation, load_labelled
from traitscope.traits.schema import Trait


def transfer_from_run(
    run: RunDir, trait: Trait, split_by: str, method: str = "probe", site: str = "residual", layer: int | None = None
) -> dict[str, Any]:
    """Matrix of ``method`` at ``site``/``layer`` (default: the run's best layer) across ``split_by`` groups."""
    if method not in METHODS:
        raise TraitscopeError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if split_by not in trait.tag_names():
        raise TraitscopeError(f"--split-by {split_by!r}: trait {trait.name} has tags {trait.tag_names()}")
    ev = load_evaluation(run)
    data = load_labelled(run, ev["position"], site)
    if layer is None:
        evaluated = any(r.get("site") == site and r.get("method") == method for r in ev["results"])
        layer = int(best_row(ev["results"], site, method)["layer"]) if evaluated else data.layers[len(data.layers) // 2]
    if layer not in data.layers:
        raise TraitscopeError(f"layer {layer} was not extracted; available: {data.layers[0]}-{data.layers[-1]}")
    tags = [r["tags"].get(split_by, "") for r in data.rows]
    if len(set(tags) - {""}) < 2:
        raise TraitscopeError(
            f"the run {run.root} holds only one {split_by!r} group ({sorted(set(tags))}); extract without --limit "
            "so every group is present"
        )
    tm = transfer_matrix(
        data.acts[:, data.layers.index(layer)],
        data.y,
        tags,
        method,
        groups=[r["pair"] or r["id"] for r in data.rows],
        pairs=[r["pair"] for r in data.rows],
    )
    return {
        "trait": trait.name,
        "split_by": split_by,
        "method": method,
        "site": site,
        "layer": layer,
        "groups": tm.groups,
        "sizes": tm.sizes,
        "accuracy": tm.accuracy,
        "auroc": tm.auroc,
        "averages": {"accuracy": tm.averages("accuracy"), "auroc": tm.averages("auroc")},
    }
