"""Evaluation with scikit-learn's metrics: AUC over the whole test set, accuracy, F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def evaluate(y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Binary: ROC AUC of the positive class; multiclass: macro one-vs-rest AUC."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

    y = np.asarray(y_true)
    pred = probs.argmax(1)
    present = np.unique(y)
    if len(present) < 2:
        auc = float("nan")  # AUC is undefined with one class in the test set
    elif probs.shape[1] == 2:
        auc = float(roc_auc_score(y, probs[:, 1]))
    elif len(present) == probs.shape[1]:
        auc = float(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    else:
        auc = float(roc_auc_score(y, probs[:, present] / probs[:, present].sum(1, keepdims=True),
                                  multi_class="ovr", average="macro", labels=present))
    return {
        "auc": auc,
        "accuracy": float(accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, average="macro", labels=range(len(labels)), zero_division=0)),
        "f1_weighted": float(f1_score(y, pred, average="weighted", labels=range(len(labels)), zero_division=0)),
        "confusion_matrix": confusion_matrix(y, pred, labels=range(len(labels))).tolist(),
        "labels": list(labels),
        "n": len(y),
    }
