"""The run-directory layout, in one place::

runs/<model>/<trait>/
  config.json                                   what was asked (model, layers, sites, methods, ...)
  rollouts.jsonl                                one line per generated response
  activations/<position>/<site>.safetensors     [n, layers, dim] + row ids (shards/ while running)
  vectors/<position>/<site>/<method>.safetensors
  evaluation.json
  steering/results.jsonl
  monitor/<prompt-set>/<id>.json
  report.html
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def rollouts(self) -> Path:
        return self.root / "rollouts.jsonl"

    def activations(self, position_slug: str) -> Path:
        return self.root / "activations" / position_slug

    def activation_file(self, position_slug: str, site: str) -> Path:
        return self.activations(position_slug) / f"{site}.safetensors"

    def vector_file(self, position_slug: str, site: str, method: str) -> Path:
        return self.root / "vectors" / position_slug / site / f"{method}.safetensors"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.json"

    @property
    def steering_results(self) -> Path:
        return self.root / "steering" / "results.jsonl"

    def monitor(self, prompt_set: str) -> Path:
        return self.root / "monitor" / prompt_set

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def vector_files(self) -> list[Path]:
        return sorted((self.root / "vectors").glob("*/*/*.safetensors"))


def default_run_dir(model_slug: str, trait: str, root: Path = Path("runs")) -> RunDir:
    return RunDir(root / model_slug / trait)
