"""Backbone registry and loader: specs as data, checkpoint resolution, offline loading with tiny models."""

from __future__ import annotations

import json
from typing import Any
from pathlib import Path

import numpy as np
import pytest

from rsretrieval.encoders import registry
from rsretrieval.encoders.registry import (
    BackboneSpec,
    CheckpointNotFoundError,
    get_backbone_spec,
    list_backbones,
    register_backbone,
    resolve_checkpoint,
)

REGISTERED = ["RemoteCLIP-ViT-B-32", "RemoteCLIP-ViT-L-14", "GeoRSCLIP-ViT-B-32", "GeoRSCLIP-ViT-L-14",
              "GeoRSCLIP-ViT-H-14", "RS-M-CLIP", "rs-tiny"]
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TEXTS = ["a harbour with many boats", "two tennis courts next to a road"]


@pytest.fixture(autouse=True)
def _no_env_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(registry.CHECKPOINT_DIR_ENV, raising=False)


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny open_clip architecture registered from a JSON file in a temp dir."""
    import open_clip

    d = tmp_path_factory.mktemp("arch")
    (d / "rsr-test-tiny.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(d / "rsr-test-tiny.json")
    return "rsr-test-tiny"


def _tiny_model(arch: str, quick_gelu: bool, seed: int = 0):
    import open_clip
    import torch

    torch.manual_seed(seed)
    model, _, _ = open_clip.create_model_and_transforms(arch, force_quick_gelu=quick_gelu)
    return model.eval()


def _reference(model) -> tuple[np.ndarray, np.ndarray, Any]:
    import open_clip
    import torch

    torch.manual_seed(1)
    pixels = torch.randn(3, 3, 32, 32)
    tok = open_clip.get_tokenizer("rsr-test-tiny")
    with torch.inference_mode():
        img = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy()
        txt = torch.nn.functional.normalize(model.encode_text(tok(TEXTS)), dim=-1).numpy()
    return img, txt, pixels


def _spec(arch: str, quick_gelu: bool, name: str = "test-tiny") -> BackboneSpec:
    return BackboneSpec(name=name, family="open_clip", arch=arch, force_quick_gelu=quick_gelu,
                        checkpoint_file="tiny.pt", tokenizer=arch)


def test_registered_specs_parse_and_are_listed() -> None:
    for path in sorted(registry.BACKBONES_DIR.glob("*.json")):
        spec = BackboneSpec.model_validate_json(path.read_text())
        assert path.stem == spec.name
    names = list_backbones()
    for name in REGISTERED:
        assert name in names
        spec = get_backbone_spec(name)
        assert spec.family in ("remoteclip", "georsclip", "rs-m-clip", "embedded")
        assert spec.notes
    # OpenAI-CLIP-derived weights need QuickGELU, LAION-derived ones must not get it
    assert get_backbone_spec("RemoteCLIP-ViT-B-32").force_quick_gelu
    assert get_backbone_spec("RemoteCLIP-ViT-L-14").force_quick_gelu
    assert get_backbone_spec("GeoRSCLIP-ViT-B-32").force_quick_gelu
    assert not get_backbone_spec("GeoRSCLIP-ViT-H-14").force_quick_gelu
    assert get_backbone_spec("RS-M-CLIP").hf_hub_dir == "RS-M-CLIP"
    assert all(f.description for f in BackboneSpec.model_fields.values())


def test_generic_and_user_specs(tmp_path: Path) -> None:
    spec = get_backbone_spec("open_clip:ViT-B-16")
    assert (spec.arch, spec.family, spec.force_quick_gelu) == ("ViT-B-16", "open_clip", False)
    assert get_backbone_spec("open_clip:ViT-B-32-quickgelu").force_quick_gelu
    with pytest.raises(KeyError, match="Registered"):
        get_backbone_spec("no-such-backbone")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "my-rs-clip", "family": "open_clip", "arch": "ViT-B-16",
                                "checkpoint_file": "mine.pt", "source_url": "https://example.org/mine"}))
    try:
        assert register_backbone(path).name == "my-rs-clip"
        assert "my-rs-clip" in list_backbones()
        assert get_backbone_spec("my-rs-clip").checkpoint_file == "mine.pt"
    finally:
        registry.unregister_backbone("my-rs-clip")


def test_missing_checkpoint_message_names_file_dir_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = get_backbone_spec("RemoteCLIP-ViT-B-32")
    with pytest.raises(CheckpointNotFoundError) as e:
        resolve_checkpoint(spec, tmp_path, None)
    msg = str(e.value)
    assert "RemoteCLIP-ViT-B-32.pt" in msg and str(tmp_path) in msg and spec.source_url in msg
    assert "backbones[].checkpoint" in msg
    with pytest.raises(CheckpointNotFoundError, match="RSR_CHECKPOINT_DIR"):
        resolve_checkpoint(get_backbone_spec("GeoRSCLIP-ViT-H-14"), None, None)
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        resolve_checkpoint(spec, None, tmp_path / "nope.pt")
    with pytest.raises(CheckpointNotFoundError, match=r"backbones\[\]\.checkpoint"):
        resolve_checkpoint(get_backbone_spec("open_clip:ViT-B-16"), tmp_path, None)
    (tmp_path / "RemoteCLIP-ViT-B-32.pt").write_bytes(b"x")
    assert resolve_checkpoint(spec, tmp_path, None) == tmp_path / "RemoteCLIP-ViT-B-32.pt"
    monkeypatch.setenv(registry.CHECKPOINT_DIR_ENV, str(tmp_path))
    assert resolve_checkpoint(spec, None, None) == tmp_path / "RemoteCLIP-ViT-B-32.pt"


def test_tiny_checkpoint_roundtrip(tiny_arch: str, tmp_path: Path) -> None:
    import torch

    from rsretrieval.encoders.loader import encode_images, encode_texts, load_backbone

    model = _tiny_model(tiny_arch, quick_gelu=False)
    img_ref, txt_ref, pixels = _reference(model)
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    loaded = load_backbone(_spec(tiny_arch, False), tmp_path / "tiny.pt")
    assert not loaded.model.training
    assert (loaded.embed_dim, loaded.image_size) == (32, 32)
    img, txt = encode_images(loaded, pixels), encode_texts(loaded, TEXTS)
    assert img.dtype == np.float32 and img.shape == (3, 32) and txt.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(img, img_ref, atol=1e-5)
    np.testing.assert_allclose(txt, txt_ref, atol=1e-5)
    assert loaded.preprocess.__class__.__name__ == "Compose"
    # a checkpoint directory holding the expected file name works too
    again = load_backbone(_spec(tiny_arch, False), tmp_path)
    np.testing.assert_allclose(encode_texts(again, TEXTS), txt_ref, atol=1e-5)


def test_quick_gelu_flag_matters(tiny_arch: str, tmp_path: Path) -> None:
    import torch

    from rsretrieval.encoders.loader import encode_images, encode_texts, load_backbone

    model = _tiny_model(tiny_arch, quick_gelu=True, seed=3)
    img_ref, txt_ref, pixels = _reference(model)
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    right = load_backbone(_spec(tiny_arch, True), tmp_path / "tiny.pt")
    np.testing.assert_allclose(encode_images(right, pixels), img_ref, atol=1e-5)
    np.testing.assert_allclose(encode_texts(right, TEXTS), txt_ref, atol=1e-5)
    wrong = load_backbone(_spec(tiny_arch, False), tmp_path / "tiny.pt")  # loads silently...
    assert np.abs(encode_images(wrong, pixels) - img_ref).max() > 1e-3  # ...but embeds differently
    assert np.abs(encode_texts(wrong, TEXTS) - txt_ref).max() > 1e-3


def test_wrapped_module_prefixed_checkpoint(tiny_arch: str, tmp_path: Path) -> None:
    import torch

    from rsretrieval.encoders.loader import encode_texts, load_backbone

    model = _tiny_model(tiny_arch, quick_gelu=False, seed=5)
    _, txt_ref, _ = _reference(model)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "tiny.pt")
    loaded = load_backbone(_spec(tiny_arch, False), tmp_path / "tiny.pt")
    np.testing.assert_allclose(encode_texts(loaded, TEXTS), txt_ref, atol=1e-5)


def test_wrong_arch_and_pickle_are_refused(tiny_arch: str, tmp_path: Path) -> None:
    import torch

    from rsretrieval.encoders.loader import load_backbone

    model = _tiny_model(tiny_arch, quick_gelu=False)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("visual.")}
    torch.save(sd, tmp_path / "tiny.pt")
    with pytest.raises(ValueError, match="lacks"):
        load_backbone(_spec(tiny_arch, False), tmp_path / "tiny.pt")
    torch.save(model, tmp_path / "tiny.pt")  # whole-model pickle
    with pytest.raises(ValueError, match="RSR_ALLOW_UNSAFE_PICKLE"):
        load_backbone(_spec(tiny_arch, False), tmp_path / "tiny.pt")


def test_local_dir_hf_hub_style(tiny_arch: str, tmp_path: Path) -> None:
    import torch

    from rsretrieval.encoders.loader import encode_images, encode_texts, load_backbone

    model = _tiny_model(tiny_arch, quick_gelu=False, seed=7)
    img_ref, txt_ref, pixels = _reference(model)
    folder = tmp_path / "tiny-hub"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": TINY_CFG, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    spec = BackboneSpec(name="tiny-hub", family="rs-m-clip", arch=tiny_arch, hf_hub_dir="tiny-hub",
                        tokenizer="hf-hub-dir")
    found = resolve_checkpoint(spec, tmp_path, None)
    assert found == folder
    loaded = load_backbone(spec, found)
    np.testing.assert_allclose(encode_images(loaded, pixels), img_ref, atol=1e-5)
    np.testing.assert_allclose(encode_texts(loaded, TEXTS), txt_ref, atol=1e-5)
    assert tuple(loaded.model.visual.preprocess_cfg["mean"]) == (0.5, 0.5, 0.5)
    (folder / "open_clip_pytorch_model.bin").unlink()
    with pytest.raises(CheckpointNotFoundError, match="open_clip_pytorch_model"):
        load_backbone(spec, folder)


def test_rs_tiny_config_registers_and_builds(tmp_path: Path) -> None:
    import open_clip
    import torch

    from rsretrieval.encoders.loader import encode_images, encode_texts, ensure_model_configs, load_backbone

    ensure_model_configs()
    assert "rs-tiny" in open_clip.list_models()
    model, _, _ = open_clip.create_model_and_transforms("rs-tiny")
    torch.save(model.state_dict(), tmp_path / "rs-tiny.pt")
    loaded = load_backbone(get_backbone_spec("rs-tiny"), tmp_path / "rs-tiny.pt")
    assert (loaded.embed_dim, loaded.image_size) == (128, 64)
    assert encode_images(loaded, torch.zeros(2, 3, 64, 64)).shape == (2, 128)
    assert encode_texts(loaded, TEXTS).shape == (2, 128)
    with pytest.raises(CheckpointNotFoundError, match="trained by the benchmark"):
        load_backbone(get_backbone_spec("rs-tiny"), None)


def test_encoders_package_import_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, rsretrieval.encoders.registry as r; r.list_backbones(); "
            "print([m for m in ('torch', 'open_clip') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_local_dir_with_hf_text_tower_is_offline(tmp_path: Path) -> None:
    """RS-M-CLIP-like folder: config names 'xlm-roberta-base'; the loader builds it from the folder only."""
    pytest.importorskip("transformers")
    import open_clip
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

    from rsretrieval.encoders.loader import encode_texts, load_backbone

    folder = tmp_path / "RS-M-CLIP"
    folder.mkdir()
    XLMRobertaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=96).save_pretrained(folder)
    words = ["<s>", "<pad>", "</s>", "<unk>"] + sorted({w for t in TEXTS for w in t.split()})
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(folder)
    text_cfg = {"hf_model_name": "xlm-roberta-base", "hf_tokenizer_name": "xlm-roberta-base",
                "hf_pooler_type": "mean_pooler", "context_length": 16}
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": {"embed_dim": 32, "vision_cfg": TINY_CFG["vision_cfg"], "text_cfg": text_cfg}}))
    torch.manual_seed(0)
    ref = open_clip.create_model(f"local-dir:{folder}", text_cfg={**text_cfg, "hf_model_name": str(folder),
                                                                  "hf_model_pretrained": False}).eval()
    tokens = open_clip.get_tokenizer(f"local-dir:{folder}")(TEXTS)
    with torch.inference_mode():
        txt_ref = torch.nn.functional.normalize(ref.encode_text(tokens), dim=-1).numpy()
    torch.save(ref.state_dict(), folder / "open_clip_pytorch_model.bin")
    loaded = load_backbone(get_backbone_spec("RS-M-CLIP"), folder)
    np.testing.assert_allclose(encode_texts(loaded, TEXTS), txt_ref, atol=1e-5)
