"""Build a registered backbone with open_clip from a local checkpoint and encode images / texts.

Nothing is downloaded: the model is built from its architecture config (``pretrained=None``) and
the local weights are loaded into it, or, for hf-hub style models, from a local folder through
open_clip's ``local-dir:`` schema. Accepted checkpoint formats: a state dict, ``{"state_dict": ...}``
(``module.`` prefixes stripped), ``.safetensors``, TorchScript archives (OpenAI style) and, only
with ``RSR_ALLOW_UNSAFE_PICKLE=1``, whole-model pickles.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from rsretrieval.encoders.registry import BackboneSpec, CheckpointNotFoundError, resolve_checkpoint
from rsretrieval.encoders.text_trim import encode_text_trimmed

log = logging.getLogger(__name__)

MODEL_CONFIGS_DIR = Path(__file__).parent / "model_configs"
UNSAFE_PICKLE_ENV = "RSR_ALLOW_UNSAFE_PICKLE"
# keys a checkpoint may lack without leaving real weights at random init
_OPTIONAL_KEYS = ("logit_bias", "attn_mask", "position_ids")
_configs_registered = False


@dataclass
class LoadedBackbone:
    """A ready-to-use backbone: eval-mode model, eval transform, tokenizer and shapes."""

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    spec: BackboneSpec
    embed_dim: int
    image_size: int

    @property
    def device(self) -> torch.device:
        """Device the model parameters live on."""
        return next(self.model.parameters()).device


def ensure_model_configs() -> None:
    """Make the embedded architecture configs (``model_configs/*.json``, e.g. rs-tiny) known to open_clip."""
    global _configs_registered
    import open_clip

    names = {p.stem for p in MODEL_CONFIGS_DIR.glob("*.json")}
    if not _configs_registered or not names <= set(open_clip.list_models()):
        open_clip.add_model_config(MODEL_CONFIGS_DIR)
        _configs_registered = True


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())


def _unwrap(obj: Any) -> dict[str, torch.Tensor]:
    """State dict out of a loaded checkpoint object."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], (dict, torch.nn.Module)):
                return _unwrap(obj[key])
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"Checkpoint holds {type(obj).__name__}, not a state dict")
    return obj


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a plain state dict (``module.`` prefixes stripped)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path), device="cpu")
    elif _is_torchscript(path):
        sd = torch.jit.load(str(path), map_location="cpu").state_dict()
        for key in ("input_resolution", "context_length", "vocab_size"):
            sd.pop(key, None)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle.UnpicklingError for whole-model pickles
            if os.environ.get(UNSAFE_PICKLE_ENV) != "1":
                raise ValueError(
                    f"{path} is not a plain state dict (weights_only load failed: {e}). If it is a whole-model pickle "
                    f"you trust, set {UNSAFE_PICKLE_ENV}=1 to unpickle it (runs arbitrary code), or re-save it with "
                    "torch.save(model.state_dict(), ...).") from e
            log.warning("Unpickling %s with weights_only=False (%s=1)", path, UNSAFE_PICKLE_ENV)
            obj = torch.load(path, map_location="cpu", weights_only=False)
        sd = _unwrap(obj)
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``state_dict`` into an open_clip model with open_clip's format fixes; fail on missing weights."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed

    sd = convert_state_dict(model, dict(state_dict))
    if "positional_embedding" in sd and not hasattr(model, "positional_embedding"):
        sd = convert_to_custom_text_state_dict(sd)
    for key in ("logit_scale", "logit_bias"):
        param = getattr(model, key, None)
        if key in sd and param is not None and param.ndim != sd[key].ndim:
            sd[key] = sd[key].reshape(param.shape)
    resize_pos_embed(sd, model)
    resize_text_pos_embed(sd, model)
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:
        raise ValueError(f"{source} does not fit the architecture: {e}") from e
    missing = [k for k in missing if not k.endswith(_OPTIONAL_KEYS)]
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} weights of the architecture (wrong arch?), "
                         f"e.g. {missing[:5]}")
    unexpected = [k for k in unexpected if not k.endswith(_OPTIONAL_KEYS)]
    if unexpected:
        log.warning("%s: %d unexpected keys ignored, e.g. %s", source, len(unexpected), list(unexpected)[:5])


def _image_size(model: torch.nn.Module) -> int:
    size = getattr(model.visual, "image_size", None) or model.visual.preprocess_cfg["size"]
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _load_local_dir(spec: BackboneSpec, folder: Path, device: str) -> LoadedBackbone:
    """hf-hub style folder (open_clip_config.json + weights) through open_clip's ``local-dir:`` schema."""
    import open_clip
    from open_clip.factory import _find_checkpoint_in_dir

    cfg_path = folder / "open_clip_config.json"
    if not cfg_path.is_file():
        raise CheckpointNotFoundError(f"Backbone {spec.name!r}: {str(folder)!r} has no open_clip_config.json "
                                      f"(download the hf-hub repo {spec.source_url or ''} into it)")
    if _find_checkpoint_in_dir(folder) is None:
        raise CheckpointNotFoundError(f"Backbone {spec.name!r}: no open_clip_pytorch_model.bin/.safetensors in "
                                      f"{str(folder)!r} (download it from {spec.source_url or 'the model repo'})")
    model_cfg = json.loads(cfg_path.read_text(encoding="utf-8"))["model_cfg"]
    kwargs: dict[str, Any] = {}
    text_cfg = dict(model_cfg.get("text_cfg", {}))
    if "hf_model_name" in text_cfg:
        # HF text tower: build it from the folder's transformers config.json, never from the hub
        if (folder / "config.json").is_file():
            text_cfg["hf_model_name"] = str(folder)
        text_cfg["hf_model_pretrained"] = False
        kwargs["text_cfg"] = text_cfg
    name = f"local-dir:{folder}"
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, force_quick_gelu=spec.force_quick_gelu, device="cpu", **kwargs)
        tokenizer = open_clip.get_tokenizer(name)
    except OSError as e:  # transformers could not find config / tokenizer files offline
        raise CheckpointNotFoundError(
            f"Backbone {spec.name!r}: could not build the text tower / tokenizer offline from {str(folder)!r}: {e}. "
            "Put the HF text model's config.json and tokenizer files into that folder.") from e
    model = model.to(device).eval()
    return LoadedBackbone(model, preprocess, tokenizer, spec, int(model_cfg["embed_dim"]), _image_size(model))


def load_backbone(spec: BackboneSpec, checkpoint: Path | None, device: str = "cpu") -> LoadedBackbone:
    """Build ``spec`` with open_clip and load its local weights (no download, eval mode).

    ``checkpoint`` is a weights file, or a folder for hf-hub style specs; None looks in
    ``$RSR_CHECKPOINT_DIR`` (raising CheckpointNotFoundError when absent).
    """
    import open_clip

    ensure_model_configs()
    if checkpoint is None:
        checkpoint = resolve_checkpoint(spec, None, None)
    checkpoint = Path(checkpoint).expanduser()
    if not checkpoint.exists():
        checkpoint = resolve_checkpoint(spec, None, checkpoint)  # raises with the full message
    if checkpoint.is_dir():
        if spec.hf_hub_dir or (checkpoint / "open_clip_config.json").is_file() or not spec.checkpoint_file:
            return _load_local_dir(spec, checkpoint, device)
        checkpoint = resolve_checkpoint(spec, checkpoint, None)
    model_cfg = open_clip.get_model_config(spec.arch)
    if model_cfg is None:
        raise ValueError(f"Backbone {spec.name!r}: open_clip has no architecture {spec.arch!r}")
    model, _, preprocess = open_clip.create_model_and_transforms(
        spec.arch, pretrained=None, force_quick_gelu=spec.force_quick_gelu, device="cpu")
    load_weights(model, read_state_dict(checkpoint), source=str(checkpoint))
    if spec.tokenizer == "hf-hub-dir":
        tokenizer = open_clip.get_tokenizer(f"local-dir:{checkpoint.parent}")
    else:
        tokenizer = open_clip.get_tokenizer(spec.tokenizer_name)
    model = model.to(device).eval()
    return LoadedBackbone(model, preprocess, tokenizer, spec, int(model_cfg["embed_dim"]), _image_size(model))


def _normalised(features: torch.Tensor) -> np.ndarray:
    return F.normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)


def encode_images(loaded: LoadedBackbone, pixel_batch: torch.Tensor | np.ndarray) -> np.ndarray:
    """L2-normalised float32 image embeddings of preprocessed pixels (N, 3, H, W) -> (N, D)."""
    pixels = torch.as_tensor(pixel_batch)
    if pixels.ndim == 3:
        pixels = pixels.unsqueeze(0)
    if pixels.shape[0] == 0:
        return np.zeros((0, loaded.embed_dim), np.float32)
    with torch.inference_mode():
        return _normalised(loaded.model.encode_image(pixels.to(loaded.device, torch.float32)))


def encode_texts(loaded: LoadedBackbone, texts: list[str]) -> np.ndarray:
    """L2-normalised float32 text embeddings -> (N, D)."""
    if len(texts) == 0:
        return np.zeros((0, loaded.embed_dim), np.float32)
    with torch.inference_mode():
        tokens = loaded.tokenizer(list(texts))
        return _normalised(encode_text_trimmed(loaded.model, tokens.to(loaded.device)))
