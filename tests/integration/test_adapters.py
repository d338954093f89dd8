"""Saved adapters (loft/adapters.py): what a run leaves under results/adapters/ loads in a fresh
process with PEFT (LoRA trained by LoFT; PiSSA converted onto the original base) or loft.orth (LOFT),
`model.adapter=... trainer.max_steps=0` reproduces the run's metric, a mismatch fails in one line,
and scripts/export_adapter.py --merge writes a plain transformers model with the adapted logits."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from loft import adapters, runner
from loft.core.errors import ConfigError
from loft.train.tracking import Tracker
from tests.conftest import REPO, compose_config
from tests.integration.test_runner import TINY_LM

sys.path.insert(0, str(REPO / "scripts"))
import export_adapter  # noqa: E402

PROBE = torch.tensor([list(b"To be, or not to be, that is the question")])
METHODS = {  # lr high enough that 4 steps move the adapter well away from its init
    "loft": ("method=loft", "trainer.lr=3e-2"),     # LoRA trained by LoFT: PEFT's layout
    "pissa": ("method=pissa", "trainer.lr=3e-2"),   # rewrites W0 at init: saved as a plain LoRA on the original W0
    "loft_orth": ("method=loft_orth", "method.adapter.kwargs.support=gradsvd",  # P from calibration: must be saved
                  "method.adapter.kwargs.calibration_batches=2", "trainer.lr=3e-2"),
}
FRESH_PROCESS = """
import sys, torch, peft
from pathlib import Path
from loft import adapters, orth
out = {}
for name, folder in zip(sys.argv[2::2], sys.argv[3::2]):
    base = adapters.base_bundle(Path(folder)).model.eval()   # the run's loader; tiny bases fixed by init_seed
    with torch.no_grad():
        out[name + "/base"] = base(input_ids=torch.load(sys.argv[1])).logits
    if name == "loft_orth":
        model = orth.load_adapter(base, folder)
    else:
        model = peft.PeftModel.from_pretrained(base, folder)
    with torch.no_grad():
        out[name] = model.eval()(input_ids=torch.load(sys.argv[1])).logits
torch.save(out, sys.argv[1] + ".out")
"""


@torch.no_grad()
def logits(model) -> torch.Tensor:
    return model.eval()(input_ids=PROBE).logits


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each method trained 4 steps with trainer.save_adapter=true; its record, adapter folder and
    the logits of the model as the run ended (the runner's own method object, captured)."""
    root = tmp_path_factory.mktemp("adapters")
    captured, out = {}, {}

    def capture(*args, **kwargs):
        captured["method"] = build(*args, **kwargs)
        return captured["method"]

    build = runner.build_method
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "build_method", capture)
        for name, overrides in METHODS.items():
            cfg = compose_config(*TINY_LM, *overrides, "trainer.max_steps=4", "trainer.save_adapter=true",
                                 f"paths.adapters_dir={root / 'adapters'}", runs_dir=root / "runs")
            record = runner.run(cfg)
            folder = Path(record["adapter"]["path"])
            out[name] = SimpleNamespace(record=record, folder=folder, overrides=overrides, root=root,
                                        record_path=Path(adapters.read_info(folder)["record"]),
                                        logits=logits(captured["method"].model))
    return out


def test_folder_layout_and_record(trained):
    loft = trained["loft"]
    assert loft.folder == loft.root / "adapters" / "wikitext2" / "tiny_llama" / "loft" / "r8_seed0"  # the record's name
    assert loft.record_path == loft.root / "runs" / "wikitext2" / "tiny_llama" / "loft" / "r8_seed0.json"
    for name, run in trained.items():
        files = {p.name for p in run.folder.iterdir()}
        assert {"adapter_config.json", "adapter_model.safetensors", "run_info.json"} <= files, name
        assert run.record["adapter"]["format"] == ("loft_orth" if name == "loft_orth" else "peft")
        on_disk = json.loads(run.record_path.read_text())["adapter"]
        assert on_disk == run.record["adapter"] and on_disk["sha256"] == adapters.digest(run.folder)
    config = json.loads((loft.folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["base_model_name_or_path"] == "tiny_llama"
    pissa = json.loads((trained["pissa"].folder / "adapter_config.json").read_text())
    assert pissa["r"] == 16 and pissa["init_lora_weights"] is True  # converted: plain LoRA, rank 2r
    orth_cfg = json.loads((trained["loft_orth"].folder / "adapter_config.json").read_text())
    assert orth_cfg["method"] == "loft_orth" and orth_cfg["config"]["support"] == "gradsvd"


def test_adapters_load_in_a_fresh_process_with_the_run_logits(trained, tmp_path):
    """PeftModel.from_pretrained (and loft.orth.load_adapter) on a base rebuilt in another process."""
    probe = tmp_path / "probe.pt"
    torch.save(PROBE, probe)
    args = [x for name, run in trained.items() for x in (name, str(run.folder))]
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(probe), *args], cwd=REPO, check=True,
                   capture_output=True)
    out = torch.load(str(probe) + ".out")
    for name, run in trained.items():
        assert (out[name + "/base"] - run.logits).abs().max() > 1e-2, f"{name}: the adapter changed nothing"
        # PiSSA's conversion subtracts B0 A0 from the trained factors: round-off of float32 sums
        tol = dict(rtol=1e-4, atol=1e-4) if name == "pissa" else dict(rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[name], run.logits, **tol, msg=name)


