"""Make tests/data/ucm from the shared UCM sample: the images whose split is "test" + their dataset.json entries.

Usage: python tests/data/ucm/make_fixture.py [/work/shared/data/ucm_sample]
Entries are kept in their original order with every field unchanged; the JSON is written back with
json.dump(indent=2, ensure_ascii=False), as the shared sample was.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

SPLIT = "test"


def main(src: Path, dst: Path) -> None:
    doc = json.loads((src / "dataset.json").read_text(encoding="utf-8"))
    keep = [img for img in doc["images"] if img["split"] == SPLIT]
    for img in keep:
        shutil.copyfile(src / img["filename"], dst / img["filename"])
    with open(dst / "dataset.json", "w", encoding="utf-8") as f:
        json.dump({**doc, "images": keep}, f, indent=2, ensure_ascii=False)
    print(f"{len(keep)} images, {sum(len(i['sentences']) for i in keep)} captions -> {dst}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/ucm_sample"), Path(__file__).resolve().parent)
