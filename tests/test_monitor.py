"""Monitoring on the real bundled model: exact per-token projections, traces, vector loading,
prompt sets, plots and the `monitor` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from traitscope.errors import TraitscopeError
from traitscope.extraction import ExtractConfig, extract
from traitscope.generation import SamplingConfig, generate_ids
from traitscope.hooks.core import active_hook_count
from traitscope.monitor import (
    VectorBank,
    forced_monitored,
    generate_monitored,
    load_bank,
    load_trace,
    monitor_prompts,
    stream_prompt,
    write_trace,
)
from traitscope.prompts import Prompt, bundled_prompt_sets, load_prompt_set
from traitscope.store import Provenance, RunDir, VectorSet, load_vectors, save_vectors
from traitscope.traits import load_trait

SMALL = dict(layers="4,14", sites=("residual",), max_new_tokens=6, limit=6, folds=3, batch_size=4, n_random=50)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_root(lm, tmp_path_factory):
    """A real optimism run, plus a second trait whose vectors are random (real provenance shape)."""
    root = tmp_path_factory.mktemp("runs")
    run = root / lm.slug / "optimism"
    extract(lm, load_trait("optimism"), run, ExtractConfig(**SMALL))
    src = load_vectors(RunDir(run).vector_file("response_all", "residual", "probe"))
    g = torch.Generator().manual_seed(1)
    prov = Provenance(**{**src.provenance.__dict__, "trait": "calm"})
    vecs = {layer: torch.nn.functional.normalize(torch.randn(576, generator=g), dim=0) for layer in (4, 14)}
    save_vectors(
        RunDir(root / lm.slug / "calm").vector_file("response_all", "residual", "probe"), VectorSet(vecs, prov)
    )
    return root


def random_bank(layers=(0, 4, 14, 29), traits=("a", "b", "c"), seed=0) -> VectorBank:
    g = torch.Generator().manual_seed(seed)
    return VectorBank.from_vectors(
        "residual", {t: {layer: torch.randn(576, generator=g) for layer in layers} for t in traits}
    )


def reference(lm, ids: list[int], bank: VectorBank) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Independent of the monitor's hooks: hidden_states of one teacher-forced forward.
    transformers' last hidden state is after the final norm, not the block output: left out."""
    with torch.inference_mode():
        out = lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    dots, norms = {}, {}
    for layer in [x for x in bank.layers if x < lm.n_layers - 1]:
        h = out.hidden_states[layer + 1][0].float()
        dots[layer] = h @ bank.matrix(layer)
        norms[layer] = h.norm(dim=-1)
    return dots, norms


def test_generated_projections_match_one_teacher_forced_forward(lm):
    bank = random_bank(layers=(0, 4, 14, 28, 29))
    prompts = ["Hi", "Write a long story about a dragon who learns to bake bread with a knight.", "What is 2+2?"]
    rows = [lm.prompt_ids(p) for p in prompts]
    cfg = SamplingConfig(max_new_tokens=10)
    mons = generate_monitored(lm, rows, bank, cfg)
    # the same greedy tokens as the project's generate path, so positions and masks are right
    assert [m.response_ids for m in mons] == generate_ids(lm, rows, SamplingConfig(max_new_tokens=10))
    assert any(m.stop == "max_new_tokens" for m in mons)  # the extra forward for the last token ran
    for m in mons:
        ids = m.prompt_ids + m.response_ids
        ref_dots, ref_norms = reference(lm, ids, bank)
        for layer in ref_dots:
            assert m.dots[layer].shape == (len(ids), 3) and m.norms[layer].shape == (len(ids),)
            scale = ref_norms[layer][:, None]  # a projection's error is bounded by the activation's
            assert ((m.dots[layer] - ref_dots[layer]).abs() <= 1e-4 * scale).all(), layer
            assert torch.allclose(m.norms[layer], ref_norms[layer], rtol=1e-4)
        forced = forced_monitored(lm, m.prompt_ids, m.response_ids, bank)  # the hooks' view, last layer too
        for layer in bank.layers:
            scale = forced.norms[layer][:, None]
            assert ((m.dots[layer] - forced.dots[layer]).abs() <= 1e-4 * scale).all(), layer
            if layer in ref_dots:
                assert ((forced.dots[layer] - ref_dots[layer]).abs() <= 1e-4 * scale).all(), layer
    assert active_hook_count(lm) == 0


