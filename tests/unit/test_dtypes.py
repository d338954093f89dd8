"""loft.core.dtypes.resolve_dtype: the one reading of model.dtype and trainer.dtype."""
import pytest
import torch
from omegaconf import OmegaConf

from loft.core.dtypes import resolve_dtype
from loft.core.errors import ConfigError
from loft.models import load_model

NAMED = [("float32", torch.float32), ("float64", torch.float64), ("bfloat16", torch.bfloat16),
         ("float16", torch.float16)]


@pytest.mark.parametrize("name,expected", NAMED)
def test_named_dtypes_ignore_the_device(name, expected):
    for device in (None, torch.device("cpu"), torch.device("cuda")):
        assert resolve_dtype(name, device) is expected


def test_auto_is_bfloat16_on_cuda_and_float32_elsewhere(monkeypatch):
    assert resolve_dtype("auto", torch.device("cuda")) is torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    assert resolve_dtype(None, torch.device("cpu")) is torch.float32  # unset = auto
    # no device (a model loaded before it is placed): decided by whether a GPU is there
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_dtype("auto") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_dtype("auto") is torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) is torch.bfloat16  # the device wins


@pytest.mark.parametrize("bad", ["int8", "float", "fp16", "bool"])
def test_other_names_are_config_errors_naming_the_setting(bad):
    with pytest.raises(ConfigError, match=rf"^trainer\.dtype={bad} is not one of auto, float32, float64"):
        resolve_dtype(bad, torch.device("cpu"), setting="trainer.dtype")


def test_the_model_loader_reads_model_dtype_the_same_way():
    cfg = OmegaConf.create({"name": "matfac", "loader": "matfac", "m": 4, "n": 3, "dtype": "int8"})
    with pytest.raises(ConfigError, match=r"^model\.dtype=int8 is not one of auto"):
        load_model(cfg)
