"""Fusion heads: turn a text EncoderOutput and an image EncoderOutput into class logits.

Every head is differentiable end to end, so one cross-entropy loss reaches both encoders.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from jftzoo.encoders.base import EncoderOutput


@dataclass
class HeadConfig:
    """Sizes shared by every head (`attention-paper` keeps the released sizes and ignores them)."""

    n_classes: int
    text_dim: int  # pooled text size D_t
    vision_dim: int  # pooled image size D_v
    text_token_dim: int = 0  # per-token sizes, for heads that read tokens
    vision_token_dim: int = 0
    d: int = 256  # common projection size
    n_heads: int = 4
    hidden: int = 256  # classifier hidden size
    dropout: float = 0.1
    layers: int = 1  # transformer layers in attention heads


def _fill_missing_hook(head: FusionHead, args: tuple) -> tuple:  # type: ignore[type-arg]
    """Forward pre-hook of every FusionHead: absent modalities become the learned "missing" embedding."""
    if len(args) != 2:
        return args
    return head.fill_missing(*args)


def classifier(in_dim: int, cfg: HeadConfig) -> nn.Sequential:
    """The paper's classifier: Dropout, Linear, ReLU, Dropout, Linear."""
    return nn.Sequential(
        nn.Dropout(cfg.dropout), nn.Linear(in_dim, cfg.hidden), nn.ReLU(),
        nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.n_classes),
    )


def projection(in_dim: int, cfg: HeadConfig) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, cfg.d), nn.ReLU())


class FusionHead(nn.Module):
    """Base class. `modalities` tells the trainer which encoders it needs; `uses_tokens` whether
    it reads token sequences (and so cannot run on cached pooled embeddings alone)."""

    modalities: tuple[str, ...] = ("text", "vision")
    uses_tokens: bool = False

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # A post without text (or image) is read as a learned "missing" vector in the encoder's output space:
        # zero at the start (what an absent input meant before it was learned), trained by posts that lack
        # the modality and by modality dropout. Token heads also get one "missing" token, the only real
        # position of an absent sequence (never an empty attention row). A forward pre-hook puts them in
        # place, so every subclass, a plugin's included, handles absent modalities without code of its own.
        sizes = {"text": (cfg.text_dim, cfg.text_token_dim), "vision": (cfg.vision_dim, cfg.vision_token_dim)}
        for modality in self.modalities:
            pooled, token = sizes[modality]
            self.register_parameter(f"missing_{modality}", nn.Parameter(torch.zeros(pooled)))
            if self.uses_tokens:
                self.register_parameter(f"missing_{modality}_token", nn.Parameter(torch.zeros(token)))
        self.register_forward_pre_hook(_fill_missing_hook)

    def fill_missing(self, text: EncoderOutput | None,
                     image: EncoderOutput | None) -> tuple[EncoderOutput | None, EncoderOutput | None]:
        """`text` and `image` with the learned "missing" embedding in the rows of absent posts
        (`EncoderOutput.present`); applied before every forward, and idempotent."""
        return self._filled(text, "text"), self._filled(image, "vision")

    def _filled(self, out: EncoderOutput | None, modality: str) -> EncoderOutput | None:
        if out is None or modality not in self.modalities:
            return out
        missing = getattr(self, f"missing_{modality}")  # (D,)
        # While it trains, the embedding joins every forward (with zero gradient where no post is absent), so
        # data-parallel processes agree on which parameters were used; otherwise complete batches skip it.
        touch = self.training and missing.requires_grad and torch.is_grad_enabled()
        if out.present is None and not touch:
            return out
        b = out.pooled.shape[0]
        absent = ~out.present.to(out.pooled.device) if out.present is not None else \
            torch.zeros(b, dtype=torch.bool, device=out.pooled.device)  # (B,)
        if not touch and not bool(absent.any()):
            return out
        pooled = torch.where(absent[:, None], missing.to(out.pooled.dtype), out.pooled)  # (B, D)
        tokens, mask = out.tokens, out.mask
        if self.uses_tokens:
            b, n, dt = tokens.shape
            if n == 0:  # every item of the batch absent: one position to hold the missing token
                tokens, mask = tokens.new_zeros(b, 1, dt), mask.new_zeros(b, 1)
            token = getattr(self, f"missing_{modality}_token").to(tokens.dtype)  # (Dt,)
            first = torch.zeros_like(mask)  # (B, N)
            first[:, 0] = True
            tokens = torch.where((absent[:, None] & first)[..., None], token, tokens)  # (B, N, Dt)
            tokens = torch.where(absent[:, None, None], tokens * first[..., None], tokens)
            mask = torch.where(absent[:, None], first, mask)  # an absent sequence: the missing token alone
        return EncoderOutput(pooled, tokens, mask, ~absent)

    def forward(self, text: EncoderOutput | None, image: EncoderOutput | None) -> torch.Tensor:  # type: ignore[override]
        raise NotImplementedError

    def modality_weights(self, text: EncoderOutput | None, image: EncoderOutput | None) -> torch.Tensor | None:
        """(B, 2) how much this head itself weighs text and image for each item (rows sum to 1), for
        heads that weigh modalities (gates, attention); None for the rest. `jftzoo explain` shows them
        beside the Shapley shares: a weight is what the head reads, not what changes its answer."""
        return None