@pytest.mark.parametrize("name", list(METHODS))
def test_model_adapter_with_zero_steps_reproduces_the_metric(trained, name):
    run = trained[name]
    record = runner.run(compose_config(*TINY_LM, *run.overrides, "trainer.max_steps=0", f"model.adapter={run.folder}",
                                       "tag=reeval", runs_dir=run.root / "runs"))
    assert record["steps"] == 0 and record["method_info"].get("loaded_adapter", str(run.folder)) == str(run.folder)
    if name == "pissa":  # converted adapter on the original W0 vs residual W0 + trained factors: round-off apart
        assert record["metrics"]["eval_loss"] == pytest.approx(run.record["metrics"]["eval_loss"], rel=1e-5)
    else:
        assert record["metrics"] == run.record["metrics"]


def test_loaded_adapter_keeps_training(trained):
    """model.adapter + steps: training continues from the saved weights (the method's own optimizer)."""
    run = trained["loft"]
    record = runner.run(compose_config(*TINY_LM, *run.overrides, "trainer.max_steps=2", f"model.adapter={run.folder}",
                                       "tag=more", runs_dir=run.root / "runs"))
    assert record["history"]["loss"][0] < run.record["history"]["loss"][0]  # starts where the run ended, not at W0


@pytest.mark.parametrize("override,message", [
    ("rank=4", "has rank 8, this run rank=4; set rank=8"),
    ("model.init_seed=1", r"belongs to another base model \(init_seed=0\); this run has model.init_seed=1"),
    ("method=loft_orth", "holds a peft adapter but method=loft_orth"),
    ("method=dora", None),  # DoRA is a LoraConfig too: allowed, the saved config decides
    ("model.hidden_size=32", "does not fit this model .*size mismatch"),
])
def test_mismatch_fails_in_one_line(trained, override, message, tmp_path):
    run = trained["loft"]
    cfg = compose_config(*TINY_LM, "method=loft", "trainer.max_steps=0", f"model.adapter={run.folder}", override,
                         runs_dir=tmp_path)
    if message is None:
        assert runner.run(cfg)["metrics"] == run.record["metrics"]
        return
    with pytest.raises(ConfigError, match=message) as err:
        runner.run(cfg)
    assert "\n" not in str(err.value)


def test_merged_model_gives_the_adapted_logits(trained, tmp_path):
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    for name in ("loft", "loft_orth"):
        run = trained[name]
        assert export_adapter.main([str(run.record_path), "--merge", str(tmp_path / name)]) == 0
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / name)
        assert type(merged) is LlamaForCausalLM
        assert all(type(m).__module__.startswith(("torch", "transformers")) for m in merged.modules())  # no adapter left
        torch.testing.assert_close(logits(merged), run.logits, rtol=1e-4, atol=1e-4, msg=name)


def test_export_checks_the_hash_and_push_offline_is_one_line(trained, tmp_path, monkeypatch, capsys):
    run = trained["loft"]
    folder = tmp_path / "copy"
    shutil.copytree(run.folder, folder)
    record = json.loads(run.record_path.read_text())
    files = sorted(p for p in folder.rglob("*") if p.is_file())  # the hash, defined independently
    expected = hashlib.sha256("".join(f"{p.relative_to(folder).as_posix()}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                                      for p in files).encode()).hexdigest()
    assert record["adapter"]["sha256"] == expected
    record["adapter"]["path"] = str(folder)
    (tmp_path / "record.json").write_text(json.dumps(record))
    assert adapters.from_record(tmp_path / "record.json") == folder
    with open(folder / "adapter_model.safetensors", "r+b") as f:  # flip one byte of the weights
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    assert export_adapter.main([str(tmp_path / "record.json"), "--merge", str(tmp_path / "m")]) == 2
    assert "changed since" in capsys.readouterr().err

    monkeypatch.setattr("loft.core.hub.hub_reachable", lambda timeout=3.0: False)
    assert export_adapter.main([str(run.folder), "--push", "someone/adapter"]) == 2
    err = capsys.readouterr().err.strip()
    assert "offline" in err and "\n" not in err and err.startswith("error: cannot push to someone/adapter")


def test_wandb_offline_keeps_the_adapter_artifact(trained, tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # artifact staging, kept out of $HOME
    run = trained["loft"]
    tracker = Tracker(OmegaConf.create({"mode": "offline", "project": "loft-test", "dir": str(tmp_path / "wandb")}),
                      "adaptertest01", "name", {}, group="g")
    tracker.log_adapter(run.folder, run.record["adapter"]["sha256"])
    tracker.finish({})
    wandb.teardown()  # the W&B service writes the offline log asynchronously; at exit it always flushes
    log = next((tmp_path / "wandb").rglob("run-adaptertest01.wandb")).read_bytes()
    assert b"adapter-adaptertest01" in log and b"adapter_model.safetensors" in log
    staged = {hashlib.sha256(p.read_bytes()).digest() for p in (tmp_path / "wandb-data").rglob("*") if p.is_file()}
    assert hashlib.sha256((run.folder / "adapter_model.safetensors").read_bytes()).digest() in staged  # for `wandb sync`
