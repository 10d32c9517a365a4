"""The extraction pipeline (rollouts -> activations -> vectors -> validation)."""

from traitscope.extraction.pipeline import (
    DEFAULT_SITES,
    ExtractConfig,
    ExtractResult,
    extract,
    select_scenarios,
)

__all__ = [
    "DEFAULT_SITES",
    "ExtractConfig",
    "ExtractResult",
    "extract",
    "select_scenarios",
]
