"""Typed config of the generation stage (lives in :mod:`rsretrieval.config` with the other stages)."""

from rsretrieval.config import GenerationConfig

__all__ = ["GenerationConfig"]
