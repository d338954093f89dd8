"""GLUE and vision tasks on real data slices, offline: tsv parsing edge cases, model selection on
half the dev split, MiniLM through the runner (classification and STS-B regression), the VTAB-1k
split protocol, tiny_vit on Fashion-MNIST (the Debian package) through the runner, per-domain
metrics, and the VPT / Houlsby adapter baselines."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from loft.methods import MethodContext, build_method
from loft.models import load_model
from loft.runner import run
from loft.train.loop import Interrupted
from tasks.base import DataMissingError
from tasks.glue import GLUE, GlueTask, read_glue_tsv, write_glue_tsv
from tasks.vision import FashionMnistTask, HubImageTask, VtabTask
from tasks.vision.fashion_mnist import fashion_mnist
from tasks.vision.files import write_image_folder
from tests.conftest import DATA_DIR, REPO, compose_config

FASHION = Path("/usr/share/datasets/fashion-mnist")


def run_quiet(runs_dir: Path, *overrides: str) -> dict:
    return run(compose_config(*overrides, f"paths.checkpoint_dir={runs_dir.parent / 'ckpt'}", runs_dir=runs_dir))


def model_cfg(name: str):
    root = OmegaConf.create({"paths": {"cache_dir": ".cache"},
                             "model": OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")})
    return root.model


# --- GLUE data -------------------------------------------------------------------------

def test_real_glue_files_parse():
    glue = Path(DATA_DIR) / "glue"
    texts, labels = read_glue_tsv(glue / "CoLA" / "train.tsv", GLUE["cola"])  # no header row
    assert len(texts) == 8551 and set(labels) == {0, 1}
    assert texts[0] == ("Our friends won't buy this analysis, let alone the next one we propose.",)
    dev, dev_labels = read_glue_tsv(glue / "CoLA" / "dev.tsv", GLUE["cola"])  # no final newline
    assert len(dev) == 1043
    texts, labels = read_glue_tsv(glue / "STS-B" / "dev.tsv", GLUE["stsb"])
    assert len(texts) == 1500 and isinstance(labels[0], float) and labels[0] == 5.0 and 0 <= min(labels)
    texts, labels = read_glue_tsv(glue / "MRPC" / "dev.tsv", GLUE["mrpc"])  # starts with a byte-order mark
    assert len(texts) == 408 and len(texts[0]) == 2 and labels[0] == 1
    texts, labels = read_glue_tsv(glue / "RTE" / "train.tsv", GLUE["rte"])
    assert len(texts) == 2490 and labels[0] == 1  # not_entailment: index 1 in the hub's order
    assert len(read_glue_tsv(glue / "SST-2" / "dev.tsv", GLUE["sst2"])[0]) == 872


def test_tsv_edge_cases(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("\ufeffindex\tsentence1\tsentence2\tlabel\r\n"
                     '0\tHe said "hi\tthere\tentailment\r\n'          # a bare quote is text, not CSV quoting
                     "1\tline\u2028separator inside\tb\tnot_entailment\n"  # not a line break in GLUE
                     "2\tshort row\n"                                  # too few columns: skipped
                     "3\tno label\tb\t\n"                              # empty label: skipped
                     "\n".encode("utf-8"))
    texts, labels = read_glue_tsv(path, GLUE["rte"])
    assert texts == [('He said "hi', "there"), ("line\u2028separator inside", "b")] and labels == [0, 1]
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match=r"train.tsv:2: label 'maybe'"):
        read_glue_tsv(path, GLUE["rte"])
    path.write_text("index\tsentence\tlabel\n")
    with pytest.raises(ValueError, match="header lacks"):
        read_glue_tsv(path, GLUE["rte"])


@pytest.mark.parametrize("task", sorted(GLUE))
def test_write_read_roundtrip(task, tmp_path):
    spec = GLUE[task]
    texts = [tuple(f"text {i} {j}\twith tab" for j in range(len(spec.text))) for i in range(5)]
    labels = [1.25 * i for i in range(5)] if spec.labels is None else [i % spec.num_labels for i in range(5)]
    write_glue_tsv(tmp_path / "x.tsv", spec, texts, labels)
    got_texts, got_labels = read_glue_tsv(tmp_path / "x.tsv", spec)
    assert got_texts == [tuple(t.replace("\t", " ") for t in row) for row in texts] and got_labels == labels


def test_prepare_data_glue_writes_the_canonical_layout(tmp_path, monkeypatch):
    import datasets

    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import prepare_data

    def fake_hub(name, config, split):
        spec = GLUE[config]
        rows = {c: [f"{c} {split} {i}" for i in range(3)] for c in spec.hub_text}
        rows["label"] = [0.5, 4.0, 2.25] if spec.labels is None else [0, 1, 0]
        return rows

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    prepare_data.main(["glue", "--only", "cola,stsb,mnli", "--data-dir", str(tmp_path)])
    texts, labels = read_glue_tsv(tmp_path / "glue" / "CoLA" / "dev.tsv", GLUE["cola"])
    assert texts == [("sentence validation 0",), ("sentence validation 1",), ("sentence validation 2",)]
    assert read_glue_tsv(tmp_path / "glue" / "STS-B" / "train.tsv", GLUE["stsb"])[1] == [0.5, 4.0, 2.25]
    assert (tmp_path / "glue" / "MNLI" / "dev_mismatched.tsv").is_file()
    assert not (tmp_path / "glue" / "SST-2").exists()  # --only


def test_missing_glue_data_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda timeout=3.0: False)
    task = GlueTask(name="glue_qqp", glue_task="qqp")
    with pytest.raises(DataMissingError, match=r"hub unreachable.*prepare_data.py glue --data-dir"):
        task._read("train", str(tmp_path))


# --- checkpoint selection --------------------------------------------------------------

def test_glue_selection_resumed_at_an_epoch_end_selects_as_if_uninterrupted(tmp_path):
    """2 epochs of 2 steps, selection at epoch ends: candidates [2, 4]. Interrupted after step 2, whose checkpoint
    is taken at that epoch end, the resumed run must score the same candidates (step 3 is none) with the same
    scores, pick the same step and report the same metrics (the loop, not the data stream, says where epochs end)."""
    common = ("task=glue_sst2", "model=minilm_l6", "method=lora", "rank=4", "task.max_train_samples=32",
              "task.eval_limit=40", "task.eval_every=epoch", "trainer.batch_size=16", "trainer.epochs=2",
              "trainer.warmup_steps=0", "trainer.checkpoint_every=2")
    straight = run_quiet(tmp_path / "a" / "runs", *common)
    assert straight["steps"] == 4 and [c["step"] for c in straight["selection"]["candidates"]] == [2, 4]
    with pytest.raises(Interrupted, match="stopped after step 2"):
        run_quiet(tmp_path / "b" / "runs", *common, "trainer.stop_after_steps=2")
    resumed = run_quiet(tmp_path / "b" / "runs", *common, "resume=true")
    assert resumed["selection"] == straight["selection"]
    assert resumed["metrics"] == straight["metrics"] and resumed["history"]["loss"] == straight["history"]["loss"]
    for record in (tmp_path / "b" / "runs").rglob("*.json"):  # the record lost, the final checkpoint kept:
        record.unlink()                                      # the rerun only evaluates, and selects the same
    again = run_quiet(tmp_path / "b" / "runs", *common)
    assert again["metrics"] == straight["metrics"] and again["selection"] == straight["selection"]


def test_glue_selection_through_the_runner_minilm(runs_dir):
    """SST-2 slice with PSOFT's selection evaluated every step: reported on the other half."""
    record = run_quiet(runs_dir, "task=glue_sst2", "model=minilm_l6", "method=lora", "rank=4",
                       "task.max_train_samples=48", "task.eval_limit=40", "task.eval_every=1",
                       "trainer.batch_size=16", "trainer.epochs=1", "trainer.warmup_steps=0")
    metrics = record["metrics"]
    assert record["steps"] == 3 and metrics["eval_examples"] == 20 and metrics["selection_examples"] == 20
    assert 1 <= metrics["selected_step"] <= 3 and 0 <= metrics["accuracy"] <= 1
    assert [c["step"] for c in record["selection"]["candidates"]] == [1, 2, 3]
    assert record["selection"]["selected_step"] == metrics["selected_step"]
    assert list(metrics)[0] == "accuracy"
    assert record["method_info"]["target_modules"][:3] == ["query", "key", "value"]


