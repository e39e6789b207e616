"""rsretrieval: fine-grained text-to-image retrieval for remote sensing.

Importing this package is cheap: heavy optional dependencies (ray, open_clip, sam2,
google-genai, torch_geometric) are imported lazily by the modules that need them.
"""

__version__ = "0.1.0"
