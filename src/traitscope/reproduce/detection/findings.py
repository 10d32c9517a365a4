"""The detection findings' catalogue, the bottom of ``reproduce/detection``: which findings there
are (titles, report numbers), the research log's numbers for each (shared/reference/findings.md,
quoted as the log gives them; fractions where the code compares) and the verdict thresholds, fixed
before any run. Experiments, the run, the report and the plots all read from here."""

from __future__ import annotations

from traitscope.reproduce.common.verdict import Rule, checker

# Findings in report order: key -> title, and the number the report gives each.
FINDINGS: dict[str, str] = {
    "methods": "Extraction methods compared",
    "cross_lang": "Cross-language transfer (uncertainty)",
    "cross_topic": "Cross-topic transfer (uncertainty, English)",
    "cross_dist": "Cross-distribution transfer (optimism domains)",
    "components": "Components compared (residual, attn_out, mlp_out, V)",
    "elicitation_sycophancy": "Natural vs instruction elicitation: sycophancy",
    "elicitation_optimism": "Natural vs instruction elicitation: optimism",
    "base_to_instruct": "Base → instruct transfer",
}
SECTION = {
    "methods": "1",
    "cross_lang": "2a",
    "cross_topic": "2b",
    "cross_dist": "3",
    "components": "4",
    "elicitation_sycophancy": "5a",
    "elicitation_optimism": "5b",
    "base_to_instruct": "6",
}

TRANSFER_TRAIT = "refusal"  # the log's base -> IT finding is about refusal
ELICITATION_PAIRS = {
    "sycophancy": ("sycophancy-natural", "sycophancy"),
    "optimism": ("optimism", "optimism-instruction"),
}
# The log's table order; ica and pca_diff are analysis-only methods, kept here for this table.
METHOD_ORDER = ("probe", "gradient", "mean_diff", "ica", "pca_diff", "random")
COMPONENT_SITES = ("residual", "attn_out", "mlp_out", "v")

# 2025-11-28 "Extraction Method Comparison": 9 traits x 26 layers of Gemma-2-2B-IT.
METHODS_TABLE: dict[str, dict[str, str | float]] = {
    "probe": {
        "polarity_failures": "0/234 (0.0%)",
        "fail_rate": 0.0,
        "accuracy": 0.859,
        "effect_size": 2.94,
        "below_60": "29/234",
    },
    "gradient": {
        "polarity_failures": "27/234 (11.5%)",
        "fail_rate": 0.115,
        "accuracy": 0.810,
        "effect_size": 2.58,
        "below_60": "47/234",
    },
    "mean_diff": {
        "polarity_failures": "67/234 (28.6%)",
        "fail_rate": 0.286,
        "accuracy": 0.657,
        "effect_size": 1.35,
        "below_60": "106/234",
    },
    "ica": {
        "polarity_failures": "121/234 (51.7%)",
        "fail_rate": 0.517,
        "accuracy": 0.479,
        "effect_size": 1.02,
        "below_60": "170/234",
    },
    "pca_diff": {
        "polarity_failures": "108/234 (46.2%)",
        "fail_rate": 0.462,
        "accuracy": 0.510,
        "effect_size": 0.72,
        "below_60": "161/234",
    },
    "random": {
        "polarity_failures": "129/234 (55.1%)",
        "fail_rate": 0.551,
        "accuracy": 0.465,
        "effect_size": 0.79,
        "below_60": "184/234",
    },
}
METHODS_SETUP = "Gemma-2-2B-IT, 9 traits × 26 layers = 234 combinations"

# 2025-11-28 "Cross-Language Validation" and 2025-11-29 "Cross-Topic Validation" (probe @ L16).
CROSS_LANG = {"same": 1.000, "cross": 0.996, "drop": 0.004, "mean_diff_cross": 0.50}
CROSS_LANG_SETUP = "Gemma-2-2B-IT, probe @ L16; English 111, Spanish 50, French 50, Chinese 50 scenarios"
CROSS_TOPIC = {"same": 1.000, "cross": 0.914, "drop": 0.086}
CROSS_TOPIC_SETUP = "Gemma-2-2B-IT, probe @ L16; science 101, coding 100, history 100, creative 100 scenarios"

# 2025-12-04 "Cross-Distribution Generalization" (optimism, L13): rows = vector, cols = eval on A / B.
CROSS_DIST = {
    "probe": {"institutional": [1.00, 1.00], "social": [0.95, 1.00]},
    "mean_diff": {"institutional": [0.90, 0.90], "social": [0.55, 0.70]},
}
CROSS_DIST_AVG = {"probe": 0.9875, "mean_diff": 0.7625}  # mean of the four cells per method
CROSS_DIST_SETUP = "gemma-2-2b base, optimism (100 scenarios), A = institutional, B = social, layer 13"

