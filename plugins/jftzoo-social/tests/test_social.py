"""Contract tests for the jftzoo-social plugin, with random weights (no hub needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import jftzoo_social
import pytest
import torch
from PIL import Image

import jftzoo
from jftzoo import plugins, registry
from jftzoo.encoders.base import Encoder

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
TEXT = ["bertweet", "twitter-roberta"]
VISION = ["mobilenetv3", "swin-tiny", "dinov2-small"]
# name -> (pooled dim, token dim, tokens per 224 px image)
VISION_SHAPES = {"mobilenetv3": (1280, 960, 49), "swin-tiny": (768, 768, 49), "dinov2-small": (384, 384, 257)}


@pytest.fixture(scope="module")
def social() -> Iterator[None]:
    """Register the plugin in-process (as an entry point would) and undo it afterwards."""
    plugins.load_plugins()
    already = plugins.pm.is_registered(jftzoo_social)  # e.g. loaded from its entry point outside pytest
    if not already:
        plugins.register_plugin(jftzoo_social, "social")
    registry.reset()
    yield
    if not already:
        plugins.unregister_plugin("social")
    registry.reset()


@pytest.fixture(scope="module")
def build(social: None) -> Callable[[str], Encoder]:
    """Each encoder built once per module with random weights (building BERT-size models takes seconds)."""
    cache: dict[str, Encoder] = {}

    def get(name: str) -> Encoder:
        if name not in cache:
            cache[name] = jftzoo.get_encoder(name, pretrained=False)
        return cache[name]

    return get


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registers_every_encoder(social: None) -> None:
    specs = {s.name: s for s in jftzoo.list_encoders()}
    for name in TEXT + VISION:
        assert name in specs, name
        assert specs[name].provider == "social"
        assert specs[name].params is not None
        assert specs[name].license != ""
    for name in TEXT:
        assert specs[name].modality == "text" and specs[name].dim == 768
    for name, (dim, _, _) in VISION_SHAPES.items():
        assert specs[name].modality == "vision" and specs[name].dim == dim
        assert specs[name].hub_id == f"timm/{specs[name].source}"
    assert {s.name for s in jftzoo.list_encoders("*", modality="vision")} >= set(VISION)
    assert [p for p in registry.get_registry().problems if p.plugin == "social"] == []


def test_aliases_resolve(social: None) -> None:
    assert registry.get_spec("BERTweet-base").name == "bertweet"
    assert registry.get_spec("swin_tiny_patch4_window7_224").name == "swin-tiny"
    assert registry.get_spec("vit_small_patch14_dinov2").name == "dinov2-small"


@pytest.mark.parametrize("name", TEXT)
def test_text_encoder_builds_and_runs(build: Callable[[str], Encoder], name: str) -> None:
    spec = registry.get_spec(name)
    enc = build(name)
    assert not enc.pretrained
    assert n_params(enc) == spec.params
    assert enc.embed_dim == spec.dim and enc.modality == "text"
    # Token ids straight to forward: the hub tokenizers are not available offline.
    ids = torch.tensor([[0, 713, 16, 372, 2, 1, 1], [0, 100, 657, 24, 328, 7, 2]])  # (B=2, N=7)
    mask = (ids != 1).long()
    out = enc({"input_ids": ids, "attention_mask": mask})
    assert out.pooled.shape == (2, spec.dim)
    assert out.tokens.shape == (2, 7, enc.token_dim)
    assert out.mask.shape == (2, 7) and out.mask.dtype == torch.bool
    assert out.mask.sum().item() == 12
    assert out.pooled.requires_grad and out.tokens.requires_grad  # differentiable, for fine-tuning
    assert len(enc.layer_groups()) == 13  # embeddings + 12 transformer layers


def test_bertweet_takes_its_full_length(build: Callable[[str], Encoder]) -> None:
    enc = build("bertweet")
    assert enc.max_length == 128
    ids = torch.randint(3, 64000, (1, 128))
    assert enc({"input_ids": ids, "attention_mask": torch.ones_like(ids)}).tokens.shape == (1, 128, 768)


@pytest.mark.parametrize("name", VISION)
def test_vision_encoder_builds_and_runs(build: Callable[[str], Encoder], name: str) -> None:
    spec = registry.get_spec(name)
    dim, token_dim, n_tokens = VISION_SHAPES[name]
    enc = build(name)
    assert n_params(enc) == spec.params
    assert enc.embed_dim == dim and enc.token_dim == token_dim and enc.modality == "vision"
    images = [Image.new("RGB", (320, 240), (200, 40, 90)), Image.new("RGB", (160, 300), (10, 120, 30))]
    batch = enc.preprocess(images)
    assert batch["pixel_values"].shape == (2, 3, 224, 224)
    out = enc(batch)
    assert out.pooled.shape == (2, dim)
    assert out.tokens.shape == (2, n_tokens, token_dim)  # swin: its NHWC map as 7x7 positions of 768
    assert out.mask.shape == (2, n_tokens) and out.mask.dtype == torch.bool and bool(out.mask.all())
    assert out.pooled.requires_grad and out.tokens.requires_grad  # differentiable, for fine-tuning
    groups = enc.layer_groups()
    assert len(groups) > 2
    grouped = {id(p) for group in groups for m in group for p in m.parameters()}
    assert grouped == {id(p) for p in enc.parameters()}  # every parameter can be (un)frozen


def test_embed_keeps_order(build: Callable[[str], Encoder]) -> None:
    enc = build("mobilenetv3")
    images = [Image.new("RGB", (64, 64), (i * 40, 0, 0)) for i in range(3)]
    emb = enc.embed(images, batch_size=2)
    assert emb.shape == (3, 1280)
    with torch.no_grad():
        single = enc(enc.preprocess(images[1:2])).pooled[0]
    torch.testing.assert_close(emb[1], single, atol=1e-4, rtol=1e-4)  # batched kernels differ slightly


def test_dinov2_loads_native_checkpoint_and_resamples(social: None, tmp_path: Path) -> None:
    """A 518 px checkpoint (the hub's layout) loads unchanged, then runs at 224 px."""
    import timm
    from safetensors.torch import save_file

    native = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    assert native.pos_embed.shape == (1, 1370, 384)
    file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in native.state_dict().items()}, str(file))
    enc = jftzoo.get_encoder("dinov2-small", weights=file)
    assert enc.pretrained and enc.weight_source.kind == "path"
    assert enc.model.pos_embed.shape == (1, 257, 384)
    assert torch.equal(enc.model.cls_token, native.cls_token)
    assert n_params(enc) == registry.get_spec("dinov2-small").params


def test_registration_is_import_free() -> None:
    """Loading the plugin (what `jftzoo list-encoders` does) must not import torch."""
    code = "import sys, jftzoo_social; jftzoo_social.specs(); print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_cli_lists_plugin_encoders() -> None:
    """End to end through the entry point: needs `pip install -e plugins/jftzoo-social`."""
    probe = "from importlib.metadata import distribution; distribution('jftzoo-social')"
    if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0:  # as the CLI sees it
        message = "jftzoo-social is not installed: pip install -e plugins/jftzoo-social --no-deps"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI installs it (README test command): a missing install is a failure
        pytest.skip(message)
    env = {**os.environ, plugins.LOAD_PLUGINS_ENV: "jftzoo-social", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "jftzoo", "list-encoders", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    for name in TEXT + VISION:
        assert name in rows, name
        assert rows[name]["provider"] == "social"
    assert rows["bertweet"]["modality"] == "text" and rows["bertweet"]["dim"] == 768
    assert rows["dinov2-small"]["modality"] == "vision" and rows["dinov2-small"]["dim"] == 384
    assert "distilbert" in rows  # built-ins are still there
    assert "social" not in proc.stderr  # no plugin warning
