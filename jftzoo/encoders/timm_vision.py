"""Vision encoders from timm (ResNet, ConvNeXt, EfficientNet, ViT, ...), with timm's own transforms.

Spec options understood by `build`:
  arch              timm architecture name, e.g. "convnext_tiny"
  state_dict_layout "timm" (default) or "ordered": a checkpoint from another implementation whose
                    tensors line up one-to-one, in order and shape, with timm's (EfficientNet-Lite0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jftzoo import weights as wsrc
from jftzoo.encoders.base import Encoder, EncoderOutput, groups_from_param_names
from jftzoo.errors import WeightsUnavailableError
from jftzoo.images import load_image
from jftzoo.registry import EncoderSpec


class TimmVisionEncoder(Encoder):
    """A timm backbone without its classifier; tokens are its final feature map's positions.

    Convolutional backbones run in the channels_last memory format (weights and inputs NHWC in
    memory), which oneDNN and cuDNN convolutions prefer; `set_memory_format("contiguous")` turns it off.
    """

    frozen_backends = ("pytorch", "openvino")  # fixed-size pixel input: OpenVINO can compile it

    modality = "vision"

    def __init__(self, name: str, model: nn.Module, weight_source: wsrc.WeightSource) -> None:
        super().__init__(name, weight_source)
        import timm.data

        self.model = model
        self.data_config = timm.data.resolve_data_config({}, model=model)
        self.transform = timm.data.create_transform(**self.data_config)  # eval transform
        self._geometry, self._tensor_part = split_transform(self.transform)
        fmt = getattr(model, "output_fmt", "NCHW")
        # Feature maps come out (B, H, W, C) (Swin and friends; timm Format or str): a shape, not a memory format.
        self.nhwc_features = getattr(fmt, "value", fmt) == "NHWC"
        # Patch/token models (ViT, Swin, ...) gain nothing from channels_last; convolutional backbones do.
        self.convolutional = not self.nhwc_features and not hasattr(model, "patch_embed")
        self.token_dim = int(model.num_features)
        self.embed_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
        if self.convolutional:
            self.set_memory_format("channels_last")

    def set_memory_format(self, fmt: str) -> None:
        """Convert the weights once (they stay so across `.to(device)`); `forward` converts each input."""
        formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
        if fmt not in formats:
            raise ValueError(f"memory format must be one of {', '.join(formats)}, got {fmt!r}")
        if fmt == "channels_last" and not self.convolutional:
            raise ValueError(f"encoder {self.name!r} is not a convolutional backbone: channels_last does not apply")
        self.model.to(memory_format=formats[fmt])
        self.memory_format = fmt

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """An image batch or feature map (B, C, H, W) in the encoder's memory format."""
        if self.memory_format == "channels_last" and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def preprocess(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        pixels = [self._pixels(item, i) for i, item in enumerate(items)]  # each (3, H, W)
        if not pixels:
            size = self.data_config["input_size"]
            return {"pixel_values": torch.empty(0, *size)}
        return {"pixel_values": torch.stack(pixels)}  # (B, 3, H, W)

    def _pixels(self, item: Any, index: int) -> torch.Tensor:
        """One image through the eval transform; with a decoded-image cache (`jftzoo.decoded`) and an image
        file, the decode/resize/crop part comes from the cache as uint8 and only the tensor part runs."""
        if self.augment:  # training with augmentation: a fresh random view each time, never cached
            return self.train_transform(load_image(item, index))
        cache = self.decoded_cache
        if cache is None or self._geometry is None or not isinstance(item, (str, Path)):
            return self.transform(load_image(item, index))
        from torchvision.transforms.functional import pil_to_tensor

        from jftzoo.decoded import geometry_namespace

        geometry = self._geometry
        namespace = geometry_namespace(self.name, repr(geometry))
        u8 = cache.pixels(namespace, Path(item), lambda: pil_to_tensor(geometry(load_image(item, index))))
        return self._tensor_part(u8.float().div(255))  # what ToTensor computes from the same uint8 pixels

    def supports_augment(self) -> bool:
        return True

    def region_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        # (B, C, h, w) | (B, h, w, C) | (B, N, C)
        return self.model.forward_features(self._layout(batch["pixel_values"]))

    def from_region_features(self, features: torch.Tensor) -> EncoderOutput:
        return self._outputs(features)

    def region_grid(self, values: torch.Tensor) -> torch.Tensor:
        if values.ndim == 3:  # a feature map: (C, h, w), or (h, w, C) for NHWC models
            return values.sum(-1) if self.nhwc_features else values.sum(0)
        per_token = values.sum(-1)[int(getattr(self.model, "num_prefix_tokens", 0)):]  # (N,) patches only
        side = math.isqrt(per_token.numel())
        return per_token[: side * side].view(side, side)

    def view_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """timm's eval geometry: the shorter side scaled to input / crop_pct, then a centred input-sized crop."""
        w, h = size
        side = self.data_config["input_size"][-1]
        crop_pct = float(self.data_config.get("crop_pct") or 1.0)
        if self.data_config.get("crop_mode", "center") != "center":
            return super().view_box(size)
        scale = (side / crop_pct) / min(w, h)  # original pixels -> resized pixels
        cw = ch = side / scale  # the crop, in original pixels
        return (w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2

    @property
    def train_transform(self) -> Any:
        """timm's training transform for this backbone's input size (random resized crop, flip, colour jitter)."""
        if getattr(self, "_train_transform", None) is None:
            import timm.data

            self._train_transform = timm.data.create_transform(**self.data_config, is_training=True)
        return self._train_transform

    def preprocess_config(self) -> dict[str, Any]:
        return {"data_config": self.data_config, "transform": repr(self.transform)}

    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:  # type: ignore[override]
        pixels = self._layout(batch["pixel_values"])  # (B, 3, H, W)
        return self._outputs(self.model.forward_features(pixels))  # (B, C, h, w) | (B, h, w, C) | (B, N, C)

    def _outputs(self, feats: torch.Tensor) -> EncoderOutput:
        """Pooled vector and tokens from the final features, shared by `forward` and `top_forward`."""
        pooled = self.model.forward_head(feats, pre_logits=True)  # (B, D)
        if feats.ndim == 4:  # a feature map: one token per spatial position
            tokens = feats.flatten(1, 2) if self.nhwc_features else feats.flatten(2).transpose(1, 2)  # (B, h*w, C)
        else:
            tokens = feats  # (B, N, Dt) ViT: class token + patches
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)  # (B, N)
        return EncoderOutput(pooled=pooled, tokens=tokens, mask=mask)

    def layer_groups(self) -> list[list[nn.Module]]:
        from timm.models import group_parameters

        grouped = group_parameters(self.model, self.model.group_matcher(coarse=True))
        return groups_from_param_names(self.model, [grouped[k] for k in sorted(grouped)])

    # -- prefix / top split -----------------------------------------------------------------------
    def supports_prefix(self) -> bool:
        return feature_chain(self.model) is not None

    def _chain(self, k: int) -> tuple[list[Step], int]:
        chain = feature_chain(self.model)
        if chain is None:
            raise NotImplementedError(f"encoder {self.name!r}: {type(self.model).__name__} has no prefix/top split")
        return chain, self.prefix_steps([params for _, params in chain], k)

    def prefix_forward(self, batch: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
        """{"features": the output of `forward_features`' steps below the top k groups}: (B, C, h, w) for
        CNNs (channels_last in memory when that format is on), (B, N, D) for ViTs, (B, h, w, C) for Swin;
        the pixels themselves when the stem trains. No mask: every image has the same positions."""
        chain, steps = self._chain(k)
        x = self._layout(batch["pixel_values"])  # (B, 3, H, W)
        with self.eval_mode(), torch.no_grad():
            for step, _ in chain[:steps]:
                x = step(x)
        return {"features": x}

    def top_forward(self, prefix: dict[str, torch.Tensor], k: int) -> EncoderOutput:
        chain, steps = self._chain(k)
        x = self._layout(prefix["features"])
        for step, _ in chain[steps:]:
            x = step(x)
        return self._outputs(x)  # x: what forward_features returns


def split_transform(transform: Any) -> tuple[Any, Any]:
    """(geometry on PIL images, tensor part after ToTensor) of a torchvision Compose ending in ToTensor
    (timm's MaybeToTensor) + tensor-only steps; (None, None) for any other shape, which is never cached."""
    from torchvision import transforms as T

    steps = list(getattr(transform, "transforms", []))
    cut = [i for i, t in enumerate(steps) if type(t).__name__ in ("ToTensor", "MaybeToTensor")]
    if len(cut) != 1 or not all(isinstance(t, (T.Normalize,)) for t in steps[cut[0] + 1 :]):
        return None, None
    return T.Compose(steps[: cut[0]]), T.Compose(steps[cut[0] + 1 :])


Step = tuple[Callable[[torch.Tensor], torch.Tensor], list[nn.Parameter]]  # one call of forward_features, its params


def feature_chain(model: nn.Module) -> list[Step] | None:
    """`model.forward_features` as a flat chain of calls, each with the parameters it uses, for the timm
    classes whose forward_features is exactly such a chain (read off timm 1.0's source; the encoder
    contract test checks it for every registered encoder). None for any other class, subclasses
    included (they may override forward_features); `forward_head` is never split, the top always runs it."""
    from timm.models.convnext import ConvNeXt
    from timm.models.efficientnet import EfficientNet
    from timm.models.mobilenetv3 import MobileNetV3
    from timm.models.resnet import ResNet
    from timm.models.swin_transformer import SwinTransformer
    from timm.models.vision_transformer import VisionTransformer

    m: Any = model
    names: list[str]
    if type(m) is ResNet:
        names = ["conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    elif type(m) is EfficientNet:
        names = ["conv_stem", "bn1", *(f"blocks.{i}" for i in range(len(m.blocks))), "conv_head", "bn2"]
    elif type(m) is MobileNetV3:
        names = ["conv_stem", "bn1", *(f"blocks.{i}" for i in range(len(m.blocks)))]
    elif type(m) is ConvNeXt:
        names = ["stem", *(f"stages.{i}" for i in range(len(m.stages))), "norm_pre"]
    elif type(m) is SwinTransformer:
        names = ["patch_embed", *(f"layers.{i}" for i in range(len(m.layers))), "norm"]
    elif type(m) is VisionTransformer:  # forward_features without attn_mask / is_causal
        chain: list[Step] = [(m.patch_embed, list(m.patch_embed.parameters()))]
        loose = [p for p in (m.cls_token, m.reg_token, m.pos_embed) if isinstance(p, nn.Parameter)]
        chain.append((m._pos_embed, loose + list(m.pos_drop.parameters())))
        names = ["patch_drop", "norm_pre", *(f"blocks.{i}" for i in range(len(m.blocks))), "norm"]
        return chain + [(m.get_submodule(n), list(m.get_submodule(n).parameters())) for n in names]
    else:
        return None
    return [(m.get_submodule(n), list(m.get_submodule(n).parameters())) for n in names]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file, never unpickling arbitrary objects."""
    if path.is_dir():
        for candidate in ("model.safetensors", "pytorch_model.bin", "model.pth"):
            if (path / candidate).is_file():
                path = path / candidate
                break
        else:
            raise FileNotFoundError(f"{path} holds no model.safetensors, pytorch_model.bin or model.pth")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def map_in_order(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a foreign checkpoint's tensors onto the model's by position, checking every shape."""
    target = model.state_dict()
    src = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    classifier = [k for k, _ in src if k.startswith(("_fc.", "fc.", "classifier.", "head."))]
    src = [(k, v) for k, v in src if k not in classifier] if len(src) > len(dst) else src
    if len(src) != len(dst):
        raise ValueError(f"checkpoint has {len(src)} tensors, the model {len(dst)}")
    mapped = {}
    for (sk, sv), dk in zip(src, dst, strict=False):
        if sv.shape != target[dk].shape:
            raise ValueError(f"tensor {sk} {tuple(sv.shape)} does not fit {dk} {tuple(target[dk].shape)}")
        mapped[dk] = sv
    return mapped


def load_into(model: nn.Module, state: dict[str, torch.Tensor], spec: EncoderSpec) -> None:
    """Load a checkpoint, dropping only the classifier head the encoder does not use."""
    own = model.state_dict()
    if spec.options.get("state_dict_layout") == "ordered" and not (set(state) & set(own)):
        state = map_in_order(state, model)
    classifier = model.pretrained_cfg.get("classifier", "head")
    prefixes = tuple(f"{c}." for c in ((classifier,) if isinstance(classifier, str) else classifier))
    state = {k: v for k, v in state.items() if not k.startswith(prefixes) or k in own}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint does not fit {spec.options['arch']}: {len(missing)} missing tensors "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}"
        )


def build(spec: EncoderSpec, pretrained: bool = True, weights: str | Path | None = None) -> TimmVisionEncoder:
    import timm

    model = timm.create_model(spec.options["arch"], pretrained=False, num_classes=0)
    source = wsrc.RANDOM
    if pretrained:

        def load_local(path: Path) -> None:
            load_into(model, read_state_dict(path), spec)

        def load_hub(hub_id: str, local_only: bool) -> None:
            from huggingface_hub import hf_hub_download

            errors = []
            for filename in ("model.safetensors", "pytorch_model.bin"):
                try:
                    file = hf_hub_download(hub_id, filename, local_files_only=local_only)
                except Exception as exc:
                    errors.append(exc)
                    continue
                load_into(model, read_state_dict(Path(file)), spec)
                return
            raise errors[0]

        _, source = wsrc.resolve(spec, weights, load_local, load_hub)
    if not isinstance(source, wsrc.WeightSource):  # pragma: no cover - defensive
        raise WeightsUnavailableError(f"encoder {spec.name!r}: no weight source")
    return TimmVisionEncoder(spec.name, model, source)
