"""The extraction pipeline (rollouts -> activations -> vectors -> validation)."""

from traitscope.extraction.pipeline import (
    DEFAULT_SITES,
    ExtractConfig,
    ExtractResult,
    extract,
    load_evaluation,
    read_rollouts,
    select_scenarios,
)

__all__ = [
    "DEFAULT_SITES",
    "ExtractConfig",
    "ExtractResult",
    "extract",
    "load_evaluation",
    "read_rollouts",
    "select_scenarios",
]