def test_stsb_regression_and_head_lr_through_the_runner(runs_dir):
    record = run_quiet(runs_dir, "task=glue_stsb", "model=minilm_l6", "method=loft", "rank=4",
                       "task.max_train_samples=32", "task.eval_limit=40", "task.selection=last",
                       "trainer.batch_size=16", "trainer.epochs=1", "trainer.warmup_steps=0",
                       "trainer.head_lr=3e-3")
    metrics = record["metrics"]
    assert set(metrics) >= {"pearson", "spearmanr"} and metrics["eval_examples"] == 40
    assert -1 <= metrics["pearson"] <= 1 and all(math.isfinite(x) for x in record["history"]["loss"])
    assert "selected_step" not in metrics and "selection" not in record
    bundle = load_model(compose_config("model=minilm_l6").model, **GlueTask(glue_task="stsb").model_args())
    assert bundle.model.num_labels == 1 and bundle.head_modules == ["pooler", "classifier"]


def test_minilm_mean_pooling_ignores_padding_also_in_peft_copies():
    bundle = load_model(compose_config("model=minilm_l6").model, **GlueTask(glue_task="sst2").model_args())
    model, tok = bundle.model.eval(), bundle.tokenizer
    alone = tok(["a gripping, funny film"], return_tensors="pt")
    padded = tok(["a gripping, funny film", "a much longer sentence that forces padding on the first one"],
                 padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model.bert(**alone).last_hidden_state[0]  # independent: the plain mean of the tokens
        expected = model.classifier(torch.tanh(model.bert.pooler.dense(states.mean(0))))
        assert torch.allclose(model(**alone).logits[0], expected, atol=1e-5)
        assert torch.allclose(model(**padded).logits[0], expected, atol=1e-5)
    lora = build_method(compose_config("model=minilm_l6", "method=lora").method, model, _ctx(bundle))
    _train(lora, {**padded, "labels": torch.tensor([1, 0])}, steps=2)  # the trained pooler is PEFT's copy
    lora.model.eval()
    with torch.no_grad():
        assert torch.allclose(lora.model(**padded).logits[0], lora.model(**alone).logits[0], atol=1e-5)


# --- vision data -----------------------------------------------------------------------

def test_fashion_mnist_debian_files():
    train, test = fashion_mnist(FASHION, "train"), fashion_mnist(FASHION, "test")
    assert train.pixels.shape == (60000, 28, 28) and test.pixels.shape == (10000, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    assert train.image(0).size == (28, 28)


def test_fashion_mnist_missing_names_the_apt_command(tmp_path):
    task = FashionMnistTask(folder=str(tmp_path))
    with pytest.raises(DataMissingError, match="apt-get install -y dataset-fashion-mnist"):
        task.load_split("train", str(tmp_path))


def test_tiny_vit_on_fashion_mnist_through_the_runner(runs_dir):
    record = run_quiet(runs_dir, "task=image_fashion_mnist", "model=tiny_vit", "method=lora", "rank=4",
                       "task.max_train_samples=64", "task.eval_limit=64", "trainer.batch_size=16",
                       "trainer.max_steps=4", "trainer.warmup_steps=0", "trainer.lr=1e-3")
    assert record["steps"] == 4 and record["metrics"]["eval_examples"] == 64
    assert 0 <= record["metrics"]["accuracy"] <= 1 and all(math.isfinite(x) for x in record["history"]["loss"])
    assert record["method_info"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"]


def test_tiny_vit_selection_on_half_the_eval_split(runs_dir):
    record = run_quiet(runs_dir, "task=image_fashion_mnist", "model=tiny_vit", "method=lora", "rank=4",
                       "task.max_train_samples=64", "task.eval_limit=64", "task.selection=half", "task.eval_every=3",
                       "trainer.batch_size=16", "trainer.max_steps=4", "trainer.warmup_steps=0", "trainer.lr=1e-3")
    metrics = record["metrics"]
    assert metrics["eval_examples"] == 32 and metrics["selection_examples"] == 32
    assert [c["step"] for c in record["selection"]["candidates"]] == [3, 4]  # every 3 steps, and the last
    assert metrics["selected_step"] in (3, 4) and record["selection"]["every"] == 3


def _fake_images(root: Path, split: str, n: int, classes: int, offset: int = 0) -> None:
    source = fashion_mnist(FASHION, "test")
    idx = range(offset, offset + n)
    write_image_folder(root, split, [source.image(i) for i in idx], [int(source.labels[i]) % classes for i in idx])


def test_vtab_split_protocol_local_layouts(tmp_path):
    root = tmp_path / "vtab" / "oxford_flowers102"  # VTAB's own folder name is found too
    for split, n, offset in (("train800", 6, 0), ("val200", 3, 6), ("test", 5, 9)):
        _fake_images(root, split, n, classes=4, offset=offset)
    # NOAH's list-file layout for train800val200 (relative paths into the folders above)
    lines = [f"{p.relative_to(root)} {p.parent.name}" for s in ("train800", "val200") for p in sorted((root / s).rglob("*.png"))]
    (root / "train800val200.txt").write_text("\n".join(lines) + "\n")
    final = VtabTask(name="vtab_flowers102", vtab_name="flowers102", protocol="final")
    tune = VtabTask(name="vtab_flowers102", vtab_name="flowers102", protocol="tune")
    assert final.num_labels == 102
    assert len(final.load_split("train", str(tmp_path))) == 9 and len(final.load_split("eval", str(tmp_path))) == 5
    assert len(tune.load_split("train", str(tmp_path))) == 6 and len(tune.load_split("eval", str(tmp_path))) == 3
    with pytest.raises(ValueError, match="protocol"):
        VtabTask(name="vtab_dtd", vtab_name="dtd", protocol="test")


def test_vtab_hub_split_mapping_and_missing_message(tmp_path, monkeypatch):
    from tasks.vision import vtab
    from tasks.vision.sources import ArraySource

    sizes = {"train": 800, "validation": 200, "test": 7}
    monkeypatch.setattr(vtab, "hub_split", lambda dataset, split: ArraySource(np.zeros((sizes[split], 2, 2), np.uint8),
                                                                                np.zeros(sizes[split])))
    assert [len(vtab.vtab_hub_source("dtd", s)) for s in ("train800", "val200", "train800val200", "test")] == [800, 200, 1000, 7]
    sizes["train"] = 1000  # a copy whose train split is already train800val200
    assert len(vtab.vtab_hub_source("dtd", "train800val200")) == 1000
    with pytest.raises(ValueError, match="protocol=tune needs a separate train800"):
        vtab.vtab_hub_source("dtd", "train800")
        vision.vtab_hub_source("dtd", "train800")
    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(DataMissingError, match=r"prepare_data.py vtab --only dtd .*fw407/vtab-1k_dtd"):
        VtabTask(name="vtab_dtd", vtab_name="dtd").load_split("train", str(tmp_path))


def test_domainnet_lists_give_per_domain_accuracy(tmp_path):
    root = tmp_path / "images" / "domainnet"
    source = fashion_mnist(FASHION, "test")
    for domain, offset in (("clipart", 0), ("sketch", 8)):
        for split in ("train", "test"):
            lines = []
            for i in range(offset, offset + 4):
                path = root / domain / f"{split}_{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                source.image(i).save(path)
                lines.append(f"{domain}/{path.name} {int(source.labels[i])}")
            (root / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")
    torch.manual_seed(0)
    task = HubImageTask(name="image_domainnet", dataset="domainnet", num_labels=345, hub_dataset=None, source="local")
    bundle = load_model(model_cfg("tiny_vit"), **task.model_args())
    task.setup(bundle, str(tmp_path))
    assert task.eval.domains == ["clipart"] * 4 + ["sketch"] * 4
    metrics = task.evaluate(bundle.model)
    assert set(metrics) == {"accuracy", "clipart", "sketch", "eval_examples"}
    assert metrics["accuracy"] == pytest.approx((metrics["clipart"] + metrics["sketch"]) / 2)


def test_vtab_task_through_the_runner_on_a_local_folder(tmp_path, runs_dir):
    root = tmp_path / "vtab" / "dtd"
    _fake_images(root, "train800val200", 12, classes=47)
    _fake_images(root, "test", 8, classes=47, offset=12)
    record = run_quiet(runs_dir, "task=vtab_dtd", "model=tiny_vit", "method=loft_orth_skewgrad", "rank=4",
                       f"paths.data_dir={tmp_path}", "trainer.batch_size=4", "trainer.epochs=1",
                       "trainer.warmup_steps=0", "method.adapter.kwargs.calibration_batches=2")
    assert record["steps"] == 3 and record["metrics"]["eval_examples"] == 8


# --- VPT and the Houlsby adapter -------------------------------------------------------

def _tiny_vit_batch():
    torch.manual_seed(0)
    bundle = load_model(model_cfg("tiny_vit"), num_labels=10)
    source = fashion_mnist(FASHION, "test")
    images = [source.image(i).convert("RGB") for i in range(8)]
    pixels = bundle.tokenizer(images=images, return_tensors="pt")["pixel_values"]
    return bundle, {"pixel_values": pixels, "labels": torch.from_numpy(source.labels[:8])}


def _ctx(bundle, rank=4):
    return MethodContext(rank, {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "head_lr": 1e-2},
                         bundle.target_modules, bundle.head_modules, total_steps=5)


def _train(method, batch, steps=3):
    method.model.train()
    for _ in range(steps):
        method.optimizer.zero_grad()
        method.model(**batch).loss.backward()
        method.optimizer.step()


def test_adapter_is_unchanged_at_init_and_trains():
    bundle, batch = _tiny_vit_batch()
    model = bundle.model.eval()
    with torch.no_grad():
        before = model(pixel_values=batch["pixel_values"]).logits
    cfg = compose_config("model=tiny_vit", "method=adapter", "rank=8")
    method = build_method(cfg.method, copy.deepcopy(model), _ctx(bundle, 8))
    with torch.no_grad():
        after = method.model.eval()(pixel_values=batch["pixel_values"]).logits
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-6)
    named = dict(method.model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    # two sites per block (attention output, MLP output) x 2 blocks; plus the head
    assert {n.split(".adapter.")[0] for n in trainable if ".adapter." in n} == {
        f"vit.layers.{i}.{site}" for i in range(2) for site in ("attention.o_proj", "mlp.fc2")}
    assert trainable - {n for n in trainable if ".adapter." in n} == {"classifier.weight", "classifier.bias"}
    assert method.trainable_params == 4 * (2 * 64 * 8 + 64 + 8) + 64 * 10 + 10
    frozen = {n: p.detach().clone() for n, p in named.items() if not p.requires_grad}
    start = {n: p.detach().clone() for n, p in named.items() if p.requires_grad}
    _train(method, batch)
    assert all(torch.equal(named[n], v) for n, v in frozen.items())
    assert not torch.equal(named["vit.layers.0.mlp.fc2.adapter.up.weight"], start["vit.layers.0.mlp.fc2.adapter.up.weight"])
    assert not torch.equal(named["classifier.weight"], start["classifier.weight"])


@pytest.mark.parametrize("deep", [True, False])
def test_vpt_inserts_prompts_and_trains(deep):
    bundle, batch = _tiny_vit_batch()
    cfg = compose_config("model=tiny_vit", "method=vpt", "rank=5", f"method.adapter.kwargs.deep={deep}",
                         "adapter_dropout=0.0")
    method = build_method(cfg.method, copy.deepcopy(bundle.model), _ctx(bundle, 5))
    model = method.model
    lengths = []
    hooks = [layer.register_forward_hook(lambda m, a, out: lengths.append(out.shape[1])) for layer in model.vit.layers]
    with torch.no_grad():
        model.eval()(pixel_values=batch["pixel_values"])
    for h in hooks:
        h.remove()
    assert lengths == [1 + 5 + 16] * 2  # [CLS] + prompts + 4 x 4 patches, in every block
    named = dict(model.named_parameters())
    assert {n for n, p in named.items() if p.requires_grad} == {"vpt_prompts.prompts", "classifier.weight",
                                                                "classifier.bias"}
    assert named["vpt_prompts.prompts"].shape == ((2 if deep else 1), 5, 64)
    start = named["vpt_prompts.prompts"].detach().clone()
    _train(method, batch)
    assert not torch.equal(named["vpt_prompts.prompts"], start)
    assert method.info["deep"] is deep and method.info["blocks"] == "vit.layers"


def test_vpt_refuses_a_text_model():
    from loft.core.errors import ConfigError

    bundle = load_model(compose_config("model=minilm_l6").model, **GlueTask(glue_task="sst2").model_args())
    with pytest.raises(ConfigError, match="VPT prepends prompt tokens to a ViT"):
        build_method(compose_config("model=minilm_l6", "method=vpt").method, bundle.model, _ctx(bundle))
