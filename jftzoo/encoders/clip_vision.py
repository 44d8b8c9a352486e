"""The image tower of CLIP (transformers), projected into CLIP's joint text-image space."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jftzoo import weights as wsrc
from jftzoo.encoders.base import Encoder, EncoderOutput, block_param_groups, groups_from_param_names
from jftzoo.encoders.hf_text import quiet_from_pretrained
from jftzoo.images import load_image
from jftzoo.registry import EncoderSpec


class CLIPVisionEncoder(Encoder):
    """pooled = CLIP image embedding (projection of the class token); tokens = patch states."""

    modality = "vision"

    def __init__(self, name: str, model: nn.Module, weight_source: wsrc.WeightSource, processor: Any) -> None:
        super().__init__(name, weight_source)
        self.model = model
        self.processor = processor
        self.embed_dim = int(model.config.projection_dim)
        self.token_dim = int(model.config.hidden_size)

    def preprocess(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        images = [load_image(item, i) for i, item in enumerate(items)]
        if not images:
            size = self.model.config.image_size
            return {"pixel_values": torch.empty(0, 3, size, size)}
        return {"pixel_values": self.processor(images=images, return_tensors="pt")["pixel_values"]}

    def preprocess_config(self) -> dict[str, Any]:
        return {"processor": self.processor.to_dict()}

    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:  # type: ignore[override]
        out = self.model(pixel_values=batch["pixel_values"])  # pixel_values (B, 3, 224, 224)
        tokens = out.last_hidden_state  # (B, 1 + patches, Dt)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)  # (B, N)
        return EncoderOutput(pooled=out.image_embeds, tokens=tokens, mask=mask)  # pooled (B, D)

    def layer_groups(self) -> list[list[nn.Module]]:
        names = block_param_groups(self.model, "vision_model.encoder.layers")
        return groups_from_param_names(self.model, names)

    # -- prefix / top split: [embeddings + pre-norm, layer 0, ..., layer L-1], then post-norm + projection --
    def supports_prefix(self) -> bool:
        from transformers import CLIPVisionModelWithProjection

        return type(self.model) is CLIPVisionModelWithProjection and _transformers_major() >= 5

    def _steps(self, k: int) -> int:
        if not self.supports_prefix():
            raise NotImplementedError(f"encoder {self.name!r}: {type(self.model).__name__} has no prefix/top split")
        vm = self.model.vision_model
        stem = [*vm.embeddings.parameters(), *vm.pre_layrnorm.parameters()]
        return self.prefix_steps([stem, *(list(b.parameters()) for b in vm.encoder.layers)], k)

    def prefix_forward(self, batch: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
        """{"hidden": (B, 1 + patches, Dt) states below the top k groups} (the pixels, under
        "pixel_values", when the embeddings train). No mask: every image has the same positions."""
        steps = self._steps(k)
        if steps == 0:
            return {"pixel_values": batch["pixel_values"]}
        vm = self.model.vision_model
        with self.eval_mode(), torch.no_grad():
            hidden = vm.pre_layrnorm(vm.embeddings(batch["pixel_values"]))  # (B, N, Dt)
            for layer in vm.encoder.layers[: steps - 1]:
                hidden = layer(hidden, None)  # (B, N, Dt)
        return {"hidden": hidden}

    def top_forward(self, prefix: dict[str, torch.Tensor], k: int) -> EncoderOutput:
        steps = self._steps(k)
        vm = self.model.vision_model
        raw = steps == 0
        hidden = vm.pre_layrnorm(vm.embeddings(prefix["pixel_values"])) if raw else prefix["hidden"]  # (B, N, Dt)
        for layer in vm.encoder.layers[max(steps - 1, 0) :]:
            hidden = layer(hidden, None)  # (B, N, Dt)
        pooled = self.model.visual_projection(vm.post_layernorm(hidden[:, 0]))  # (B, D)
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)  # (B, N)
        return EncoderOutput(pooled=pooled, tokens=hidden, mask=mask)


def _transformers_major() -> int:
    """The split mirrors transformers 5's CLIP forward (layers return a tensor, take the mask positionally)."""
    import transformers

    return int(transformers.__version__.split(".", 1)[0])


def build(spec: EncoderSpec, pretrained: bool = True, weights: str | Path | None = None) -> CLIPVisionEncoder:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    # The processor's defaults are OpenAI CLIP's (224 px, bicubic, CLIP mean/std): no files needed.
    processor = CLIPImageProcessor()
    if pretrained:

        def load_local(path: Path) -> nn.Module:
            return quiet_from_pretrained(CLIPVisionModelWithProjection, str(path), local_files_only=True)

        def load_hub(hub_id: str, local_only: bool) -> nn.Module:
            return quiet_from_pretrained(CLIPVisionModelWithProjection, hub_id, local_files_only=local_only)

        model, source = wsrc.resolve(spec, weights, load_local, load_hub)
    else:
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**spec.options.get("config", {})))
        source = wsrc.RANDOM
    return CLIPVisionEncoder(spec.name, model, source, processor)
