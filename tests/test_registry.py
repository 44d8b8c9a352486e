"""The registry and plugin system: names, wildcards, collisions, broken plugins, cheap listing."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import jftzoo
from jftzoo import EncoderSpec, hookimpl
from jftzoo.registry import JftzooPluginWarning, get_registry

BUILTIN_TEXT = {"distilbert", "bert", "roberta", "minilm", "mpnet", "clip-text"}
BUILTIN_VISION = {"resnet50", "resnet18", "convnext", "efficientnet_lite0", "vit", "clip-vision"}


def fake_spec(name: str, modality: str = "text") -> EncoderSpec:
    return EncoderSpec(name=name, modality=modality, dim=8, source=f"fake/{name}", factory="fake:build")  # type: ignore[arg-type]


def test_builtins_are_registered_through_the_hook():
    specs = {s.name: s for s in jftzoo.list_encoders()}
    assert set(specs) >= BUILTIN_TEXT | BUILTIN_VISION
    assert {s.name for s in jftzoo.list_encoders(modality="text")} == BUILTIN_TEXT
    assert {s.name for s in jftzoo.list_encoders(modality="vision")} == BUILTIN_VISION
    assert specs["distilbert"].provider == "jftzoo.default_plugins.text_encoders"
    assert specs["resnet50"].source == "resnet50.tv_in1k"
    assert specs["minilm"].packaged is not None and specs["efficientnet_lite0"].packaged is not None


def test_wildcards_and_aliases():
    assert {s.name for s in jftzoo.list_encoders("clip*")} == {"clip-text", "clip-vision"}
    assert {s.name for s in jftzoo.list_encoders("resnet*")} == {"resnet50", "resnet18"}
    assert [s.name for s in jftzoo.list_encoders("all-MiniLM-L6-v2")] == ["minilm"]
    assert {s.name for s in jftzoo.list_encoders(["bert", "vit"])} == {"bert", "vit"}
    assert jftzoo.list_encoders("nothing-like-this*") == []
    assert get_registry().get("DistilBERT-base-uncased").name == "distilbert"


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(jftzoo.UnknownEncoderError) as err:
        get_registry().get("distilbrt")
    assert err.value.suggestions[0] == "distilbert"
    assert "Did you mean 'distilbert'" in str(err.value)
    with pytest.raises(jftzoo.UsageError):
        jftzoo.list_encoders(modality="audio")


def test_listing_never_imports_heavy_libraries():
    code = (
        "import sys, jftzoo; specs = jftzoo.list_encoders(); [s.offline_source() for s in specs]; "
        "heavy = [m for m in ('torch', 'transformers', 'timm', 'huggingface_hub') if m in sys.modules]; "
        "print(heavy); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"JFTZOO_LOAD_PLUGINS": "", "PATH": ""})


def test_plugin_encoders_join_the_registry(register_plugin):
    class Plugin:
        @hookimpl
        def register_encoders(self, register):
            register(fake_spec("my-text"))
            register(fake_spec("my-vision", "vision"))

    register_plugin(Plugin(), "my-plugin")
    specs = {s.name: s for s in jftzoo.list_encoders("my-*")}
    assert set(specs) == {"my-text", "my-vision"}
    assert specs["my-text"].provider == "my-plugin"


def test_duplicate_name_first_wins_and_warning_names_both(register_plugin):
    class Plugin:
        @hookimpl
        def register_encoders(self, register):
            register(fake_spec("distilbert"))
            register(fake_spec("fresh-name"))

    register_plugin(Plugin(), "copycat")
    with pytest.warns(JftzooPluginWarning, match=r"'distilbert'.*jftzoo.default_plugins.text_encoders.*copycat"):
        reg = get_registry()
    assert reg.get("distilbert").provider == "jftzoo.default_plugins.text_encoders"
    assert reg.get("fresh-name").provider == "copycat"


def test_plugin_raising_in_its_hook_is_reported_and_skipped(register_plugin):
    class Broken:
        @hookimpl
        def register_encoders(self, register):
            register(fake_spec("half-registered"))
            raise RuntimeError("boom in hook")

    register_plugin(Broken(), "broken")
    with pytest.warns(JftzooPluginWarning, match="plugin 'broken' raised inside register_encoders.*boom in hook"):
        reg = get_registry()
    assert "half-registered" not in reg.names()  # a failing plugin registers nothing
    assert set(reg.names()) >= BUILTIN_TEXT


def test_invalid_spec_is_reported_not_registered(register_plugin):
    class Sloppy:
        @hookimpl
        def register_encoders(self, register):
            register(EncoderSpec(name="bad", modality="audio", dim=8, source="x", factory="m:f"))  # type: ignore[arg-type]
            register("not a spec")
            register(fake_spec("good"))

    register_plugin(Sloppy(), "sloppy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = get_registry()
    messages = [str(w.message) for w in caught if issubclass(w.category, JftzooPluginWarning)]
    assert any("modality 'audio'" in m for m in messages)
    assert any("takes an EncoderSpec" in m for m in messages)
    assert "good" in reg.names() and "bad" not in reg.names()


def test_get_encoder_rejects_weights_with_random_init():
    with pytest.raises(jftzoo.UsageError, match="pretrained=False"):
        jftzoo.get_encoder("minilm", pretrained=False, weights="/tmp/x")


def test_alias_collision_is_reported_and_the_rest_registers(register_plugin):
    class Plugin:
        @hookimpl
        def register_encoders(self, register):
            register(EncoderSpec(name="my-resnet", aliases=("resnet", "my-rn"), modality="vision", dim=8,
                                 source="x", factory="m:f"))

    register_plugin(Plugin(), "aliaser")
    with pytest.warns(JftzooPluginWarning, match=r"alias 'resnet' of encoder 'my-resnet'.*taken by 'resnet50'"):
        reg = get_registry()
    assert reg.get("resnet").name == "resnet50"
    assert reg.get("my-rn").name == "my-resnet"


def test_register_plugin_is_idempotent_and_refuses_a_different_holder(register_plugin):
    class Plugin:
        @hookimpl
        def register_encoders(self, register):
            register(fake_spec("once-only"))

    plugin = Plugin()
    register_plugin(plugin, "twice")
    register_plugin(plugin, "twice")
    assert [s.name for s in jftzoo.list_encoders("once-only")] == ["once-only"]
    with pytest.raises(ValueError, match="already registered as 'twice'"):
        register_plugin(Plugin(), "twice")
