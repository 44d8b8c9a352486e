"""jftzoo-social: encoders for social-media sentiment (tweets and the images posted with them).

A jftzoo plugin: the ``jftzoo`` entry point names this module, and jftzoo calls its
`register_encoders` hook. Registering only describes the encoders (cheap `EncoderSpec` values with
``"module:function"`` factories), so importing this module never imports torch, transformers or timm.

``dim`` and ``params`` are the true sizes of the built encoders, measured with random weights
(``jftzoo.get_encoder(name, pretrained=False)``); the tests check them.
"""

from __future__ import annotations

from collections.abc import Callable

import jftzoo
from jftzoo import EncoderSpec

__version__ = "0.1.0"

HF_TEXT = "jftzoo.encoders.hf_text:build"  # jftzoo's generic transformers factory
TIMM = "jftzoo.encoders.timm_vision:build"  # jftzoo's generic timm factory
TIMM_SOCIAL = "jftzoo_social.vision:build"  # the same, plus option `img_size`

# RoBERTa-base sizes (cardiffnlp/twitter-roberta-base continues roberta-base's pre-training).
ROBERTA_BASE: dict[str, object] = {
    "vocab_size": 50265,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "layer_norm_eps": 1e-5,
}

# vinai/bertweet-base's config.json: RoBERTa-base layers with a 64k tweet BPE vocabulary and 128-token
# inputs (130 positions, two of them reserved by RoBERTa's padding offset).
BERTWEET_BASE: dict[str, object] = {
    "vocab_size": 64001,
    "max_position_embeddings": 130,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "layer_norm_eps": 1e-5,
}


def _timm(name: str, arch_tag: str, dim: int, params: int, license: str, pooling: str, description: str,
          aliases: tuple[str, ...], factory: str = TIMM, **options: object) -> EncoderSpec:
    """A timm backbone whose weights live on the hub as ``timm/<arch>.<tag>``, as jftzoo's built-ins."""
    return EncoderSpec(
        name=name,
        aliases=aliases,
        modality="vision",
        dim=dim,
        params=params,
        source=arch_tag,
        hub_id=f"timm/{arch_tag}",
        license=license,
        pooling=pooling,
        description=description,
        factory=factory,
        options={"arch": arch_tag.split(".", 1)[0], **options},
    )


def specs() -> list[EncoderSpec]:
    """Every encoder this plugin adds, in the order `jftzoo list-encoders` shows them."""
    return [
        EncoderSpec(
            name="bertweet",
            aliases=("bertweet-base",),
            modality="text",
            dim=768,
            params=134309376,
            source="vinai/bertweet-base",
            hub_id="vinai/bertweet-base",
            license="mit",
            pooling="cls",
            description="BERTweet base: RoBERTa pre-trained from scratch on 850M English tweets",
            factory=HF_TEXT,
            options={"model_type": "roberta", "config": BERTWEET_BASE, "pooling": "cls", "max_length": 128,
                     "no_pooler": True},
        ),
        EncoderSpec(
            name="twitter-roberta",
            aliases=("twitter-roberta-base",),
            modality="text",
            dim=768,
            params=124055040,
            source="cardiffnlp/twitter-roberta-base",
            hub_id="cardiffnlp/twitter-roberta-base",
            license="unknown",  # the model card declares none (roberta-base itself is MIT)
            pooling="cls",
            description="roberta-base with pre-training continued on 58M tweets (TweetEval, Cardiff NLP)",
            factory=HF_TEXT,
            options={"model_type": "roberta", "config": ROBERTA_BASE, "pooling": "cls", "max_length": 512,
                     "no_pooler": True},
        ),
        _timm("mobilenetv3", "mobilenetv3_large_100.ra_in1k", 1280, 4202032, "apache-2.0", "global average",
              "MobileNetV3-Large, ImageNet-1k: fast enough to fine-tune on a CPU",
              aliases=("mobilenetv3_large_100", "mobilenetv3-large")),
        _timm("swin-tiny", "swin_tiny_patch4_window7_224.ms_in1k", 768, 27519354, "mit", "global average",
              "Swin-T (shifted-window transformer), ImageNet-1k",
              aliases=("swin_tiny", "swin_tiny_patch4_window7_224")),
        _timm("dinov2-small", "vit_small_patch14_dinov2.lvd142m", 384, 21628800, "apache-2.0", "class token",
              "DINOv2 ViT-S/14 self-supervised features (LVD-142M), run at 224 px (257 tokens)",
              aliases=("dinov2_small", "vit_small_patch14_dinov2"), factory=TIMM_SOCIAL, img_size=224),
    ]


@jftzoo.hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Describe this plugin's encoders to jftzoo; nothing is built or imported here."""
    for spec in specs():
        register(spec)