class ConcatHead(FusionHead):
    """Concatenation + feed-forward: the paper's 'ResNet+DistilBERT' baseline."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__(cfg)
        self.text_proj = projection(cfg.text_dim, cfg)
        self.image_proj = projection(cfg.vision_dim, cfg)
        self.classifier = classifier(2 * cfg.d, cfg)

    def forward(self, text, image):  # type: ignore[no-untyped-def, override]
        fused = torch.cat([self.text_proj(text.pooled), self.image_proj(image.pooled)], dim=-1)  # (B, 2d)
        return self.classifier(fused)  # (B, C)


class PaperAttentionHead(FusionHead):
    """The paper's released attention head, layer for layer, so its figures can be reproduced.

    Each modality's pooled vector -> Linear(32) + ReLU; the two are concatenated into ONE 64-d token;
    one `nn.TransformerEncoderLayer(d_model=64, nhead=8, dim_feedforward=2048, dropout=0.4)` (post-norm,
    ReLU, as released); then Dropout(0.5) -> Linear(64, 128) -> ReLU -> Dropout(0.5) -> Linear(128, C).
    The sizes are the released ones (class constants): HeadConfig's `d`, `hidden`, `dropout`,
    `n_heads` and `layers` are ignored. The sequence has length 1, so the attention weights are
    always 1 and the attention block is out_proj(v_proj(x)): nothing is attended across modalities
    (the `attention` head is the version where attention mixes them). The released code reads
    DistilBERT's first-token state as the text vector; that is the text encoder's pooling
    (`distilbert` pools "cls"), not this head's business. The released training recipe (AdamW with one
    learning rate, 3e-5, ExponentialLR(0.9) per epoch, at least 3 epochs) is this head's `train_preset`.
    """

    PROJ = 32  # per-modality projection
    D_MODEL = PROJ * 2  # the one token: [text; image]
    N_HEADS = 8
    FEEDFORWARD = 2048  # nn.TransformerEncoderLayer's default
    ATTN_DROPOUT = 0.4
    HIDDEN = 128
    DROPOUT = 0.5

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__(cfg)
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, self.PROJ), nn.ReLU())
        self.image_proj = nn.Sequential(nn.Linear(cfg.vision_dim, self.PROJ), nn.ReLU())
        self.encoder = nn.TransformerEncoderLayer(self.D_MODEL, self.N_HEADS, self.FEEDFORWARD, self.ATTN_DROPOUT,
                                                  batch_first=True)
        self.classifier = nn.Sequential(
            nn.Dropout(self.DROPOUT), nn.Linear(self.D_MODEL, self.HIDDEN), nn.ReLU(),
            nn.Dropout(self.DROPOUT), nn.Linear(self.HIDDEN, cfg.n_classes),
        )

    def forward(self, text, image):  # type: ignore[no-untyped-def, override]
        token = torch.cat([self.text_proj(text.pooled), self.image_proj(image.pooled)], dim=-1)  # (B, 64)
        fused = self.encoder(token.unsqueeze(1)).squeeze(1)  # (B, 1, 64) -> (B, 64)
        return self.classifier(fused)  # (B, C)


class AttentionHead(ConcatHead):
    """The two projected modality vectors as a sequence of 2 tokens, so attention really mixes them."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__(cfg)
        self.modality_embed = nn.Parameter(torch.zeros(2, cfg.d))
        layer = nn.TransformerEncoderLayer(cfg.d, cfg.n_heads, 4 * cfg.d, cfg.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)

    def _tokens(self, text: EncoderOutput, image: EncoderOutput) -> torch.Tensor:
        seq = torch.stack([self.text_proj(text.pooled), self.image_proj(image.pooled)], dim=1)  # (B, 2, d)
        return seq + self.modality_embed

    def forward(self, text, image):  # type: ignore[no-untyped-def, override]
        seq = self.encoder(self._tokens(text, image))  # (B, 2, d)
        return self.classifier(seq.flatten(1))  # (B, 2d) -> (B, C)

    def modality_weights(self, text, image):  # type: ignore[no-untyped-def, override]
        """The first layer's attention to the text and image tokens, averaged over heads and both queries."""
        text, image = self.fill_missing(text, image)
        seq = self._tokens(text, image)
        layer = self.encoder.layers[0]
        x = layer.norm1(seq) if layer.norm_first else seq
        _, attn = layer.self_attn(x, x, x, need_weights=True, average_attn_weights=True)  # (B, 2, 2)
        return attn.mean(1)  # (B, 2): text, image


