"""Backbone registry, open_clip style "models as data".

Every registered backbone is one JSON file in ``backbones/`` parsed into a :class:`BackboneSpec`.
Users add their own with :func:`register_backbone`, and any open_clip architecture can be used
with a local checkpoint through the generic name ``open_clip:<arch>`` (e.g. ``open_clip:ViT-B-16``,
``open_clip:ViT-B-32-quickgelu``), the checkpoint then coming from ``backbones[].checkpoint``.

This module imports neither torch nor open_clip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BACKBONES_DIR = Path(__file__).parent / "backbones"
CHECKPOINT_DIR_ENV = "RSR_CHECKPOINT_DIR"
GENERIC_PREFIX = "open_clip:"

Family = Literal["remoteclip", "georsclip", "rs-m-clip", "open_clip", "embedded"]


class BackboneSpec(BaseModel):
    """How to build one backbone with open_clip and where its weights come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registry name, e.g. 'RemoteCLIP-ViT-B-32'")
    family: Family = Field(description="Model family: remoteclip, georsclip, rs-m-clip, open_clip (generic) or embedded")
    arch: str = Field(description="open_clip model (architecture config) name, e.g. 'ViT-B-32', 'ViT-L-14', 'ViT-H-14'")
    force_quick_gelu: bool = Field(
        False,
        description="Build with QuickGELU (like open_clip does for pretrained='openai'). Needed for weights that descend "
        "from OpenAI CLIP; a wrong activation loads without error but gives wrong embeddings",
    )
    checkpoint_file: str | None = Field(
        None, description="Expected checkpoint file name inside the checkpoint directory, e.g. 'RemoteCLIP-ViT-B-32.pt'"
    )
    hf_hub_dir: str | None = Field(
        None,
        description="For hf-hub style models: expected folder name inside the checkpoint directory holding "
        "open_clip_config.json + open_clip_pytorch_model.bin/.safetensors (loaded as 'local-dir:')",
    )
    tokenizer: str | None = Field(
        None, description="Name passed to open_clip.get_tokenizer, or 'hf-hub-dir' (tokenizer files in the hf_hub_dir); "
        "default: arch"
    )
    source_url: str = Field("", description="Where users download the weights")
    citation: str = Field("", description="Paper to cite for these weights")
    notes: str = Field("", description="Loading notes: activation, preprocessing, provenance")

    @property
    def tokenizer_name(self) -> str:
        """Tokenizer name for open_clip.get_tokenizer (falls back to arch)."""
        return self.tokenizer or self.arch

    @property
    def expected_name(self) -> str | None:
        """File (or folder) name the checkpoint directory must hold, if any."""
        return self.hf_hub_dir or self.checkpoint_file


class UnknownBackboneError(KeyError):
    """A backbone name that is not registered (a KeyError whose str() is the plain message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CheckpointNotFoundError(FileNotFoundError):
    """A backbone's weights are not where the configuration says; the message says what to put where."""


_USER_SPECS: dict[str, BackboneSpec] = {}
_BUILTIN: dict[str, BackboneSpec] | None = None


def _builtin_specs() -> dict[str, BackboneSpec]:
    global _BUILTIN
    if _BUILTIN is None:
        specs = {}
        for path in sorted(BACKBONES_DIR.glob("*.json")):
            spec = BackboneSpec.model_validate_json(path.read_text(encoding="utf-8"))
            specs[spec.name] = spec
        _BUILTIN = specs
    return _BUILTIN


def list_backbones() -> list[str]:
    """Names of all registered backbones (built-in and user-registered), sorted."""
    return sorted({**_builtin_specs(), **_USER_SPECS})


