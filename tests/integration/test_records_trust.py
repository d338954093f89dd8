"""Records you can trust (issue 11): one record per distinct config, one process per record name,
force retrains from step 0, resume never crosses a config (nor, unasked, a code) change, and a
diverged or mostly skipped run says so in its record."""
from __future__ import annotations

import json

import pytest

from loft import runner
from loft.core.errors import ConfigError, RunLocked, TrainingDiverged
from loft.locking import record_lock
from loft.core.key import RunKey
from loft.runner import run
from loft.train.loop import Interrupted
from loft.tables.records import load_records
from tests.conftest import compose_config
from tests.integration.test_runner import SMALL_MATFAC, _cli

LOFT_DIR = ("matfac", "matfac", "loft")
CKPT = ("trainer.checkpoint_every=10", "trainer.max_steps=20")


def _dirs(tmp_path):
    return f"paths.runs_dir={tmp_path}/runs", f"paths.checkpoint_dir={tmp_path}/ckpt"


def test_lr_sweep_writes_one_record_per_lr_and_finishes(tmp_path):
    out = _cli(*SMALL_MATFAC[:5], "method=loft", "trainer.max_steps=5", "trainer.lr=0.1,0.01",
               runs_dir=tmp_path / "runs", multirun=True)
    assert out.returncode == 0, out.stderr[-2000:]
    index = load_records(tmp_path / "runs")
    variants = {rec.data["variant"]: rec.data["config"]["trainer"]["lr"] for rec in index.records}
    common = "model.m=48,model.n=32,task.target_rank=4"  # Hydra's override_dirname: sorted, the key left out
    assert variants == {f"{common},trainer.lr=0.1,trainer.max_steps=5": 0.1,
                        f"{common},trainer.lr=0.01,trainer.max_steps=5": 0.01}
    assert not index.rejected and len(index.groups) == 2
    for rec in index.records:  # the name is the variant; the record's fields agree with it
        assert rec.path.name == f"r4_seed0_{rec.data['variant']}.json" and rec.data["status"] == "ok"


def test_a_second_process_on_a_running_name_refuses_in_one_line(tmp_path):
    runs = tmp_path / "runs"
    key = RunKey("matfac", "matfac", "loft", 4, 0, "same")
    with record_lock(key.lock_path(runs), runs / key.relative_path()):  # "the first process", still running
        out = _cli(*SMALL_MATFAC, "method=loft", "tag=same", runs_dir=runs)
        with pytest.raises(RunLocked, match="being computed by another process"):
            run(compose_config(*SMALL_MATFAC, "method=loft", "tag=same", runs_dir=runs))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "is being computed by another process" in lines[-1]
    assert not any(line.startswith(("Traceback", "error")) for line in lines[:-1]), out.stderr
    assert not list(runs.rglob("*.json")), "the refused run must not write"
    assert run(compose_config(*SMALL_MATFAC, "method=loft", "tag=same", runs_dir=runs))["tag"] == "same"  # released


