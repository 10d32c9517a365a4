"""Detection metrics, cross-validation, random baselines and transfer matrices."""

from traitscope.evaluation.crossval import Split, best_row, best_rows, evaluate, kfold, random_baseline
from traitscope.evaluation.metrics import accuracy, auroc, bootstrap_d_ci, cohens_d, midpoint
from traitscope.evaluation.transfer import TransferMatrix, transfer_matrix

__all__ = [
    "Split",
    "TransferMatrix",
    "accuracy",
    "auroc",
    "best_row",
    "best_rows",
    "bootstrap_d_ci",
    "cohens_d",
    "evaluate",
    "kfold",
    "midpoint",
    "random_baseline",
    "transfer_matrix",
]
