"""The joint trainer: one cross-entropy loss into the head and (per mode) both encoders.

Early stopping uses a validation split carved from the TRAINING records only, never the test fold
(the paper's code stopped on its test fold, which inflates its figures).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jftzoo.datasets.records import Record
from jftzoo.encoders.base import EncoderOutput
from jftzoo.errors import JftzooError
from jftzoo.features import FeatureStore

# TrainConfig and its identity live torch-free in jftzoo.train.config; re-exported as the trainer's names
from jftzoo.train.config import (  # noqa: F401
    ADDED_LATER,
    RUNTIME_ONLY,
    SCHEDULERS,
    UNUSED_BY_MODE,
    TrainConfig,
    check_scheduler,
    config_identity,
)
from jftzoo.train.model import FusionModel
from jftzoo.train.pipeline import default_workers, plan_batches, preprocessed
from jftzoo.train.prefix import PrefixInputs, PrefixStore, prefix_unavailable
from jftzoo.train.recipe import (
    CheckpointSoup,
    WeightAverage,
    check_monitor,
    class_weights,
    drop_modalities,
    encoder_param_groups,
    monitor_value,
)

ProgressCallback = Callable[[dict[str, Any]], None]  # events: {"event": "step"|"epoch", ...}


class TrainingDivergedError(JftzooError):
    """The loss became NaN or infinite; the message names the epoch and step."""


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> tuple[Any, bool]:
    """The learning-rate schedule and whether it steps per epoch (True) or per optimizer step (False)."""
    check_scheduler(config.scheduler)
    if config.scheduler == "exponential":  # the paper's released recipe for its attention head
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_gamma), True
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    total = steps_per_epoch * config.max_epochs
    make = get_cosine_schedule_with_warmup if config.scheduler == "cosine" else get_linear_schedule_with_warmup
    return make(optimizer, int(config.warmup_ratio * total), total), False


@dataclass
class TrainResult:
    best_epoch: int
    best_val_loss: float  # the validation loss at the best epoch
    history: list[dict[str, float]] = field(default_factory=list)
    val_ids: list[str] = field(default_factory=list)
    monitor: str = "loss"
    best_score: float = float("inf")  # the monitored figure at the best epoch, as minimised (-metric)
    # average_top > 1: the epochs whose weights were averaged into the model kept (the best first); then
    # best_score and best_val_loss are the average's
    averaged_epochs: list[int] = field(default_factory=list)
    # top-k with the prefix cache: the cached parts ("train", "val", and "score" when fit was given records
    # to score), so predictions after training run only the top groups (`prefix_proba`); None otherwise
    prefix: Any = None


def autocast_for(device: torch.device) -> Any:
    """bf16 autocast only on a GPU that supports it; fp32 elsewhere (bf16 matmul is ~500x slower on CPU)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def carve_validation(records: Sequence[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Stratified (train, validation) from the training records alone."""
    from sklearn.model_selection import train_test_split

    records = sorted(records, key=lambda r: r.id)
    labels = [r.label for r in records]
    classes = set(labels)
    stratify = labels if min(labels.count(x) for x in classes) >= 2 else None
    n_val = max(round(fraction * len(records)), len(classes) if stratify else 1)  # every class in validation
    train, val = train_test_split(records, test_size=n_val, stratify=stratify, random_state=seed)
    return list(train), list(val)


@contextlib.contextmanager
def decoded_cache_lent(encoder: Any) -> Iterator[None]:
    """Lend `encoder` a DecodedImageCache for the block (forked DataLoader workers inherit it)."""
    if encoder is None:
        yield
        return
    from jftzoo.decoded import DecodedImageCache

    before = encoder.decoded_cache
    encoder.decoded_cache = DecodedImageCache()
    try:
        yield
    finally:
        encoder.decoded_cache = before


@contextlib.contextmanager
def augmenting(encoder: Any) -> Iterator[Callable[[bool], None]]:
    """A switch for `encoder.augment` (training transform) inside the block; off again after it."""
    def switch(on: bool) -> None:
        if encoder is not None:
            encoder.augment = on

    try:
        yield switch
    finally:
        switch(False)


@contextlib.contextmanager
def modality_dropout(model: FusionModel, drop: tuple[float, torch.Generator]) -> Iterator[None]:
    """`model.drop` set for the block: its forwards drop modalities while in training mode, never in eval."""
    model.drop = drop
    try:
        yield
    finally:
        model.drop = None


def to_device(batch: dict[str, dict[str, torch.Tensor]], device: torch.device) -> dict[str, dict[str, torch.Tensor]]:
    return {m: {k: v.to(device) for k, v in part.items()} for m, part in batch.items()}


def _outputs_to(out: EncoderOutput | None, device: torch.device) -> EncoderOutput | None:
    if out is None:
        return None
    present = out.present.to(device) if out.present is not None else None
    return EncoderOutput(out.pooled.to(device), out.tokens.to(device), out.mask.to(device), present)


class FrozenInputs:
    """The frozen encoders' outputs for a fixed list of records, so only the head runs per step."""

    def __init__(self, model: FusionModel, records: Sequence[Record], store: FeatureStore) -> None:
        tokens = bool(getattr(model.head, "uses_tokens", False))
        self.text = store.features(model.text, [r.item("text") for r in records], tokens) \
            if model.uses("text") else None
        self.image = store.features(model.vision, [r.item("vision") for r in records], tokens) \
            if model.uses("vision") else None

    def batch(self, idx: Sequence[int], device: torch.device) -> tuple[EncoderOutput | None, EncoderOutput | None]:
        text = self.text.batch(idx) if self.text is not None else None
        image = self.image.batch(idx) if self.image is not None else None
        return _outputs_to(text, device), _outputs_to(image, device)


def predict_proba(
    model: FusionModel,
    records: Sequence[Record],
    batch_size: int = 32,
    features: FeatureStore | None = None,
    on_batch: Callable[[FusionModel], None] | None = None,
    workers: int = 0,
    text_normalizer: str | None = None,
) -> np.ndarray:
    """Class probabilities (N, C) in record order.

    With a `FeatureStore`, encoder outputs come from it (computed once, shared with other heads on
    the same encoders); its keys include the encoder weights, so a fine-tuned encoder never reuses
    outputs of its pre-trained self. `on_batch(model)` runs after each batch's forward, so callers
    can read per-batch head state (e.g. gate weights) in the same pass instead of a second one.
    """
    model.eval()
    records = normalized_texts(records, text_normalizer)
    device = next(model.parameters()).device
    frozen = FrozenInputs(model, records, features) if features is not None else None
    plan = plan_batches(len(records), batch_size, None)
    out = []
    with torch.inference_mode():
        if frozen is not None:
            stream: Any = ((idx, None, None) for idx in plan)
        else:
            stream = preprocessed(model.preprocess, records, plan, workers=workers, pin_memory=device.type == "cuda")
        for idx, batch, _ in stream:
            logits = model.head(*frozen.batch(idx, device)) if frozen is not None else model(to_device(batch, device))
            out.append(logits.float().softmax(-1).cpu())
            if on_batch is not None:
                on_batch(model)
    n_classes = model.head.cfg.n_classes
    return torch.cat(out).numpy() if out else np.zeros((0, n_classes), dtype=np.float32)


def prefix_proba(model: FusionModel, prefix: PrefixInputs, part: str, batch_size: int = 32,
                 on_batch: Callable[[FusionModel], None] | None = None) -> np.ndarray:
    """Class probabilities of a cached part (e.g. 'val') through the trained top groups and the head: the
    same as `predict_proba` on those records (the frozen prefix is what it would compute), minus the prefix."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for idx in plan_batches(prefix.size(part), batch_size, None):
            logits = model.forward_prefix(*prefix.batch(part, idx, device), prefix.k["text"], prefix.k["vision"])
            out.append(logits.float().softmax(-1).cpu())
            if on_batch is not None:
                on_batch(model)
    n_classes = model.head.cfg.n_classes
    return torch.cat(out).numpy() if out else np.zeros((0, n_classes), dtype=np.float32)


def _validate(model: FusionModel, records: Sequence[Record], index: dict[str, int], batch_size: int,
              features: FeatureStore | None, workers: int = 0,
              prefix: PrefixInputs | None = None) -> tuple[float, np.ndarray, list[int]]:
    """(mean validation loss, probabilities, labels) of `records`: early stopping's evidence."""
    if prefix is not None:
        probs = prefix_proba(model, prefix, "val", batch_size)
    else:
        probs = predict_proba(model, records, batch_size, features, workers=workers)
    y = [index[r.label] for r in records]
    return float(F.nll_loss(torch.from_numpy(probs).clamp_min(1e-12).log(), torch.tensor(y))), probs, y


def normalized_texts(records: Sequence[Record], name: str | None) -> list[Record]:
    """`records` with their texts through the named normaliser (jftzoo.datasets.tweets); as-is for "none"."""
    from dataclasses import replace

    from jftzoo.datasets.tweets import normalizer

    f = normalizer(name)
    return list(records) if f is None else [replace(r, text=f(r.text)) for r in records]


def fit(
    model: FusionModel,
    records: Sequence[Record],
    labels: Sequence[str],
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    loss_hook: Callable[[torch.Tensor], torch.Tensor] | None = None,
    validation: Sequence[Record] | None = None,
    accelerator: Any = None,
    features: FeatureStore | None = None,
    prefix_store: PrefixStore | None = None,
    score: Sequence[Record] = (),
) -> TrainResult:
    """Train in place and leave the best (lowest validation loss) weights loaded.

    `validation` (e.g. the 'val' part of an 8:1:1 split) decides early stopping; without it, a
    stratified share of `records` is carved off. Test records must never be passed here.

    With a Hugging Face `accelerator` over several processes (`torchrun`/`accelerate launch`), each
    global batch is split across the processes and DDP averages their gradients, so the run follows
    the single-process one; validation runs whole on every process, so all stop together.

    In `frozen` mode the encoders run once per record (through `features`, a fresh in-memory
    `FeatureStore` unless one is shared, e.g. across the heads of a benchmark) and each step runs
    the head alone; the result is the same as re-encoding every epoch, only faster. In `top-k` mode
    the frozen lower groups likewise run once per record (`jftzoo.train.prefix`, shared through
    `prefix_store`) unless `config.prefix_cache` is off or an encoder cannot split; a "note" progress
    event says when the uncached path is taken and why. `score`: records the caller will predict after
    training (a test part); their frozen prefix is cached too (never trained on: inference only), so
    `prefix_proba(model, result.prefix, "score")` predicts them through the top groups alone.
    """
    check_scheduler(config.scheduler)
    check_monitor(config.monitor)  # a bad name fails before any training
    seed_everything(config.seed)
    index = {label: i for i, label in enumerate(labels)}
    if validation:
        train, val = list(records), list(validation)
    else:
        train, val = carve_validation(records, config.val_fraction, config.seed)
    train, val = normalized_texts(train, config.text_normalizer), normalized_texts(val, config.text_normalizer)
    model.set_mode(config.mode, config.top_k)
    model.teach_missing(train, config.modality_dropout)
    groups = [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr": config.lr_head,
               "name": "head"}]
    groups += encoder_param_groups(model, config.lr_encoder, config.layer_decay)
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(math.ceil(len(train) / config.batch_size) / config.grad_accum)
    scheduler, per_epoch = make_scheduler(optimizer, config, steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    device = next(model.parameters()).device
    frozen: FrozenInputs | None = None
    if config.mode == "frozen":
        features = features if features is not None else FeatureStore(batch_size=max(config.batch_size, 32),
                                                                      backend=config.frozen_backend)
        frozen = FrozenInputs(model, train, features)
    else:
        features = None  # trained encoders change every step: nothing to reuse
    net: Any = model.head if frozen else model  # what runs forward and backward (or its DDP wrapper)
    rank, world = 0, 1
    if accelerator is not None and accelerator.num_processes > 1:
        net = accelerator.prepare_model(net)
        rank, world = accelerator.process_index, accelerator.num_processes
        device = accelerator.device
    kept = model.head if frozen is not None else model  # frozen encoders never change: keep only the head
    workers = default_workers(device) if config.workers is None else config.workers
    k_text, k_vision = (config.top_k, config.top_k) if isinstance(config.top_k, int) else config.top_k
    augment = config.augment and model.uses("vision")
    if augment and (frozen is not None or not model.vision.supports_augment()):
        augment = False
        if progress:
            why = "frozen mode reads cached features" if frozen is not None else \
                f"encoder {model.vision.name!r} has no training transform"
            progress({"event": "note", "message": f"image augmentation is off: {why}"})
    prefix: PrefixInputs | None = None
    if config.mode == "top-k":
        why = "turned off (prefix_cache=False, --no-prefix-cache)" if not config.prefix_cache else \
            "several processes" if world > 1 else \
            "image augmentation changes every image each epoch" if augment else \
            prefix_unavailable(model, k_text, k_vision)
        if why is None:
            store = prefix_store if prefix_store is not None else PrefixStore(config.prefix_dtype,
                                                                             max(config.batch_size, 32))
            parts = {"train": train, "val": val}
            if score:
                parts["score"] = normalized_texts(score, config.text_normalizer)
            prefix = PrefixInputs(model, parts, k_text, k_vision, store)
        elif progress:
            progress({"event": "note", "message": f"top-k runs every layer each step (no prefix cache): {why}"})
    # Length bucketing pays where text is tokenised per step: every mode but frozen.
    lengths = [len(r.text) for r in train] if config.bucketing and frozen is None and model.uses("text") else None
    result = TrainResult(best_epoch=-1, best_val_loss=float("inf"), val_ids=[r.id for r in val],
                         monitor=config.monitor)
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    average = WeightAverage(kept, config.ema) if config.ema is not None else None
    soup = CheckpointSoup(config.average_top) if config.average_top > 1 else None
    loss_weight = class_weights([index[r.label] for r in train], len(labels), config.class_weight)
    loss_weight = loss_weight.to(device) if loss_weight is not None else None
    # Modality dropout: its own generator (other random draws stay put); the forwards apply it in training only.
    drop = (config.modality_dropout, torch.Generator().manual_seed(config.seed + 7919))
    lend = config.image_cache and prefix is None and frozen is None and model.uses("vision")
    with decoded_cache_lent(model.vision if lend else None), augmenting(model.vision if augment else None) as aug, \
            modality_dropout(model, drop):
        for epoch in range(config.max_epochs):
            net.train()
            aug(True)  # training images only: validation always sees the eval transform
            optimizer.zero_grad(set_to_none=True)
            running, seen = 0.0, 0
            batches = plan_batches(len(train), config.batch_size, generator, lengths)
            shares = [whole[rank::world] or whole[:1] for whole in batches]  # this process's share of each batch
            if frozen is not None or prefix is not None:  # nothing to preprocess: outputs are cached
                stream: Any = ((idx, None, torch.tensor([index[train[i].label] for i in idx])) for idx in shares)
            else:
                stream = preprocessed(model.preprocess, train, shares, index, workers, pin_memory=device.type == "cuda")
            for step, (whole, (idx, batch, y)) in enumerate(zip(batches, stream, strict=True)):
                weight = 1.0 if whole[rank::world] else 0.0  # a process with no share still joins the all-reduce
                y = y.to(device)
                with autocast_for(device):
                    if frozen is not None:  # (B, C) the head alone on cached outputs
                        logits = net(*drop_modalities(*frozen.batch(idx, device), *drop))
                    elif prefix is not None:  # (B, C) the top k groups and the head on cached prefix outputs
                        logits = model.forward_prefix(*prefix.batch("train", idx, device), k_text, k_vision)
                    else:
                        logits = net(to_device(batch, device))  # (B, C) the whole model
                loss = F.cross_entropy(logits.float(), y, weight=loss_weight, label_smoothing=config.label_smoothing)
                if loss_hook is not None:
                    loss = loss_hook(loss)
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"the training loss became {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}: "
                        f"lower the learning rates (encoder {config.lr_encoder}, head {config.lr_head}) or check the "
                        "inputs"
                    )
                (loss * weight / config.grad_accum).backward()
                running += float(loss.detach()) * len(idx)
                seen += len(idx)
                if (step + 1) % config.grad_accum == 0 or step + 1 == len(batches):
                    torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], config.grad_clip)
                    optimizer.step()
                    if average is not None:
                        average.update()
                    if not per_epoch:
                        scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                if progress:
                    progress({"event": "step", "epoch": epoch + 1, "step": step + 1, "steps": len(batches),
                              "loss": float(loss.detach())})
            if per_epoch:
                scheduler.step()
            aug(False)
            if average is not None:
                average.swap()  # validate (and keep) the averaged weights
            val_loss, val_probs, val_y = _validate(model, val, index, config.batch_size, features, workers, prefix)
            score = monitor_value(config.monitor, val_loss, val_probs, val_y, labels)
            entry = {"epoch": epoch + 1, "train_loss": running / max(seen, 1), "val_loss": val_loss}
            if config.monitor != "loss":
                entry[f"val_{config.monitor}"] = -score
            result.history.append(entry)
            if progress:  # the learning rates the next epoch will use
                lrs = {f"lr_{n}": g["lr"] for n, g in zip(("head", "encoder"), optimizer.param_groups, strict=False)}
                progress({"event": "epoch", **result.history[-1], **lrs})
            if score < result.best_score:
                result.best_score, result.best_val_loss, result.best_epoch, stale = score, val_loss, epoch + 1, 0
                if soup is None:  # with a soup, the best epoch's weights are its first checkpoint
                    best_state = {k: v.detach().cpu().clone() for k, v in kept.state_dict().items()}
            else:
                stale += 1
            if soup is not None:
                soup.offer(score, val_loss, epoch + 1, kept)
            if average is not None:
                average.swap()  # training goes on from the live weights
            if epoch + 1 >= config.min_epochs and stale >= config.patience:
                break
        if soup is not None and len(soup.kept) == 1 and result.best_epoch > 0:
            best_state = soup.kept[0][3]
        elif soup is not None and len(soup.kept) > 1:
            def rescore() -> tuple[float, float]:
                loss, probs, y = _validate(model, val, index, config.batch_size, features, workers, prefix)
                return monitor_value(config.monitor, loss, probs, y, labels), loss

            result.averaged_epochs, result.best_score, result.best_val_loss = soup.cook(kept, rescore)  # in place
            if progress:
                epochs = ", ".join(map(str, result.averaged_epochs))
                progress({"event": "note", "message": f"kept the average of epochs {epochs} (greedy soup of the best "
                          f"{config.average_top})"})
    if best_state is not None:
        kept.load_state_dict(best_state)
    model.eval()
    result.prefix = prefix
    return result
