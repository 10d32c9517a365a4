"""Measuring the mean activation norm at a site and layer on the fly (for vectors saved without
one, or for applying a vector to another model). Token 0 is left out: SmolLM2's first token
carries norms ~100x the rest and would dominate the mean."""

from __future__ import annotations

from collections.abc import Sequence

from traitscope.activations import Example, capture
from traitscope.models.loader import LoadedModel

CALIBRATION_TEXTS = (
    "Tell me about your favourite season and why you like it.",
    "How does a refrigerator keep food cold?",
    "Write a short note inviting a colleague to lunch.",
    "What are some good habits for learning a new language?",
    "Describe a busy market on a Saturday morning.",
    "Why do leaves change colour in autumn?",
    "Give me three tips for a job interview.",
    "What is the difference between weather and climate?",
)


def measure_act_norms(
    lm: LoadedModel, site: str, layers: Sequence[int], texts: Sequence[str] = CALIBRATION_TEXTS
) -> dict[int, float]:
    examples = [Example(lm.prompt_ids(t), []) for t in texts]
    cap = capture(lm, examples, [site], list(layers), "all[:]")
    return {layer: float(cap.norms[site][:, j].mean()) for j, layer in enumerate(layers)}
