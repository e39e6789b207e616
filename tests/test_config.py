"""The typed config: YAML + overrides, validation errors that name the field, flattening."""

import pytest
from pydantic import ValidationError

from rsretrieval.config import BenchmarkConfig, flatten, load_config
from tests.conftest import QUICK_CONFIG


def test_default_is_the_embedded_benchmark() -> None:
    cfg = BenchmarkConfig()
    assert [d.format for d in cfg.datasets] == ["synthrs"]
    assert [b.name for b in cfg.backbones] == ["rs-tiny"]


def test_yaml_and_overrides() -> None:
    cfg = load_config(QUICK_CONFIG, ["embed.batch_size=7", "datasets.0.limit_images=5", "run_name=x"])
    assert cfg.embed.batch_size == 7
    assert cfg.datasets[0].limit_images == 5
    assert cfg.datasets[0].synthrs.n_train == 256  # from the YAML, untouched
    assert cfg.run_name == "x"


def test_unknown_field_is_rejected_by_name() -> None:
    with pytest.raises(ValidationError, match="bacth_size"):
        load_config(None, ["embed.bacth_size=3"])


def test_bad_format_is_rejected() -> None:
    with pytest.raises(ValidationError, match="format"):
        BenchmarkConfig(datasets=[{"name": "x", "format": "coco"}])


def test_every_field_has_a_description() -> None:
    from pydantic import BaseModel

    seen = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            for cand in getattr(ann, "__args__", ()) + (ann,):
                inner = getattr(cand, "__args__", ())
                for c in (cand, *inner):
                    if isinstance(c, type) and issubclass(c, BaseModel):
                        walk(c)

    walk(BenchmarkConfig)
    assert len(seen) >= 8


def test_flatten_for_mlflow() -> None:
    flat = flatten(BenchmarkConfig().model_dump(mode="json"))
    assert flat["datasets.0.format"] == "synthrs"
    assert flat["embed.batch_size"] == "64"
    assert all(isinstance(v, str) for v in flat.values())