def test_interventions_run_before_the_monitor_reads(lm):
    bank = random_bank(layers=(4,), traits=("a",))
    v = bank.matrix(4)[:, 0]
    ids = lm.prompt_ids("Tell me a joke.")
    base = forced_monitored(lm, ids, [], bank)
    pushed = forced_monitored(lm, ids, [], bank, interventions={("residual", 4): lambda h: h + 5.0 * v})
    # v is unit: adding 5 v moves every token's projection by exactly 5
    assert torch.allclose(pushed.dots[4][:, 0] - base.dots[4][:, 0], torch.full((len(ids),), 5.0), atol=1e-2)
    calls = []
    generate_monitored(lm, [ids], bank, SamplingConfig(max_new_tokens=3), {("residual", 2): lambda h: calls.append(1)})
    assert len(calls) >= 3  # prefill + each step (+ the last token's forward)
    assert active_hook_count(lm) == 0


def test_trace_from_real_vectors(lm, run_root, tmp_path):
    bank = load_bank(lm, run_root, ["optimism", "calm"], layers="4,14")
    prompts = [
        Prompt("sun", "Describe a sunny morning."),
        Prompt("read", "Say hi.", response="Hello! What a lovely day."),
    ]
    traces = monitor_prompts(lm, prompts, bank, SamplingConfig(max_new_tokens=8), "test")
    gen, forced = traces
    n = gen["n_tokens"]
    assert gen["mode"] == "generate" and forced["mode"] == "teacher_forced"
    assert len(gen["tokens"]) == len(gen["token_ids"]) == n and 0 < gen["boundary"] < n
    assert gen["token_ids"][: gen["boundary"]] == lm.prompt_ids("Describe a sunny morning.")
    assert "".join(gen["tokens"][gen["boundary"] :]) == lm.tokenizer.decode(gen["token_ids"][gen["boundary"] :])
    assert forced["token_ids"][forced["boundary"] :] == lm.response_ids("Hello! What a lovely day.")
    for trait in ("optimism", "calm"):
        for layer in ("4", "14"):
            proj, cos, norms = gen["projections"][trait][layer], gen["cosines"][trait][layer], gen["norms"][layer]
            assert len(proj) == len(cos) == len(norms) == n
            assert all(abs(c - p / nm) < 1e-5 for p, c, nm in zip(proj, cos, norms, strict=True))
            s = gen["summaries"][trait][layer]
            resp = proj[gen["boundary"] :]
            assert s["mean"] == pytest.approx(sum(resp) / len(resp), rel=1e-5)
            assert s["max"] == pytest.approx(max(resp), rel=1e-6)
            above = [i for i, v in enumerate(resp) if v > s["threshold"]]
            assert s["first_above"] == (above[0] if above else None)
    # the optimism threshold is the midpoint of the extraction classes' mean projections
    from traitscope.store.runs import load_site

    run = RunDir(run_root / lm.slug / "optimism")
    acts, _, ids, layers = load_site(run, "response[:]", "residual")
    pol = {json.loads(line)["id"]: json.loads(line)["polarity"] for line in run.rollouts.read_text().splitlines()}
    y = torch.tensor([pol[i] == "positive" for i in ids])
    v = load_vectors(run.vector_file("response_all", "residual", "probe"))[14]
    proj = acts[:, layers.index(14)] @ v
    s = gen["summaries"]["optimism"]["14"]
    assert s["threshold_source"] == "class-midpoint"
    assert s["threshold"] == pytest.approx(float((proj[y].mean() + proj[~y].mean()) / 2), rel=1e-5)
    assert gen["summaries"]["calm"]["14"]["threshold_source"] == "zero"  # no activations on disk for it
    prov = gen["vectors"]["optimism"]
    assert prov["method"] == "probe" and prov["site"] == "residual" and prov["file"].endswith("probe.safetensors")
    assert prov["position"] == "response[:]" and prov["model"] == lm.name and prov["layers"] == [4, 14]
    path = write_trace(tmp_path / "sun.json", gen)
    assert load_trace(path) == json.loads(path.read_text())
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temp file left behind


def test_default_layer_is_the_best_in_evaluation_json(lm, run_root):
    ev = json.loads(RunDir(run_root / lm.slug / "optimism").evaluation.read_text())
    bank = load_bank(lm, run_root, ["optimism"], method="mean_diff")
    assert bank.layers == [ev["best"]["residual/mean_diff"]["layer"]]


