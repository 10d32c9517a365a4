"""What both reproductions share: the :class:`Profile` type, the verdict rules, the markdown
writer, the plots helper, the run cache, the ridge map between two models, and the run setup."""

from traitscope.reproduce.common.profiles import (
    DEFAULT_BASE_MODEL,
    DEFAULT_OUT,
    DETECTION_PROFILES,
    STEERING_PROFILES,
    Profile,
    SteeringSizes,
    balanced_subset,
)
from traitscope.reproduce.common.session import Results, Setup, save_results
from traitscope.reproduce.common.verdict import FAILS, HOLDS, INCONCLUSIVE, UNTESTABLE, WEAKER, Check, Rule, combine

__all__ = [
    "DEFAULT_BASE_MODEL",
    "DEFAULT_OUT",
    "DETECTION_PROFILES",
    "FAILS",
    "HOLDS",
    "INCONCLUSIVE",
    "STEERING_PROFILES",
    "UNTESTABLE",
    "WEAKER",
    "Check",
    "Profile",
    "Results",
    "Rule",
    "Setup",
    "SteeringSizes",
    "balanced_subset",
    "combine",
    "save_results",
]
