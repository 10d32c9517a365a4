"""Reproducing the research log (shared/reference/findings.md) on the models at hand.

``reproduce detection`` runs the detection experiments (methods, cross-language/topic/domain
transfer, components, natural vs instruction elicitation, base -> instruct transfer), judges each
finding with fixed thresholds and writes its section of ``docs/REPRODUCTION.md``. The report keeps
every section between its own markers so a later ``reproduce steering`` can add its own."""

from traitscope.reproduce.detection import DetectionConfig, run_detection, save_results
from traitscope.reproduce.profiles import FULL, PROFILES, QUICK, Profile, balanced_subset
from traitscope.reproduce.report import publish, render, replace_section, write_section
from traitscope.reproduce.verdict import FAILS, HOLDS, RULES, UNTESTABLE, WEAKER, Check, Rule, combine

__all__ = [
    "FAILS",
    "FULL",
    "HOLDS",
    "PROFILES",
    "QUICK",
    "RULES",
    "UNTESTABLE",
    "WEAKER",
    "Check",
    "DetectionConfig",
    "Profile",
    "Rule",
    "balanced_subset",
    "combine",
    "publish",
    "render",
    "replace_section",
    "run_detection",
    "save_results",
    "write_section",
]
