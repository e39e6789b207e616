"""Answers of the fake server for ``rsretrieval fake-gemini``: schema-valid, canned, chosen by the system prompt.

Not a model: they exercise the client, the store, the validation and the cost ledger, and say nothing
about retrieval quality. Stdlib only.
"""

from __future__ import annotations

import json
import re

from rsretrieval.fake_gemini.protocol import FakeRequest, default_responder

CANNED_TEXT_GRAPH = {"nodes": [{"name": "tank", "type": "object"}, {"name": "white", "type": "attribute"}],
                     "edges": [{"subject": "tank", "relation": "color", "object": "white"}]}
CANNED_COUNTS = [{"object": "tank", "count": 11}, {"object": "tree", "count": -1}]
CANNED_IMAGE_GRAPH = {"scene": "Industrial Area", "object_counts": CANNED_COUNTS[:1],
                      "objects": [{"id": 0, "name": "tank", "attributes": [{"name": "color", "value": "white"}]}],
                      "relations": [{"subject": "tank", "relation": "inside", "object": "Industrial Area",
                                     "subject_id": 0, "object_id": -1}]}


def caption_scenes(text: str, max_scenes: int = 6) -> list[str]:
    """The caption's sentences and clauses (split at ``.``, ``;`` and ``,``) of three words or more."""
    parts = [p.strip() for p in re.split(r"[.;,]", text)]
    return [p for p in parts if len(p.split()) >= 3][:max_scenes]


def task_responder(req: FakeRequest) -> str:
    """A well-formed answer for each generation prompt of the thesis (appendix A.1):

    * A.1.4 text scenes: the caption's own sentences and clauses;
    * A.1.3 text graph, A.1.2 object counts and image graph: one fixed small graph (white tanks);
    * A.1.1 fine-grained caption (an image and no known prompt): a sentence naming the request's
      input hash, so every image gets its own caption;
    * anything else: :func:`default_responder` (an echo of the first text).
    """
    system = req.system_instruction or ""
    if "Scene Description Extraction" in system:
        return json.dumps({"scenes": caption_scenes(" ".join(req.texts))})
    if "Object-Attribute Graph" in system:
        return json.dumps(CANNED_TEXT_GRAPH)
    if "structured scene graph" in system:
        return json.dumps(CANNED_IMAGE_GRAPH)
    if "estimate their counts" in system:
        return json.dumps({"object_counts": CANNED_COUNTS})
    if req.n_images:
        return (f"Aerial image {req.input_key[:8]} with eleven round white tanks in a grid, green trees along a "
                f"gray road and bare ground to the north.")
    return default_responder(req)
