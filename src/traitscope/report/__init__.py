"""Plots and reshaped views of what the pipeline wrote (extraction, steering, monitor traces)."""

from traitscope.report.data import NO_STEERING, extraction_grids, outlier_tokens, steering_grids

__all__ = ["NO_STEERING", "extraction_grids", "outlier_tokens", "steering_grids"]
