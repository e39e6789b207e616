"""rsretrieval: fine-grained text-to-image retrieval for remote sensing.

Importing this package is cheap: heavy optional dependencies (ray, open_clip, sam2, google-genai,
torch_geometric) are imported lazily by the modules that need them. The public names below are
exported lazily too (PEP 562): ``from rsretrieval import evaluate`` imports only the module behind
``evaluate``.

* evaluation: :func:`evaluate` and its :class:`EvaluationResult`, :func:`gold_indices`, the metrics
  :func:`recall_at_k`, :func:`mean_recall` (mR) and :func:`mean_recall_6` (mR6);
* scorers: :class:`CosineScorer` (V2V), :class:`LateInteractionScorer` over :class:`PackedVectors`
  (scene modes), :class:`HungarianScorer` and :class:`GraphMatchingNetwork` (graph modes);
* data: :func:`load_dataset`, :func:`evaluation_split`, :class:`RSDataset`;
* config: :func:`load_config`, :class:`BenchmarkConfig`, :class:`DatasetConfig`, :class:`BackboneConfig`;
* backbones: :func:`list_backbones`, :func:`get_backbone_spec`, :func:`register_backbone`,
  :class:`BackboneSpec`, :func:`resolve_checkpoint` (a configured backbone's weights; trains rs-tiny on
  first use), :func:`load_backbone` -> :class:`LoadedBackbone`, :func:`encode_images`, :func:`encode_texts`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "evaluate": "rsretrieval.evaluation.api",
    "EvaluationResult": "rsretrieval.evaluation.api",
    "gold_indices": "rsretrieval.evaluation.retrieval",
    "recall_at_k": "rsretrieval.evaluation.metrics",
    "mean_recall": "rsretrieval.evaluation.metrics",
    "mean_recall_6": "rsretrieval.evaluation.metrics",
    "CosineScorer": "rsretrieval.matching.cosine",
    "LateInteractionScorer": "rsretrieval.matching.late_interaction",
    "PackedVectors": "rsretrieval.matching.late_interaction",
    "HungarianScorer": "rsretrieval.matching.hungarian",
    "GraphMatchingNetwork": "rsretrieval.matching.gmn",
    "load_dataset": "rsretrieval.data.registry",
    "evaluation_split": "rsretrieval.data.registry",
    "RSDataset": "rsretrieval.data.schema",
    "load_config": "rsretrieval.config",
    "BenchmarkConfig": "rsretrieval.config",
    "DatasetConfig": "rsretrieval.config",
    "BackboneConfig": "rsretrieval.config",
    "list_backbones": "rsretrieval.encoders.registry",
    "get_backbone_spec": "rsretrieval.encoders.registry",
    "register_backbone": "rsretrieval.encoders.registry",
    "BackboneSpec": "rsretrieval.encoders.registry",
    "resolve_checkpoint": "rsretrieval.pipelines.runtime.checkpoints",
    "load_backbone": "rsretrieval.encoders.loader",
    "LoadedBackbone": "rsretrieval.encoders.loader",
    "encode_images": "rsretrieval.encoders.loader",
    "encode_texts": "rsretrieval.encoders.loader",
}

__all__ = [  # the keys of _EXPORTS, spelled out for static tools (tests/test_api.py checks they agree)
    "__version__",
    "evaluate", "EvaluationResult", "gold_indices", "recall_at_k", "mean_recall", "mean_recall_6",
    "CosineScorer", "LateInteractionScorer", "PackedVectors", "HungarianScorer", "GraphMatchingNetwork",
    "load_dataset", "evaluation_split", "RSDataset",
    "load_config", "BenchmarkConfig", "DatasetConfig", "BackboneConfig",
    "list_backbones", "get_backbone_spec", "register_backbone", "BackboneSpec", "resolve_checkpoint",
    "load_backbone", "LoadedBackbone", "encode_images", "encode_texts",
]

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time names resolve in __getattr__
    from rsretrieval.config import BackboneConfig, BenchmarkConfig, DatasetConfig, load_config
    from rsretrieval.data.registry import evaluation_split, load_dataset
    from rsretrieval.data.schema import RSDataset
    from rsretrieval.encoders.loader import LoadedBackbone, encode_images, encode_texts, load_backbone
    from rsretrieval.encoders.registry import BackboneSpec, get_backbone_spec, list_backbones, register_backbone
    from rsretrieval.evaluation.api import EvaluationResult, evaluate
    from rsretrieval.evaluation.metrics import mean_recall, mean_recall_6, recall_at_k
    from rsretrieval.evaluation.retrieval import gold_indices
    from rsretrieval.matching.cosine import CosineScorer
    from rsretrieval.matching.gmn import GraphMatchingNetwork
    from rsretrieval.matching.hungarian import HungarianScorer
    from rsretrieval.matching.late_interaction import LateInteractionScorer, PackedVectors
    from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first use (PEP 562) and cache the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rsretrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