def test_stream_events_match_the_batch_trace(lm):
    bank = random_bank(layers=(4, 14))
    prompt = Prompt("x", "Name three colours.")
    events = list(stream_prompt(lm, prompt, bank, SamplingConfig(max_new_tokens=6)))
    trace = monitor_prompts(lm, [prompt], bank, SamplingConfig(max_new_tokens=6))[0]
    done, tokens = events[-1], events[:-1]
    assert done["done"] and done["n_tokens"] == trace["n_tokens"] and done["boundary"] == trace["boundary"]
    assert [e["id"] for e in tokens] == trace["token_ids"]
    assert [e["text"] for e in tokens] == trace["tokens"]
    assert [e["region"] for e in tokens].count("prompt") == trace["boundary"]
    for t in ("a", "b", "c"):
        assert [e["projections"][t]["14"] for e in tokens] == pytest.approx(trace["projections"][t]["14"], rel=1e-5)
    # a consumer that stops early must not leave hooks behind
    gen = stream_prompt(lm, prompt, bank, SamplingConfig(max_new_tokens=6))
    next(gen)
    assert active_hook_count(lm) > 0
    gen.close()
    assert active_hook_count(lm) == 0


def test_vector_loading_errors(lm, run_root, tmp_path):
    with pytest.raises(
        TraitscopeError, match="no vectors for trait 'nosuch'.*traits with vectors there: calm, optimism"
    ):
        load_bank(lm, run_root, ["nosuch"])
    with pytest.raises(TraitscopeError, match=r"no vector for layer\(s\) \[20\]; this file has layers \[4, 14\]"):
        load_bank(lm, run_root, ["optimism"], layers="20")
    with pytest.raises(TraitscopeError, match="no residual/ica vectors"):
        load_bank(lm, run_root, ["optimism"], method="ica")
    with pytest.raises(TraitscopeError, match="no evaluation.json.*pass --layers"):
        load_bank(lm, run_root, ["calm"])  # no evaluation.json: no default layer
    # vectors extracted on another model (gemma-3-270m: d=640, 18 layers)
    other = tmp_path / lm.slug / "foreign"
    src = load_vectors(RunDir(run_root / lm.slug / "calm").vector_file("response_all", "residual", "probe"))
    prov = Provenance(
        **{**src.provenance.__dict__, "model": "gemma3-270m", "hidden_size": 640, "n_layers": 18, "dim": 640}
    )
    save_vectors(RunDir(other).vector_file("response_all", "residual", "probe"), VectorSet({4: torch.ones(640)}, prov))
    with pytest.raises(TraitscopeError, match="extracted on gemma3-270m with hidden size 640"):
        load_bank(lm, tmp_path, ["foreign"], layers="4")
    with pytest.raises(TraitscopeError, match="prompt 'e' is empty"):
        monitor_prompts(lm, [Prompt("e", "   ")], random_bank())


def test_bundled_prompt_sets():
    sets = {name: load_prompt_set(name) for name in bundled_prompt_sets()}
    assert set(sets) >= {"harmful", "benign", "jailbreak", "neutral"}
    assert len(sets["harmful"]) >= 12 and len(sets["benign"]) >= 12 and len(sets["neutral"]) >= 12
    assert len(sets["jailbreak"]) >= 16 and all(p.note for p in sets["jailbreak"].prompts)
    assert len({p.note for p in sets["jailbreak"].prompts}) >= 12  # many distinct framings
    assert sets["harmful"].ids() == sets["benign"].ids()  # matched pairs
    assert {p.text for p in sets["harmful"].prompts}.isdisjoint(p.text for p in sets["benign"].prompts)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"name": "x"}', "missing field 'prompts'"),
        ('{"name": "x", "prompts": []}', "non-empty list"),
        ('{"name": "x", "prompts": [{"id": "a"}]}', "field 'text' must be a non-empty string"),
        ('{"name": "x", "prompts": [{"id": "a", "text": "hi"}, {"id": "a", "text": "yo"}]}', "appears twice"),
        ('{"name": "x", "prompts": [{"id": "../a", "text": "hi"}]}', "names a file"),
        ('{"name": "x", "prompts": [{"id": "a", "text": "hi", "colour": 1}]}', "unknown field"),
    ],
)
def test_prompt_file_validation(tmp_path, content, message):
    path = tmp_path / "set.json"
    path.write_text(content)
    with pytest.raises(TraitscopeError, match=message):
        load_prompt_set(path)
    with pytest.raises(TraitscopeError, match="no such file and not a bundled set"):
        load_prompt_set(tmp_path / "missing.json")