def generic_spec(arch: str) -> BackboneSpec:
    """Spec for any open_clip architecture with a user-supplied checkpoint (name ``open_clip:<arch>``)."""
    quick = arch.endswith("-quickgelu")
    return BackboneSpec(
        name=f"{GENERIC_PREFIX}{arch}", family="open_clip", arch=arch, force_quick_gelu=quick,
        notes="Generic open_clip architecture; the checkpoint comes from backbones[].checkpoint. Use the "
        "'<arch>-quickgelu' config (or a registered spec with force_quick_gelu) for OpenAI-CLIP-derived weights.",
    )


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec registered under ``name``; ``open_clip:<arch>`` gives a generic spec."""
    if name in _USER_SPECS:
        return _USER_SPECS[name]
    builtin = _builtin_specs()
    if name in builtin:
        return builtin[name]
    if name.startswith(GENERIC_PREFIX) and len(name) > len(GENERIC_PREFIX):
        return generic_spec(name[len(GENERIC_PREFIX):])
    raise UnknownBackboneError(f"Unknown backbone {name!r}. Registered: {', '.join(list_backbones())}; "
                               f"or use '{GENERIC_PREFIX}<open_clip arch>' with a checkpoint path.")


def register_backbone(spec: BackboneSpec | dict | str | Path, overwrite: bool = False) -> BackboneSpec:
    """Register a user spec (a BackboneSpec, a dict, or a path to a spec JSON file)."""
    if isinstance(spec, (str, Path)):
        spec = BackboneSpec.model_validate(json.loads(Path(spec).read_text(encoding="utf-8")))
    elif isinstance(spec, dict):
        spec = BackboneSpec.model_validate(spec)
    if not overwrite and (spec.name in _USER_SPECS or spec.name in _builtin_specs()):
        existing = get_backbone_spec(spec.name)
        if existing != spec:
            raise ValueError(f"Backbone {spec.name!r} is already registered with a different spec "
                             "(pass overwrite=True to replace it)")
    _USER_SPECS[spec.name] = spec
    return spec


def unregister_backbone(name: str) -> None:
    """Remove a user-registered spec (built-ins stay)."""
    _USER_SPECS.pop(name, None)


def _where_to_get(spec: BackboneSpec) -> str:
    if spec.family == "embedded":
        return " The embedded backbone is trained by the benchmark on first use; no download exists."
    msg = f" Get it from {spec.source_url}." if spec.source_url else ""
    if spec.hf_hub_dir:
        msg += (" The folder must hold open_clip_config.json and open_clip_pytorch_model.bin/.safetensors"
                " (plus tokenizer files and the HF text-model config.json for HF text towers).")
    return msg


def resolve_checkpoint(spec: BackboneSpec, checkpoint_dir: Path | None, checkpoint: Path | None) -> Path:
    """Path of ``spec``'s weights: ``checkpoint`` if given, else ``<dir>/<expected name>``.

    The directories searched are ``checkpoint_dir`` and then ``$RSR_CHECKPOINT_DIR``.
    Raises CheckpointNotFoundError naming the file, the directory and the download source.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if path.exists():
            return path
        raise CheckpointNotFoundError(
            f"Backbone {spec.name!r}: the configured checkpoint {str(path)!r} (backbones[].checkpoint) does not exist."
            + (f" Expected file: {spec.expected_name}." if spec.expected_name else "") + _where_to_get(spec))
    expected = spec.expected_name
    if expected is None:
        raise CheckpointNotFoundError(
            f"Backbone {spec.name!r} (open_clip arch {spec.arch!r}) has no registered checkpoint file name: set "
            "backbones[].checkpoint in the config to the path of its weights." + _where_to_get(spec))
    dirs = [Path(checkpoint_dir).expanduser()] if checkpoint_dir is not None else []
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    if env and Path(env).expanduser() not in dirs:
        dirs.append(Path(env).expanduser())
    for d in dirs:
        path = d / expected
        if path.exists():
            return path
    kind = "folder" if spec.hf_hub_dir else "file"
    if dirs:
        looked = ", ".join(repr(str(d / expected)) for d in dirs)
        where = f"Put the {kind} {expected!r} in the directory {str(dirs[0])!r} (looked for {looked})"
    else:
        where = (f"Put the {kind} {expected!r} in a directory and set backbones[].checkpoint_dir or the "
                 f"environment variable {CHECKPOINT_DIR_ENV} to that directory")
    raise CheckpointNotFoundError(
        f"Backbone {spec.name!r}: checkpoint not found. {where}, or set backbones[].checkpoint to its path."
        + _where_to_get(spec))
