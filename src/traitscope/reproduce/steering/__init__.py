"""``reproduce steering``: the research log's steering and dynamics findings (ratio law, multi-layer,
extraction metrics vs steering, detection vs control, refusal dynamics, jailbreaks, cross-model).

``run(profile, setup) -> Results`` runs and judges them; ``publish(results, report_path)`` writes
the plots and the report's ``steering`` section. ``findings`` is the catalogue (titles, the log's
words, the verdict thresholds); ``experiments/`` holds one module per finding."""

from traitscope.reproduce.steering.report import NAME, publish
from traitscope.reproduce.steering.run import run

__all__ = ["NAME", "publish", "run"]