class CrossAttentionHead(FusionHead):
    """A small transformer over [CLS_fuse; text tokens; image tokens] with padding masks."""

    uses_tokens = True

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__(cfg)
        self.text_proj = nn.Linear(cfg.text_token_dim, cfg.d)
        self.image_proj = nn.Linear(cfg.vision_token_dim, cfg.d)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d))
        self.type_embed = nn.Parameter(torch.zeros(3, cfg.d))  # cls, text, image
        nn.init.normal_(self.cls, std=0.02)
        nn.init.normal_(self.type_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.d, cfg.n_heads, 4 * cfg.d, cfg.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.classifier = classifier(cfg.d, cfg)

    def _sequence(self, text: EncoderOutput, image: EncoderOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """[CLS_fuse; text tokens; image tokens] (B, 1 + Nt + Nv, d) and which positions are real."""
        b = text.tokens.shape[0]
        t = self.text_proj(text.tokens) + self.type_embed[1]  # (B, Nt, d)
        v = self.image_proj(image.tokens) + self.type_embed[2]  # (B, Nv, d)
        cls = self.cls.expand(b, 1, -1) + self.type_embed[0]  # (B, 1, d)
        seq = torch.cat([cls, t, v], dim=1)  # (B, 1 + Nt + Nv, d)
        keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=seq.device), text.mask, image.mask], dim=1)
        return seq, keep

    def forward(self, text, image):  # type: ignore[no-untyped-def, override]
        seq, keep = self._sequence(text, image)
        out = self.encoder(seq, src_key_padding_mask=~keep)  # (B, 1 + Nt + Nv, d)
        return self.classifier(out[:, 0])  # (B, C)

    def modality_weights(self, text, image):  # type: ignore[no-untyped-def, override]
        """The first layer's attention from the fusion token to all text tokens vs all image tokens
        (averaged over heads), renormalised without the fusion token's attention to itself."""
        text, image = self.fill_missing(text, image)
        nt = text.tokens.shape[1]
        seq, keep = self._sequence(text, image)
        layer = self.encoder.layers[0]
        x = layer.norm1(seq) if layer.norm_first else seq
        _, attn = layer.self_attn(x[:, :1], x, x, key_padding_mask=~keep, need_weights=True)  # (B, 1, 1 + Nt + Nv)
        mass = torch.stack([attn[:, 0, 1:1 + nt].sum(-1), attn[:, 0, 1 + nt:].sum(-1)], dim=-1)  # (B, 2)
        return mass / mass.sum(-1, keepdim=True).clamp(min=1e-12)


class GatedHead(FusionHead):
    """A learned per-sample weight for each modality; `last_weights` (B, 2) says how much each counted."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__(cfg)
        self.text_proj = projection(cfg.text_dim, cfg)
        self.image_proj = projection(cfg.vision_dim, cfg)
        self.gate = nn.Linear(2 * cfg.d, 2)
        self.classifier = classifier(cfg.d, cfg)
        self.last_weights: torch.Tensor | None = None

    def _gated(self, text: EncoderOutput, image: EncoderOutput) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t, v = self.text_proj(text.pooled), self.image_proj(image.pooled)  # (B, d) each
        return t, v, self.gate(torch.cat([t, v], dim=-1)).softmax(-1)  # (B, 2): text, image

    def forward(self, text, image):  # type: ignore[no-untyped-def, override]
        t, v, w = self._gated(text, image)
        self.last_weights = w.detach()
        fused = w[:, :1] * t + w[:, 1:] * v  # (B, d)
        return self.classifier(fused)

    def modality_weights(self, text, image):  # type: ignore[no-untyped-def, override]
        text, image = self.fill_missing(text, image)
        return self._gated(text, image)[2]


class LateFusionHead(FusionHead):
    """Average of two unimodal classifiers' logits."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__(cfg)
        self.text_head = nn.Sequential(projection(cfg.text_dim, cfg), classifier(cfg.d, cfg))
        self.image_head = nn.Sequential(projection(cfg.vision_dim, cfg), classifier(cfg.d, cfg))

    def forward(self, text, image):  # type: ignore[no-untyped-def, override]
        return (self.text_head(text.pooled) + self.image_head(image.pooled)) / 2  # (B, C)


class TextOnlyHead(FusionHead):
    """Unimodal baseline: the image encoder is not used at all."""

    modalities = ("text",)

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__(cfg)
        self.head = nn.Sequential(projection(cfg.text_dim, cfg), classifier(cfg.d, cfg))

    def forward(self, text, image):  # type: ignore[no-untyped-def, override]
        return self.head(text.pooled)


class ImageOnlyHead(FusionHead):
    """Unimodal baseline: the text encoder is not used at all."""

    modalities = ("vision",)

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__(cfg)
        self.head = nn.Sequential(projection(cfg.vision_dim, cfg), classifier(cfg.d, cfg))

    def forward(self, text, image):  # type: ignore[no-untyped-def, override]
        return self.head(image.pooled)
