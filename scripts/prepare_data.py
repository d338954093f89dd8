"""Download benchmark data into the canonical layout the tasks read (needs the hub).

    python scripts/prepare_data.py wikitext2 --data-dir data

One subcommand per dataset: add a function `prepare_<name>(data_dir)` and register it in
PREPARERS. Files are written atomically, so an interrupted download leaves no partial file.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote {path} ({len(text):,} chars)")


def prepare_wikitext2(data_dir: Path) -> None:
    """WikiText-2 raw (hub wikitext-2-raw-v1) as lm/wiki.{train,valid,test}.raw."""
    import datasets

    from tasks.wikitext2 import HUB_DATASET, HUB_SPLITS, hub_rows_to_raw

    for filename, split in HUB_SPLITS.items():
        rows = datasets.load_dataset(*HUB_DATASET, split=split)["text"]
        write_text(data_dir / "lm" / filename, hub_rows_to_raw(rows))


PREPARERS = {"wikitext2": prepare_wikitext2}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="dataset", required=True)
    for name, fn in PREPARERS.items():
        p = sub.add_parser(name, help=fn.__doc__.splitlines()[0])
        # Same default as paths.data_dir in conf/config.yaml (relative to the repository).
        p.add_argument("--data-dir", type=Path, default=REPO / os.environ.get("LOFT_DATA_DIR", "data"),
                       help="root of the data dir (default: $LOFT_DATA_DIR or <repo>/data)")
    args = parser.parse_args(argv)
    PREPARERS[args.dataset](args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
