"""Reading trait folders: traitscope's own format and the trait-interp layout, unchanged.

Every problem is a :class:`TraitscopeError` naming the file, the line where there is one, and
what is wrong, raised before any model is loaded.

traitscope format::

    trait.yaml        name, description, elicitation, [template], steering: {direction, questions},
                      [ab_questions: [{question, trait_answer, opposite_answer}]]
    scenarios.jsonl   {"id", "polarity", "prompt", ["system"], ["pair"], ["tags": {str: str}]}

trait-interp format::

    definition.txt                       description
    positive.txt / negative.txt          one prompt per line
    positive.jsonl / negative.jsonl      {"prompt", ["system_prompt"]} (instead of, or besides, .txt)
    steering.json                        {"questions": [str | {"question": str}], ["direction"]}
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from traitscope.errors import TraitscopeError
from traitscope.jsonl import parse_jsonl, read_text
from traitscope.traits.schema import (
    DIRECTIONS,
    ELICITATIONS,
    MIN_PER_CLASS,
    MIN_STEERING_QUESTIONS,
    POLARITIES,
    TEMPLATES,
    ABQuestion,
    Scenario,
    Trait,
)


def bundled_dir() -> Path:
    return Path(str(resources.files("traitscope.traits").joinpath("bundled")))


def bundled_names() -> list[str]:
    d = bundled_dir()
    return sorted(p.name for p in d.iterdir() if (p / "trait.yaml").is_file())


def resolve_trait_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if isinstance(name_or_path, str) and (bundled_dir() / name_or_path).is_dir():
        return bundled_dir() / name_or_path
    raise TraitscopeError(
        f"trait {str(name_or_path)!r} is neither a bundled trait ({', '.join(bundled_names())}) nor a folder"
    )


def load_trait(name_or_path: str | Path) -> Trait:
    """Load and validate a bundled trait by name, or a trait folder in either format."""
    path = resolve_trait_path(name_or_path)
    if (path / "trait.yaml").exists():
        trait = _load_traitscope(path)
    elif any((path / f).exists() for f in ("definition.txt", "positive.txt", "positive.jsonl")):
        trait = _load_trait_interp(path)
    else:
        raise TraitscopeError(
            f"{path}: no trait.yaml (traitscope format) and no definition.txt/positive.txt (trait-interp format)"
        )
    _check_trait(trait, path)
    return trait


def _need_str(obj: dict[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise TraitscopeError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, str):
        raise TraitscopeError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _one_of(value: str, valid: tuple[str, ...], key: str, where: str) -> str:
    if value not in valid:
        raise TraitscopeError(f"{where}: {key} {value!r} is not valid; use one of: {', '.join(valid)}")
    return value


def _load_traitscope(path: Path) -> Trait:
    yaml_path = path / "trait.yaml"
    try:
        meta = yaml.safe_load(read_text(yaml_path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TraitscopeError(f"{yaml_path}{line}: invalid YAML ({problem})") from None
    where = str(yaml_path)
    if not isinstance(meta, dict):
        raise TraitscopeError(f"{where}: expected a mapping with name, description, elicitation, steering")
    name = _need_str(meta, "name", where)
    description = _need_str(meta, "description", where)
    elicitation = _one_of(_need_str(meta, "elicitation", where), ELICITATIONS, "elicitation", where)
    template = _one_of(_need_str(meta, "template", where, optional=True) or "auto", TEMPLATES, "template", where)
    steering = meta.get("steering")
    if not isinstance(steering, dict):
        raise TraitscopeError(f"{where}: missing mapping 'steering' with 'direction' and 'questions'")
    direction = _one_of(
        _need_str(steering, "direction", f"{where} steering", optional=True) or "positive",
        DIRECTIONS,
        "steering direction",
        where,
    )
    questions = _questions(steering.get("questions"), f"{where} steering.questions")
    ab = _ab_questions(meta.get("ab_questions"), f"{where} ab_questions")
    scenarios = _read_scenarios(path / "scenarios.jsonl")
    return Trait(
        str(name), str(description), elicitation, scenarios, questions, direction, template, path, ab_questions=ab
    )


AB_KEYS = ("question", "trait_answer", "opposite_answer")


def _ab_questions(raw: Any, where: str) -> tuple[ABQuestion, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TraitscopeError(f"{where}: expected a list of {{question, trait_answer, opposite_answer}} mappings")
    out: list[ABQuestion] = []
    for i, item in enumerate(raw):
        values = [item.get(k) if isinstance(item, dict) else None for k in AB_KEYS]
        if not all(isinstance(v, str) and v.strip() for v in values):
            missing = [k for k, v in zip(AB_KEYS, values, strict=True) if not (isinstance(v, str) and v.strip())]
            raise TraitscopeError(f"{where}[{i}]: needs non-empty strings {', '.join(AB_KEYS)} (bad: {', '.join(missing)})")
        if values[1].strip() == values[2].strip():
            raise TraitscopeError(f"{where}[{i}]: trait_answer and opposite_answer are the same text")
        out.append(ABQuestion(*(str(v).strip() for v in values)))
    return tuple(out)


def _questions(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list):
        raise TraitscopeError(f"{where}: expected a list of questions")
    out: list[str] = []
    for i, q in enumerate(raw):
        if isinstance(q, dict):
            q = q.get("question")
        if not isinstance(q, str) or not q.strip():
            raise TraitscopeError(f"{where}[{i}]: each question must be a non-empty string (or {{question: ...}})")
        out.append(q.strip())
    return out


def _parse_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    return parse_jsonl(path, '{"id": "a1", "polarity": "positive", "prompt": "..."}')


def _read_scenarios(path: Path) -> list[Scenario]:
    scenarios: list[Scenario] = []
    for lineno, obj in _parse_jsonl(path):
        where = f"{path}:{lineno}"
        sid = _need_str(obj, "id", where)
        polarity = _one_of(_need_str(obj, "polarity", where), POLARITIES, "polarity", where)
        prompt = _need_str(obj, "prompt", where)
        if not prompt.strip():
            raise TraitscopeError(f"{where}: field 'prompt' is empty")
        system = _need_str(obj, "system", where, optional=True)
        pair = obj.get("pair")
        if pair is not None and not isinstance(pair, str | int):
            raise TraitscopeError(f"{where}: field 'pair' must be a string, got {type(pair).__name__}")
        tags = obj.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise TraitscopeError(f"{where}: field 'tags' must map strings to strings")
        scenarios.append(
            Scenario(str(sid), polarity, prompt, system or None, None if pair is None else str(pair), dict(tags), where)
        )
    return scenarios


def _load_trait_interp(path: Path) -> Trait:
    definition = path / "definition.txt"
    description = read_text(definition).strip() if definition.exists() else ""
    scenarios: list[Scenario] = []
    for polarity, short in (("positive", "pos"), ("negative", "neg")):
        txt, jsonl = path / f"{polarity}.txt", path / f"{polarity}.jsonl"
        if not txt.exists() and not jsonl.exists():
            raise TraitscopeError(
                f"{txt}: file is missing (trait-interp folders need {polarity}.txt or {polarity}.jsonl)"
            )
        n = 0
        if txt.exists():
            for lineno, line in enumerate(read_text(txt).splitlines(), start=1):
                if line.strip():
                    n += 1
                    scenarios.append(
                        Scenario(f"{short}-txt-{lineno:04d}", polarity, line.strip(), source=f"{txt}:{lineno}")
                    )
        if jsonl.exists():
            for lineno, obj in _parse_jsonl(jsonl):
                where = f"{jsonl}:{lineno}"
                prompt = _need_str(obj, "prompt", where)
                if not prompt.strip():
                    raise TraitscopeError(f"{where}: field 'prompt' is empty")
                system = _need_str(obj, "system_prompt", where, optional=True)
                scenarios.append(
                    Scenario(f"{short}-jsonl-{lineno:04d}", polarity, prompt, system or None, source=where)
                )
    steering_path = path / "steering.json"
    questions: list[str] = []
    direction = "positive"
    if steering_path.exists():
        try:
            steering = json.loads(read_text(steering_path))
        except json.JSONDecodeError as exc:
            raise TraitscopeError(f"{steering_path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(steering, dict):
            raise TraitscopeError(f"{steering_path}: expected an object with 'questions'")
        questions = _questions(steering.get("questions"), f"{steering_path} questions")
        direction = _one_of(str(steering.get("direction", "positive")), DIRECTIONS, "direction", str(steering_path))
    else:
        raise TraitscopeError(f"{steering_path}: file is missing (needs {MIN_STEERING_QUESTIONS}+ steering questions)")
    elicitation = "instruction" if any(s.system for s in scenarios) else "natural"
    return Trait(
        path.name, description or path.name, elicitation, scenarios, questions, direction, "auto", path, "trait-interp"
    )


def _check_trait(trait: Trait, path: Path) -> None:
    where = path / ("trait.yaml" if trait.source_format == "traitscope" else "")
    seen: dict[str, Scenario] = {}
    for s in trait.scenarios:
        if s.id in seen:
            raise TraitscopeError(
                f"{seen[s.id].source or path} and {s.source or path}: duplicate scenario id {s.id!r}; ids must be unique"
            )
        seen[s.id] = s
    for polarity, n in trait.counts().items():
        if n < MIN_PER_CLASS:
            files = sorted({(s.source or str(path)).rsplit(":", 1)[0] for s in trait.scenarios}) or [str(path)]
            lines = [s.source.rsplit(":", 1)[1] for s in trait.scenarios if s.polarity == polarity and s.source]
            at = f" (line{'s' if len(lines) > 1 else ''} {', '.join(lines)})" if lines else ""
            raise TraitscopeError(
                f"{', '.join(files)}: {n} {polarity} scenario(s){at}; each class needs at least {MIN_PER_CLASS}"
            )
    if len(trait.steering_questions) < MIN_STEERING_QUESTIONS:
        raise TraitscopeError(
            f"{where}: {len(trait.steering_questions)} steering question(s); at least {MIN_STEERING_QUESTIONS} are needed"
        )
