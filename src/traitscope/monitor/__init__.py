"""Monitoring: per-token projections onto trait vectors while a model generates (or reads a given
response), one JSON trace per prompt. See docs/monitoring.md and :mod:`traitscope.monitor.trace`
for the trace schema."""

from traitscope.monitor.engine import (
    Interventions,
    Monitored,
    build_trace,
    forced_monitored,
    generate_monitored,
    monitor_prompts,
    run_steps,
    stream_prompt,
)
from traitscope.monitor.trace import SCHEMA, load_trace, token_texts, validate_trace, write_trace
from traitscope.monitor.vectors import TraitVector, VectorBank, load_bank, load_trait_vectors

__all__ = [
    "SCHEMA",
    "Interventions",
    "Monitored",
    "TraitVector",
    "VectorBank",
    "build_trace",
    "forced_monitored",
    "generate_monitored",
    "load_bank",
    "load_trace",
    "load_trait_vectors",
    "monitor_prompts",
    "run_steps",
    "stream_prompt",
    "token_texts",
    "validate_trace",
    "write_trace",
]
