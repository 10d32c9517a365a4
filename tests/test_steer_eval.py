"""steer-eval and the end-to-end report on a small real run of the bundled model."""

import json
import re
import subprocess
import sys

import pytest
import torch

from traitscope.extraction import ExtractConfig, extract
from traitscope.judges.registry import get_judge
from traitscope.steering.evaluate import SteerConfig, best_config, evaluate_configs
from traitscope.store import RunDir, read_jsonl
from traitscope.traits import load_trait


@pytest.fixture(scope="module")
def run(lm, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("steer") / "smollm2-135m-instruct" / "optimism"
    extract(
        lm,
        load_trait("optimism"),
        run_dir,
        ExtractConfig(
            layers="9,20",
            sites=("residual",),
            methods=("probe", "mean_diff"),
            max_new_tokens=6,
            limit=6,
            folds=3,
            batch_size=6,
            n_random=20,
        ),
    )
    return run_dir


def test_steer_eval_scores_appends_and_skips_done_configs(lm, run):
    trait = load_trait("optimism")
    judge = get_judge("default", trait=trait, run_dir=run, lm=lm)
    configs = [
        SteerConfig("probe", "residual", (), baseline=True),
        SteerConfig("probe", "residual", (9,), ratio=0.3),
        SteerConfig("mean_diff", "residual", (9, 20), ratio=0.3, mode="orthogonal"),
    ]
    rows = evaluate_configs(lm, trait, run, configs, judge, questions=trait.steering_questions[:2], max_new_tokens=16)
    assert [r["config"]["baseline"] for r in rows] == [True, False, False]
    assert rows[0]["delta"] == 0
    for r in rows:
        assert r["n"] == 2 and len(r["answers"]) == 2
        assert r["trait_mean"] is None or 0 <= r["trait_mean"] <= 100
        assert 0 <= r["coherence_mean"] <= 100
    assert set(rows[2]["config"]["coefs"]) == {"9", "20"}
    lines = read_jsonl(RunDir(run).steering_results)
    assert len(lines) == 3
    again = evaluate_configs(lm, trait, run, configs, judge, questions=trait.steering_questions[:2], max_new_tokens=16)
    assert len(read_jsonl(RunDir(run).steering_results)) == 3  # nothing re-run
    assert [r["answers"] for r in again] == [r["answers"] for r in rows]
    assert best_config(rows, floor=0) is not None


def test_steer_and_steer_eval_cli(run):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "traitscope",
            "steer",
            "optimism",
            "--run",
            str(run),
            "--layers",
            "9",
            "--ratio",
            "0.3",
            "--prompt",
            "Is my old car worth fixing?",
            "--max-new-tokens",
            "12",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["unsteered"] and out["steered"] and out["unsteered"] != out["steered"]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "traitscope",
            "steer-eval",
            "optimism",
            "--run",
            str(run),
            "--layers",
            "20",
            "--ratios",
            "0.2",
            "--questions",
            "2",
            "--max-new-tokens",
            "12",
            "--judge",
            "lexicon",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [c["config"] for c in out["configs"]][0] == "baseline (unsteered)"
    assert len(out["configs"]) == 2
    r = subprocess.run(
        [sys.executable, "-m", "traitscope", "steer", "optimism", "--run", str(run), "--layers", "5", "--prompt", "hi"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "no vector for layer 5" in r.stderr


def test_report_html_is_self_contained(lm, run):
    from traitscope.generation import SamplingConfig
    from traitscope.monitor import load_bank, monitor_prompts
    from traitscope.prompts import load_prompt_set
    from traitscope.report.html import write_report
    from traitscope.store.runs import load_evaluation

    trait = load_trait("optimism")
    judge = get_judge("lexicon")
    rows = evaluate_configs(
        lm,
        trait,
        run,
        [SteerConfig("probe", "residual", (), baseline=True), SteerConfig("probe", "residual", (9,), ratio=0.2)],
        judge,
        questions=trait.steering_questions[:2],
        max_new_tokens=8,
    )
    bank = load_bank(lm, run.parent.parent, ["optimism"], model_slug=run.parent.name)
    traces = monitor_prompts(lm, load_prompt_set("neutral").prompts[:1], bank, SamplingConfig(max_new_tokens=6))
    path = write_report(RunDir(run).report, load_evaluation(run), rows, traces, None)
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 3  # extraction, steering, one trajectory
    assert "residual/probe" in page and "http://" not in page and "https://" not in page


def test_export_cv_defaults_to_the_best_layer_in_llama_cpp_naming(run, tmp_path):
    """llama.cpp (common/common.cpp, llama_control_vector_load_one) reads tensors ``direction.<il>``
    for il >= 1 and adds tensor il to the output of block il (src/llama-adapter.cpp, tensor_for(il),
    applied by build_cvec(cur, il) at the end of each layer): traitscope's layer il."""
    import gguf

    from traitscope.evaluation import best_row
    from traitscope.store import load_vectors
    from traitscope.store.runs import load_evaluation

    out = tmp_path / "cv.gguf"
    r = subprocess.run(
        [sys.executable, "-m", "traitscope", "export-cv", "optimism", "--run", str(run), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    best = int(best_row(load_evaluation(run)["results"], "residual", "probe")["layer"])
    reader = gguf.GGUFReader(str(out))
    assert [t.name for t in reader.tensors] == [f"direction.{best}"]
    field = reader.fields["controlvector.layer_count"]
    assert int(field.parts[field.data[0]][0]) == 1
    arch = reader.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "controlvector"
    vs = load_vectors(RunDir(run).vector_file("response[:]", "residual", "probe"))
    direction = torch.from_numpy(reader.tensors[0].data.copy()).float()
    # one layer at the default total ratio 0.3: |direction| = 0.3 * mean activation norm there
    assert abs(direction.norm().item() - 0.3 * vs.act_norm(best)) < 1e-3 * vs.act_norm(best)
    assert torch.nn.functional.cosine_similarity(direction, vs[best].float(), dim=0) > 0.999
    # several layers share the total ratio instead of stacking one ratio each
    r = subprocess.run(
        [sys.executable, "-m", "traitscope", "export-cv", "optimism", "--run", str(run), "--out", str(out),
         "--layers", "9,20", "--ratio", "0.4"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    norms = {t.name: float(torch.from_numpy(t.data.copy()).norm()) for t in gguf.GGUFReader(str(out)).tensors}
    assert abs(norms["direction.9"] - 0.2 * vs.act_norm(9)) < 1e-3 * vs.act_norm(9)
    assert abs(norms["direction.20"] - 0.2 * vs.act_norm(20)) < 1e-3 * vs.act_norm(20)


def test_transfer_matrix_success_path(lm, tmp_path):
    """Two topic groups, prompt[-1] activations (no generation): a full matrix through the CLI."""
    from traitscope.traits.loader import bundled_dir

    src = bundled_dir() / "optimism"
    rows = [json.loads(line) for line in (src / "scenarios.jsonl").read_text().splitlines() if line.strip()]
    topics = sorted({r["tags"]["topic"] for r in rows})[:2]
    keep = [r for t in topics for r in [r for r in rows if r["tags"]["topic"] == t][:12]]
    folder = tmp_path / "opt2"
    folder.mkdir()
    (folder / "trait.yaml").write_text((src / "trait.yaml").read_text())
    (folder / "scenarios.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    run_dir = tmp_path / "run"
    cfg = ExtractConfig(layers="10,20", sites=("residual",), methods=("probe",), position="prompt[-1]", folds=2,
                        n_random=10)  # fmt: skip
    extract(lm, load_trait(folder), run_dir, cfg)
    r = subprocess.run(
        [sys.executable, "-m", "traitscope", "transfer-matrix", str(folder), "--split-by", "topic", "--run",
         str(run_dir), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["groups"] == topics and out["sizes"] == {t: 12 for t in topics}
    assert out["layer"] in (10, 20)
    for m in ("accuracy", "auroc"):
        assert len(out[m]) == 2 and all(len(row) == 2 and all(0 <= v <= 1 for v in row) for row in out[m])
    avg = out["averages"]["accuracy"]
    assert abs(avg["drop"] - (avg["same_group"] - avg["cross_group"])) < 1e-9


def test_run_end_to_end_and_a_judge_that_gives_no_scores(tmp_path):
    """`traitscope run` on a small setting; the api judge pointed at a closed port scores nothing,
    which the summary reports instead of crashing."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the with-block ends
    env = {**__import__("os").environ, "TRAITSCOPE_JUDGE_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "traitscope", "run", "optimism", "--out", str(out), "--limit", "4", "--layers", "6,9",
         "--components", "residual", "--steer-layers", "9", "--ratios", "0.3", "--questions", "1", "--judge", "api"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "baseline trait n/a (judge gave no score)" in " ".join(r.stdout.split())  # rich wraps lines
    report = (out / "report.html").read_text()
    assert "<html" in report.lower() and "optimism" in report
    assert list((out / "monitor" / "neutral").glob("*.json"))
    assert (out / "evaluation.json").is_file() and (out / "steering" / "results.jsonl").is_file()


def test_response_scope_leaves_the_prompt_unsteered_and_keeps_old_keys(lm, run):
    trait = load_trait("optimism")
    judge = get_judge("default", trait=trait, run_dir=run, lm=lm)
    qs = trait.steering_questions[:2]
    configs = [
        SteerConfig("probe", "residual", (), baseline=True),
        SteerConfig("probe", "residual", (9,), ratio=1.5),
        SteerConfig("probe", "residual", (9,), ratio=1.5, scope="response"),
    ]
    base, full, resp = evaluate_configs(lm, trait, run, configs, judge, questions=qs, max_new_tokens=16)
    assert resp["config"]["label"] == "residual/probe L9 ratio 1.5 (response only)"
    assert resp["config"]["id"] != full["config"]["id"]
    # the prefill is read unsteered, so the first token matches the baseline's; later ones are steered
    for b, r in zip(base["answers"], resp["answers"], strict=True):
        assert re.match(r"\w+", r["answer"]).group() == re.match(r"\w+", b["answer"]).group()
    assert [a["answer"] for a in resp["answers"]] != [a["answer"] for a in base["answers"]]
    assert [a["answer"] for a in resp["answers"]] != [a["answer"] for a in full["answers"]]
    # rows cached before scopes existed keep their keys (this one was computed by the code before)
    assert SteerConfig("probe", "residual", (10,), ratio=0.2).key({"x": 1}) == "ba8735473a7ca40e"
