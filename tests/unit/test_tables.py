"""Result tables: the published numbers (results/paper/) checked against themselves and the
paper's prose, and rendering on hand-made records: missing cells, several seeds, per-set
records, stand-in models, aliases, relative columns, LaTeX, figures."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from loft.tables import build_table, load_paper_table, load_records, load_specs, make_tables, paper_tables
from loft.tables.render import tex, to_latex, to_markdown

SPECS = load_specs()
CS = ["boolq", "piqa", "siqa", "hellaswag", "winogrande", "arc_c", "arc_e", "obqa"]
METHODS = {"full", "lora", "dora", "rslora", "adalora", "lora_ga", "loraplus", "loft", "loft_simple", "loft_noalt",
           "loft_nocal", "loft_noalt_nocal", "psoft"}


def write_record(root: Path, task, model, method, rank, seed=0, metrics=None, tag="", **fields) -> Path:
    name = ("full" if rank is None else f"r{rank}") + f"_seed{seed}" + (f"_{tag}" if tag else "") + ".json"
    path = root / task / model / method / name
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"task": task, "model": model, "method": method, "rank": rank, "seed": seed, "tag": tag,
              "metrics": metrics or {}, "config_hash": "0123abcd", "trainable_params": 100,
              "history": {"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0]}}
    record.update(fields)
    path.write_text(json.dumps(record))
    return path


def build(name: str, runs: Path):
    return build_table(SPECS.tables[name], SPECS, load_records(runs), METHODS)


def row(table, model, label, section="paper"):
    return next(r for r in table.section(section) if r.sel.model == model and r.label == label)


# --- the published numbers ----------------------------------------------------------------
def test_every_paper_table_loads_with_its_source():
    names = paper_tables()
    assert len(names) == 20
    for name in names:
        t = load_paper_table(name)
        assert t.meta["paper"] and t.meta["table"] and t.meta["source"] and t.meta["unit"], name
        assert t.rows or name.startswith("lofto_"), name
        for r in t.rows:
            assert r.model and r.method and r.label, (name, r)
    t2 = load_paper_table("loft_table02_commonsense")
    assert t2.value("llama_7b", "loft", 16, "avg") == 76.08
    assert t2.find("llama_7b", "loft", 16).cells["avg"].text == "76.08"
    t3 = load_paper_table("loft_table03_vision").find("vit_base_patch16_224_in21k", "full", None).cells["domainnet"]
    assert (t3.text, t3.value, t3.std, t3.decimals) == ("73.46 ± 1.20", 73.46, 1.20, 2)
    assert load_paper_table("loft_table07_ablation_commonsense").find("llama_7b", "loft_nocal", 4).cells["boolq"].text == "03.18"
    assert load_paper_table("loft_table12_latency").value("llama_7b", "loft", None, "r16") == 3.23
    assert load_paper_table("loft_table21_humaneval_context").find("llama3_8b", "loft", 8, context="512").cells[
        "humaneval_pass1"].value == 0.488
    with pytest.raises(FileNotFoundError, match="no such paper table"):
        load_paper_table("loft_table99")


def test_every_avg_column_is_the_mean_of_its_row():
    checked = 0
    for name in paper_tables():
        t = load_paper_table(name)
        if "avg" not in t.columns:
            continue
        for r in t.rows:
            parts = [r.cells[c].value for c in t.columns if c != "avg"]
            assert abs(sum(parts) / len(parts) - r.cells["avg"].value) <= 0.0051, (name, r.label, r.model)
            checked += 1
    assert checked == 18 + 6 + 4 + 2 + 9 + 4 + 6  # Tables 2, 3, 7, 10, 16, 17, 18


def test_rows_the_paper_repeats_agree_across_tables():
    t2, t16 = load_paper_table("loft_table02_commonsense"), load_paper_table("loft_table16_commonsense_lowrank")
    for rank in (4, 2, 1):
        assert t2.find("llama_7b", "loft", rank).cells == t16.find("llama_7b", "loft", rank).cells
    assert load_paper_table("loft_table07_ablation_commonsense").find("llama_7b", "loft", 4).cells == \
        t2.find("llama_7b", "loft", 4).cells
    assert load_paper_table("loft_table10_simple_commonsense").find("llama_7b", "loft", 16).cells == \
        t2.find("llama_7b", "loft", 16).cells
    assert load_paper_table("loft_table20_humaneval_rank").find("llama3_8b", "lora", 8).cells == \
        load_paper_table("loft_table21_humaneval_context").find("llama3_8b", "lora", 8, context="256").cells
    assert load_paper_table("loft_table11_simple_memory").value("llama_7b", "lora", 16, "memory_gb") == \
        load_paper_table("loft_table08_memory_r16").value("llama_7b", "lora", 16, "memory_gb")


def test_relative_increases_follow_from_the_memory_columns():
    for name, rank in (("loft_table08_memory_r16", 16), ("loft_table09_memory_r4", 4)):
        t = load_paper_table(name)
        base = t.value("llama_7b", "lora", rank, "memory_gb")
        for r in t.rows:
            assert abs((r.cells["memory_gb"].value / base - 1) * 100 - r.cells["memory_rel_incr"].value) < 0.01, r.label
    t11 = load_paper_table("loft_table11_simple_memory")
    for rank, lora in ((16, 28.50), (4, 28.15)):  # each row against LoRA at its own rank (Tables 8, 9)
        value = t11.value("llama_7b", "loft_simple", rank, "memory_gb")
        assert abs((value / lora - 1) * 100 - t11.value("llama_7b", "loft_simple", rank, "memory_rel_incr")) < 0.03


PROSE = [  # (file, model, method, rank, column, value, where the prose quotes it)
    ("loft_table02_commonsense", "llama_7b", "loft", 16, "avg", 76.08, "Sec. 3.1"),
    ("loft_table02_commonsense", "llama_7b", "lora", 16, "avg", 73.57, "Sec. 3.1"),
    ("loft_table02_commonsense", "llama_7b", "dora", 16, "avg", 71.11, "Sec. 3.1"),
    ("loft_table02_commonsense", "llama2_7b", "loft", 16, "avg", 80.46, "Sec. 3.1"),
    ("loft_table02_commonsense", "llama2_7b", "loft", 1, "avg", 74.88, "Sec. 3.1"),
    ("loft_table02_commonsense", "llama3_8b", "loft", 16, "avg", 85.63, "Sec. 3.1"),
    ("loft_table03_vision", "vit_base_patch16_224_in21k", "loft", 16, "avg", 76.12, "Sec. 3.2"),
    ("loft_table03_vision", "vit_base_patch16_224_in21k", "lora", 16, "avg", 75.46, "Sec. 3.2"),
    ("loft_table03_vision", "vit_base_patch16_224_in21k", "dora", 16, "avg", 74.74, "Sec. 3.2"),
    ("loft_table03_vision", "vit_base_patch16_224_in21k", "full", None, "avg", 75.86, "Sec. 3.2"),
    ("loft_table08_memory_r16", "llama_7b", "loft", 16, "memory_rel_incr", 25.65, "App. E.2"),
    ("loft_table08_memory_r16", "llama_7b", "dora", 16, "memory_rel_incr", 25.23, "App. E.2"),
    ("loft_table08_memory_r16", "llama_7b", "loft", 16, "trainable_params_pct", 0.4145, "App. E.2"),
    ("loft_table09_memory_r4", "llama_7b", "loft", 4, "memory_rel_incr", 6.71, "App. E.2"),
    ("loft_table09_memory_r4", "llama_7b", "loft", 4, "trainable_params_pct", 0.1040, "App. E.2"),
    ("loft_table09_memory_r4", "llama_7b", "dora", 4, "trainable_params_rel_incr", 12.40, "App. E.2"),
    ("loft_table14_wikitext2_gpt2", "gpt2", "loft", 4, "perplexity", 31.75, "App. E.4"),
    ("loft_table15_wikitext2_gpt2_large", "gpt2_large", "zero_shot", None, "perplexity", 38.87, "App. E.4"),
    ("loft_table15_wikitext2_gpt2_large", "gpt2_large", "full", None, "perplexity", 19.42, "App. E.4"),
    ("loft_table15_wikitext2_gpt2_large", "gpt2_large", "loft", 4, "perplexity", 19.26, "App. E.4"),
    ("loft_table15_wikitext2_gpt2_large", "gpt2_large", "lora", 4, "perplexity", 19.78, "App. E.4"),
    ("loft_table15_wikitext2_gpt2_large", "gpt2_large", "rslora", 4, "perplexity", 19.62, "App. E.4"),
    ("loft_table15_wikitext2_gpt2_large", "gpt2_large", "loraplus", 4, "perplexity", 19.73, "App. E.4"),
    ("loft_table15_wikitext2_gpt2_large", "gpt2_large", "adalora", 4, "perplexity", 23.31, "App. E.4"),
    ("loft_table18_domainnet_domains", "vit_base_patch16_224_in21k", "loft", 16, "real", 84.55, "App. G.2"),
    ("loft_table20_humaneval_rank", "llama3_8b", "loft_simple", 8, "humaneval_pass1", 0.460, "App. H"),
    ("loft_table20_humaneval_rank", "llama3_8b", "loft_simple", 8, "humanevalplus_pass1", 0.405, "App. H"),
    ("loft_table20_humaneval_rank", "llama3_8b", "loft_simple", 128, "humaneval_pass1", 0.485, "App. H"),
    ("loft_table20_humaneval_rank", "llama3_8b", "loft_simple", 128, "humanevalplus_pass1", 0.436, "App. H"),
    ("loft_table20_humaneval_rank", "llama3_8b", "loft_simple", 64, "humaneval_pass10", 0.768, "App. H"),
    ("loft_table20_humaneval_rank", "llama3_8b", "loft_simple", 64, "humanevalplus_pass10", 0.707, "App. H"),
    ("loft_table20_humaneval_rank", "llama3_8b", "lora", 8, "humaneval_pass1", 0.421, "App. H"),
    ("loft_table20_humaneval_rank", "llama3_8b", "lora", 8, "humanevalplus_pass1", 0.368, "App. H"),
]


@pytest.mark.parametrize("name,model,method,rank,column,value,where", PROSE)
def test_numbers_the_prose_quotes_match_the_tables(name, model, method, rank, column, value, where):
    assert load_paper_table(name).value(model, method, rank, column) == value


def test_gaps_the_prose_quotes_are_in_points():
    t2, t16 = load_paper_table("loft_table02_commonsense"), load_paper_table("loft_table16_commonsense_lowrank")
    loft4 = t2.value("llama_7b", "loft", 4, "avg")
    assert round(loft4 - t16.value("llama_7b", "dora", 4, "avg")) == 40   # "+40%" vs DoRA at r = 4 (Sec. 3.1)
    assert round(loft4 - t16.value("llama_7b", "lora", 4, "avg")) == 25   # "+25%" vs LoRA
    assert round(t2.value("llama_7b", "loft", 16, "avg") - loft4, 1) == 1.1  # "1.1% drop at rank 4"


def test_specs_cover_every_column_of_their_paper_table():
    for name, spec in SPECS.tables.items():
        if spec.paper:
            paper = load_paper_table(spec.paper)
            assert [c.key for c in spec.columns] == paper.columns, name


# --- rendering on hand-made records --------------------------------------------------------
def test_commonsense_table_reads_per_set_metrics_seeds_and_missing_cells(tmp_path):
    runs = tmp_path / "runs"
    for seed, shift in ((0, 0.0), (1, 0.02)):   # one commonsense170k record per seed, fractions
        metrics = {k: 0.70 + shift for k in CS} | {"avg": 0.70 + shift}
        write_record(runs, "commonsense170k", "llama_7b", "loft", 16, seed, metrics)
    for i, k in enumerate(CS):                  # one record per eval set, metric "accuracy"
        write_record(runs, k, "llama2_7b", "lora", 16, 0, {k: 0.5 + i / 100})  # per-set task: metric named after the set
    write_record(runs, "commonsense170k", "smollm2_135m", "loft", 16, 0, {k: 0.3 for k in CS})  # no avg key
    write_record(runs, "commonsense170k", "smollm2_135m", "loft", 16, 0, {"boolq": 0.3}, tag="latency")
    table = build("table02_commonsense", runs)

    loft = row(table, "llama_7b", "LoFT r=16")
    assert loft.cells["avg"].n == 2 and loft.cells["avg"].mean == pytest.approx(71.0)
    assert loft.cells["avg"].std == pytest.approx(1.41421, abs=1e-4)
    lora2 = row(table, "llama2_7b", "LoRA r=16")
    assert lora2.cells["boolq"].mean == pytest.approx(50.0) and lora2.cells["avg"].mean == pytest.approx(53.5)
    assert len(lora2.records) == 8
    assert row(table, "llama3_8b", "LoFT r=1").records == []
    mini = row(table, "smollm2_135m", "LoFT r=16", "ours")
    assert mini.paper_model == "llama_7b" and mini.cells["avg"].mean == pytest.approx(30.0)  # mean of the sets

    md = to_markdown(table, SPECS, tmp_path / "tables")
    assert "|  | LoFT r=16 | 71.00 ± 1.41 (68.62) |" in md               # model named on its group's first row
    assert "71.00 ± 1.41 (76.08) | -5.08 |" in md                       # avg, paper column and delta
    assert "| — (65.38) |" in md                                          # no LoRA LLaMA-7B run yet
    assert "## Our runs on other models" in md and "| SmolLM2-135M | LoFT r=16 | LLaMA-7B | 30.00 (68.62) |" in md
    assert "other variants (tag, or overrides beyond the key), not shown: latency (1)" in md
    for link in re.findall(r"\]\(([^ )]+)", md):                     # every link points at a record
        assert (tmp_path / "tables" / link).resolve().is_file(), link
    assert "[boolq:s0](" in md and "[s0](" in md and "[s1](" in md
    assert "+experiment=loft_table2_llama7b" in md and "+experiment=cpu/loft_table2_llama7b" in md


def test_cells_trained_on_another_file_than_the_papers_are_marked(tmp_path):
    runs = tmp_path / "runs"
    metrics = {k: 0.70 for k in CS} | {"avg": 0.70}
    published = {"train_file": "commonsense/commonsense_170k.json", "rows": 170420, "sha256": "ab" * 32}
    write_record(runs, "commonsense170k", "llama_7b", "loft", 16, 0, metrics, data=published)
    write_record(runs, "commonsense170k", "llama_7b", "lora", 16, 0, metrics,
                 data={"train_file": "commonsense/commonsense_union_8.json", "rows": 147568, "sha256": "cd" * 32})
    write_record(runs, "commonsense170k", "llama_7b", "dora", 16, 0, metrics)  # older record: no `data` field
    table = build("table02_commonsense", runs)
    assert not row(table, "llama_7b", "LoFT r=16").cells["avg"].other_data
    assert row(table, "llama_7b", "LoRA r=16").cells["avg"].other_data
    assert not row(table, "llama_7b", "DoRA r=16").cells["avg"].other_data
    md = to_markdown(table, SPECS, tmp_path)
    assert "| 70.00§ (" in md and md.count("70.00§") == len(CS) + 1  # every cell of the LoRA row, avg included
    assert "§ = trained on another file than the paper's" in md and "‡" not in md.replace("‡ =", "")


def test_aliases_unavailable_methods_and_lower_is_better(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, "wikitext2", "gpt2", "full", None, 0, {"perplexity": 61.0}, tag="zero_shot")
    write_record(runs, "wikitext2", "gpt2", "loft", 4, 0, {"perplexity": 30.5})
    write_record(runs, "wikitext2", "gpt2", "rslora", 4, 0, {"perplexity": 33.0}, notes=["trained on the validation split"])
    table = build("table14_wikitext2_gpt2", runs)
    md = to_markdown(table, SPECS, tmp_path)
    assert "[s0†](" in md and "- trained on the validation split" in md and md.count("†") == 2  # its link, the footnote
    assert "[s0](" in md  # a record without notes keeps a plain link
    assert "| GPT-2 | Zero-Shot | 61.00 (60.38) | +0.62 |" in md
    assert "| LoFT r=4 | 30.50 (31.75) | -1.25 |" in md
    assert "| LoRA-Pro r=4 | n/a (32.79) |" in md                       # not in this runner
    assert "| LoRA r=4 | — (34.80) |" in md and "Better: lower." in md


def test_relative_columns_latency_and_memory(tmp_path):
    runs = tmp_path / "runs"
    for method, t in (("lora", 0.5), ("loft", 1.5)):
        for rank in (16, 4, 1):
            write_record(runs, "commonsense170k", "llama_7b", method, rank, 0, {}, tag="latency",
                         history={"step": [1, 2, 3], "loss": [1, 1, 1], "step_time_s": [9.0, t, t]})
        write_record(runs, "commonsense170k", "llama_7b", method, 16, 0, {"avg": 0.7},
                     peak_memory_bytes={"lora": 28.5e9, "loft": 35.8e9}[method], trainable_params=1000, total_params=10**6)
    t12 = build("table12_latency", runs)
    assert row(t12, "llama_7b", "LoRA").cells["r16"].mean == pytest.approx(1.0)
    assert row(t12, "llama_7b", "LoFT").cells["r4"].mean == pytest.approx(3.0)   # median step time over LoRA's
    assert "| LoFT | 3.00× (3.23×) | 3.00× (2.26×) | 3.00× (1.76×) |" in to_markdown(t12, SPECS, tmp_path)
    t8 = build("table08_memory_r16", runs)
    loft = row(t8, "llama_7b", "LoFT")
    assert loft.cells["memory_gb"].mean == pytest.approx(35.8)
    assert loft.cells["memory_rel_incr"].mean == pytest.approx((35.8 / 28.5 - 1) * 100)
    assert loft.cells["trainable_params_pct"].mean == pytest.approx(0.1)
    assert "| +25.61% (+25.65%) |" in to_markdown(t8, SPECS, tmp_path)
    assert row(t8, "llama_7b", "DoRA").available is False                 # full DoRA: n/a


def test_tags_from_paper_keys_and_tables_without_published_numbers(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, "humaneval", "llama3_8b", "loft", 8, 0, {"pass@1": 0.5, "humaneval_plus_pass@1": 0.45}, tag="ctx512")
    t21 = build("table21_humaneval_context", runs)
    r = row(t21, "llama3_8b", "LoFT ctx=512")
    assert r.cells["humaneval_pass1"].mean == 0.5 and r.cells["humanevalplus_pass1"].mean == 0.45
    assert row(t21, "llama3_8b", "LoFT ctx=256").records == []
    for seed in (0, 1, 2):
        write_record(runs, "glue_rte", "minilm_l6", "psoft", 8, seed, {"accuracy": 0.6 + seed / 100})
    glue = build("lofto_glue", runs)
    assert not glue.paper_numbers and len(glue.section("ours")) == 1
    md = to_markdown(glue, SPECS, tmp_path)
    assert "| MiniLM-L6 | PSOFT r=8 | — | — | — | — | — | 61.00 ± 1.00 | — | — | — | 0,1,2 |" in md
    assert "paper ref." not in md


def test_latex_is_escaped_and_lists_the_records(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, "commonsense170k", "llama_7b", "loft_simple", 16, 0, {k: 0.7 for k in CS})
    write_record(runs, "commonsense170k", "llama_7b", "loft_simple", 16, 1, {k: 0.72 for k in CS})
    latex = to_latex(build("table10_simple_commonsense", runs), SPECS)
    assert r"\toprule" in latex and r"\bottomrule" in latex and "$\\pm$" in latex
    cells = [c for line in latex.splitlines() if " & " in line and not line.startswith("%")
             for c in line.removesuffix(r" \\").split(" & ")]
    assert len(cells) == 3 * 12 and not [c for c in cells if re.search(r"(?<!\\)[_%&#]", c)], cells
    assert "71.00 $\\pm$ 1.41 (75.98)" in latex and "r16_seed1.json" in latex
    assert tex("a_b & 5% ± —") == r"a\_b \& 5\% $\pm$ ---"


def test_make_tables_renders_only_tables_with_records_and_the_figures(tmp_path):
    runs = tmp_path / "runs"
    for method in ("full", "lora", "loft"):
        write_record(runs, "matfac", "matfac", method, None if method == "full" else 8, 0, {"loss": 1.0},
                     history={"step": list(range(1, 51)), "loss": [10.0 ** (-i / 10) for i in range(50)]})
    for method in ("lora", "loft"):  # a curves figure needs two of its methods: Figure 7 yes, Figure 6 (ablation) no
        write_record(runs, "wikitext2", "smollm2_135m", method, 4, 0, {"perplexity": 30.0},
                     history={"step": list(range(1, 11)), "loss": [4.0 - i / 10 for i in range(10)]})
    (runs / "wikitext2" / "smollm2_135m" / "loft" / ".tmp-abc.json").write_text("{half a rec")
    (runs / "broken.json").write_text("{not json")
    out = make_tables(runs, tmp_path / "tables", tmp_path / "figures", methods=METHODS)
    names = sorted(p.name for p in out["tables"])
    assert names == ["table14_wikitext2_gpt2.md", "table14_wikitext2_gpt2.tex",
                     "table15_wikitext2_gpt2_large.md", "table15_wikitext2_gpt2_large.tex"]
    assert "table02_commonsense" in out["skipped"]
    figures = sorted(p.name for p in out["figures"])
    assert figures == ["figure2_matfac.png", "figure7_wikitext2_smollm2_135m.png"]
    assert all(p.stat().st_size > 5000 for p in out["figures"])
    index = (tmp_path / "tables" / "README.md").read_text()
    assert "[table14_wikitext2_gpt2.md](table14_wikitext2_gpt2.md)" in index
    assert os.path.relpath(tmp_path / "figures" / "figure2_matfac.png", tmp_path / "tables") in index
