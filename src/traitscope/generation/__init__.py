"""Batched generation and rollouts."""

from traitscope.generation.generate import SamplingConfig, complete, generate_ids, trim_at_eos

__all__ = ["SamplingConfig", "complete", "generate_ids", "trim_at_eos"]