def test_plots_write_pngs(lm, run_root, tmp_path, output_dir):
    from traitscope.report.plots import plot_extraction_heatmaps, plot_steering_heatmaps, plot_trajectories

    bank = load_bank(lm, run_root, ["optimism"], layers="4,14")
    trace = monitor_prompts(lm, [Prompt("p", "Tell me about tomorrow.")], bank, SamplingConfig(max_new_tokens=8))[0]
    ev = json.loads(RunDir(run_root / lm.slug / "optimism").evaluation.read_text())
    rows = [
        {
            "config": {
                "id": f"{layer}-{r}",
                "method": "probe",
                "site": "residual",
                "layers": [layer],
                "ratio": r,
                "coefs": {str(layer): r * 50},
                "mode": "single",
                "baseline": False,
            },
            "judge": "lexicon",
            "trait_mean": 40 + 20 * r,
            "coherence_mean": 90 - 30 * r,
            "delta": 20 * r,
            "n": 2,
            "answers": [],
        }
        for layer in (4, 14)
        for r in (0.5, 1.0)
    ]
    paths = [
        plot_trajectories(trace, output_dir / "monitor-trajectory.png"),
        plot_extraction_heatmaps(ev, output_dir / "extraction-heatmaps.png"),
        plot_steering_heatmaps(rows, output_dir / "steering-heatmaps.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 10_000
    with pytest.raises(TraitscopeError, match="nothing to plot"):
        plot_trajectories(trace, tmp_path / "x.png", traits=["nosuch"])
    with pytest.raises(TraitscopeError, match="no non-baseline"):
        plot_steering_heatmaps([{"config": {"baseline": True}}], tmp_path / "y.png")


def cli(*args: str):
    from typer.testing import CliRunner

    from traitscope.cli import commands, monitor_cmd  # noqa: F401  (register the commands: a group, not one)
    from traitscope.cli.app import app

    return CliRunner().invoke(app, ["monitor", *args])


def test_monitor_command(lm, run_root, tmp_path, monkeypatch):
    import traitscope.models

    monkeypatch.setattr(traitscope.models, "load_model", lambda name, **kw: lm)  # the session's model, no reload
    prompts = tmp_path / "set.json"
    prompts.write_text(
        json.dumps(
            {
                "name": "mine",
                "description": "d",
                "prompts": [
                    {"id": "a", "text": "How is the weather today?"},
                    {"id": "b", "text": "Say hi.", "response": "Hi there!"},
                ],
            }
        )
    )
    out = tmp_path / "out"
    res = cli(
        "--traits",
        "optimism,calm",
        "--run-root",
        str(run_root),
        "--layers",
        "14",
        "--prompts",
        str(prompts),
        "--max-new-tokens",
        "6",
        "--out",
        str(out),
        "--plot",
        "--json",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert [t["id"] for t in summary["traces"]] == ["a", "b"]
    for pid in ("a", "b"):
        assert load_trace(out / f"{pid}.json")["prompt_set"] == "mine"
        assert (out / f"{pid}.png").read_bytes()[:8] == PNG
    # default output folder for one trait: the run directory's monitor/<set>/
    res = cli(
        "--traits",
        "optimism",
        "--run-root",
        str(run_root),
        "--prompt",
        "Good morning!",
        "--max-new-tokens",
        "5",
        "--color-by",
        "optimism",
    )
    assert res.exit_code == 0, res.output
    traces = list((run_root / lm.slug / "optimism" / "monitor" / "adhoc").glob("*.json"))
    assert len(traces) == 1
    trace = load_trace(traces[0])
    assert trace["response"].split()[0] in res.output and "first above" in res.output
    # each response token is its own span, coloured by its side of the threshold
    from traitscope.monitor.render import coloured_response

    text = coloured_response(trace, "optimism")
    resp = trace["projections"]["optimism"][next(iter(trace["projections"]["optimism"]))][trace["boundary"] :]
    thr = trace["summaries"]["optimism"][next(iter(trace["summaries"]["optimism"]))]["threshold"]
    assert text.plain == "".join(trace["tokens"][trace["boundary"] :]) and len(text.spans) == len(resp)
    for span, v in zip(text.spans, resp, strict=True):
        r, g, _ = (int(x) for x in str(span.style).split("rgb(")[1].rstrip(")").split(","))
        assert (g >= r) if v >= thr else (r > g)  # green above, red below
    # bad input: one TraitscopeError each, before or after the model loads
    bad = [
        (["--traits", "optimism", "--prompt", "  "], "--prompt is empty"),
        (["--traits", "optimism", "--prompt", "x", "--prompts", "neutral"], "exactly one of"),
        (["--traits", "optimism", "--prompt", "x", "--color-by", "calm"], "--color-by 'calm' is not one of"),
        (["--traits", "nosuch", "--run-root", str(run_root), "--prompt", "x"], "no vectors for trait 'nosuch'"),
        (["--traits", "optimism", "--prompts", str(tmp_path / "nope.json")], "no such file"),
    ]
    for args, message in bad:
        res = cli(*args)
        assert isinstance(res.exception, TraitscopeError) and message in str(res.exception), (args, res.output)


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "prompts": [')
    code = "from traitscope.cli import monitor_cmd; from traitscope.cli.app import main; main()"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", code, "monitor", "--traits", "optimism", "--prompts", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not valid JSON" in lines[0] and "Traceback" not in proc.stderr
