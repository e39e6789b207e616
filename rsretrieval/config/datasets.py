"""Options of the web-scale dataset formats (RS5M-shaped input): webdataset tar shards and metadata tables."""

from __future__ import annotations

from pydantic import Field

from rsretrieval.config.base import StrictModel


class WebDatasetOptions(StrictModel):
    """How samples of webdataset tar shards (``<key>.jpg`` + ``<key>.txt`` [+ ``<key>.json``]) become captions."""

    caption_field: str | None = Field(None, description="Take the caption from this field of the sample's .json member "
                                      "(a string or a list of strings) instead of its .txt member; None = .txt")
    split: str = Field("test", description="Split of every sample (RS5M has no splits); the evaluated split "
                       "datasets[].split must name it")
    split_field: str | None = Field(None, description="Field of the sample's .json holding its split (train / val / "
                                    "test); samples without it get `split`. None = ignore the json")
    workers: int | None = Field(None, ge=1, description="Shards extracted at once on first read (threads; None = "
                                "min(8, CPU cores))")


class MetadataTableOptions(StrictModel):
    """Columns of a Parquet / CSV metadata table (img2dataset's output tables, or your own)."""

    image_column: str = Field("image", description="Column holding the image path: relative to image_root (default: "
                              "the table's folder) or absolute. http(s) URLs are not downloaded: such rows are skipped")
    image_template: str | None = Field(None, description="Python format string over the row's columns giving the image "
                                       "path instead of image_column, e.g. '{key:.5}/{key}.jpg' for img2dataset's "
                                       "`files` output (5-digit shard folders)")
    caption_column: str = Field("caption", description="Column holding the caption")
    id_column: str | None = Field(None, description="Column naming the image (rows sharing it are captions of one "
                                  "image); None = the image path")
    split_column: str | None = Field(None, description="Column holding the split (train / val / test); None = `split`")
    split: str = Field("test", description="Split of rows without a split column or value")
    status_column: str | None = Field("status", description="img2dataset's download status column: rows whose value "
                                      "is not 'success' are skipped and counted (ignored when the table lacks it)")
