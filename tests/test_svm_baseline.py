"""The SVM baseline: the paper's RBF SVC on small training parts, a linear SVM above RBF_MAX_TRAIN records."""

from __future__ import annotations

import numpy as np
import pytest

from jftzoo.bench import baselines
from jftzoo.errors import JftzooError


def test_the_kernel_follows_the_training_size() -> None:
    from sklearn.svm import SVC, LinearSVC

    assert isinstance(baselines.svm_estimator(baselines.RBF_MAX_TRAIN, 0), SVC)
    assert isinstance(baselines.svm_estimator(baselines.RBF_MAX_TRAIN + 1, 0), LinearSVC)
    assert isinstance(baselines.svm_estimator(10, 0, kernel="linear"), LinearSVC)
    assert isinstance(baselines.svm_estimator(10**6, 0, kernel="rbf"), SVC)
    assert "LinearSVC" in baselines.SVM["model"]  # the identity of every svm row says which rule made it


def test_the_linear_branch_is_strongly_regularised_and_its_identity_says_so() -> None:
    # C=1 over-fitted real frozen embeddings and did not converge (benchmarks/svm_baseline_mvsa.py); the C the
    # bench fits is the one its rows' identity names, so a change of C is a new configuration, not a resumed one
    linear = baselines.svm_estimator(baselines.RBF_MAX_TRAIN + 1, 0)
    assert linear.C == baselines.LINEAR_C <= 1e-3 and linear.dual is True
    assert f"LinearSVC(C={baselines.LINEAR_C})" in baselines.SVM["model"]


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_both_give_calibrated_probabilities_in_label_columns(kernel: str) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    x = rng.normal(0, 1, (90, 8)) + 3 * y[:, None]
    (probs,) = baselines.svm(x, y, 3, [x[::9]], seed=0, kernel=kernel)
    assert probs.shape == (10, 3) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y[::9]).mean() >= 0.9


def test_a_forced_kernel_names_its_one_estimator_and_rbf_names_it_as_rows_before_the_size_rule_did() -> None:
    before = {"baseline": "svm", "model": "SVC(rbf)", "scaler": "standard", "calibration": "sigmoid, 3-fold"}
    assert baselines.svm_identity("rbf") == before  # the MVSA table's stored svm rows: `--svm-kernel rbf` resumes them
    assert baselines.svm_identity("linear")["model"] == f"LinearSVC(C={baselines.LINEAR_C})"
    assert baselines.svm_identity() == baselines.SVM
    with pytest.raises(JftzooError, match="unknown SVM kernel 'poly'"):
        baselines.svm_identity("poly")


def test_bench_passes_svm_kernel_to_its_configuration(monkeypatch, tmp_path) -> None:
    from click.testing import CliRunner

    import jftzoo.bench.runner as runner
    from jftzoo.cli import cli

    seen = []

    def stop(config, *args, **kwargs):
        seen.append(config.svm_kernel)
        raise KeyboardInterrupt  # nothing is run: the configuration it was given is what is tested

    monkeypatch.setattr(runner, "run_bench", stop)
    for given in (["--svm-kernel", "rbf"], []):
        CliRunner().invoke(cli, ["bench", "--fusion", "svm", "--out", str(tmp_path / "out"), *given])
    assert seen == ["rbf", "auto"]
    bad = CliRunner().invoke(cli, ["bench", "--fusion", "svm", "--svm-kernel", "poly", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "poly" in bad.output
