"""matplotlib on the Agg backend (never a window) and the one PNG writer every plot goes through."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from traitscope.store import atomic_write_bytes  # noqa: E402


def save(fig: Figure, path: Path, dpi: int = 100) -> Path:
    """``fig`` as a PNG at ``path`` (atomic write), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
