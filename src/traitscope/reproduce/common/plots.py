"""The plotting helper both reports share: one palette, :func:`save` (``report.figures.save``: Agg
backend, atomic PNG write) and :func:`write_all` (every figure that has data)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from traitscope.report.figures import save  # noqa: F401  (the one PNG writer, re-exported for the twins)

OURS, LOGGED = "#3b6fb6", "#c8c8c8"

# key -> (file name, the data it draws from the results dict, function(data, path) -> path or None)
PlotSpec = tuple[str, Callable[[dict[str, Any]], Any], Callable[[Any, Path], Path | None]]


def write_all(results: dict[str, Any], specs: Mapping[str, PlotSpec], directory: Path) -> dict[str, Path]:
    """Every figure in ``specs`` whose data is there; returns key -> path written."""
    made: dict[str, Path] = {}
    for key, (name, pick, draw) in specs.items():
        data = pick(results)
        path = None if data is None else draw(data, Path(directory) / name)
        if path is not None:
            made[key] = path
    return made
