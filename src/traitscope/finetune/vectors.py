"""Trait vectors for the finetuning tools: every extracted layer of a trait (for shift), its best
layer (for screening), and the ``--steer-train TRAIT:RATIO`` spec built from them."""

from __future__ import annotations

from pathlib import Path

from traitscope.errors import TraitscopeError
from traitscope.finetune.train import SteerTrain
from traitscope.models.loader import LoadedModel
from traitscope.monitor.vectors import VectorBank, best_layer, load_bank
from traitscope.steering import SteeringSpec, SteerTerm, build_terms
from traitscope.store import RunDir, VectorSet
from traitscope.store.runs import load_run_vectors

POSITION = "response[:]"  # preferred: vectors extracted on the model's own answers (Persona Vectors)


def run_position(run: RunDir) -> str:
    """The position whose vectors the finetuning tools read: ``response[:]`` when the run has it,
    else the run's only (first) position, e.g. ``prompt[-1]`` where answers do not separate."""
    have = [str(p) for p in run.vector_positions()]
    if not have:
        raise TraitscopeError(f"{run.root}: no vectors; run `traitscope extract` first")
    return POSITION if POSITION in have else have[0]


def trait_vectors(
    lm: LoadedModel, run_root: Path, trait: str, site: str = "residual", method: str = "probe"
) -> tuple[VectorSet, int]:
    """The trait's vector set for this model (from ``<run_root>/<model>/<trait>``) and its best layer."""
    run = RunDir.of(lm.slug, trait, run_root)
    if not run.root.is_dir():
        raise TraitscopeError(
            f"no run for trait {trait!r} at {run.root}; run `traitscope extract {trait} --model {lm.name}`"
        )
    position = run_position(run)
    vset = load_run_vectors(run, site, method, position)
    vset.check_model(lm.n_layers, lm.hidden_size, lm.site_dim(site), lm.name)
    return vset, best_layer(run, site, method, position)


def bank_for(
    lm: LoadedModel, run_root: Path, traits: list[str], all_layers: bool, site: str = "residual", method: str = "probe"
) -> VectorBank:
    """A monitor vector bank: each trait's best layer, or every layer its vectors have."""
    if not all_layers:
        return load_bank(lm, run_root, traits, site, method)
    layers = sorted(set.intersection(*(set(trait_vectors(lm, run_root, t, site, method)[0].vectors) for t in traits)))
    return load_bank(lm, run_root, traits, site, method, layers=layers)


def parse_steer_train(value: str) -> tuple[str, float]:
    """``TRAIT:RATIO``; a negative ratio subtracts the vector (pushes away from the trait)."""
    trait, sep, ratio = value.rpartition(":")
    try:
        r = float(ratio)
    except ValueError:
        r = float("nan")
    if not sep or not trait or r != r or abs(r) > 10:
        raise TraitscopeError(
            f"--steer-train {value!r}: expected TRAIT:RATIO such as optimism:-0.5 (negative subtracts; |ratio| <= 10)"
        )
    return trait, r


def steer_train_spec(
    lm: LoadedModel, run_root: Path, value: str, site: str = "residual", method: str = "probe"
) -> SteerTrain:
    """Add ``ratio * ||h||`` along the trait's unit vector at its best layer, on every token."""
    trait, ratio = parse_steer_train(value)
    vset, layer = trait_vectors(lm, run_root, trait, site, method)
    (term,) = build_terms(vset, [layer], ratio=abs(ratio))
    coef = float(term.coef) * (1.0 if ratio >= 0 else -1.0)
    spec = SteeringSpec([SteerTerm(term.site, layer, term.vector, coef)], scope="all")
    return SteerTrain(
        spec, {"trait": trait, "ratio": ratio, "site": site, "method": method, "layer": layer, "coef": round(coef, 4)}
    )
