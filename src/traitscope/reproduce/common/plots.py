"""The plotting helper both reports share: matplotlib on the Agg backend (never a window), one
palette, :func:`save` (atomic PNG write) and :func:`write_all` (every figure that has data)."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from traitscope.store import atomic_write_bytes  # noqa: E402

OURS, LOGGED = "#3b6fb6", "#c8c8c8"

# key -> (file name, the data it draws from the results dict, function(data, path) -> path or None)
PlotSpec = tuple[str, Callable[[dict[str, Any]], Any], Callable[[Any, Path], Path | None]]


def save(fig: Figure, path: Path, dpi: int = 100) -> Path:
    """``fig`` as a PNG at ``path`` (atomic write), then closed. Also behind ``traitscope.report``'s plots."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def write_all(results: dict[str, Any], specs: Mapping[str, PlotSpec], directory: Path) -> dict[str, Path]:
    """Every figure in ``specs`` whose data is there; returns key -> path written."""
    made: dict[str, Path] = {}
    for key, (name, pick, draw) in specs.items():
        data = pick(results)
        path = None if data is None else draw(data, Path(directory) / name)
        if path is not None:
            made[key] = path
    return made