# Top findings table: "attn_out dominates" and "V-cache > residual for detection".
COMPONENTS = {"attn_out_acc": 0.90, "residual_acc": 0.80, "v_auroc": 0.854, "residual_auroc": 0.687}
COMPONENTS_SETUP = "gemma-2-2b base sweeps (refusal, uncertainty, formality); residual, attn_out, mlp_out, V-cache"

# 2025-11-30 "Natural vs Instruction-Based Elicitation" (Qwen2.5-7B-Instruct, L20).
ELICITATION = {
    "sycophancy": {"cosine": 0.20, "cross": "~50% (chance)", "cross_value": 0.50},
    "optimism": {"cosine": 0.63, "cross": "97-100%", "cross_value": 0.985},
}
ELICITATION_SETUP = "Qwen2.5-7B-Instruct, L20; diagnostic: cosine > 0.5 same concept, < 0.3 different"

# 2025-11-30 "Base Model -> IT Model Transfer (attn_out)".
BASE_TO_IT = {"accuracy": 0.90, "separation": "~0.5 (difference of response means)"}
BASE_TO_IT_SETUP = (
    "gemma-2-2b -> gemma-2-2b-it (same width, vector applied directly), refusal, attn_out L8; "
    "228 refusal + 360 compliance rollouts; tested on 5 harmful + 5 benign prompts"
)


# --- verdict rules ------------------------------------------------------------------------------
# One per claim: Rule(holds, null, higher, unit, margin). The "holds" bar sits near the log's own
# number, a little below it (the bundled models are 10-50x smaller than the log's and the quick
# profile is noisier). The null is where the claim's sign flips: 0 for "A beats B" (a difference),
# the edge of what the claim allows for "little drop" / "no better than random" / "detects". The
# margin is the least noise assumed (a measured noise, where the experiment has one, can only widen
# it). Units: pct (0.9 -> 90%), pp (0.05 -> 5 points), num.
RULES: dict[str, Rule] = {
    # 1. methods: probe has ~no polarity failures (log 0/234) and the best accuracy
    "probe_polarity_failures": Rule(0.02, 0.10, higher=False, unit="pct", margin=0.02),
    "probe_acc_margin": Rule(0.02, 0.0, unit="pp", margin=0.01),  # probe mean accuracy minus the best other
    "gradient_polarity_failures": Rule(0.15, 0.30, higher=False, unit="pct", margin=0.02),  # log 11.5%
    "mean_diff_below_probe": Rule(0.10, 0.0, unit="pp", margin=0.01),  # probe minus mean_diff (log 20 pts)
    # ICA / PCA-diff "no better than random": their mean accuracy minus random's; the claim allows a
    # few points (the log's own +4.5 and +1.4) and fails past 10
    "pca_diff_vs_random": Rule(0.05, 0.10, higher=False, unit="pp", margin=0.01),
    "ica_vs_random": Rule(0.05, 0.10, higher=False, unit="pp", margin=0.01),
    # 2. cross-language (log 99.6% cross, drop 0.4%) and cross-topic (91.4%, drop 8.6%)
    "cross_lang_probe": Rule(0.95, 0.80, unit="pct", margin=0.02),
    "cross_lang_drop": Rule(0.05, 0.15, higher=False, unit="pp", margin=0.02),
    "cross_lang_probe_minus_mean_diff": Rule(0.25, 0.0, unit="pp", margin=0.02),  # log: ~100% vs ~50%
    "cross_topic_probe": Rule(0.85, 0.70, unit="pct", margin=0.02),
    "cross_topic_drop": Rule(0.10, 0.20, higher=False, unit="pp", margin=0.02),
    # 3. cross-distribution (optimism domains): probe transfers (log 98.75%), mean_diff less (76.25%)
    "cross_dist_probe": Rule(0.90, 0.75, unit="pct", margin=0.02),
    "cross_dist_probe_minus_mean_diff": Rule(0.10, 0.0, unit="pp", margin=0.02),
    # 4. components: attn_out beats residual by ~10 pts accuracy; V beats residual by ~0.17 AUROC
    "attn_out_minus_residual_acc": Rule(0.05, 0.0, unit="pp", margin=0.01),
    "v_minus_residual_auroc": Rule(0.05, 0.0, unit="num", margin=0.01),
    # 5. natural vs instruction: the log's diagnostic (> 0.5 same concept, < 0.3 different)
    "sycophancy_cosine": Rule(0.30, 0.50, higher=False, unit="num", margin=0.05),
    "sycophancy_cross_acc": Rule(0.65, 0.80, higher=False, unit="pct", margin=0.02),  # log ~50% (chance)
    "optimism_cosine": Rule(0.50, 0.30, unit="num", margin=0.05),
    "optimism_cross_acc": Rule(0.90, 0.75, unit="pct", margin=0.02),  # log 97-100%
    # 6. base -> instruct: the carried vector detects on the target (log 90% accuracy)
    "carried_accuracy": Rule(0.85, 0.70, unit="pct", margin=0.02),
    "carried_vs_own_auroc": Rule(-0.05, -0.15, unit="num", margin=0.02),  # carried minus the target's own vector
}
check = checker(RULES)
