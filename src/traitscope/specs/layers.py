"""Layer specs: a compact way to name layers, resolved against a model's depth.

Grammar (comma-separated parts, each one of):
  ``all``            every layer
  ``8``              one layer (negative counts from the end: ``-1`` is the last)
  ``6-10``           an inclusive range
  ``30%``            the layer at that fraction of the depth
  ``30%-60%``        an inclusive range of fractions
Layer ``i`` is the output of decoder block ``i`` (0-based) == ``hidden_states[i + 1]``.
"""

from __future__ import annotations

import re

from traitscope.errors import TraitscopeError

_PART = re.compile(r"^(-?\d+%?)(?:-(-?\d+%?))?$")
_VALID = "valid: 'all', '8', '6-10', '30%', '30%-60%' or a comma list of those"


def _point(token: str, n_layers: int, spec: str) -> int:
    if token.endswith("%"):
        pct = int(token[:-1])
        if not 0 <= pct <= 100:
            raise TraitscopeError(f"layer spec {spec!r}: {token} is not a percentage in 0%-100%")
        return min(n_layers - 1, round(pct / 100 * (n_layers - 1)))
    idx = int(token)
    if idx < 0:
        idx += n_layers
    if not 0 <= idx < n_layers:
        raise TraitscopeError(
            f"layer spec {spec!r}: layer {token} is out of range; this model has layers 0-{n_layers - 1}"
        )
    return idx


def parse_layers(spec: str | int | list[int] | None, n_layers: int) -> list[int]:
    """Resolve a layer spec to a sorted list of distinct layer indices in ``[0, n_layers)``."""
    if spec is None:
        spec = "all"
    if isinstance(spec, int):
        spec = str(spec)
    if isinstance(spec, list):
        spec = ",".join(str(i) for i in spec)
    text = str(spec).strip().replace(" ", "")
    if not text:
        raise TraitscopeError(f"layer spec is empty; {_VALID}")
    layers: set[int] = set()
    for part in text.split(","):
        if part == "all":
            layers.update(range(n_layers))
            continue
        m = _PART.match(part)
        if not m:
            raise TraitscopeError(f"layer spec {spec!r}: cannot read {part!r}; {_VALID}")
        lo = _point(m.group(1), n_layers, str(spec))
        hi = _point(m.group(2), n_layers, str(spec)) if m.group(2) else lo
        if hi < lo:
            raise TraitscopeError(f"layer spec {spec!r}: range {part!r} runs backwards; write it low-high")
        layers.update(range(lo, hi + 1))
    return sorted(layers)


def format_layers(layers: list[int]) -> str:
    """Inverse of :func:`parse_layers` for display: ``[6, 7, 8, 10]`` -> ``'6-8,10'``."""
    if not layers:
        return ""
    parts: list[str] = []
    start = prev = layers[0]
    for x in layers[1:] + [None]:  # type: ignore[list-item]
        if x is not None and x == prev + 1:
            prev = x
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ",".join(parts)
