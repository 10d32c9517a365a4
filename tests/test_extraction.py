"""The extraction pipeline on the real bundled model with small slices of bundled traits."""

import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from traitscope.extraction import ExtractConfig, extract
from traitscope.store import RunDir, load_vectors
from traitscope.traits import load_trait

SMALL = dict(layers="4,14", sites=("residual", "v"), max_new_tokens=6, limit=6, folds=3, batch_size=4, n_random=50)


@pytest.fixture(scope="module")
def small_run(lm, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "optimism"
    res = extract(lm, load_trait("optimism"), run, ExtractConfig(**SMALL))
    return run, res


def test_vectors_are_unit_norm_oriented_and_carry_provenance(small_run, lm):
    run, res = small_run
    files = RunDir(run).vector_files()
    assert len(files) == 2 * 4  # sites x default methods
    for f in files:
        vs = load_vectors(f)
        p = vs.provenance
        assert p.trait == "optimism" and p.model == lm.name and p.layers == [4, 14]
        assert p.hidden_size == 576 and p.n_layers == 30 and p.dim == (192 if p.site == "v" else 576)
        for layer in (4, 14):
            assert abs(float(vs[layer].norm()) - 1) < 1e-5
            assert vs.act_norm(layer) > 0
    assert res.n_kept == 12
    ev = json.loads(RunDir(run).evaluation.read_text())
    assert {r["method"] for r in ev["results"]} == {"mean_diff", "probe", "gradient", "random"}
    for r in ev["results"]:
        assert 0 <= r["auroc"] <= 1 and "random_auroc_p95" in r
    rollouts = [json.loads(line) for line in RunDir(run).rollouts.read_text().splitlines()]
    assert len(rollouts) == 12 and all(r["response"] for r in rollouts)


def test_vectors_orient_toward_the_trait_on_training_data(small_run):
    run, _ = small_run
    from traitscope.store.runs import load_site

    acts, _, ids, layers = load_site(run, "response[:]", "residual")
    rows = {json.loads(line)["id"]: json.loads(line) for line in RunDir(run).rollouts.read_text().splitlines()}
    y = torch.tensor([rows[i]["polarity"] == "positive" for i in ids])
    for method in ("mean_diff", "probe", "gradient"):
        vs = load_vectors(RunDir(run).vector_file("response_all", "residual", method))
        for j, layer in enumerate(layers):
            proj = acts[:, j] @ vs[layer]
            assert proj[y].mean() > proj[~y].mean()


def test_same_seed_gives_the_same_vectors(small_run, lm, tmp_path):
    run, _ = small_run
    extract(lm, load_trait("optimism"), tmp_path / "again", ExtractConfig(**SMALL))
    for f in RunDir(run).vector_files():
        rel = f.relative_to(run)
        a, b = load_vectors(f), load_vectors(tmp_path / "again" / rel)
        for layer in a.vectors:
            assert torch.allclose(a[layer], b[layer], atol=1e-6), rel


def test_prompt_position_skips_generation(lm, tmp_path):
    res = extract(
        lm,
        load_trait("formality"),
        tmp_path / "p",
        ExtractConfig(**{**SMALL, "position": "prompt[-1]", "methods": ("probe",)}),
    )
    rows = [json.loads(line) for line in (tmp_path / "p" / "rollouts.jsonl").read_text().splitlines()]
    assert all(r["response_ids"] == [] for r in rows)
    assert res.n_kept == 12
    assert (tmp_path / "p" / "vectors" / "prompt_-1" / "residual" / "probe.safetensors").exists()


def _cmd(out):
    return [
        sys.executable,
        "-m",
        "traitscope",
        "extract",
        "optimism",
        "--limit",
        "6",
        "--layers",
        "4,14",
        "--components",
        "residual,v",
        "--max-new-tokens",
        "6",
        "--batch-size",
        "2",
        "--folds",
        "3",
        "--out",
        str(out),
        "--json",
    ]


@pytest.mark.slow
def test_kill_at_random_moments_then_resume_equals_uninterrupted(tmp_path, lm):
    ref = tmp_path / "ref"
    r = subprocess.run(_cmd(ref), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "killed"
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(_cmd(run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(4.0, 14.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    r = subprocess.run(_cmd(run), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert kills >= 1
    assert (run / "rollouts.jsonl").read_text() == (ref / "rollouts.jsonl").read_text()
    for f in RunDir(ref).vector_files():
        a, b = load_vectors(f), load_vectors(run / f.relative_to(ref))
        for layer in a.vectors:
            assert torch.allclose(a[layer], b[layer], atol=1e-6)
    ea = json.loads((ref / "evaluation.json").read_text())["results"]
    eb = json.loads((run / "evaluation.json").read_text())["results"]
    assert [(r["method"], r["site"], r["layer"], round(r["auroc"], 6)) for r in ea] == [
        (r["method"], r["site"], r["layer"], round(r["auroc"], 6)) for r in eb
    ]
    assert not (run / "activations" / "response_all" / "shards").exists()


def test_transfer_matrix_cli_needs_two_groups(small_run):
    run, _ = small_run  # the first 6 pairs of optimism are all institutional
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "traitscope",
            "transfer-matrix",
            "optimism",
            "--split-by",
            "domain",
            "--run",
            str(run),
            "--layer",
            "14",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "only one 'domain' group" in r.stderr and "Traceback" not in r.stderr


def test_transfer_matrix_on_synthetic_groups():
    from traitscope.evaluation import transfer_matrix

    g = torch.Generator().manual_seed(0)
    n, d = 120, 16
    y = torch.arange(n) % 2
    tags = ["a" if i < 60 else "b" for i in range(n)]
    X = torch.randn(n, d, generator=g)
    X[:, 0] += (y.float() * 2 - 1) * 3  # shared trait direction
    X[60:, 1] += 10  # group b lives elsewhere
    tm = transfer_matrix(X, y, tags, "probe", groups=[str(i // 2) for i in range(n)])
    assert tm.groups == ["a", "b"] and tm.sizes == {"a": 60, "b": 60}
    assert min(min(row) for row in tm.auroc) > 0.9
    avg = tm.averages("accuracy")
    assert abs(avg["drop"] - (avg["same_group"] - avg["cross_group"])) < 1e-9


def test_vetting_with_a_judge_drops_rollouts_that_show_the_opposite(lm, tmp_path):
    from traitscope.judges.registry import get_judge
    from traitscope.judges.vetting import vetter

    vet = vetter(get_judge("lexicon"))
    trait = load_trait("optimism")
    rows = [
        {
            "polarity": "positive",
            "prompt": "Why is the future bright?",
            "response": "It is hopeless, terrible and sad.",
        },
        {"polarity": "positive", "prompt": "Why is the future bright?", "response": "Wonderful, great and hopeful!"},
        {"polarity": "negative", "prompt": "What could go wrong?", "response": "Awful, dreadful losses and disaster."},
        {"polarity": "negative", "prompt": "What could go wrong?", "response": "Wonderful, great and hopeful!"},
    ]
    assert [keep for keep, _ in vet(trait, rows)] == [False, True, True, False]
    res = extract(
        lm,
        trait,
        tmp_path / "vet",
        ExtractConfig(**{**SMALL, "sites": ("residual",), "max_new_tokens": 16}),
        vetter=vet,
    )
    written = [json.loads(line) for line in (tmp_path / "vet" / "rollouts.jsonl").read_text().splitlines()]
    assert all("vet_score" in r for r in written)
    assert res.n_kept == sum(r["kept"] for r in written)