def test_force_after_a_finished_run_retrains_from_step_0(tmp_path, capsys):
    first = run(compose_config(*SMALL_MATFAC, "method=loft", *CKPT, *_dirs(tmp_path)))
    ckpt = tmp_path.joinpath("ckpt", *LOFT_DIR, "r4_seed0", "last.pt")
    assert ckpt.exists()
    ckpt.write_bytes(b"not a checkpoint")  # resuming it would fail: the forced run must not even read it
    capsys.readouterr()
    forced = run(compose_config(*SMALL_MATFAC, "method=loft", *CKPT, "force=true", *_dirs(tmp_path)))
    out = capsys.readouterr().out
    assert "discarded the checkpoint" in out and "resumed from" not in out
    assert forced["history"]["step"] == list(range(1, 21)) and forced["resumed_from"] is None
    assert forced["history"]["loss"] == first["history"]["loss"]  # trained again, the same way
    kept = list(tmp_path.joinpath("runs", *LOFT_DIR).glob("r4_seed0.json.replaced-*"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["wall_time_s"] == first["wall_time_s"]


def test_a_deleted_record_resumes_only_the_same_code_unless_asked(tmp_path, monkeypatch, capsys):
    first = run(compose_config(*SMALL_MATFAC, "method=loft", *CKPT, *_dirs(tmp_path)))
    record = tmp_path.joinpath("runs", *LOFT_DIR, "r4_seed0.json")
    record.unlink()
    again = run(compose_config(*SMALL_MATFAC, "method=loft", *CKPT, *_dirs(tmp_path)))  # same code: re-evaluates
    assert again["resumed_from"] == {"step": 20, "git_sha": first["git_sha"]} and again["metrics"] == first["metrics"]

    record.unlink()
    monkeypatch.setattr(runner, "git_sha", lambda: "0" * 40)  # the code changed since the checkpoint
    capsys.readouterr()
    fresh = run(compose_config(*SMALL_MATFAC, "method=loft", *CKPT, *_dirs(tmp_path)))
    assert "written by code" in capsys.readouterr().out
    assert fresh["resumed_from"] is None and fresh["history"]["step"] == list(range(1, 21))

    other = (f"paths.runs_dir={tmp_path}/runs2", f"paths.checkpoint_dir={tmp_path}/ckpt2")
    monkeypatch.setattr(runner, "git_sha", lambda: "1" * 40)
    with pytest.raises(Interrupted):
        run(compose_config(*SMALL_MATFAC, "method=loft", *CKPT, "trainer.stop_after_steps=10", *other))
    monkeypatch.setattr(runner, "git_sha", lambda: "2" * 40)  # resume=true may cross the code change, and says so
    asked = run(compose_config(*SMALL_MATFAC, "method=loft", *CKPT, "resume=true", *other))
    assert asked["resumed_from"] == {"step": 10, "git_sha": "1" * 40} and asked["git_sha"] == "2" * 40
    assert asked["history"]["loss"] == fresh["history"]["loss"]


def test_a_finite_divergence_is_recorded_and_stops_the_run(tmp_path):
    """The issue's `task=matfac method=loft trainer.lr=1e6 trainer.max_steps=30` (loss 1.5e16, exit 0 before),
    on the small problem; run.py turns TrainingDiverged into its one `error:` line and exit 2."""
    with pytest.raises(TrainingDiverged) as err:
        run(compose_config(*SMALL_MATFAC, "method=loft", "trainer.lr=1e6", "trainer.max_steps=30", *_dirs(tmp_path)))
    message = str(err.value)
    assert message.startswith("loss above ") and "steps in a row up to step" in message and "method=loft" in message
    assert "\n" not in message and "last loss" in message
    (path,) = (tmp_path / "runs").rglob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "diverged" and record["metrics"] == {} and record["stopped"] == message
    assert record["steps"] < 30 and max(record["history"]["loss"]) > 1e4 * record["history"]["loss"][0]


def test_mostly_skipped_steps_make_a_partial_record_with_a_warning(tmp_path, monkeypatch, capsys):
    from tasks.matfac import MatFacTask

    real_loss, calls = MatFacTask.loss, {"n": 0}

    def every_other(self, model, batch):  # NaN on odd calls: never max_bad_steps in a row, but half skipped
        calls["n"] += 1
        loss = real_loss(self, model, batch)
        return loss * float("nan") if calls["n"] % 2 else loss

    monkeypatch.setattr(MatFacTask, "loss", every_other)
    record = run(compose_config(*SMALL_MATFAC, "method=loft", *_dirs(tmp_path)))
    assert record["status"] == "partial" and record["bad_steps"] == 20
    assert "warning: 20 of 40 steps were skipped as non-finite (status partial" in capsys.readouterr().err


def test_non_finite_divergence_writes_a_diverged_record(tmp_path, monkeypatch):
    from tasks.matfac import MatFacTask

    real_loss = MatFacTask.loss
    monkeypatch.setattr(MatFacTask, "loss", lambda self, m, b: real_loss(self, m, b) * float("nan"))
    with pytest.raises(TrainingDiverged, match="3 non-finite steps in a row up to step 3"):
        run(compose_config(*SMALL_MATFAC, "method=full", "trainer.max_bad_steps=3", *_dirs(tmp_path)))
    (rec,) = load_records(tmp_path / "runs").records
    assert rec.data["status"] == "diverged" and rec.data["bad_steps"] == 3 and rec.flag == "status diverged, 3 non-finite steps skipped"


def test_an_invalid_record_under_the_name_is_refused_not_overwritten(tmp_path):
    path = tmp_path.joinpath("runs", *LOFT_DIR, "r4_seed0.json")
    path.parent.mkdir(parents=True)
    path.write_text('{"task": ')
    with pytest.raises(ConfigError, match=r"cannot read record .*r4_seed0.json \(unreadable: .*\): force=true reruns the run and replaces it"):
        run(compose_config(*SMALL_MATFAC, "method=loft", *_dirs(tmp_path)))
    assert path.read_text() == '{"task": '
