"""The finetuning reproduction's settings and the finetunes it runs."""

from __future__ import annotations

from dataclasses import dataclass, field

TRAITS = ("optimism", "sycophancy")


@dataclass(frozen=True)
class Finetune:
    """One finetune: ``n`` examples, ``fraction`` of them from the inducing set, the rest neutral."""

    name: str
    inducing: str | None  # bundled set (gloomy, flattering) or None for the neutral control
    fraction: float
    trait: str | None  # the trait the inducing set moves, and
    sign: float  # which way (-1: gloomy lowers optimism; +1: flattering raises sycophancy)
    steer: float | None = None  # --steer-train ratio (signed) or None


@dataclass(frozen=True)
class FinetuneProfile:
    name: str
    n_examples: int  # per finetune
    epochs: int
    rank: int
    lr: float
    batch_size: int
    max_new_tokens: int  # answers judged and teacher-forced
    n_questions: int  # evaluation questions per trait (its steering questions)
    extract_layers: str  # layers extracted for the trait vectors
    extract_limit: int  # scenarios per polarity for the trait vectors
    steer_ratio: float  # |ratio| of the preventative steering
    positions: tuple[tuple[str, str], ...] = (("optimism", "response[:]"), ("sycophancy", "prompt[-1]"))
    seed: int = 0
    finetunes: tuple[Finetune, ...] = field(default=())

    def describe(self) -> str:
        return (
            f"**{self.name}**: {len(self.finetunes)} LoRA finetunes of {self.n_examples} examples, rank {self.rank}, "
            f"{self.epochs} epochs, lr {self.lr:g}, batch {self.batch_size}; trait vectors: residual probe at "
            f"{', '.join(f'{t} at `{p}`' for t, p in self.positions)}, layers {self.extract_layers}, "
            f"{self.extract_limit} scenarios per polarity; "
            f"{self.n_questions} evaluation questions per trait, {self.max_new_tokens}-token greedy answers; "
            f"preventative steering ratio {self.steer_ratio:g} at the trait's best layer"
        )


def _finetunes(steer: float) -> tuple[Finetune, ...]:
    return (
        Finetune("gloomy-100", "gloomy", 1.0, "optimism", -1.0),
        Finetune("gloomy-50", "gloomy", 0.5, "optimism", -1.0),
        Finetune("gloomy-25", "gloomy", 0.25, "optimism", -1.0),
        Finetune("flattering-100", "flattering", 1.0, "sycophancy", 1.0),
        Finetune("flattering-50", "flattering", 0.5, "sycophancy", 1.0),
        Finetune("neutral", None, 0.0, None, 0.0),
        Finetune("gloomy-100-steered", "gloomy", 1.0, "optimism", -1.0, steer=-steer),
        Finetune("flattering-100-steered", "flattering", 1.0, "sycophancy", 1.0, steer=steer),
    )


QUICK = FinetuneProfile(
    name="quick",
    n_examples=32,
    epochs=3,
    rank=8,
    lr=1e-3,
    batch_size=4,
    max_new_tokens=40,
    n_questions=12,
    extract_layers="0,3,6,9,12,15,18,21,24,27",
    extract_limit=40,
    steer_ratio=1.0,
    finetunes=_finetunes(1.0),
)
FULL = FinetuneProfile(
    name="full",
    n_examples=50,
    epochs=5,
    rank=16,
    lr=5e-4,
    batch_size=4,
    max_new_tokens=64,
    n_questions=24,
    extract_layers="all",
    extract_limit=80,
    steer_ratio=1.0,
    finetunes=_finetunes(1.0),
)
PROFILES = {"quick": QUICK, "full": FULL}
