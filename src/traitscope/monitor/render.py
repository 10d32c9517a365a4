"""Terminal rendering of a trace: the response with each token's background coloured by one
trait's projection (green above the threshold, red below, stronger further away)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from traitscope.errors import TraitscopeError


def pick_layer(trace: dict[str, Any], trait: str) -> str:
    if trait not in trace["projections"]:
        raise TraitscopeError(f"--color-by {trait!r} is not monitored here; traits: {', '.join(trace['projections'])}")
    return next(iter(trace["projections"][trait]))


def colour(value: float, threshold: float, scale: float) -> str:
    """A background style: the distance from the threshold, relative to ``scale``, sets the
    strength; the sign sets green (above) or red (below)."""
    t = max(-1.0, min(1.0, (value - threshold) / scale)) if scale > 0 else 0.0
    fade = int(255 * (1 - abs(t) * 0.75))
    rgb = (fade, 255, fade) if t >= 0 else (255, fade, fade)
    return f"black on rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def coloured_response(trace: dict[str, Any], trait: str, layer: str | None = None) -> Text:
    layer = layer or pick_layer(trace, trait)
    values = trace["projections"][trait][layer]
    start = trace["boundary"]
    threshold = float(trace["summaries"][trait][layer]["threshold"])
    resp = values[start:]
    scale = max((abs(v - threshold) for v in resp), default=0.0)
    text = Text()
    for tok, v in zip(trace["tokens"][start:], resp, strict=True):
        text.append(tok, style=colour(v, threshold, scale))
    if not resp:
        text.append("(empty response)", style="dim")
    return text


def summary_table(trace: dict[str, Any]) -> Table:
    table = Table(title=f"{trace['id']}: response summary ({trace['site']}, {trace['mode']})", title_justify="left")
    for col in ("trait", "layer", "mean", "max", "first above", "threshold"):
        table.add_column(col, justify="left" if col == "trait" else "right")
    for trait, by_layer in trace["summaries"].items():
        for layer, s in by_layer.items():
            table.add_row(
                trait,
                layer,
                "-" if s["mean"] is None else f"{s['mean']:.3f}",
                "-" if s["max"] is None else f"{s['max']:.3f}",
                "-" if s["first_above"] is None else str(s["first_above"]),
                f"{s['threshold']:.3f} ({s['threshold_source']})",
            )
    return table
