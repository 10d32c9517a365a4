"""What a reproduction run is given and what it records about itself: the :class:`Setup` (where
runs live, which models, the command line, progress), wall-time :class:`Timings`, and the model and
machine descriptions every report prints."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitscope.models.loader import LoadedModel
from traitscope.models.registry import DEFAULT_MODEL
from traitscope.progress import Reporter, Silent
from traitscope.reproduce.common.profiles import DEFAULT_BASE_MODEL, DEFAULT_OUT
from traitscope.store import atomic_write_json

Results = dict[str, Any]  # JSON-ready: {"meta": ..., "findings": {key: finding}}


@dataclass
class Setup:
    """Where and on what a reproduction runs (the profile says how much)."""

    out: Path = DEFAULT_OUT  # run directories (resumed on a re-run) and the results JSON
    model: str = DEFAULT_MODEL  # the model under test (the instruct model)
    base_model: str = DEFAULT_BASE_MODEL  # the source of the cross-model findings
    command: str = "traitscope reproduce"  # the command line, printed in the report
    traits: tuple[str, ...] | None = None  # detection only: the traits to run (default: every bundled one)
    reporter: Reporter = field(default_factory=Silent)
    load: Callable[[str], LoadedModel] | None = None  # default: traitscope.models.load_model

    def load_model(self, name: str) -> LoadedModel:
        if self.load is not None:
            return self.load(name)
        from traitscope.models import load_model

        return load_model(name)


class Timings(dict[str, float]):
    """Wall seconds per named block; a block timed twice adds up."""

    @contextmanager
    def block(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - t0

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        with self.block(name):
            return fn()


def model_info(lm: LoadedModel) -> dict[str, Any]:
    return {
        "name": lm.name,
        "model_type": lm.model_type,
        "n_layers": lm.n_layers,
        "hidden_size": lm.hidden_size,
        "instruct": lm.instruct,
        "dtype": str(next(lm.model.parameters()).dtype).replace("torch.", ""),
        "device": str(lm.device),
    }


def machine() -> dict[str, Any]:
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gpu": gpu,
    }


def save_results(path: Path, results: Results) -> Path:
    atomic_write_json(Path(path), results)
    return Path(path)
