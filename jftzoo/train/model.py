"""A text encoder + a vision encoder + a fusion head, trained under one loss."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from jftzoo.datasets.records import is_absent
from jftzoo.encoders.base import PRESENT, Encoder, EncoderOutput
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

    def preprocess(self, texts: Sequence[Any], images: Sequence[Any]) -> dict[str, dict[str, torch.Tensor]]:
        """Each used encoder's tensors for the items present; absent items (None, an empty text) are not
        preprocessed at all, and PRESENT (B,) says which rows the encoder's tensors fill."""
        batch: dict[str, dict[str, torch.Tensor]] = {}
        for modality, encoder, items in (("text", self.text, texts), ("vision", self.vision, images)):
            if not self.uses(modality):
                continue
            present = [not is_absent(x) for x in items]
            part = encoder.preprocess([x for x, p in zip(items, present, strict=True) if p]) if any(present) else {}
            if not all(present):
                part[PRESENT] = torch.tensor(present)  # (B,) bool
            batch[modality] = part
        return batch

    def forward(self, batch: dict[str, dict[str, torch.Tensor]]) -> torch.Tensor:  # type: ignore[override]
        text = run_present(self.text, batch["text"], self.text.__call__) if "text" in batch else None
        image = run_present(self.vision, batch["vision"], self.vision.__call__) if "vision" in batch else None
        return self.head(*self._dropped(text, image))  # (B, C) logits

    def _dropped(self, text: EncoderOutput | None,
                 image: EncoderOutput | None) -> tuple[EncoderOutput | None, EncoderOutput | None]:
        if self.drop is None or not self.training:
            return text, image
        return drop_modalities(text, image, *self.drop)

    def forward_prefix(self, text_prefix: dict[str, torch.Tensor] | None, vision_prefix: dict[str, torch.Tensor] | None,
                       k_text: int, k_vision: int) -> torch.Tensor:
        """Logits from cached frozen-prefix outputs (`jftzoo.train.prefix`): only the top k groups and the head run."""
        text = run_present(self.text, text_prefix, lambda p: self.text.top_forward(p, k_text)) \
            if text_prefix is not None else None
        image = run_present(self.vision, vision_prefix, lambda p: self.vision.top_forward(p, k_vision)) \
            if vision_prefix is not None else None
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

    def teach_missing(self, records: Sequence[Any], modality_dropout: float) -> None:
        """Train the head's "missing" embedding of a modality only where something teaches it: posts without
        that modality among `records`, or modality dropout (which needs both modalities); frozen otherwise,
        so complete data trains exactly as before they existed."""
        dropout = modality_dropout > 0 and self.uses("text") and self.uses("vision")
        for modality in ("text", "vision"):
            taught = dropout or any(r.item(modality) is None for r in records)
            for name, p in self.head.named_parameters():
                if name.startswith(f"missing_{modality}"):
                    p.requires_grad_(taught)

    def train(self, mode: bool = True) -> FusionModel:
        super().train(mode)
        if mode:
            for module in self._frozen:
                module.eval()
        return self

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for enc in (self.text, self.vision) if enc is not None for p in enc.parameters() if p.requires_grad]


def run_present(encoder: Encoder, part: dict[str, torch.Tensor],
                run: Callable[[dict[str, torch.Tensor]], EncoderOutput]) -> EncoderOutput:
    """`run` (an encoder's forward or top_forward) on the present items of a batch part, its outputs
    scattered back to the whole batch with `present` set; absent rows stay zero for the head to fill.
    Without PRESENT in `part` every item is present and `run` sees the part as it is."""
    present = part.get(PRESENT)
    inputs = {k: v for k, v in part.items() if k != PRESENT}
    if present is None:
        return run(inputs)
    present = present.bool()
    b = present.shape[0]
    if not inputs:  # no item of this batch has the modality: nothing to run
        device = present.device
        return EncoderOutput(torch.zeros(b, encoder.embed_dim, device=device),
                             torch.zeros(b, 0, encoder.token_dim, device=device),
                             torch.zeros(b, 0, dtype=torch.bool, device=device), present)
    out = run(inputs)  # (P, ...) for the P present items
    where = present.to(out.pooled.device)
    pooled = out.pooled.new_zeros(b, *out.pooled.shape[1:])  # (B, D)
    pooled[where] = out.pooled
    tokens = out.tokens.new_zeros(b, *out.tokens.shape[1:])  # (B, N, Dt)
    tokens[where] = out.tokens
    mask = out.mask.new_zeros(b, *out.mask.shape[1:])  # (B, N)
    mask[where] = out.mask
    return EncoderOutput(pooled, tokens, mask, where)


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
