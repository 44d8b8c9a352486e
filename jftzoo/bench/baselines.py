"""Classical baselines of every table: the majority class and the paper's SVM on frozen embeddings.

Each returns class probabilities for the records to score, with columns in the dataset's label
order; a class absent from the training part gets probability 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jftzoo.errors import JftzooError

MAJORITY = {"baseline": "majority", "strategy": "prior"}
# Up to RBF_MAX_TRAIN training records the paper's RBF SVC; above it a linear SVM, whose fit grows about
# linearly with the records where the RBF kernel's grows quadratically or worse (7k records: minutes vs seconds,
# benchmarks/svm_baseline_speed.py). Its C is small: on real frozen embeddings (MVSA-Single, 3,607 x 1,666,
# benchmarks/svm_baseline_mvsa.py) C=1 over-fits and does not converge (0.64 test accuracy in 4 min a split, below
# RBF's 0.71 in 35 s), while C=1e-4, the best of 1e-5..1 on validation, converges in 2 s at 0.71.
RBF_MAX_TRAIN = 2000
LINEAR_C = 1e-4
RBF_MODEL, LINEAR_MODEL = "SVC(rbf)", f"LinearSVC(C={LINEAR_C})"
SVM = {"baseline": "svm", "model": f"{RBF_MODEL} up to {RBF_MAX_TRAIN} training records, else {LINEAR_MODEL}",
       "scaler": "standard", "calibration": "sigmoid, 3-fold"}


KERNELS = ("auto", "rbf", "linear")


def svm_identity(kernel: str = "auto") -> dict[str, str]:
    """What an SVM row's configuration says of its model: the size rule (auto), or the one estimator a kernel
    forces. `rbf` names the paper's SVC as the rows made before the size rule did, so they resume."""
    if kernel not in KERNELS:
        raise JftzooError(f"unknown SVM kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    model = {"auto": SVM["model"], "rbf": RBF_MODEL, "linear": LINEAR_MODEL}[kernel]
    return {**SVM, "model": model}


def _into_columns(proba: Any, classes: Any, n: int, n_classes: int) -> Any:
    import numpy as np

    out = np.zeros((n, n_classes), dtype=np.float64)
    out[:, classes] = proba
    return out


def majority(y_train: Sequence[int], n_classes: int, score: Sequence[Sequence[Any]]) -> list[Any]:
    """scikit-learn's DummyClassifier(strategy="prior"): predicts the most frequent training class,
    with the training class frequencies as probabilities (so its AUC is 0.5 by construction)."""
    import numpy as np
    from sklearn.dummy import DummyClassifier

    clf = DummyClassifier(strategy="prior").fit(np.zeros((len(y_train), 1)), np.asarray(y_train))
    return [_into_columns(clf.predict_proba(np.zeros((len(part), 1))), clf.classes_, len(part), n_classes)
            for part in score]


def svm_estimator(n_train: int, seed: int, kernel: str = "auto") -> Any:
    """The SVM the baseline fits: `kernel` rbf (the paper's), linear, or auto (rbf up to RBF_MAX_TRAIN records)."""
    from sklearn.svm import SVC, LinearSVC

    if kernel == "rbf" or (kernel == "auto" and n_train <= RBF_MAX_TRAIN):
        return SVC(random_state=seed)
    return LinearSVC(C=LINEAR_C, dual=True, max_iter=5000, random_state=seed)  # dual: seconds where primal took minutes


def svm(x_train: Any, y_train: Any, n_classes: int, score: Sequence[Any], seed: int, kernel: str = "auto"
        ) -> list[Any]:
    """The SVM baseline on standardised concatenated frozen embeddings (`svm_estimator`), Platt-scaled
    (CalibratedClassifierCV, scikit-learn's replacement for SVC(probability=True)).

    NaN marks an absent modality's block (a post without text or image; the caller appends indicator
    columns saying which): it is imputed with the training mean, 0 after scaling. On complete data the
    imputer is a no-op and constant indicator columns scale to 0, so results are unchanged there."""
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = int(np.bincount(y_train, minlength=n_classes).min()) if len(y_train) else 0
    if smallest < 2:
        raise JftzooError(f"the SVM's calibration needs at least 2 training records of every class; this fold has "
                          f"{smallest} of one: use fewer folds or more records (--limit)")
    folds = StratifiedKFold(min(3, smallest), shuffle=True, random_state=seed)
    calibrated = CalibratedClassifierCV(svm_estimator(len(y_train), seed, kernel), ensemble=False, cv=folds)
    clf = make_pipeline(SimpleImputer(strategy="mean", keep_empty_features=True), StandardScaler(), calibrated)
    clf.fit(x_train, y_train)
    return [_into_columns(clf.predict_proba(x), clf.classes_, len(x), n_classes) for x in score]

