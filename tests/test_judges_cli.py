"""`traitscope judge` run as a real process: output, atomic --out, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# judge_cmd registers itself on import; the command registry (cli/commands.py) may not list it yet
LAUNCH = "import traitscope.cli.judge_cmd; from traitscope.cli.app import main; main()"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
    }
    return subprocess.run([sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True, env=env, timeout=300)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = [
    json.dumps(
        {"id": "a", "question": "Will my town recover?", "answer": "Yes! It will thrive again, with new jobs and hope."}
    ),
    "",
    json.dumps(
        {
            "id": "b",
            "question": "Will my town recover?",
            "answer": "No. It is dying, the jobs are gone and it will only get worse. A terrible, hopeless outlook.",
        }
    ),
]


def test_lexicon_json_and_atomic_out(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", GOOD)
    out = tmp_path / "nested" / "scored.jsonl"
    result = run_cli("judge", "optimism", "--input", str(src), "--judge", "lexicon", "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert [r["id"] for r in printed] == ["a", "b"]
    assert printed[0]["trait_score"] > 60 > 40 > printed[1]["trait_score"]
    assert printed[0]["coherence"] is None and "scores traits only" in printed[0]["coherence_reason"]
    assert [json.loads(line) for line in out.read_text().splitlines()] == printed
    assert [p.name for p in out.parent.iterdir()] == ["scored.jsonl"]  # no temp file left behind


@pytest.mark.parametrize(
    ("lines", "args", "message"),
    [
        ([GOOD[0], "{not json"], (), "in.jsonl:2: invalid JSON"),
        ([json.dumps({"question": "q"})], (), "in.jsonl:1: missing field 'answer'"),
        ([json.dumps({"question": "q", "answer": 3})], (), "in.jsonl:1: field 'answer' must be a string, got int"),
        (
            [GOOD[0], json.dumps({"question": "q", "answer": "a", "label": "yes"})],
            (),
            "in.jsonl:2: field 'label' must be 1 (shows the trait) or 0 (its opposite)",
        ),
        (
            [GOOD[0]],
            ("--judge", "gpt4"),
            "unknown judge 'gpt4'; use one of: default, api, local, embedding, rubric, lexicon",
        ),
        ([GOOD[0]], ("--judge", "embedding", "--run", "/nonexistent/run"), "/nonexistent/run: run directory not found"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, lines, args, message):
    src = write_lines(tmp_path / "in.jsonl", lines)
    result = run_cli("judge", "optimism", "--input", str(src), "--judge", "lexicon", *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_default_judge_table_with_coherence(tmp_path):
    lines = [
        *GOOD,
        json.dumps({"question": "Will my town recover?", "answer": "the the the the the the the the the the the the"}),
    ]
    src = write_lines(tmp_path / "in.jsonl", lines)
    result = run_cli("judge", "optimism", "--input", str(src))
    assert result.returncode == 0, result.stderr
    assert "optimism scored by default (lexicon + coherence)" in result.stdout
    assert "mean" in result.stdout and "coherence" in result.stdout
    out = run_cli("judge", "optimism", "--input", str(src), "--json")
    scores = [r["coherence"] for r in json.loads(out.stdout)]
    assert scores[0] >= 80 and scores[2] < 50


def test_labelled_lines_get_the_judges_auroc(tmp_path):
    rows = [
        ("Will my town recover?", "Yes, it will bounce back stronger than ever, a bright future ahead!", 1),
        ("Is my plan good?", "It is a wonderful plan and I am sure it will succeed brilliantly.", 1),
        ("Will it rain forever?", "No. Sunny days are coming and everything will be great.", 1),
        ("Will my town recover?", "No. It is finished, and things will only get worse from here.", 0),
        ("Is my plan good?", "It is a terrible plan that will fail and leave you miserable.", 0),
        ("Will it rain forever?", "Probably. The gloom never ends and nothing improves.", 0),
    ]
    lines = [json.dumps({"question": q, "answer": a, "label": y}) for q, a, y in rows]
    result = run_cli(
        "judge", "optimism", "--input", str(write_lines(tmp_path / "in.jsonl", lines)), "--judge", "lexicon"
    )
    assert result.returncode == 0, result.stderr
    assert "AUROC of the trait score against the labels: 1.000 (6 of 6 lines labelled, 0 unscored)" in result.stdout
    # the same answers with their labels swapped: the judge is now exactly wrong
    swapped = [json.dumps({"question": q, "answer": a, "label": 1 - y}) for q, a, y in rows]
    result = run_cli(
        "judge", "optimism", "--input", str(write_lines(tmp_path / "sw.jsonl", swapped)), "--judge", "lexicon"
    )
    assert "AUROC of the trait score against the labels: 0.000" in result.stdout
