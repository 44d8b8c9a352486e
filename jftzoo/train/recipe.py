"""Recipe levers of the joint trainer: how the one loss is weighted, smoothed and regularised.

Each lever is a `TrainConfig` field and a `train`/`bench` option (docs/recipes.md): layer-wise
learning-rate decay, class-weighted loss, modality dropout, an exponential moving average of the
weights, early stopping on a chosen validation metric. They live here, one job each, so the
trainer's loop stays a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from jftzoo.encoders.base import EncoderOutput
from jftzoo.errors import UsageError
from jftzoo.train.presets import MONITORS


def encoder_param_groups(model: Any, lr: float, decay: float | None) -> list[dict[str, Any]]:
    """The encoders' trainable parameters as optimizer groups.

    Without `decay`: one group at `lr`. With it (layer-wise learning-rate decay, as in ELECTRA and
    BEiT fine-tuning): each encoder's top layer group trains at `lr`, the one below at `lr * decay`,
    and so on down, so the lower, more general layers move less than the task-specific top.
    """
    if decay is None:
        params = model.encoder_parameters()
        return [{"params": params, "lr": lr, "name": "encoder"}] if params else []
    if not 0 < decay <= 1:
        raise UsageError(f"layer_decay must be in (0, 1], got {decay}")
    groups = []
    for encoder in (model.text, model.vision):
        if encoder is None:
            continue
        layer_groups = encoder.layer_groups()
        for depth, modules in enumerate(reversed(layer_groups)):  # depth 0: the top group
            params = [p for m in modules for p in m.parameters() if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": lr * decay**depth,
                               "name": f"{encoder.name}/group{len(layer_groups) - 1 - depth}"})
    return groups


def class_weights(y: Sequence[int], n_classes: int, mode: str | None) -> torch.Tensor | None:
    """Per-class loss weights: None, or scikit-learn's 'balanced' (n / (n_classes * count)) from training labels."""
    if mode is None or mode == "none":
        return None
    if mode != "balanced":
        raise UsageError(f"class_weight must be 'balanced' or 'none', got {mode!r}")
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(np.asarray(y))
    weights = np.ones(n_classes, dtype=np.float32)  # a class absent from training cannot be weighed: 1
    weights[present] = compute_class_weight("balanced", classes=present, y=np.asarray(y))
    return torch.from_numpy(weights)


def drop_modalities(text: EncoderOutput | None, image: EncoderOutput | None, p: float,
                    generator: torch.Generator) -> tuple[EncoderOutput | None, EncoderOutput | None]:
    """Modality dropout: for a share `p` of the batch's records, one modality (text or image, even odds)
    is marked absent (`EncoderOutput.present`), so the head reads its learned "missing" embedding there,
    exactly as for a post that has no text or no image; the head learns to predict from either alone
    and the missing embeddings learn even on data where every post has both."""
    if p <= 0 or text is None or image is None:
        return text, image
    n = text.pooled.shape[0]
    dropped = torch.rand(n, generator=generator) < p  # (B,)
    which = torch.rand(n, generator=generator) < 0.5  # (B,) True: drop text, False: drop image
    return _absent(text, dropped & which), _absent(image, dropped & ~which)


def _absent(out: EncoderOutput, drop: torch.Tensor) -> EncoderOutput:
    """`out` with the rows of `drop` (B,) marked absent besides those already absent."""
    keep = ~drop.to(out.pooled.device)  # (B,)
    return EncoderOutput(out.pooled, out.tokens, out.mask, keep if out.present is None else out.present & keep)


def check_monitor(name: str) -> None:
    if name not in MONITORS:
        from jftzoo.errors import suggest

        hint = suggest(name, MONITORS)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UsageError(f"monitor must be one of {', '.join(MONITORS)}, got {name!r}.{did}")


def monitor_value(name: str, loss: float, probs: np.ndarray, y: Sequence[int], labels: Sequence[str]) -> float:
    """The validation figure early stopping minimises: the loss, or minus a metric (higher is better)."""
    check_monitor(name)
    if name == "loss":
        return loss
    from jftzoo.train.metrics import evaluate

    value = evaluate(list(y), probs, list(labels)).get(name)
    return float("inf") if value is None or value != value else -float(value)  # NaN AUC never "improves"


class WeightAverage:
    """An exponential moving average of a module's weights (torch.optim.swa_utils), updated after each
    optimizer step; `swapped()` puts the average in place for validation and keeping the best."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise UsageError(f"ema must be in (0, 1), e.g. 0.999; got {decay}")
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        self.module = module
        self.average = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def update(self) -> None:
        self.average.update_parameters(self.module)

    def swap(self) -> None:
        """Exchange the live weights with the averaged ones (call twice to restore)."""
        with torch.no_grad():
            for live, avg in zip(self.module.state_dict().values(), self.average.module.state_dict().values(),
                                 strict=True):
                if live.is_floating_point():
                    tmp = live.clone()
                    live.copy_(avg)
                    avg.copy_(tmp)


class CheckpointSoup:
    """The `size` best epochs' weights by validation score, cooked at the end into a greedy soup (Wortsman et
    al., "Model soups", 2022; AutoGluon MultiModal's default `top_k=3, top_k_average_method=greedy_soup`):
    from the best checkpoint, each next-best one joins the uniform average only where validation does not get
    worse. Averaging nearby fine-tuned weights often generalises better than any one of them, at no extra
    training; validation alone decides, so test data never enters the choice."""

    def __init__(self, size: int) -> None:
        self.size = size
        # (score, validation loss, epoch, CPU weights), best first
        self.kept: list[tuple[float, float, int, dict[str, torch.Tensor]]] = []

    def offer(self, score: float, loss: float, epoch: int, module: torch.nn.Module) -> None:
        """Keep this epoch's weights (validated at `score`, as minimised, and `loss`) if they are among the
        best `size` so far."""
        if len(self.kept) == self.size and score >= self.kept[-1][0]:
            return
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        self.kept = sorted([*self.kept, (score, loss, epoch, state)], key=lambda x: (x[0], x[2]))[:self.size]

    def cook(self, module: torch.nn.Module, validate: Callable[[], tuple[float, float]]
             ) -> tuple[list[int], float, float]:
        """Load the greedy soup into `module` and return its epochs, score and validation loss; `validate`
        scores the module's current weights as (score, loss)."""
        score, loss, epoch, state = self.kept[0]
        chosen, states = [epoch], [state]
        for _, _, epoch, state in self.kept[1:]:
            module.load_state_dict(_uniform_average([*states, state]))
            trial, trial_loss = validate()
            if trial <= score:
                chosen, states, score, loss = [*chosen, epoch], [*states, state], trial, trial_loss
        module.load_state_dict(_uniform_average(states))
        return chosen, score, loss


def _uniform_average(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors; other entries (e.g. BatchNorm's step counters) are
    the first state's."""
    return {k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[0].items()}
