"""Trait folders: both formats, every bad input named with file and line, fuzzed parsers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traitscope.errors import TraitscopeError
from traitscope.traits import bundled_names, load_trait

QUESTIONS = [f"Question number {i}?" for i in range(10)]


def write_trait(folder: Path, scenarios: list[dict], meta: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    meta = meta or {
        "name": folder.name,
        "description": "d",
        "elicitation": "natural",
        "steering": {"direction": "positive", "questions": QUESTIONS},
    }
    (folder / "trait.yaml").write_text(yaml.safe_dump(meta))
    (folder / "scenarios.jsonl").write_text("".join(json.dumps(s) + "\n" for s in scenarios))
    return folder


def scen(n=4):
    out = []
    for i in range(n):
        out.append({"id": f"p{i}", "polarity": "positive", "prompt": f"good {i}", "pair": str(i)})
        out.append({"id": f"n{i}", "polarity": "negative", "prompt": f"bad {i}", "pair": str(i), "system": "be sad"})
    return out


def test_bundled_traits_meet_the_minimums():
    names = set(bundled_names())
    assert {"optimism", "refusal", "uncertainty", "formality", "sycophancy", "sycophancy-natural"} <= names
    for name in names:
        t = load_trait(name)
        assert min(t.counts().values()) >= 60, name
        assert len(t.steering_questions) >= 10
    opt = load_trait("optimism")
    assert set(opt.tag_values("domain")) == {"institutional", "social"}
    unc = load_trait("uncertainty")
    assert set(unc.tag_values("topic")) == {"science", "coding", "history", "creative"}
    assert all(n >= 30 for n in unc.tag_values("lang").values()) and set(unc.tag_values("lang")) == {
        "en",
        "es",
        "fr",
        "zh",
    }
    assert load_trait("sycophancy").elicitation == "instruction"
    assert load_trait("sycophancy-natural").elicitation == "natural"
    assert load_trait("refusal").raw


def test_trait_interp_folder_reads_like_the_equivalent_traitscope_folder(tmp_path):
    ti = tmp_path / "ti"
    ti.mkdir()
    (ti / "definition.txt").write_text("Optimism: hopeful framing.\n")
    (ti / "positive.txt").write_text("Why is the future bright?\nWhat good will come?\n")
    (ti / "negative.txt").write_text("Why is the future dark?\nWhat harm will come?\n")
    (ti / "positive.jsonl").write_text(
        json.dumps({"prompt": "Talk about rain.", "system_prompt": "Be hopeful."})
        + "\n"
        + json.dumps({"prompt": "Talk about snow.", "system_prompt": "Be hopeful."})
        + "\n"
    )
    (ti / "negative.jsonl").write_text(
        json.dumps({"prompt": "Talk about rain.", "system_prompt": "Be gloomy."})
        + "\n"
        + json.dumps({"prompt": "Talk about snow.", "system_prompt": "Be gloomy."})
        + "\n"
    )
    (ti / "steering.json").write_text(
        json.dumps({"questions": [{"question": q} for q in QUESTIONS[:5]] + QUESTIONS[5:]})
    )
    own = [
        {"id": "a", "polarity": "positive", "prompt": "Why is the future bright?"},
        {"id": "b", "polarity": "positive", "prompt": "What good will come?"},
        {"id": "c", "polarity": "positive", "prompt": "Talk about rain.", "system": "Be hopeful."},
        {"id": "d", "polarity": "positive", "prompt": "Talk about snow.", "system": "Be hopeful."},
        {"id": "e", "polarity": "negative", "prompt": "Why is the future dark?"},
        {"id": "f", "polarity": "negative", "prompt": "What harm will come?"},
        {"id": "g", "polarity": "negative", "prompt": "Talk about rain.", "system": "Be gloomy."},
        {"id": "h", "polarity": "negative", "prompt": "Talk about snow.", "system": "Be gloomy."},
    ]
    ts = write_trait(
        tmp_path / "ts",
        own,
        {
            "name": "ti",
            "description": "Optimism: hopeful framing.",
            "elicitation": "instruction",
            "steering": {"direction": "positive", "questions": QUESTIONS},
        },
    )
    a, b = load_trait(ti), load_trait(ts)
    key = lambda t: sorted((s.polarity, s.prompt, s.system) for s in t.scenarios)  # noqa: E731
    assert key(a) == key(b)
    assert a.steering_questions == b.steering_questions
    assert a.description == b.description and a.elicitation == b.elicitation == "instruction"
    assert a.source_format == "trait-interp"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: (f / "scenarios.jsonl").write_text('{"id": "x"\n'), r"scenarios.jsonl:1: invalid JSON"),
        (lambda f: (f / "scenarios.jsonl").write_bytes(b'{"id": "\xff"}\n'), r"scenarios.jsonl:1: not valid UTF-8"),
        (lambda f: (f / "scenarios.jsonl").unlink(), r"scenarios.jsonl: file is missing"),
        (
            lambda f: _edit(f, 2, polarity="maybe"),
            r"scenarios.jsonl:3: polarity 'maybe' is not valid; use one of: positive, negative",
        ),
        (lambda f: _edit(f, 0, prompt="   "), r"scenarios.jsonl:1: field 'prompt' is empty"),
        (lambda f: _edit(f, 1, prompt=7), r"scenarios.jsonl:2: field 'prompt' must be a string, got int"),
        (lambda f: _edit(f, 1, drop="id"), r"scenarios.jsonl:2: missing field 'id'"),
        (lambda f: _edit(f, 3, id="p0"), r"scenarios.jsonl:1 and \S+scenarios.jsonl:4: duplicate scenario id 'p0'"),
        (lambda f: (f / "scenarios.jsonl").write_text("\n"), r"scenarios.jsonl: file is empty; write one JSON object"),
        (lambda f: _edit(f, 0, tags={"a": 1}), r"field 'tags' must map strings to strings"),
        (
            lambda f: _drop_last_negative(f),
            r"scenarios.jsonl: 3 negative scenario\(s\) \(lines \d+, \d+, \d+\); each class needs at least 4",
        ),
        (lambda f: _meta(f, elicitation="magic"), r"trait.yaml: elicitation 'magic' is not valid"),
        (
            lambda f: _meta(f, steering={"direction": "up", "questions": QUESTIONS}),
            r"steering direction 'up' is not valid",
        ),
        (lambda f: _meta(f, steering={"questions": QUESTIONS[:3]}), r"3 steering question\(s\); at least 10"),
        (lambda f: _meta(f, name=5), r"field 'name' must be a string"),
        (lambda f: (f / "trait.yaml").write_text("name: [unclosed\n"), r"trait.yaml:\d+: invalid YAML"),
        (lambda f: (f / "trait.yaml").write_text("- a list\n"), r"expected a mapping"),
    ],
)
def test_bad_trait_files_name_file_line_and_problem(tmp_path, mutate, message):
    folder = write_trait(tmp_path / "t", scen())
    mutate(folder)
    with pytest.raises(TraitscopeError, match=message) as exc:
        load_trait(folder)
    assert "\n" not in str(exc.value)


def _edit(folder, index, drop=None, **changes):
    rows = [json.loads(line) for line in (folder / "scenarios.jsonl").read_text().splitlines()]
    rows[index].update(changes)
    if drop:
        del rows[index][drop]
    (folder / "scenarios.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _drop_last_negative(folder):
    rows = (folder / "scenarios.jsonl").read_text().splitlines()
    last_neg = max(i for i, r in enumerate(rows) if '"negative"' in r)
    (folder / "scenarios.jsonl").write_text("\n".join(rows[:last_neg] + rows[last_neg + 1 :]) + "\n")


def _meta(folder, **changes):
    meta = yaml.safe_load((folder / "trait.yaml").read_text())
    meta.update(changes)
    (folder / "trait.yaml").write_text(yaml.safe_dump(meta))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_scenario_parser_raises_only_its_own_error(tmp_path, blob):
    folder = write_trait(tmp_path / "fuzz", scen())
    (folder / "scenarios.jsonl").write_bytes(blob)
    try:
        load_trait(folder)
    except TraitscopeError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=12,
    )
)
def test_yaml_parser_raises_only_its_own_error(tmp_path, meta):
    folder = write_trait(tmp_path / "fuzzy", scen())
    (folder / "trait.yaml").write_text(yaml.safe_dump(meta))
    try:
        load_trait(folder)
    except TraitscopeError:
        pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["id", "polarity", "prompt", "system", "pair", "tags"]),
            st.none()
            | st.integers()
            | st.text(max_size=6)
            | st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=2),
        ),
        max_size=12,
    )
)
def test_structured_scenarios_raise_only_own_error(tmp_path, rows):
    folder = write_trait(tmp_path / "fz", [])
    (folder / "scenarios.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        load_trait(folder)
    except TraitscopeError:
        pass


def test_cli_bad_trait_exits_2_before_loading_a_model(tmp_path):
    folder = write_trait(tmp_path / "t", scen())
    _edit(folder, 2, polarity="maybe")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "traitscope",
            "extract",
            str(folder),
            "--model",
            "no-such-model",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "scenarios.jsonl:3: polarity 'maybe'" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()
