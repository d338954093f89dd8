"""The record schema and its readers: variant names, and records the tables must not trust
(missing seed, a method that disagrees with its folder, a renamed metric, a duplicate key,
invalid JSON), each listed by path with its reason and left out; marks for runs not ok."""
from __future__ import annotations

import hashlib
import json
import re

import pytest

from loft.core import schema
from loft.core.key import RunKey
from loft.core.provenance import CHUNK, file_provenance
from loft.tables import build_table, load_records
from loft.tables.render import to_latex, to_markdown
from loft.variant import variant_of
from tests.unit.test_tables import METHODS, SPECS, write_record

CS = "commonsense170k"


def test_variant_is_hydras_override_dirname_without_the_key_and_run_settings():
    overrides = ["trainer.lr=0.1", "method=loft", "rank=4", "seed=1", "task=matfac", "model.m=48", "tag=x",
                 "paths.runs_dir=/tmp/r", "force=true", "resume=auto", "logger=disabled", "+experiment=cpu/a",
                 "trainer.checkpoint_every=5", "trainer.stop_after_steps=3", "++task.max_seq_length=64", "~adapter_dropout"]
    assert variant_of(overrides) == "++task.max_seq_length=64,model.m=48,trainer.lr=0.1,~adapter_dropout"
    assert variant_of(["seed=0", "paths.data_dir=/d"]) == ""


def test_record_names_escape_slashes_and_shorten_long_variants():
    assert RunKey("t", "m", "lora", 4, 0, "model.path=/a/b").relative_path().name == "r4_seed0_model.path=%2Fa%2Fb.json"
    assert RunKey("t", "m", "full", None, 2, "").relative_path().name == "full_seed2.json"
    long_a, long_b = RunKey("t", "m", "lora", 4, 0, "x=" + "1" * 300), RunKey("t", "m", "lora", 4, 0, "x=" + "1" * 299)
    assert len(long_a.relative_path().name) < 140 and long_a.relative_path() != long_b.relative_path()


def test_schema_2_fields_are_checked_and_schema_1_is_read_as_2(tmp_path):
    path = write_record(tmp_path, CS, "llama_7b", "loft", 16, 0, {"boolq": 0.7}, tag="latency")
    old = schema.check(json.loads(path.read_text()), path)
    assert (old["schema"], old["variant"], old["status"], old["bad_steps"]) == (2, "latency", "ok", 0)
    with pytest.raises(schema.RecordError, match="field 'status' is 'fine', not one of ok, diverged, partial"):
        schema.check({**old, "status": "fine"}, path)
    with pytest.raises(schema.RecordError, match="schema 3 is not 1 or 2"):
        schema.check({**old, "schema": 3}, path)
    with pytest.raises(schema.RecordError, match="field 'seed' is True, not an integer"):
        schema.normalize({**old, "seed": True})


def test_file_provenance_is_the_files_sha256_rows_and_name(tmp_path):
    data = tmp_path / "data" / "cs" / "train.json"
    data.parent.mkdir(parents=True)
    body = b"".join(b'{"q": %d}\n' % i for i in range(300_000))  # several read chunks
    data.write_bytes(body)
    assert len(body) > 2 * CHUNK
    got = file_provenance(data, 300_000, root=tmp_path / "data")
    assert got == {"train_file": "cs/train.json", "rows": 300_000, "sha256": hashlib.sha256(body).hexdigest()}
    assert file_provenance(data, 7)["train_file"] == str(data)  # no root: the path as given
    data.write_bytes(body[:-1] + b" ")  # one byte changed: another sha
    assert file_provenance(data, 300_000)["sha256"] != got["sha256"]


def test_the_optional_data_field_is_checked_when_present(tmp_path):
    path = write_record(tmp_path, CS, "llama_7b", "loft", 16, 0, {"boolq": 0.7})
    record = schema.check(json.loads(path.read_text()), path)
    assert "data" not in record  # absent: unknown, still valid (records written before the field)
    good = {"train_file": "commonsense/commonsense_170k.json", "rows": 170_420, "sha256": "ab" * 32}
    assert schema.check({**record, "data": None}, path)["data"] is None
    assert schema.check({**record, "data": good}, path)["data"] == good
    bad = [(["x"], "field 'data' is ['x'], not a dict or null"),
           ({k: v for k, v in good.items() if k != "sha256"}, "field 'data.sha256' is missing"),
           ({**good, "sha256": "ab" * 31}, f"field 'data.sha256' is '{'ab' * 31}', not 64 lowercase hex digits"),
           ({**good, "sha256": "AB" * 32}, "not 64 lowercase hex digits"),
           ({**good, "rows": "170420"}, "field 'data.rows' is '170420', not a non-negative integer"),
           ({**good, "rows": -1}, "field 'data.rows' is -1, not a non-negative integer"),
           ({**good, "rows": True}, "field 'data.rows' is True, not a non-negative integer"),
           ({**good, "train_file": ""}, "field 'data.train_file' is '', not a non-empty string"),
           ({**good, "split": "train"}, "field 'data' has unknown keys ['split']")]
    for value, message in bad:
        with pytest.raises(schema.RecordError, match=re.escape(message)):
            schema.check({**record, "data": value}, path)


def _table_md(runs, tmp_path):
    table = build_table(SPECS.tables["table02_commonsense"], SPECS, load_records(runs), METHODS)
    return table, to_markdown(table, SPECS, tmp_path / "tables")


