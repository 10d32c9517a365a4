"""Follow a trait through finetuning: LoRA finetunes (`train`), their data (`data`), the finetuning
shift along trait vectors (`shift`), per-sample data screening (`screen`) and base-vs-finetuned
token dynamics (`diff`)."""

from traitscope.finetune.data import Conversation, Encoded, bundled_sets, encode, load_conversations, resolve_data
from traitscope.finetune.train import FinetuneConfig, SteerTrain, finetune, masked_loss

__all__ = [
    "Conversation",
    "Encoded",
    "FinetuneConfig",
    "SteerTrain",
    "bundled_sets",
    "encode",
    "finetune",
    "load_conversations",
    "masked_loss",
    "resolve_data",
]
