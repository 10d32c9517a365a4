"""Prompt sets for monitoring: bundled JSON files (``harmful``, ``benign``, ``jailbreak``,
``neutral``) or your own file of the same shape::

    {"name": str, "description": str,
     "prompts": [{"id": str, "text": str, "note"?: str, "system"?: str, "response"?: str}]}

``note`` says what a prompt is for (the jailbreak set names each framing there); ``response``, if
given, is read teacher-forced instead of generating one (one model reading another's text).
``harmful`` and ``benign`` share ids, so prompt ``bomb`` in one is the matched pair of ``bomb`` in
the other. No torch here: the loader is pure validation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError

BUNDLED_DIR = Path(__file__).parent
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # ids become file names: keep them tame
_OPTIONAL = ("note", "system", "response")


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    note: str | None = None
    system: str | None = None
    response: str | None = None


@dataclass(frozen=True)
class PromptSet:
    name: str
    description: str
    prompts: tuple[Prompt, ...]
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    def ids(self) -> list[str]:
        return [p.id for p in self.prompts]


def bundled_prompt_sets() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.json"))


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text in bundled_prompt_sets():
        return BUNDLED_DIR / f"{text}.json"
    path = Path(text).expanduser()
    if path.is_file():
        return path
    raise TraitscopeError(
        f"prompt set {text!r}: no such file and not a bundled set; bundled: {', '.join(bundled_prompt_sets())}"
    )


def _check_str(where: str, key: str, value: Any, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        need = "a non-empty string" if required else "a string"
        raise TraitscopeError(f"{where}: field {key!r} must be {need}, got {value!r:.60}")
    return value


def _prompt(where: str, raw: Any) -> Prompt:
    if not isinstance(raw, dict):
        raise TraitscopeError(f"{where}: each prompt must be an object with 'id' and 'text'")
    unknown = set(raw) - {"id", "text", *_OPTIONAL}
    if unknown:
        raise TraitscopeError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: id, text, {', '.join(_OPTIONAL)}")
    pid = _check_str(where, "id", raw.get("id"), True)
    if not _ID.match(pid or ""):
        raise TraitscopeError(f"{where}: id {pid!r} must be letters, digits, '.', '_' or '-' (it names a file)")
    text = _check_str(where, "text", raw.get("text"), True)
    extras = {k: _check_str(where, k, raw.get(k), False) for k in _OPTIONAL}
    return Prompt(id=pid, text=text, **extras)  # type: ignore[arg-type]


def parse_prompt_set(data: Any, source: str, path: Path | None = None) -> PromptSet:
    """Validate an already-parsed prompt-set object; every problem is one TraitscopeError line."""
    if not isinstance(data, dict):
        raise TraitscopeError(f"{source}: a prompt set is a JSON object with 'name', 'description' and 'prompts'")
    for key in ("name", "prompts"):
        if key not in data:
            raise TraitscopeError(f"{source}: missing field {key!r} (need 'name', 'description', 'prompts')")
    name = _check_str(source, "name", data["name"], True)
    if not _ID.match(name or ""):
        raise TraitscopeError(f"{source}: name {name!r} must be letters, digits, '.', '_' or '-' (it names a folder)")
    description = _check_str(source, "description", data.get("description", ""), False) or ""
    if not isinstance(data["prompts"], list) or not data["prompts"]:
        raise TraitscopeError(f"{source}: 'prompts' must be a non-empty list of {{id, text}} objects")
    prompts = tuple(_prompt(f"{source}: prompts[{i}]", raw) for i, raw in enumerate(data["prompts"]))
    seen: set[str] = set()
    for p in prompts:
        if p.id in seen:
            raise TraitscopeError(f"{source}: prompt id {p.id!r} appears twice; ids must be unique")
        seen.add(p.id)
    return PromptSet(name=name, description=description, prompts=prompts, path=path)  # type: ignore[arg-type]


def load_prompt_set(name_or_path: str | Path) -> PromptSet:
    """A bundled set by name (``harmful``, ``benign``, ``jailbreak``, ``neutral``) or a JSON file."""
    path = _resolve(name_or_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TraitscopeError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraitscopeError(f"{path}: cannot read ({exc})") from None
    return parse_prompt_set(data, str(path), path)


__all__ = ["Prompt", "PromptSet", "bundled_prompt_sets", "load_prompt_set", "parse_prompt_set"]
