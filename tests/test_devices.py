"""--device is checked before any model is built: a usage error (exit 2) that says what the machine has."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from jftzoo.cli import cli
from jftzoo.devices import check_device
from jftzoo.errors import UsageError


def test_cpu_passes() -> None:
    assert check_device("cpu") == "cpu"


def test_misspelt_device_suggests_the_nearest() -> None:
    with pytest.raises(UsageError, match="Did you mean 'cuda'"):
        check_device("cdua")


def test_missing_gpu_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="no CUDA device is available here"):
        check_device("cuda")


def test_gpu_index_beyond_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0") == "cuda:0"
    with pytest.raises(UsageError, match=r"1 CUDA device\(s\), cuda:0 to cuda:0"):
        check_device("cuda:1")


@pytest.mark.parametrize("argv", [
    ["bench", "--device", "cuda", "--limit", "8"],
    ["train", "--device", "cuda", "--out", "unused"],
    ["predict", ".", "--device", "cuda", "--text", "hi", "--image", "x.png"],
])
def test_commands_check_the_device_first(argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    assert "no CUDA device is available here" in result.output


def test_predict_loads_the_model_on_the_device(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from jftzoo.train import classifier

    seen: list[str] = []

    def fake_load(directory: str, device: str = "cpu") -> None:
        seen.append(device)
        raise classifier.JftzooError("stop here")

    monkeypatch.setattr(classifier.FusionClassifier, "load", staticmethod(fake_load))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = CliRunner().invoke(cli, ["predict", str(tmp_path), "--device", "cuda:0", "--text", "hi", "--image", "x"])
    assert seen == ["cuda:0"], result.output
    assert result.exit_code == 1
