"""Evaluation with scikit-learn's metrics: AUC over the whole test set, accuracy, F1, confusion matrix.

AUC type, stated in every table: binary tasks use the ROC AUC of the second label (labels[1]);
multiclass tasks use the macro average of one-vs-rest ROC AUCs. Edge cases are never silent: a test
part holding one class has no AUC (NaN, counted as a `nan_folds` in summaries); a test part that
lacks some classes gets the macro one-vs-rest AUC over the classes present, with probabilities
renormalised over them, and says so in `notes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# The scalar figures `evaluate` returns, in the order every table shows them: the one list that metric
# options, summaries, comparisons and ensemble selection read, so a new figure is added in one place.
SCORES = ("accuracy", "f1_macro", "f1_weighted", "auc")

AUC_TYPE = "macro one-vs-rest ROC AUC (binary: ROC AUC of the second label)"


def evaluate(y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

    y = np.asarray(y_true)
    pred = probs.argmax(1)
    present = np.unique(y)
    notes: list[str] = []
    if len(present) < 2:
        auc = float("nan")
        notes.append(f"the test part holds one class ({labels[int(present[0])] if len(present) else 'none'}): "
                     "AUC is undefined (NaN) and counted in nan_folds")
    elif probs.shape[1] == 2:
        auc = float(roc_auc_score(y, probs[:, 1]))
    elif len(present) == probs.shape[1]:
        auc = float(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    else:
        missing = [labels[i] for i in range(probs.shape[1]) if i not in set(present.tolist())]
        notes.append(f"the test part lacks class(es) {', '.join(missing)}: AUC is the macro one-vs-rest AUC over the "
                     f"{len(present)} classes present, probabilities renormalised over them")
        scores = probs[:, present] / probs[:, present].sum(1, keepdims=True)  # (N, present)
        if len(present) == 2:  # both one-vs-rest AUCs equal the binary AUC of the second present class
            auc = float(roc_auc_score(y == present[1], scores[:, 1]))
        else:
            auc = float(roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=present))
    return {
        "auc": auc,
        "accuracy": float(accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, average="macro", labels=range(len(labels)), zero_division=0)),
        "f1_weighted": float(f1_score(y, pred, average="weighted", labels=range(len(labels)), zero_division=0)),
        "confusion_matrix": confusion_matrix(y, pred, labels=range(len(labels))).tolist(),
        "labels": list(labels),
        "n": len(y),
        "auc_type": AUC_TYPE,
        "notes": notes,
    }
