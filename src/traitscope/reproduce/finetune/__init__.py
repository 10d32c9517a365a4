"""`traitscope reproduce finetune`: the finetuning half of the research log on the bundled model
(issue 13). Entry shape: ``run(profile) -> results`` and ``publish(results, report_path)``."""

from traitscope.reproduce.finetune.experiments import run
from traitscope.reproduce.finetune.profile import FULL, PROFILES, QUICK, Finetune, FinetuneProfile
from traitscope.reproduce.finetune.report import publish

__all__ = ["FULL", "PROFILES", "QUICK", "Finetune", "FinetuneProfile", "publish", "run"]
