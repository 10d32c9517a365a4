"""The extraction pipeline (rollouts -> activations -> vectors -> validation)."""

from traitscope.extraction.pipeline import (
    DEFAULT_SITES,
    ExtractConfig,
    ExtractResult,
    extract,
    select_scenarios,
)
from traitscope.store.runs import load_evaluation, read_rollouts  # where run files are read (re-exported)

__all__ = [
    "DEFAULT_SITES",
    "ExtractConfig",
    "ExtractResult",
    "extract",
    "load_evaluation",
    "read_rollouts",
    "select_scenarios",
]
