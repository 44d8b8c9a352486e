"""`FusionClassifier`: the scikit-learn face of a jointly fine-tuned image+text classifier.

A saved model is a self-describing folder: config.json (encoders and their checkpoints, head,
labels, preprocessing, training config, metrics, versions, seed) + model.safetensors (+ the text
tokenizer), so `load` needs neither the hub nor the original pre-trained weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from jftzoo.datasets.records import Dataset, Record
from jftzoo.errors import JftzooError, UsageError

FORMAT = "jftzoo-fusion-classifier/1"


def model_versions() -> dict[str, str]:
    """What a saved model and a bench record name as their making: jftzoo and the libraries that compute."""
    import timm
    import torch
    import transformers

    from jftzoo.version import __version__

    return {"jftzoo": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "timm": timm.__version__}


def as_records(X: Any, y: Sequence[str] | None = None) -> list[Record]:
    """Records from a Dataset, a list of Records, or (text, image) pairs (+ labels); a pair's text may be
    None or empty and its image None: a post without that modality."""
    if isinstance(X, Dataset):
        return list(X.records)
    items = list(X)
    if items and isinstance(items[0], Record):
        return items
    labels = list(y) if y is not None else ["?"] * len(items)
    if len(labels) != len(items):
        raise UsageError(f"X has {len(items)} items but y has {len(labels)} labels")
    out = []
    for i, (item, label) in enumerate(zip(items, labels, strict=True)):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise UsageError(f"X[{i}] must be a (text, image) pair, got {type(item).__name__}")
        text, image = item
        out.append(Record(str(i), "" if text is None else text, image, str(label)))  # either may be absent
    return out


class FusionClassifier:
    """fit / predict / predict_proba / save / load, with `classes_`, as a scikit-learn estimator.

    Training options not passed come from the head's `train_preset` (attention-paper: the paper's released
    recipe), then from `TrainConfig`'s defaults; `train_config` and a saved config hold the effective values.
    """

    def __init__(
        self,
        text: str = "minilm",
        vision: str = "efficientnet_lite0",
        fusion: str = "attention",
        mode: str = "frozen",
        pretrained: bool = True,
        text_weights: str | None = None,
        vision_weights: str | None = None,
        head: dict[str, Any] | None = None,
        device: str = "cpu",
        **train: Any,
    ) -> None:
        from jftzoo.fusion.registry import apply_train_preset
        from jftzoo.train.config import TrainConfig, refuse_seed_ensemble

        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(train) - known)
        if unknown:
            raise UsageError(f"unknown option(s) {', '.join(unknown)}; training options are {', '.join(sorted(known))}")
        # The head's published recipe (e.g. attention-paper's learning rate and schedule) unless overridden.
        effective = apply_train_preset(fusion, train)
        bad = sorted(set(effective) - known)
        if bad:
            raise UsageError(f"fusion head {fusion!r} presets unknown training option(s) {', '.join(bad)}")
        effective.pop("mode", None)  # the mode is the caller's choice
        refuse_seed_ensemble(effective, "train")
        self.text, self.vision, self.fusion, self.mode = text, vision, fusion, mode
        self.pretrained, self.text_weights, self.vision_weights = pretrained, text_weights, vision_weights
        self.head_options = dict(head or {})
        self.device = device
        self.train_config = TrainConfig(mode=mode, **effective)
        self.model_: Any = None
        self.classes_: np.ndarray | None = None
        self.metrics_: dict[str, Any] = {}
        self.history_: list[dict[str, float]] = []

    # -- building ------------------------------------------------------------------------------------
    def _build(self, n_classes: int, pretrained: bool) -> Any:
        from jftzoo.fusion.heads import HeadConfig
        from jftzoo.fusion.registry import build_head, get_fusion_spec
        from jftzoo.registry import get_encoder
        from jftzoo.train.model import FusionModel

        get_fusion_spec(self.fusion)  # unknown names fail before any model is built
        text = get_encoder(self.text, pretrained=pretrained, weights=self.text_weights if pretrained else None)
        vision = get_encoder(self.vision, pretrained=pretrained, weights=self.vision_weights if pretrained else None)
        cfg = HeadConfig(n_classes=n_classes, text_dim=text.embed_dim, vision_dim=vision.embed_dim,
                         text_token_dim=text.token_dim, vision_token_dim=vision.token_dim, **self.head_options)
        return FusionModel(text, vision, build_head(self.fusion, cfg)).to(self.device)

    # -- estimator API -----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Sequence[str] | None = None, progress: Any = None,
            validation: Any = None, accelerator: Any = None, features: Any = None) -> FusionClassifier:
        """Train; `validation` (records or a Dataset) decides early stopping, else a share of X does.

        `features` (a `jftzoo.features.FeatureStore`) shares frozen encoder outputs with other fits.
        """
        from jftzoo.train.trainer import fit

        records = as_records(X, y)
        labels = list(X.labels) if isinstance(X, Dataset) else sorted({r.label for r in records})
        self.classes_ = np.array(labels)
        from jftzoo.train.trainer import seed_everything

        seed_everything(self.train_config.seed)  # the head's initial weights follow the seed too
        self.model_ = self._build(len(labels), self.pretrained)
        val = as_records(validation) if validation is not None else None
        result = fit(self.model_, records, labels, self.train_config, progress=progress, validation=val,
                     accelerator=accelerator, features=features)
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.averaged_epochs_ = result.averaged_epochs  # average_top > 1: the epochs in the soup
        return self

    def predict_proba(self, X: Any, batch_size: int = 32, features: Any = None) -> np.ndarray:
        from jftzoo.train.trainer import predict_proba

        self._check_fitted()
        return predict_proba(self.model_, as_records(X), batch_size, features,
                             text_normalizer=self.train_config.text_normalizer)

    def predict(self, X: Any, batch_size: int = 32) -> np.ndarray:
        return self.classes_[self.predict_proba(X, batch_size).argmax(1)]  # type: ignore[index]

    def score(self, X: Any, y: Sequence[str] | None = None) -> float:
        records = as_records(X, y)
        return float(np.mean(self.predict(records) == np.array([r.label for r in records])))

    def _check_fitted(self) -> None:
        if self.model_ is None or self.classes_ is None:
            raise JftzooError("this FusionClassifier is not fitted yet: call fit() or FusionClassifier.load()")

    # -- persistence -----------------------------------------------------------------------------------------
    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        from safetensors.torch import save

        from jftzoo.atomic import atomic_directory, atomic_write

        self._check_fitted()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        # config.json is the commit point, written last: until it is, the folder holds no model that loads (an
        # interrupted save over an older model never pairs the new weights with the old config).
        (out / "config.json").unlink(missing_ok=True)
        model = self.model_
        tokenizer = getattr(model.text, "_tokenizer", None)
        if tokenizer is not None:
            atomic_directory(out / "tokenizer", lambda tmp: tokenizer.save_pretrained(str(tmp)))
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write(out / "model.safetensors", save(state))  # whole or not at all (a full disk: a clear error)
        from jftzoo.registry import get_spec

        config = {
            "format": FORMAT,
            "text": {"name": self.text, "source": get_spec(self.text).source,
                     "weights": str(model.text.weight_source), "max_length": getattr(model.text, "max_length", None)},
            "vision": {"name": self.vision, "source": get_spec(self.vision).source,
                       "weights": str(model.vision.weight_source),
                       "data_config": {k: list(v) if isinstance(v, tuple) else v
                                       for k, v in getattr(model.vision, "data_config", {}).items()}},
            "fusion": self.fusion,
            "head": {k: v for k, v in asdict(model.head.cfg).items()},
            "labels": [str(c) for c in self.classes_],  # type: ignore[union-attr]
            "train": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.train_config).items()},
            "seed": self.train_config.seed,
            "history": self.history_,
            "metrics": self.metrics_,
            "versions": model_versions(),
            **(extra or {}),
        }
        atomic_write(out / "config.json", (json.dumps(config, indent=2, default=str) + "\n").encode("utf-8"))
        return out

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> FusionClassifier:
        from safetensors.torch import load_file

        path = Path(directory)
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise JftzooError(f"{path} is not a jftzoo model folder (config.json: {exc}); point at a folder "
                              "written by `jftzoo train --out DIR` (or FusionClassifier.save)") from exc
        if config.get("format") != FORMAT:
            raise JftzooError(f"{path / 'config.json'} has format {config.get('format')!r}, expected {FORMAT!r}")
        head = {k: v for k, v in config["head"].items()
                if k not in ("n_classes", "text_dim", "vision_dim", "text_token_dim", "vision_token_dim")}
        train = {k: tuple(v) if isinstance(v, list) else v for k, v in config["train"].items() if k != "mode"}
        clf = cls(config["text"]["name"], config["vision"]["name"], config["fusion"], config["train"]["mode"],
                  pretrained=False, head=head, device=device, **train)
        clf.classes_ = np.array(config["labels"])
        # The architecture from the registry, every weight from the saved file: no hub, no pre-trained files.
        clf.model_ = clf._build(len(clf.classes_), pretrained=False)
        try:
            state = load_file(str(path / "model.safetensors"))
        except Exception as exc:  # not a safetensors file (a pickle, a truncated copy): refused, never unpickled
            raise JftzooError(f"{path / 'model.safetensors'} is not a readable safetensors file ({exc}); jftzoo "
                              "reads weights only from safetensors, never from pickles. Save the model again with "
                              "`jftzoo train` or FusionClassifier.save.") from None
        try:
            # Models saved before absent modalities were data lack the head's "missing" embeddings: they keep
            # their fresh zeros, which is what an absent input meant to those models.
            absent = [k for k in clf.model_.state_dict() if k not in state and k.startswith("head.missing_")]
            result = clf.model_.load_state_dict(state, strict=not absent)
            unexpected_or_lost = [k for k in result.missing_keys if k not in absent] + list(result.unexpected_keys)
            if unexpected_or_lost:
                raise RuntimeError(f"keys that do not fit: {', '.join(unexpected_or_lost[:5])}.")
        except RuntimeError as exc:  # a head or encoder whose architecture changed since the model was saved
            saved = config.get("versions", {}).get("jftzoo", "an unknown version")
            raise JftzooError(f"{path / 'model.safetensors'} does not fit the {config['fusion']} + "
                              f"{config['text']['name']} + {config['vision']['name']} architecture of this jftzoo "
                              f"(the model was saved by jftzoo {saved}): {str(exc).splitlines()[0]} Retrain it, "
                              "or load it with the jftzoo version that saved it.") from exc
        from jftzoo.weights import WeightSource

        for enc, key in ((clf.model_.text, "text"), (clf.model_.vision, "vision")):
            enc.weight_source = WeightSource("path", f"{path} (fine-tuned; base {config[key]['weights']})")
        if (path / "tokenizer").is_dir():
            from transformers import AutoTokenizer

            clf.model_.text._tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True)
        clf.model_.eval()
        clf.metrics_ = config.get("metrics", {})
        clf.history_ = config.get("history", [])
        clf.config_ = config
        return clf
