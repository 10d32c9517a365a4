"""A run root for serving tests: real provenance, activation norms measured on the bundled model,
and an evaluation.json naming each trait's best layer; the directions are fixed random unit
vectors (what is tested is the plumbing, which a real extraction would only slow down)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from traitscope import __version__
from traitscope.steering import measure_act_norms
from traitscope.store import Provenance, RunDir, VectorSet, save_vectors

LAYERS = (6, 10, 15)
TRAITS = {"optimism": 10, "formality": 15, "refusal": 6}  # trait -> best layer


def make_run_root(lm, root: Path) -> Path:
    norms = measure_act_norms(lm, "residual", list(LAYERS))
    for k, (trait, best) in enumerate(TRAITS.items()):
        g = torch.Generator().manual_seed(100 + k)
        vecs = {
            layer: torch.nn.functional.normalize(torch.randn(lm.hidden_size, generator=g), dim=0) for layer in LAYERS
        }
        prov = Provenance(
            trait=trait,
            method="probe",
            site="residual",
            position="response[:]",
            model=lm.name,
            model_type=lm.model_type,
            n_layers=lm.n_layers,
            hidden_size=lm.hidden_size,
            dim=lm.hidden_size,
            layers=list(LAYERS),
            act_norms={str(k): v for k, v in norms.items()},
            tool_version=__version__,
        )
        run = RunDir.of(lm.slug, trait, root)
        save_vectors(run.vector_file("response_all", "residual", "probe"), VectorSet(vecs, prov))
        results = [
            {"site": "residual", "method": "probe", "layer": layer, "auroc": 0.9 if layer == best else 0.6,
             "effect_size": 1.0}
            for layer in LAYERS
        ]  # fmt: skip
        run.evaluation.write_text(json.dumps({"position": "response[:]", "results": results}))
    return root
