"""tasks/sources.py and the loss helper of tasks/base.py: the idioms every task family shares."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tasks.sources as sources
from loft.core.errors import ConfigError, DataMissingError
from tasks.base import model_loss, on_model_device
from tasks.sources import (HubProbe, check_source, hub_or_missing, local_or_hub, random_subset,
                           write_predictions)


def test_check_source_names_the_key_and_the_choices():
    for ok in ("auto", "local", "hub"):
        assert check_source(ok) == ok
    with pytest.raises(ConfigError, match=r"task.source='web': use auto, local or hub"):
        check_source("web")
    with pytest.raises(ConfigError, match=r"task.lm_eval_data='x'"):
        check_source("x", key="task.lm_eval_data")


def test_hub_probe_asks_once_and_never_for_local(monkeypatch):
    calls = []
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda: calls.append(1) or True)
    probe = HubProbe("auto")
    assert probe() and probe() and calls == [1]
    assert not HubProbe("local")() and calls == [1]



def test_a_task_probe_is_asked_once_for_all_its_files(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda: calls.append(1) and False)
    probe = HubProbe("auto")
    for name in ("train.json", "test.json"):
        with pytest.raises(DataMissingError, match="hub unreachable"):
            local_or_hub(tmp_path / name, probe, lambda p: p.read_text(), lambda: "hub", "f")
    assert calls == [1]


def test_local_or_hub_reads_the_file_unless_source_is_hub(tmp_path, monkeypatch):
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda: True)
    path = tmp_path / "rows.txt"
    path.write_text("local")
    read, load = (lambda p: p.read_text()), (lambda: "hub")
    assert local_or_hub(path, "auto", read, load, "fix") == "local"
    assert local_or_hub(path, "local", read, load, "fix") == "local"
    assert local_or_hub(path, "hub", read, load, "fix") == "hub"
    assert local_or_hub(tmp_path / "absent", "auto", read, load, "fix") == "hub"


@pytest.mark.parametrize("source, reachable, load, why", [
    ("local", True, lambda: "hub", r"hub not tried \(source=local\)"),
    ("auto", False, lambda: "hub", r"hub unreachable"),
    ("auto", True, None, r"not a WikiText-2 split"),
])
def test_missing_file_says_why_and_names_the_fix(tmp_path, monkeypatch, source, reachable, load, why):
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda: reachable)
    with pytest.raises(DataMissingError, match=rf"absent.txt not found \({why}\)\. Fix: `prepare x`$"):
        hub_or_missing(load, tmp_path / "absent.txt", source, "`prepare x`", no_hub="not a WikiText-2 split")


def test_a_hub_failure_still_names_the_local_fix(tmp_path, monkeypatch):
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda: True)

    def outage():
        raise ConnectionError("503 Service Unavailable\nretry later")

    with pytest.raises(DataMissingError, match=r"\(hub failed: ConnectionError: 503 Service Unavailable\)\. Fix: f$"):
        hub_or_missing(outage, tmp_path / "a", "auto", "f")

    def silent():
        raise KeyError()

    with pytest.raises(DataMissingError, match=r"\(hub failed: KeyError\)"):  # an error without a message
        hub_or_missing(silent, tmp_path / "a", "hub", "f")


def test_random_subset_is_a_seeded_draw_in_file_order():
    rows = [f"row{i}" for i in range(20)]
    # pinned: the draw of every earlier record (default_rng(seed).permutation(n)[:limit], sorted)
    assert random_subset(rows, 5, 0) == ["row2", "row4", "row6", "row13", "row19"]
    assert random_subset(rows, 5, 1) == ["row1", "row7", "row10", "row16", "row18"]
    assert random_subset(rows, None, 0) == rows and random_subset(rows, 20, 0) == rows
    big = random_subset(list(range(1000)), 300, 7)
    assert len(set(big)) == 300 and big == sorted(big)
    # independent definition: shuffling arange(n) by the same generator is numpy's permutation
    order = np.arange(1000)
    np.random.default_rng(7).shuffle(order)
    assert big == sorted(order[:300].tolist())


def test_write_predictions_writes_json_lines(tmp_path):
    assert write_predictions(None, [{"a": 1}]) is None
    path = write_predictions(tmp_path / "deep" / "p.jsonl", [{"a": 1}, {"b": "x"}])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}, {"b": "x"}]


class _Echo(torch.nn.Module):
    """Reports where and in which dtype its inputs arrived, as an HF model's `.loss`."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1, dtype=dtype))

    def forward(self, **batch):
        self.seen = {k: (v.device, v.dtype) for k, v in batch.items()}
        return type("Out", (), {"loss": (batch["x"].to(self.w.dtype) * self.w).sum()})()


def test_model_loss_moves_the_batch_and_casts_only_floating_keys():
    model = _Echo(torch.float64)
    batch = {"x": torch.tensor([1.0, 2.0]), "labels": torch.tensor([0, 1])}
    assert model_loss(model, batch).item() == 3.0
    assert model.seen["x"][1] == torch.float32 and model.seen["labels"][1] == torch.long
    moved = on_model_device(model, batch, floating=("x",))
    assert moved["x"].dtype == torch.float64 and moved["labels"].dtype == torch.long
    assert all(v.device == model.w.device for v in moved.values())
