"""`reproduce steering`: verdict logic on given numbers, the section writer, the separation-onset
arithmetic on synthetic traces, and one tiny real ratio sweep on the bundled model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from traitscope.reproduce.common.stats import cohens_d, pooled_sd
from traitscope.reproduce.common.verdict import FAILS, HOLDS, INCONCLUSIVE, UNTESTABLE, WEAKER, Rule, combine
from traitscope.reproduce.steering.experiments import control, layers, multi_layer
from traitscope.reproduce.steering.experiments import ratio_law as ex
from traitscope.reproduce.steering.experiments.context import METHODS
from traitscope.reproduce.steering.experiments.refusal import mean_curve, pick_refusal_config, separation_onset
from traitscope.reproduce.steering.findings import check, coherence_floor


@pytest.fixture(autouse=True)
def _one_thread():
    # torch's second OpenMP thread spin-waits when the other core is busy (2-core box)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- verdict logic on given numbers -----------------------------------------------------------------


def test_rule_judges_both_directions():
    up = Rule(0.7, 0.3, unit="r", margin=0.1)
    assert [up.judge(v) for v in (0.9, 0.7, 0.5, 0.35, 0.1)] == [HOLDS, HOLDS, WEAKER, INCONCLUSIVE, FAILS]
    down = Rule(0.1, 0.3, higher=False, margin=0.05)
    assert [down.judge(v) for v in (0.0, 0.2, 0.28, 0.5)] == [HOLDS, WEAKER, INCONCLUSIVE, FAILS]
    assert "≥ r = +0.700" in up.describe() and "< 0.30" in down.describe()


def test_check_without_a_number_cannot_be_tested_and_a_finding_takes_its_worst_check():
    ok = check("r_effect_delta", "effect size predicts", "r = 0.898", 0.91)
    weak = check("jailbreak_blocked", "blocked", "94%", 0.6)
    missing = check("late_layer_trap", "trap", "L25", None, "no late layer reaches 90%")
    assert (ok.verdict, weak.verdict, missing.verdict) == (HOLDS, WEAKER, UNTESTABLE)
    assert combine([ok, missing]) == HOLDS
    assert combine([ok, weak, missing]) == WEAKER
    assert combine([missing]) == UNTESTABLE
    assert missing.as_dict()["ours_text"].startswith("— (no late layer")


def test_coherence_floor_drops_below_a_low_baseline_only():
    assert coherence_floor(90.0) == 75.0
    assert coherence_floor(70.0) == 65.0
    assert coherence_floor(None) == 75.0


def _curve(points: list[tuple[float, float, float]], floor: float = 75.0) -> dict:
    rows = [{"ratio": r, "delta": d, "coherence": c, "trait": 50 + d, "coefs": {}} for r, d, c in points]
    return ex.curve_summary(rows, floor)


def test_ratio_law_checks_on_given_curves():
    # both methods: best coherent at 0.6, coherence breaks at 1.0 (L3) and 1.3 (L12)
    early = _curve([(0.2, 2, 90), (0.6, 10, 85), (1.0, 15, 80), (1.3, 5, 40)])
    late = _curve([(0.2, 2, 90), (0.6, 10, 85), (1.0, 12, 60), (1.3, 3, 30)])
    assert (early["best_ratio"], early["break_ratio"]) == (1.0, 1.3)
    assert (late["best_ratio"], late["break_ratio"]) == (0.6, 1.0)
    curves = {m: {"3": early, "12": late} for m in METHODS}
    norms = {3: {"mean_diff": 0.12, "probe": 0.03}, 12: {"mean_diff": 0.15, "probe": 0.01}}
    checks = {c.key: c for c in ex.ratio_checks(curves, norms, [3, 12])}
    assert checks["sweet_spot_distance"].ours == pytest.approx(0.0)  # median of 1.0, 1.0, 0.6, 0.6 = 0.8
    assert checks["break_distance"].ours == pytest.approx(0.0)  # median 1.15 is inside 1.0-1.3
    assert checks["later_layers_fragile"].ours == pytest.approx(0.3) and checks["later_layers_fragile"].verdict == HOLDS
    assert checks["mean_diff_norm_ratio_spread"].ours == pytest.approx(1.25)
    assert checks["probe_norm_ratio_spread"].verdict == HOLDS  # 3x


def test_a_curve_that_never_breaks_counts_as_breaking_late():
    never = _curve([(0.2, 1, 95), (1.6, 4, 90)])
    assert never["break_ratio"] is None
    curves = {m: {"5": never, "9": never} for m in METHODS}
    norms = {5: {"mean_diff": 0.1, "probe": 0.1}, 9: {"mean_diff": 0.1, "probe": 0.1}}
    brk = next(c for c in ex.ratio_checks(curves, norms, [5, 9]) if c.key == "break_distance")
    assert brk.ours == pytest.approx(ex.CENSORED_BREAK - ex.BREAK_BAND[1]) and brk.verdict == FAILS


def _scan(rows: dict[str, list[tuple[int, float, float, float]]]) -> dict:
    table = {
        m: [
            {"layer": layer, "accuracy": acc, "auroc": acc, "effect_size": d, "delta": delta, "coherent": True}
            for layer, acc, d, delta in rs
        ]
        for m, rs in rows.items()
    }
    return {"layers": [r[0] for r in rows["probe"]], "ratios": [0.4], "table": table, "rows": []}


def test_metrics_vs_steering_on_given_numbers():
    # effect size tracks the delta exactly; accuracy peaks late where steering goes negative (the trap)
    probe = [(0, 0.6, 0.5, 5.0), (9, 0.8, 1.5, 15.0), (18, 0.85, 1.0, 10.0), (27, 0.95, 0.2, -4.0)]
    result = layers.metrics_vs_steering(_scan({"probe": probe, "mean_diff": probe}), n_layers=30)
    checks = {c.key: c for c in result["checks"]}
    assert result["r_effect"] > 0.95 and result["r_accuracy"] < result["r_effect"]
    assert checks["r_effect_delta"].verdict == HOLDS
    assert checks["r_effect_minus_acc"].verdict == HOLDS
    assert (result["best_extraction"]["layer"], result["best_steering"]["layer"]) == (27, 9)
    assert checks["steer_layer_earlier"].ours == pytest.approx(18 / 29)
    assert checks["late_layer_trap"].ours == -4.0 and checks["late_layer_trap"].verdict == HOLDS


def test_late_layer_trap_needs_an_accurate_late_layer():
    probe = [(0, 0.6, 0.5, 5.0), (9, 0.8, 1.5, 15.0), (27, 0.7, 0.2, -4.0)]
    trap = next(
        c
        for c in layers.metrics_vs_steering(_scan({"probe": probe, "mean_diff": probe}), 30)["checks"]
        if c.key == "late_layer_trap"
    )
    assert trap.verdict == UNTESTABLE and "90%" in (trap.why_untestable or "")


def test_detection_vs_control_on_given_numbers():
    rows = [(0, 0.95, 1.0, 20.0), (9, 0.97, 1.2, 2.0), (18, 0.7, 0.3, 1.0)]
    cross = {"primary": {"label": "mean_diff via push map", "detect_kept": 0.9, "control_kept": 0.3}}
    result = control.detection_vs_control(_scan({"probe": rows, "mean_diff": rows}), cross)
    checks = {c.key: c for c in result["checks"]}
    assert checks["detect_minus_control"].ours == pytest.approx(0.6) and checks["detect_minus_control"].verdict == HOLDS
    assert checks["detects_not_steers"].ours == pytest.approx(0.5)  # L9 of each method: AUROC ≥ .9, Δ < 25% of 20
    untested = control.detection_vs_control(_scan({"probe": rows, "mean_diff": rows}), {"untestable": "no base model"})
    assert untested["checks"][0].verdict == UNTESTABLE


def test_multi_layer_ranges_follow_the_logs_relative_depth():
    assert multi_layer.log_ranges(26) == [(6, 10), (8, 10)]
    assert multi_layer.log_ranges(30) == [(7, 12), (9, 12)]


def test_multi_layer_is_compared_with_the_best_single_layer_inside_its_range():
    def row(layers, delta, mode="weighted"):
        return {"layers": layers, "delta": delta, "ratio": 0.4, "mode": mode, "method": "probe"}

    in_range = {
        "L[7-12]": (row(list(range(7, 13)), 20.0), row([9], 25.0)),
        "L[9-12]": (row(list(range(9, 13)), 30.0), row([12], 26.0)),
        "L[20-22]": (row(list(range(20, 23)), 5.0), None),  # no coherent single layer there: skipped
    }
    check = multi_layer._in_range_check(in_range)
    assert check.ours == pytest.approx(4.0) and check.verdict == HOLDS
    assert check.shown.startswith("L[9-12] weighted")
    # nothing coherent is not a delta of 0: the range cannot be compared, the check cannot be tested
    none = multi_layer._in_range_check({"L[7-12]": (None, row([9], 4.0))})
    assert none.ours is None and none.verdict == UNTESTABLE


def test_multi_layer_without_a_coherent_configuration_cannot_be_tested():
    single = {"layers": [9], "delta": 6.0, "ratio": 0.4, "mode": "weighted", "method": "probe"}
    for multi, single_row in ((None, single), (single, None)):
        c = multi_layer._multi_check(multi, single_row)
        assert c.ours is None and c.verdict == UNTESTABLE and "stayed coherent" in c.why_untestable
    mode = multi_layer._mode_check({"weighted": single, "orthogonal": None})
    assert mode.verdict == UNTESTABLE and "orthogonal" in mode.why_untestable


def test_a_gap_inside_the_question_noise_is_inconclusive():
    def row(scores, layers):
        answers = [{"question": f"q{i}", "trait": t} for i, t in enumerate(scores)]
        delta = sum(scores) / len(scores) - 50
        return {
            "layers": layers,
            "delta": delta,
            "ratio": 0.4,
            "mode": "weighted",
            "method": "probe",
            "answers": answers,
        }

    # multi +5 over single on average, but question by question anywhere from -35 to +45
    multi = row([90, 20, 85, 30, 95, 25], list(range(7, 13)))
    single = row([45, 55, 40, 65, 50, 60], [9])
    c = multi_layer._multi_check(multi, single)
    assert c.ours == pytest.approx(5.0) and c.noise > 10 and c.verdict == INCONCLUSIVE
    steady = row([60, 62, 58, 61, 59, 60], list(range(7, 13)))
    c = multi_layer._multi_check(steady, row([50, 52, 48, 51, 49, 50], [9]))
    assert c.ours == pytest.approx(10.0) and c.noise < 2 and c.verdict == HOLDS


def test_cross_model_control_without_a_coherent_carried_configuration_cannot_be_tested():
    cross = {
        "primary": {"label": "mean_diff via push map", "detect_kept": 0.9, "control_kept": None, "best_delta": None}
    }
    c = control._detect_control_check(cross)
    assert c.verdict == UNTESTABLE and "carried vector stayed coherent" in c.why_untestable


def test_refusal_dynamics_on_a_vector_that_encodes_no_refusal_cannot_be_tested():
    from traitscope.reproduce.steering.experiments.refusal import dynamics_checks, no_refusal_vector

    sep = {
        "response_d": 2.5,
        "shift_gap": 1.2,
        "onset": 1,
        "summary": {"harmful": {"n": 14}, "benign": {"n": 14}},
    }
    assert {c.verdict for c in dynamics_checks(sep, 40)} == {HOLDS}  # the numbers alone would pass
    rollouts = {"positive": {"n": 40, "refused": 1, "share": 0.025}, "negative": {"n": 40, "refused": 0, "share": 0}}
    why = no_refusal_vector(rollouts, None, "; measured anyway: response d = 2.50")
    assert why and "encodes the harmful request" in why and "d = 2.50" in why
    checks = dynamics_checks(sep, 40, why)
    assert {c.verdict for c in checks} == {UNTESTABLE} and combine(checks) == UNTESTABLE
    refusing = {"positive": {"n": 40, "refused": 30, "share": 0.75}}
    assert no_refusal_vector(refusing, None) is None


def test_refusal_config_is_the_most_blocking_coherent_one():
    rows = [
        {"share_high": 0.9, "trait": 80, "coherence": 40},  # blocks most but incoherent
        {"share_high": 0.5, "trait": 55, "coherence": 80},
        {"share_high": 0.5, "trait": 60, "coherence": 78},
    ]
    best, ok = pick_refusal_config(rows, 75.0)
    assert ok and best is rows[2]
    best, ok = pick_refusal_config(rows[:1], 75.0)
    assert not ok and best is rows[0]


# --- separation onset on synthetic traces -------------------------------------------------------------


def test_separation_onset_finds_the_first_separating_token():
    benign = [[0.0, 0.1, -0.1, 0.0, 0.1, 0.0], [0.1, 0.0, 0.0, -0.1, 0.0, 0.1], [-0.1, 0.0, 0.1, 0.1, -0.1, 0.0]]
    # harmful follows benign for three tokens, then jumps by ~10 sds
    harmful = [[b + 0.01 for b in t[:3]] + [1.0, 1.1, 0.9] for t in benign]
    assert separation_onset(harmful, benign) == 3
    assert separation_onset(benign, harmful) is None  # only harmful above benign counts
    assert separation_onset(harmful, benign, min_prompts=4) is None  # too few prompts at any token
    # a set that runs out of long-enough responses stops the search
    short = [t[:2] for t in harmful]
    assert separation_onset(short, benign) is None


def test_pooled_sd_effect_size_and_mean_curve():
    a, b = [1.0, 2.0, 3.0], [0.0, 1.0, 2.0]
    assert pooled_sd(a, b) == pytest.approx(1.0)
    assert cohens_d(a, b) == pytest.approx(1.0)
    curve = mean_curve([[1.0, 2.0, 5.0], [3.0, 4.0], [5.0, 6.0]])
    assert [round(p["mean"], 3) for p in curve] == [3.0, 4.0]  # token 2 has one response: cut off
    assert curve[0]["n"] == 3


# --- the section writer -------------------------------------------------------------------------------


def test_steering_section_keeps_everything_outside_its_markers(tmp_path, monkeypatch):
    from traitscope.reproduce.steering import report as steering_report

    report = tmp_path / "REPRODUCTION.md"
    before = "# Title\n\nintro by hand\n\n<!-- detection:start -->\nDETECTION\n<!-- detection:end -->\n\nfooter\n"
    report.write_text(before)
    monkeypatch.setattr(steering_report, "render", lambda results, plots: "STEERING v1")
    monkeypatch.setattr("traitscope.reproduce.steering.plots.write_plots", lambda results, d: {})
    steering_report.publish({}, report)
    text = report.read_text()
    assert text.startswith(before.rstrip()) and text.rstrip().endswith("<!-- steering:end -->")
    assert "STEERING v1" in text
    monkeypatch.setattr(steering_report, "render", lambda results, plots: "STEERING v2")
    steering_report.publish({}, report)
    text = report.read_text()
    assert "STEERING v1" not in text and text.count("<!-- steering:start -->") == 1
    assert text.replace("<!-- steering:start -->\nSTEERING v2\n<!-- steering:end -->\n", "") == before.rstrip() + "\n\n"


# --- one tiny real step ---------------------------------------------------------------------------------


def test_ratio_sweep_smoke_on_the_bundled_model(lm, tmp_path):
    """1 layer × 2 ratios × 2 questions on a tiny extraction; a re-run resumes from results.jsonl."""
    from traitscope.judges.registry import get_judge
    from traitscope.reproduce.common import STEERING_PROFILES
    from traitscope.reproduce.steering.experiments.context import Context, ensure_extraction
    from traitscope.reproduce.steering.report import _ratio_law
    from traitscope.store import RunDir, read_jsonl
    from traitscope.traits import load_trait

    quick = STEERING_PROFILES["quick"]
    sizes = replace(quick.sizes, answer_tokens=6, sweep_ratios=(0.3, 1.2))
    tiny = replace(quick, name="test", pairs=6, rollout_tokens=6, folds=2, n_random=3, steering=sizes)
    ctx = Context(lm=lm, judge=None, judge_label="test", profile=tiny, out=tmp_path)
    run_dir, evaluation = ensure_extraction(ctx, lm, "optimism", ("residual",), ("probe", "mean_diff"))
    assert evaluation["n"] == 12
    trait = load_trait("optimism")
    ctx.judge = get_judge("default", trait=trait, run_dir=run_dir, lm=lm)
    questions = trait.steering_questions[:2]
    f = ex.ratio_law(ctx, trait, run_dir, [12], questions)
    curve = f["curves"]["probe"]["12"]["points"]
    assert [p["ratio"] for p in curve] == [0.3, 1.2]
    # unit vectors: the coefficient is the ratio times the layer's mean activation norm
    assert curve[1]["coef"] == pytest.approx(1.2 * f["norms"]["12"]["act_norm"], rel=1e-4)
    assert all(p["coherence"] is not None and p["delta"] is not None for p in curve)
    assert {c.key for c in f["checks"]} >= {"sweet_spot_distance", "break_distance"}
    lines = len(read_jsonl(RunDir(Path(run_dir)).steering_results))
    assert lines == 1 + 2 * 2  # baseline + 2 methods × 2 ratios
    again = ex.ratio_law(ctx, trait, run_dir, [12], questions)
    assert len(read_jsonl(RunDir(Path(run_dir)).steering_results)) == lines
    assert again["curves"] == f["curves"]
    f["checks"] = [c.as_dict() for c in f["checks"]]
    f["verdict"], f["setup"] = combine([]), {}
    meta = {"model": {"name": lm.name, "n_layers": lm.n_layers, "hidden_size": lm.hidden_size}, "judge": "test"}
    text = _ratio_law(f, meta, {})
    assert "| 1.2 |" in text and "act_norm" in text


# --- the command end to end on a tiny setting -----------------------------------------------------------

TINY_SIZES = {
    "name": "tiny",
    "pairs": 4,
    "rollout_tokens": 4,
    "folds": 2,
    "n_random": 3,
    "layer_step": 14,
    "neutral_cap": 24,
    "batch_size": 8,
    "questions": 2,
    "answer_tokens": 4,
    "sweep_depths": [0.5],
    "sweep_ratios": [0.2, 0.6],
    "scan_factors": [1.0],
    "multi_factors": [1.0],
    "refusal_depths": [0.3],
    "refusal_factors": [1.0],
    "monitor_tokens": 4,
    "cross_factors": [1.0],
    "steer_batch_size": 16,
}


def test_reproduce_steering_quick_through_the_cli(tmp_path, monkeypatch):
    """`traitscope reproduce steering --quick` on the bundled models with every size cut down: all
    seven findings run, each gets a verdict, and the report section names the command that made it."""
    import json

    from typer.testing import CliRunner

    from traitscope.cli import reproduce_cmd  # noqa: F401  (registers `reproduce` on the app)
    from traitscope.cli.app import app
    from traitscope.reproduce.common.verdict import FAILS, HOLDS, INCONCLUSIVE, UNTESTABLE, WEAKER
    from traitscope.reproduce.steering.findings import FINDINGS

    sizes = tmp_path / "tiny.json"
    sizes.write_text(json.dumps(TINY_SIZES))
    report = tmp_path / "docs" / "REPRODUCTION.md"
    args = ["reproduce", "steering", "--quick", "--sizes", str(sizes), "--out", str(tmp_path / "out")]
    args += ["--report", str(report), "--json"]
    monkeypatch.setattr("sys.argv", ["traitscope", *args])  # what a shell would hand the command
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["profile"] == "tiny" and set(summary["verdicts"]) == set(FINDINGS)
    assert set(summary["verdicts"].values()) <= {HOLDS, WEAKER, INCONCLUSIVE, FAILS, UNTESTABLE}
    results = json.loads((tmp_path / "out" / "steering-tiny.json").read_text())
    fs = results["findings"]
    assert fs["ratio_law"]["ratios"] == [0.2, 0.6] and len(fs["ratio_law"]["rows"]) == 2 * 1 * 2
    assert fs["cross_model"]["source"]["name"] == "gemma3-270m"  # the default base model, through a ridge map
    # a refusal vector from 4-token rollouts holds no refusals: findings 5 and 6 say so instead of passing
    for key in ("refusal_dynamics", "jailbreaks"):
        assert fs[key]["verdict"] == UNTESTABLE and "encodes the harmful request" in fs[key]["untestable_reasons"][0]
    text = report.read_text()
    assert "<!-- steering:start -->" in text and f"`traitscope {' '.join(args)}`" in text
    assert "(reproduction/steering_ratio_law.png)" in text and (report.parent / "reproduction").is_dir()


def test_cli_rejects_a_bad_sizes_file(tmp_path):
    from typer.testing import CliRunner

    from traitscope.cli import reproduce_cmd  # noqa: F401
    from traitscope.cli.app import app
    from traitscope.errors import TraitscopeError

    bad = tmp_path / "sizes.json"
    bad.write_text('{"questoins": 2}')
    result = CliRunner().invoke(app, ["reproduce", "steering", "--quick", "--sizes", str(bad)])
    assert isinstance(result.exception, TraitscopeError) and "questoins" in str(result.exception)
    bad.write_text('{"questions": 2}')
    result = CliRunner().invoke(app, ["reproduce", "detection", "--quick", "--sizes", str(bad)])
    assert isinstance(result.exception, TraitscopeError) and "detection profile" in str(result.exception)
