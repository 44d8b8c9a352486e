"""The one embedding interface every text and vision encoder implements."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from jftzoo.weight_source import RANDOM, WeightSource

ProgressCallback = Callable[[int, int], None]  # (items done, items total)
PRESENT = "present"  # key of a batch part's (B,) bool tensor when some items lack the modality (not an input)


@dataclass
class EncoderOutput:
    """What `Encoder.forward` returns; every tensor is differentiable."""

    pooled: torch.Tensor  # (B, D) one vector per item
    tokens: torch.Tensor  # (B, N, Dt) word pieces (text) or spatial positions / patches (vision)
    mask: torch.Tensor  # (B, N) bool, True where `tokens` holds a real token
    # (B,) bool, False for posts without this modality (their rows hold nothing meaningful and the fusion
    # head puts its learned "missing" embedding there); None: every item is present
    present: torch.Tensor | None = None


class Encoder(nn.Module):
    """A pre-trained unimodal encoder with a uniform face for fusion heads and trainers.

    Subclasses implement `preprocess`, `forward` and `layer_groups`; `embed` is shared. Those that
    can split their forward at a layer-group boundary also implement `supports_prefix`,
    `prefix_forward` and `top_forward`, so top-k training can cache the frozen prefix's outputs.
    """

    modality: str = ""
    embed_dim: int = 0  # D, size of `pooled`
    token_dim: int = 0  # Dt, size of each token in `tokens`
    memory_format: str = "contiguous"  # layout of 4-D weights and inputs: "contiguous" or "channels_last"
    # A `jftzoo.decoded.DecodedImageCache` the trainer lends for a fit; vision encoders that can split
    # their transform (timm's) read decoded pixels from it, the rest ignore it.
    decoded_cache: Any = None
    # Set by the trainer while it preprocesses training batches with image augmentation on
    # (`supports_augment`): the encoder then uses its random training transform.
    augment: bool = False
    # Runtimes a frozen pass of this encoder can run on (jftzoo.backends); timm vision encoders add "openvino".
    frozen_backends: tuple[str, ...] = ("pytorch",)

    def __init__(self, name: str, weights: WeightSource = RANDOM) -> None:
        super().__init__()
        self.name = name
        self.weight_source = weights

    @property
    def pretrained(self) -> bool:
        return self.weight_source.pretrained

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        source = self.weight_source
        return f"name={self.name!r}, modality={self.modality!r}, embed_dim={self.embed_dim}, weights={source}"

    def preprocess(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Turn raw items (strings or images) into the tensors `forward` takes, on the CPU."""
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:  # type: ignore[override]
        raise NotImplementedError

    def preprocess_config(self) -> dict[str, Any]:
        """Everything besides the weights that changes what `forward` returns for an item (JSON-able),
        so cached outputs are never reused across different preprocessing."""
        return {}

    def layer_groups(self) -> list[list[nn.Module]]:
        """Parameter-owning modules grouped bottom to top, so a trainer can unfreeze the top k groups."""
        raise NotImplementedError

    # -- prefix / top split (top-k training with a cached frozen prefix) ---------------------------
    def supports_prefix(self) -> bool:
        """Whether `prefix_forward`/`top_forward` are implemented; callers fall back to `forward` if not."""
        return False

    def prefix_forward(self, batch: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
        """Everything below the top `k` layer groups, as in eval mode and without gradients.

        Returns tensors with the batch dimension first. When there is a padding mask it is under
        "mask" (B, N) bool, and every other tensor whose first two dims are (B, N) is per-token: a
        caller may strip padded positions per item and re-pad with zeros, since `top_forward` never
        reads padded positions into real ones. `k` is clamped to the number of groups, as `set_mode` does.
        """
        raise NotImplementedError(f"encoder {self.name!r} cannot split its forward into prefix and top")

    def top_forward(self, prefix: dict[str, torch.Tensor], k: int) -> EncoderOutput:
        """The top `k` layer groups and pooling on `prefix_forward(batch, k)`: what `forward(batch)` gives,
        differentiable, in the module's current mode (dropout in a training top acts)."""
        raise NotImplementedError(f"encoder {self.name!r} cannot split its forward into prefix and top")

    def supports_augment(self) -> bool:
        """Whether `preprocess` has a random training transform to use while `augment` is set."""
        return False

    # -- attribution (jftzoo explain) ---------------------------------------------------------------
    def attribution_layer(self) -> nn.Module | None:
        """Text encoders: the module whose per-token output integrated gradients attribute to (the token
        embeddings); None when word attributions are not offered. Vision encoders attribute to pixels."""
        return None

    def attribution_baseline(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Text encoders: `batch` with every word piece replaced by padding (special tokens kept), the
        "no words" end of the integrated-gradients path."""
        raise NotImplementedError(f"encoder {self.name!r} offers no attribution baseline")

    def word_spans(self, text: str) -> list[tuple[str, list[int]]]:
        """Text encoders: (word, positions of its word pieces in `preprocess([text])`) per word, in order."""
        raise NotImplementedError(f"encoder {self.name!r} cannot map word pieces back to words")

    def region_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Vision encoders: the last spatial features of `batch` (one position per image region), which
        `from_region_features` turns into this encoder's output; None when the encoder has no such split
        (attributions then go to the pixels)."""
        return None

    def from_region_features(self, features: torch.Tensor) -> EncoderOutput:
        """What `forward` returns, from `region_features`' tensor (differentiable)."""
        raise NotImplementedError(f"encoder {self.name!r} has no region features")

    def region_grid(self, values: torch.Tensor) -> torch.Tensor:
        """A per-feature tensor shaped like one item of `region_features` -> (rows, columns) per region."""
        raise NotImplementedError(f"encoder {self.name!r} has no region features")

    def view_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """Vision encoders: the (left, top, right, bottom) box of an image of `size` (width, height) that the
        encoder sees after its eval transform (the centre crop); the whole image unless it crops."""
        return 0.0, 0.0, float(size[0]), float(size[1])

    def set_memory_format(self, fmt: str) -> None:
        """Layout of weights and inputs ("contiguous" or "channels_last"); same outputs, different speed."""
        if fmt != "contiguous":
            raise ValueError(f"encoder {self.name!r} only runs in the 'contiguous' memory format, not {fmt!r}")

    def prefix_steps(self, step_params: Sequence[Sequence[nn.Parameter]], k: int) -> int:
        """How many leading steps of a forward chain use no parameter of the top `k` layer groups.

        `step_params` lists the parameters each step of the chain uses, bottom to top. The answer for
        each k is remembered: layer groups are fixed for a built encoder and `top_forward` runs per step.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1 (the number of top layer groups), got {k!r}")
        memo: dict[int, int] = self.__dict__.setdefault("_prefix_steps_memo", {})
        if k not in memo:
            groups = self.layer_groups()
            top = {id(p) for g in groups[len(groups) - min(k, len(groups)) :] for m in g for p in m.parameters()}
            memo[k] = next(
                (i for i, params in enumerate(step_params) if any(id(p) in top for p in params)), len(step_params)
            )
        return memo[k]

    @contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Every submodule in eval mode for the block, then each one's own mode back (top-k mixes them)."""
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            yield
        finally:
            for m, training in modes:
                m.training = training

    def sort_key(self, item: Any) -> int:
        """Length proxy used by `embed` to batch similar items together (longest first)."""
        return 0

    def embed(
        self,
        items: Sequence[Any],
        batch_size: int = 32,
        show_progress: bool = False,
        progress: ProgressCallback | None = None,
    ) -> torch.Tensor:
        """Pooled embeddings (len(items), D) in input order, computed without gradients.

        Like sentence-transformers, items are sorted by length so each batch pads little, and the
        original order is restored at the end. Training must call `forward`, never this.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        items = list(items)
        order = sorted(range(len(items)), key=lambda i: -self.sort_key(items[i]))
        out = torch.empty(len(items), self.embed_dim, dtype=torch.float32)
        report = progress
        bar = None
        if show_progress and progress is None:
            from jftzoo.console import embed_progress

            bar = embed_progress(self.name, len(items))
            report = bar.update
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(items), batch_size):
                    idx = order[start : start + batch_size]
                    batch = self.preprocess([items[i] for i in idx])
                    batch = {k: v.to(self.device) for k, v in batch.items()}
                    pooled = self(batch).pooled  # (b, D)
                    out[torch.tensor(idx)] = pooled.float().cpu()
                    if report is not None:
                        report(min(start + batch_size, len(items)), len(items))
        finally:
            self.train(was_training)
            if bar is not None:
                bar.close()
        return out


def groups_from_param_names(model: nn.Module, groups: Sequence[Sequence[str]]) -> list[list[nn.Module]]:
    """Turn groups of parameter names into groups of the modules that own them.

    Leaf modules are returned as themselves. A parameter held directly by a module with children
    (a ViT's `cls_token` on the model, a ConvNeXt block's `gamma`) is wrapped in a `ParameterGroup`,
    so every parameter sits in exactly one group and can still be frozen.
    """
    params = dict(model.named_parameters())
    group_of = {n: g for g, names in enumerate(groups) for n in names}
    out: list[list[nn.Module]] = []
    for g, names in enumerate(groups):
        modules: dict[str, nn.Module] = {}
        loose: list[nn.Parameter] = []
        for n in names:
            owner_path, _, _ = n.rpartition(".")
            owner = model.get_submodule(owner_path) if owner_path else model
            direct = [f"{owner_path}.{p}" if owner_path else p for p, _ in owner.named_parameters(recurse=False)]
            leaf = not any(True for c in owner.children() for _ in c.parameters())
            if owner is not model and leaf and all(group_of.get(d) == g for d in direct):
                modules.setdefault(owner_path, owner)
            else:
                loose.append(params[n])
        group: list[nn.Module] = list(modules.values())
        if loose:
            group.insert(0, ParameterGroup(loose))
        if group:
            out.append(group)
    return out


class ParameterGroup(nn.Module):
    """A view on loose parameters (shared, not copied) so they can sit in a layer group."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        super().__init__()
        self._refs = list(params)  # plain list: not registered, so the owner keeps sole ownership

    def parameters(self, recurse: bool = True):  # type: ignore[override]
        yield from self._refs

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):  # type: ignore[override]
        for i, p in enumerate(self._refs):
            yield f"{prefix}{'.' if prefix else ''}{i}", p

    def requires_grad_(self, requires_grad: bool = True) -> ParameterGroup:
        for p in self._refs:
            p.requires_grad_(requires_grad)
        return self


def block_param_groups(model: nn.Module, blocks_path: str) -> list[list[str]]:
    """Parameter names split into: everything before the blocks, each block, everything after."""
    blocks = model.get_submodule(blocks_path)
    n_blocks = len(blocks)  # type: ignore[arg-type]
    before: list[str] = []
    per_block: list[list[str]] = [[] for _ in range(n_blocks)]
    after: list[str] = []
    seen_block = False
    for name, _ in model.named_parameters():
        if name.startswith(blocks_path + "."):
            idx = int(name[len(blocks_path) + 1 :].split(".", 1)[0])
            per_block[idx].append(name)
            seen_block = True
        elif seen_block:
            after.append(name)
        else:
            before.append(name)
    return [g for g in (before, *per_block, after) if g]


def largest_module_list(model: nn.Module) -> str:
    """Path of the ModuleList holding the most parameters: the transformer blocks."""
    best, best_n = "", -1
    for path, module in model.named_modules():
        if isinstance(module, nn.ModuleList):
            n = sum(p.numel() for p in module.parameters())
            if n > best_n:
                best, best_n = path, n
    if not best:
        raise ValueError(f"{type(model).__name__} has no ModuleList of blocks")
    return best
