"""``reproduce detection``: the research log's detection findings (methods, cross-language/topic/
domain transfer, components, natural vs instruction elicitation, base -> instruct transfer).

``run(profile, setup) -> Results`` runs and judges them; ``publish(results, report_path)`` writes
the plots and the report's ``detection`` section. ``findings`` is the catalogue (titles, the log's
numbers, the verdict thresholds); ``experiments/`` holds one module per finding."""

from traitscope.reproduce.detection.report import NAME, publish
from traitscope.reproduce.detection.run import run

__all__ = ["NAME", "publish", "run"]
