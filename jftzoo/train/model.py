"""A text encoder + a vision encoder + a fusion head, trained under one loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from jftzoo.encoders.base import Encoder, EncoderOutput
from jftzoo.errors import UsageError
from jftzoo.fusion.heads import FusionHead
from jftzoo.train.recipe import drop_modalities

MODES = ("frozen", "top-k", "joint")


class FusionModel(nn.Module):
    """One forward from raw batches to logits, so one cross-entropy loss reaches both encoders."""

    def __init__(self, text: Encoder | None, vision: Encoder | None, head: FusionHead) -> None:
        """`text` or `vision` may be None when the head does not use that modality (unimodal baselines)."""
        super().__init__()
        for modality, encoder in (("text", text), ("vision", vision)):
            if encoder is None and modality in head.modalities:
                raise UsageError(f"the {type(head).__name__} head reads {modality} but no {modality} encoder was given")
        self.text = text
        self.vision = vision
        self.head = head
        self._frozen: list[nn.Module] = []  # kept in eval mode while training (BatchNorm stats, dropout)
        # (share, generator) of modality dropout, set by the trainer around its training forwards only
        self.drop: tuple[float, torch.Generator] | None = None

    def uses(self, modality: str) -> bool:
        return modality in self.head.modalities

    def preprocess(self, texts: Sequence[str], images: Sequence[Any]) -> dict[str, dict[str, torch.Tensor]]:
        batch: dict[str, dict[str, torch.Tensor]] = {}
        if self.uses("text"):
            batch["text"] = self.text.preprocess(texts)
        if self.uses("vision"):
            batch["vision"] = self.vision.preprocess(images)
        return batch

    def forward(self, batch: dict[str, dict[str, torch.Tensor]]) -> torch.Tensor:  # type: ignore[override]
        text: EncoderOutput | None = self.text(batch["text"]) if "text" in batch else None
        image: EncoderOutput | None = self.vision(batch["vision"]) if "vision" in batch else None
        return self.head(*self._dropped(text, image))  # (B, C) logits

    def _dropped(self, text: EncoderOutput | None,
                 image: EncoderOutput | None) -> tuple[EncoderOutput | None, EncoderOutput | None]:
        if self.drop is None or not self.training:
            return text, image
        return drop_modalities(text, image, *self.drop)

    def forward_prefix(self, text_prefix: dict[str, torch.Tensor] | None, vision_prefix: dict[str, torch.Tensor] | None,
                       k_text: int, k_vision: int) -> torch.Tensor:
        """Logits from cached frozen-prefix outputs (`jftzoo.train.prefix`): only the top k groups and the head run."""
        text = self.text.top_forward(text_prefix, k_text) if text_prefix is not None else None
        image = self.vision.top_forward(vision_prefix, k_vision) if vision_prefix is not None else None
        return self.head(*self._dropped(text, image))  # (B, C)

    def set_mode(self, mode: str, top_k: int | tuple[int, int] = 2) -> None:
        """frozen: only the head trains; top-k: the top k layer groups of each encoder too; joint: all.

        Every module of a frozen part is kept in eval mode while the model trains, parameter-free ones
        included (Dropout, attention that reads `self.training` for its sdpa dropout, DropPath), so
        the frozen prefix computes the same output every step and only the trained top is stochastic.
        """
        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        k_text, k_vision = (top_k, top_k) if isinstance(top_k, int) else top_k
        self._frozen = []
        for encoder, k in ((self.text, k_text), (self.vision, k_vision)):
            if encoder is None:
                continue
            groups = encoder.layer_groups()
            trainable = {"frozen": 0, "top-k": min(k, len(groups)), "joint": len(groups)}[mode]
            for i, group in enumerate(groups):
                train_it = i >= len(groups) - trainable
                for module in group:
                    module.requires_grad_(train_it)
            if trainable == 0:
                self._frozen.append(encoder)
            elif mode == "top-k":
                self._frozen.extend(frozen_modules(encoder))
        self.head.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> FusionModel:
        super().train(mode)
        if mode:
            for module in self._frozen:
                module.eval()
        return self

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for enc in (self.text, self.vision) if enc is not None for p in enc.parameters() if p.requires_grad]


def frozen_modules(root: nn.Module) -> list[nn.Module]:
    """The topmost modules under `root` whose parameters are all frozen, for eval mode while training.

    A module owning parameters (recursively) trains iff any of them requires grad; a parameter-free
    module (Dropout, an activation, DropPath) follows its nearest parameter-owning ancestor. A frozen
    module's descendants are all frozen too, so returning only the topmost ones covers them (eval()
    recurses).
    """
    out: list[nn.Module] = []

    def visit(module: nn.Module, parent_trains: bool) -> None:
        params = list(module.parameters())
        trains = any(p.requires_grad for p in params) if params else parent_trains
        if not trains:
            out.append(module)
            return
        for child in module.children():
            visit(child, trains)

    visit(root, True)
    return out