def test_untrustworthy_records_are_listed_and_left_out(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed, acc in ((0, 0.70), (1, 0.72)):
        write_record(runs, CS, "llama_7b", "loft", 16, seed, {"boolq": acc})
    write_record(runs, CS, "llama_7b", "lora", 16, 0, {"boolq": 0.60})
    no_seed = write_record(runs, CS, "llama_7b", "loft", 16, 5, {"boolq": 0.10})
    data = json.loads(no_seed.read_text())
    del data["seed"]
    no_seed.write_text(json.dumps(data))                      # before: taken as seed 0, replacing the real one
    wrong_method = write_record(runs, CS, "llama_7b", "loft", 16, 3, {"boolq": 0.11})
    wrong_method.write_text(wrong_method.read_text().replace('"method": "loft"', '"method": "lora"'))
    broken = runs / CS / "llama_7b" / "loft" / "r16_seed4.json"
    broken.write_text('{"task": ')
    dup_a = write_record(runs / "a", CS, "llama_7b", "dora", 16, 0, {"boolq": 0.5})
    dup_b = write_record(runs / "b", CS, "llama_7b", "dora", 16, 0, {"boolq": 0.9})

    index = load_records(runs)
    reasons = {p: why for p, why in index.rejected}
    assert reasons[no_seed] == "field 'seed' is missing"
    assert reasons[wrong_method] == f"its fields name {CS}/llama_7b/lora/r16_seed3.json, not this path"
    assert reasons[broken].startswith("unreadable: Expecting value")
    assert reasons[dup_a] == f"shares its key with {dup_b}" and reasons[dup_b] == f"shares its key with {dup_a}"
    assert set(index.get(CS, "llama_7b", "loft", 16)) == {0, 1}
    assert index.get(CS, "llama_7b", "lora", 16)[0].data["metrics"]["boolq"] == 0.60
    assert not index.get(CS, "llama_7b", "dora", 16)
    assert f"warning: left out {no_seed}: field 'seed' is missing" in capsys.readouterr().out

    table, md = _table_md(runs, tmp_path)
    loft = next(r for r in table.section("paper") if r.sel.model == "llama_7b" and r.label == "LoFT r=16")
    assert loft.cells["boolq"].values == {0: 70.0, 1: 72.0} and not loft.cells["boolq"].flagged
    assert "Record files left out (not valid records):" in md and "field 'seed' is missing" in md


def test_a_renamed_metric_is_marked_not_silently_dropped(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, CS, "llama_7b", "loft", 16, 0, {"boolq": 0.70})
    write_record(runs, CS, "llama_7b", "loft", 16, 1, {"boolq": 0.72})
    renamed = write_record(runs, CS, "llama_7b", "loft", 16, 2, {"bool_q": 0.9})
    table, md = _table_md(runs, tmp_path)
    loft = next(r for r in table.section("paper") if r.sel.model == "llama_7b" and r.label == "LoFT r=16")
    assert loft.cells["boolq"].flagged and set(loft.cells["boolq"].values) == {0, 1}
    assert table.attention[str(renamed)] == "no metric 'boolq' (it has: bool_q), unlike seed(s) 0, 1"
    assert "71.00 ± 1.41‡" in md and "no metric 'boolq' (it has: bool_q)" in md


def test_cells_resting_on_runs_not_ok_or_with_skipped_steps_are_marked(tmp_path):
    runs = tmp_path / "runs"
    clean = {"schema": 2, "variant": "", "status": "ok", "bad_steps": 0}
    write_record(runs, CS, "llama_7b", "loft", 16, 0, {"boolq": 0.70}, **clean)
    write_record(runs, CS, "llama_7b", "loft", 16, 1, {"boolq": 0.72}, **{**clean, "bad_steps": 3})
    write_record(runs, CS, "llama_7b", "lora", 16, 0, {"boolq": 0.60}, **clean)
    diverged = write_record(runs, CS, "llama_7b", "dora", 16, 0, {}, **{**clean, "status": "diverged"})
    table, md = _table_md(runs, tmp_path)
    cells = {r.label: r.cells["boolq"] for r in table.section("paper") if r.sel.model == "llama_7b"}
    assert cells["LoFT r=16"].flagged and not cells["LoRA r=16"].flagged
    assert table.attention[str(diverged)] == "status diverged"  # no cell (no metrics), but listed
    assert "71.00 ± 1.41‡ (" in md and "s1‡" in md and "3 non-finite steps skipped" in md
    assert r"$\ddagger$" in to_latex(table, SPECS)


def test_tables_can_read_one_variant_as_the_default(tmp_path):
    runs = tmp_path / "runs"
    small = {"schema": 2, "status": "ok", "bad_steps": 0, "variant": "model.m=48"}
    write_record(runs, CS, "llama_7b", "loft", 16, 0, {"boolq": 0.5}, **{**small, "variant": ""})
    write_record(runs, CS, "llama_7b", "loft", 16, 0, {"boolq": 0.7}, tag="model.m=48", **small)
    assert load_records(runs).get(CS, "llama_7b", "loft", 16)[0].data["metrics"] == {"boolq": 0.5}
    shifted = load_records(runs, default_variant="model.m=48")
    assert shifted.get(CS, "llama_7b", "loft", 16)[0].data["metrics"] == {"boolq": 0.7}
    assert shifted.get(CS, "llama_7b", "loft", 16, "(default)")[0].data["metrics"] == {"boolq": 0.5}
