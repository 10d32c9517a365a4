"""The run layout, in one place. Nothing else in traitscope spells a path inside a run root::

<run-root>/<model-slug>/<trait>/                 a RunDir
  config.json                                   what was asked + the run's fingerprint
  .lock, .lock.holder                           advisory lock while a process writes here
  rollouts.jsonl                                one line per generated response
  activations/<position-slug>/<site>.safetensors [n, layers, dim] + row ids (shards/ while running)
  vectors/<position-slug>/<site>/<method>.safetensors
  evaluation.json
  steering/results.jsonl
  monitor/<prompt-set>/<id>.json
  report.html
<run-root>/<model-slug>/monitor/<prompt-set>/   multi-trait monitor traces
<run-root>/sweep.json                           the last `traitscope sweep`'s jobs and their summaries

Positions are passed as specs (``"response[:]"``, a :class:`~traitscope.specs.Position`, or the
folder name itself); folder names come from :attr:`Position.slug`, which is unique and reversible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from traitscope.errors import TraitscopeError
from traitscope.specs import DEFAULT_POSITION, Position, parse_position, position_from_slug

DEFAULT_RUN_ROOT = Path("runs")


def model_slug(name: str) -> str:
    """File-system name of a model for run directories (``org/model`` -> ``org--model``)."""
    return name.rstrip("/").replace("/", "--").replace(":", "-").lstrip(".-") or "model"


def as_position(position: str | Position) -> Position:
    """A position from a spec (``response[:5]``) or its folder name (``response_to5``)."""
    if isinstance(position, Position) or "[" in position or position in ("prompt", "response", "all"):
        return parse_position(position)
    try:
        return position_from_slug(position)
    except TraitscopeError:
        return parse_position(position)  # neither: the spec grammar's error says what is valid


def model_dir(run_root: Path | str, model: str) -> Path:
    """``<run-root>/<model-slug>``: the model's runs, one folder per trait."""
    return Path(run_root) / model_slug(model)


def sweep_index(run_root: Path | str) -> Path:
    """``<run-root>/sweep.json``: one entry per job of the last sweep over this run root."""
    return Path(run_root) / "sweep.json"


def model_monitor_dir(run_root: Path | str, model: str, prompt_set: str) -> Path:
    """Traces that span several traits: ``<run-root>/<model-slug>/monitor/<prompt-set>``."""
    return model_dir(run_root, model) / "monitor" / prompt_set


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of(cls, model: str, trait: str, run_root: Path | str = DEFAULT_RUN_ROOT) -> RunDir:
        """The run directory of ``trait`` on ``model`` (a name or slug) under ``run_root``."""
        return cls(model_dir(run_root, model) / Path(trait).name)

    def variant(self, suffix: str) -> RunDir:
        """A sibling run of the same model for vectors derived from this one (``<trait>-<suffix>``)."""
        return RunDir(self.root.with_name(f"{self.trait}-{suffix}"))

    @property
    def run_root(self) -> Path:
        return self.root.parent.parent

    @property
    def model_slug(self) -> str:
        return self.root.parent.name

    @property
    def vectors_dir(self) -> Path:
        return self.root / "vectors"

    @property
    def monitor_root(self) -> Path:
        return self.root / "monitor"

    @property
    def steering_dir(self) -> Path:
        return self.root / "steering"

    def markers(self) -> tuple[Path, ...]:
        """Entries whose presence makes a folder a run directory."""
        return (self.evaluation, self.vectors_dir, self.steering_dir, self.rollouts, self.monitor_root)

    @property
    def trait(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def rollouts(self) -> Path:
        return self.root / "rollouts.jsonl"

    def activations(self, position: str | Position = DEFAULT_POSITION) -> Path:
        return self.root / "activations" / as_position(position).slug

    def activation_file(self, position: str | Position, site: str) -> Path:
        return self.activations(position) / f"{site}.safetensors"

    def vector_file(self, position: str | Position, site: str, method: str) -> Path:
        return self.root / "vectors" / as_position(position).slug / site / f"{method}.safetensors"

    def vector_files(self) -> list[Path]:
        return sorted(self.vectors_dir.glob("*/*/*.safetensors"))

    def vector_positions(self) -> list[Position]:
        """Positions that have vectors on disk (folders that are not position slugs are ignored)."""
        out = []
        for p in sorted(self.vectors_dir.glob("*")):
            try:
                out.append(position_from_slug(p.name))
            except ValueError:
                continue
        return out

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.json"

    @property
    def steering_results(self) -> Path:
        return self.steering_dir / "results.jsonl"

    def monitor(self, prompt_set: str) -> Path:
        return self.monitor_root / prompt_set

    @property
    def report(self) -> Path:
        return self.root / "report.html"
