"""Schema-valid fake answers per generation task, chosen by the system prompt the client sent."""

from __future__ import annotations

import json

from rsretrieval.fake_gemini.server import FakeRequest


def task_responder(req: FakeRequest) -> str:
    """What a well-behaved Gemini would answer for each of the thesis' prompts."""
    system = req.system_instruction or ""
    text = " ".join(req.texts)
    if "Scene Description Extraction" in system:
        parts = [p.strip() for p in text.split(".") if len(p.split()) >= 4]
        return json.dumps({"scenes": parts[:6]})
    if "Object-Attribute Graph" in system:
        return json.dumps({"nodes": [{"name": "tank", "type": "object"}, {"name": "white", "type": "attribute"}],
                           "edges": [{"subject": "tank", "relation": "color", "object": "white"}]})
    if "structured scene graph" in system:
        return json.dumps({"scene": "Industrial Area", "object_counts": [{"object": "tank", "count": 11}],
                           "objects": [{"id": 0, "name": "tank", "attributes": [{"name": "color", "value": "white"}]}],
                           "relations": [{"subject": "tank", "relation": "inside", "object": "Industrial Area",
                                          "subject_id": 0, "object_id": -1}]})
    if "estimate their counts" in system:
        return json.dumps({"object_counts": [{"object": "tank", "count": 11}, {"object": "tree", "count": -1}]})
    return "Industrial area with eleven round white tanks in a grid next to bare ground."
