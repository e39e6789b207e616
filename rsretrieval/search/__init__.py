"""Two-stage retrieval at corpus scale: a bounded-memory V2V shortlist, then a fine-grained rerank."""
