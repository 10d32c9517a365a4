"""Position specs: which tokens of a (prompt, response) pair an activation is averaged over.

Grammar: ``REGION[SELECTOR]`` where REGION is ``prompt``, ``response`` or ``all`` and SELECTOR is
a Python index (``-1``) or slice (``:``, ``:5``, ``2:``, ``-3:``); a bare REGION means ``[:]``.
Examples: ``prompt[-1]`` (last prompt token), ``response[:]`` (mean over the response),
``response[:5]`` (first five response tokens), ``all[:]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from traitscope.errors import TraitscopeError

_SPEC = re.compile(r"^(prompt|response|all)(?:\[(-?\d*)(:?)(-?\d*)\])?$")
_SLUG = re.compile(r"^(prompt|response|all)_(?:(all)|(-?\d+)|(-?\d*)to(-?\d*))$")
DEFAULT_POSITION = "response[:]"
_VALID = "valid: 'response[:]', 'response[:5]', 'prompt[-1]', 'prompt[:]', 'all[:]'"


@dataclass(frozen=True)
class Position:
    """A parsed position spec. ``index`` set means one token; otherwise a ``start:stop`` slice."""

    region: str
    start: int | None = None
    stop: int | None = None
    index: int | None = None

    @property
    def needs_response(self) -> bool:
        return self.region != "prompt"

    def __str__(self) -> str:
        if self.index is not None:
            return f"{self.region}[{self.index}]"
        a = "" if self.start is None else str(self.start)
        b = "" if self.stop is None else str(self.stop)
        return f"{self.region}[{a}:{b}]"

    @property
    def slug(self) -> str:
        """A file-system name, unique per spec and reversible (:func:`position_from_slug`).

        One token: ``prompt[-1]`` -> ``prompt_-1``. Slices spell ``to`` for the colon:
        ``response[:5]`` -> ``response_to5``, ``response[-5:]`` -> ``response_-5to``,
        ``response[2:5]`` -> ``response_2to5``; the whole region ``response[:]`` -> ``response_all``.
        """
        if self.index is not None:
            return f"{self.region}_{self.index}"
        if self.start is None and self.stop is None:
            return f"{self.region}_all"
        a = "" if self.start is None else str(self.start)
        b = "" if self.stop is None else str(self.stop)
        return f"{self.region}_{a}to{b}"

    def select(self, prompt_len: int, response_len: int) -> list[int]:
        """Token indices (into the concatenated prompt+response) this spec selects; may be empty."""
        if self.region == "prompt":
            offset, length = 0, prompt_len
        elif self.region == "response":
            offset, length = prompt_len, response_len
        else:
            offset, length = 0, prompt_len + response_len
        local = list(range(length))
        if self.index is not None:
            try:
                return [offset + local[self.index]]
            except IndexError:
                return []
        return [offset + i for i in local[self.start : self.stop]]


def parse_position(spec: str | Position) -> Position:
    if isinstance(spec, Position):
        return spec
    text = str(spec).strip().replace(" ", "")
    m = _SPEC.match(text)
    if not m:
        raise TraitscopeError(f"position spec {spec!r} is malformed; {_VALID}")
    region, a, colon, b = m.groups()
    if "[" not in text:
        return Position(region)
    if not colon:
        if not a or b:
            raise TraitscopeError(f"position spec {spec!r} is malformed; {_VALID}")
        return Position(region, index=int(a))
    return Position(region, start=int(a) if a else None, stop=int(b) if b else None)


def position_from_slug(slug: str) -> Position:
    """The inverse of :attr:`Position.slug` (directory name -> position)."""
    m = _SLUG.match(slug)
    if not m:
        raise TraitscopeError(
            f"{slug!r} is not a position folder name (e.g. 'response_all', 'prompt_-1', 'response_to5')"
        )
    region, whole, index, a, b = m.groups()
    if whole:
        return Position(region)
    if index is not None:
        return Position(region, index=int(index))
    return Position(region, start=int(a) if a else None, stop=int(b) if b else None)
