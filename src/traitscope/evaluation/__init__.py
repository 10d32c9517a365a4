"""Detection metrics, cross-validation, random baselines and transfer matrices."""

from traitscope.evaluation.crossval import Split, best_row, best_rows, evaluate, kfold, random_baseline
from traitscope.evaluation.ensemble import Stack, evaluate_stack, fit_stack
from traitscope.evaluation.metrics import accuracy, auroc, bootstrap_d_ci, cohens_d, midpoint
from traitscope.evaluation.transfer import TransferMatrix, transfer_matrix

__all__ = [
    "Split",
    "Stack",
    "TransferMatrix",
    "accuracy",
    "auroc",
    "best_row",
    "best_rows",
    "bootstrap_d_ci",
    "cohens_d",
    "evaluate",
    "evaluate_stack",
    "fit_stack",
    "kfold",
    "midpoint",
    "random_baseline",
    "transfer_matrix",
]
