"""Download benchmark data into the canonical layout the tasks read (needs the hub).

    python scripts/prepare_data.py wikitext2 --data-dir data
    python scripts/prepare_data.py commonsense --data-dir data      # 8 sets + commonsense_union_8.json
    python scripts/prepare_data.py commonsense --union-from commonsense_170k.json   # + the published file
    python scripts/prepare_data.py gsm8k | math500 | metamathqa | orca_math | codefeedback
    python scripts/prepare_data.py glue | vtab | images [--only cola,mnli]   # GLUE tsv; image folders

One subcommand per dataset: add a function `prepare_<name>(data_dir, **options)` and register
it in PREPARERS (options in OPTIONS). Files are written atomically, so an interrupted
download leaves no partial file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.core.paths import REPO  # noqa: E402

from tasks.data_files import write_row_count  # noqa: E402  (the row count a task checks the file against)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote {path} ({len(text):,} chars)")


def write_json(path: Path, rows: list) -> None:
    write_text(path, json.dumps(rows, indent=4, ensure_ascii=False) + "\n")  # LLM-Adapters' own layout
    write_row_count(path, len(rows))
    print(f"  {len(rows):,} rows")


def write_jsonl(path: Path, rows: list) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_row_count(path, len(rows))
    print(f"  {len(rows):,} rows")


def prepare_wikitext2(data_dir: Path) -> None:
    """WikiText-2 raw (hub wikitext-2-raw-v1) as lm/wiki.{train,valid,test}.raw."""
    import datasets

    from tasks.lm.wikitext2 import HUB_DATASET, HUB_SPLITS, hub_rows_to_raw

    for filename, split in HUB_SPLITS.items():
        rows = datasets.load_dataset(*HUB_DATASET, split=split)["text"]
        write_text(data_dir / "lm" / filename, hub_rows_to_raw(rows))


def prepare_commonsense(data_dir: Path, union_from: Path | None = None) -> None:
    """The eight commonsense sets in the LLM-Adapters format (commonsense/<Set>/{train,test}.json),
    converted from the canonical hub datasets, and their union commonsense/commonsense_union_8.json.

    That union has the eight full training splits (about 147.6k rows) and is not the file the
    papers trained on, LLM-Adapters' ft-training_set/commonsense_170k.json: pass that with
    --union-from to validate it and copy it in as commonsense/commonsense_170k.json, the name
    the task reads first (records name the file they trained on)."""
    from tasks.commonsense import ORDER, PUBLISHED_FILE, SETS, UNION_8_FILE, load_hub_split

    union = []
    for key in ORDER:
        s = SETS[key]
        train, test = load_hub_split(key, s.hub_train), load_hub_split(key, s.hub_eval)
        write_json(data_dir / "commonsense" / s.folder / "train.json", train)
        write_json(data_dir / "commonsense" / s.folder / "test.json", test)
        union.extend(train)
    write_json(data_dir / UNION_8_FILE, union)
    if union_from is not None:
        rows = json.loads(Path(union_from).read_text(encoding="utf-8"))
        if not rows or not {"instruction", "output", "answer"} <= set(rows[0]):
            raise SystemExit(f"{union_from} is not in the LLM-Adapters format (instruction/input/output/answer)")
        write_json(data_dir / PUBLISHED_FILE, rows)
        print(f"published union: {union_from} ({len(rows):,} rows) -> {data_dir / PUBLISHED_FILE}")


def prepare_gsm8k(data_dir: Path) -> None:
    """GSM8K (hub openai/gsm8k, main) as gsm8k/{train,test}.jsonl with question/answer."""
    import datasets

    for split in ("train", "test"):
        rows = datasets.load_dataset("openai/gsm8k", "main", split=split)
        write_jsonl(data_dir / "gsm8k" / f"{split}.jsonl", [{"question": r["question"], "answer": r["answer"]}
                                                             for r in rows])


def prepare_math500(data_dir: Path) -> None:
    """MATH-500 (hub HuggingFaceH4/MATH-500) as math500/test.jsonl (problem/solution/answer/...)."""
    import datasets

    write_jsonl(data_dir / "math500" / "test.jsonl", list(datasets.load_dataset("HuggingFaceH4/MATH-500", split="test")))


def prepare_metamathqa(data_dir: Path) -> None:
    """MetaMathQA (hub meta-math/MetaMathQA, 395k) as metamathqa/MetaMathQA-395K.json."""
    import datasets

    rows = datasets.load_dataset("meta-math/MetaMathQA", split="train")
    write_json(data_dir / "metamathqa" / "MetaMathQA-395K.json", [dict(r) for r in rows])


def prepare_orca_math(data_dir: Path) -> None:
    """Orca-Math 200k (hub microsoft/orca-math-word-problems-200k) split as in Answer.AI's
    fsdp_qlora: orca_math/test.jsonl = the 500 held-out problems, orca_math/train.jsonl = the rest."""
    from tasks.math.data import load_orca_hub

    train, test = load_orca_hub()
    write_jsonl(data_dir / "orca_math" / "train.jsonl", train)
    write_jsonl(data_dir / "orca_math" / "test.jsonl", test)


def prepare_codefeedback(data_dir: Path) -> None:
    """CodeFeedback-Filtered-Instruction, Python rows (LoFT App. H), as codefeedback/python.jsonl."""
    from tasks.code.data import load_codefeedback_python

    write_jsonl(data_dir / "codefeedback" / "python.jsonl", load_codefeedback_python())


def _known(only, names, command: str) -> list[str]:
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise SystemExit(f"{command} --only: unknown {unknown}; choose from {', '.join(names)}")
    return list(only or names)


def prepare_glue(data_dir: Path, only: list[str] | None = None) -> None:
    """GLUE (hub nyu-mll/glue) as glue/<Task>/{train,dev}.tsv in the original layout (existing files kept)."""
    from tasks.glue import GLUE, hub_rows, write_glue_tsv

    for task in _known(only, GLUE, "glue"):
        spec = GLUE[task]
        for split in ("train", *spec.dev):
            path = data_dir / "glue" / spec.folder / f"{split}.tsv"
            if path.exists():
                print(f"kept {path}")
                continue
            texts, labels = hub_rows(task, split)
            write_glue_tsv(path, spec, texts, labels)
            print(f"wrote {path} ({len(texts):,} rows)")


def _write_image_split(root: Path, split: str, source) -> None:
    """<root>/<split>/<label>/<i>.png, filled in a temporary folder renamed when complete."""
    import shutil

    from tasks.vision.files import write_image_folder

    target = root / split
    if target.exists():
        print(f"kept {target}")
        return
    tmp = root / f".{split}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    n = write_image_folder(root, tmp.name, (source.image(i) for i in range(len(source))), source.labels)
    tmp.rename(target)
    print(f"wrote {target} ({n:,} images)")


def prepare_vtab(data_dir: Path, only: list[str] | None = None) -> None:
    """VTAB-1k (hub fw407/vtab-1k_*) as vtab/<name>/{train800,val200,train800val200,test}/<label>/*.png."""
    from tasks.vision import VTAB, vtab_hub_source

    for name in _known(only, VTAB, "vtab"):
        for split in ("train800", "val200", "train800val200", "test"):
            _write_image_split(data_dir / "vtab" / name, split, vtab_hub_source(name, split))


def prepare_images(data_dir: Path, only: list[str] | None = None) -> None:
    """LoFT's image suite (hub datasets of conf/task/image_*.yaml) as images/<name>/{train,test}/<label>/*.png."""
    from omegaconf import OmegaConf

    from tasks.vision import hub_split

    for name in _known(only, ["cifar100", "isic2019", "ham10000", "diabetic_retinopathy", "domainnet"], "images"):
        cfg = OmegaConf.load(REPO / "conf" / "task" / f"image_{name}.yaml").task
        if cfg.get("domain_column"):  # an image folder would lose the domains that Table 18 needs
            raise SystemExit(f"image_{name}: run it online (task.source=hub), or use DomainNet's official "
                             f"<domain>_{{train,test}}.txt lists under images/{name}/")
        columns = {k: cfg.get(k) for k in ("image_column", "label_column", "class_names")}
        for split in (cfg.train_split, cfg.eval_split):
            _write_image_split(data_dir / "images" / name, split, hub_split(cfg.hub_dataset, split, **columns))


PREPARERS = {"wikitext2": prepare_wikitext2, "commonsense": prepare_commonsense, "gsm8k": prepare_gsm8k,
             "math500": prepare_math500, "metamathqa": prepare_metamathqa, "orca_math": prepare_orca_math,
             "codefeedback": prepare_codefeedback,
             "glue": prepare_glue, "vtab": prepare_vtab, "images": prepare_images}
ONLY = ("--only", {"type": lambda v: [x.strip() for x in v.split(",") if x.strip()], "default": None,
                   "help": "comma-separated subset (default: all)"})
OPTIONS = {"commonsense": [("--union-from", {"type": Path, "default": None, "dest": "union_from",
                                             "help": "also copy in this published commonsense_170k.json"})],
           **{name: [ONLY] for name in ("glue", "vtab", "images")}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="dataset", required=True)
    for name, fn in PREPARERS.items():
        p = sub.add_parser(name, help=fn.__doc__.splitlines()[0])
        # Same default as paths.data_dir in conf/config.yaml (relative to the repository).
        p.add_argument("--data-dir", type=Path, default=REPO / os.environ.get("LOFT_DATA_DIR", "data"),
                       help="root of the data dir (default: $LOFT_DATA_DIR or <repo>/data)")
        for flag, kwargs in OPTIONS.get(name, []):
            p.add_argument(flag, **kwargs)
    args = vars(parser.parse_args(argv))
    name, data_dir = args.pop("dataset"), args.pop("data_dir")
    PREPARERS[name](data_dir, **args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
