"""Text encoding of CLIP models over the used token positions only.

open_clip pads every caption to the context length (77) and runs the text transformer over all of
it. In a causal text transformer a position only attends to earlier ones, and the pooled feature is
read at the end-of-text token, so the padding after the longest caption of a batch changes nothing:
cutting it gives the same features (float rounding aside) for a fraction of the work. Captions in
this field are short (synthrs: 20-60 tokens), so text encoding and rs-tiny training get ~25% faster.

Only models where that holds are trimmed (open_clip ``CLIP`` with a causal mask and ``argmax`` / ``eos``
pooling); any other model runs its own ``encode_text``.
"""

from __future__ import annotations

import torch

_TRIMMABLE_POOLS = ("argmax", "eos")


def trimmable(model: torch.nn.Module) -> bool:
    """True when cutting the padding after the longest caption leaves the features unchanged."""
    return (all(hasattr(model, a) for a in ("token_embedding", "positional_embedding", "transformer", "ln_final"))
            and getattr(model, "attn_mask", None) is not None
            and getattr(model, "text_pool_type", None) in _TRIMMABLE_POOLS
            and getattr(model, "pad_id", 0) == 0)


def encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` (unnormalised) over the positions up to the longest caption's end."""
    if not trimmable(model) or tokens.ndim != 2 or tokens.shape[1] == 0:
        return model.encode_text(tokens)
    from open_clip.transformer import text_global_pool

    used = int((tokens != 0).sum(dim=1).max())  # pad id 0: every caption's tokens start at position 0
    used = max(1, min(used, tokens.shape[1]))
    tokens = tokens[:, :used]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:used].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:used, :used])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
