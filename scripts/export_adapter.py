#!/usr/bin/env python
"""Export a run's trained adapter: a merged full model, and/or an upload to the Hugging Face Hub.

    python scripts/export_adapter.py results/runs/wikitext2/smollm2_135m/loft/r8_seed0.json --merge out/merged
    python scripts/export_adapter.py RECORD --push user/my-adapter            # the adapter folder itself
    python scripts/export_adapter.py RECORD --merge out/merged --push user/my-model   # the merged model

RECORD is a run record (its `adapter` entry names the folder; the files must still match its
sha256) or an adapter folder under results/adapters/. --merge folds the adapter into the base
(PEFT's merge_and_unload; LOFT: W0 <- W0 (I + Pᵀ(T - I)P)) and saves model and tokenizer with
save_pretrained, so `AutoModelForCausalLM.from_pretrained(OUT)` (or the task's Auto class) loads it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from loft.core.paths import REPO  # noqa: E402

from loft import adapters  # noqa: E402
from loft.core.errors import ConfigError  # noqa: E402


def push(folder: Path, repo_id: str) -> str:
    from huggingface_hub import HfApi

    from loft.core.hub import hub_reachable

    if not hub_reachable():
        raise ConfigError(f"cannot push to {repo_id}: the Hugging Face hub is unreachable (offline); "
                          f"run this again online (the files stay in {folder})")
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("record", type=Path, help="a run record (.json) or an adapter folder")
    p.add_argument("--merge", type=Path, metavar="OUT", help="write the merged full model to this folder")
    p.add_argument("--push", metavar="REPO_ID", help="upload to the Hub: the merged model with --merge, else the adapter")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if not args.merge and not args.push:
        p.error("nothing to do: give --merge OUT and/or --push REPO_ID")
    try:
        folder = adapters.from_record(args.record) if args.record.suffix == ".json" else args.record
        upload = folder
        if args.merge:
            model, tokenizer = adapters.merged(folder, args.device)
            if not hasattr(model, "save_pretrained"):  # e.g. the matfac problem's bare W
                raise ConfigError(f"the merged {type(model).__name__} is not a transformers model; --merge writes "
                                  f"transformers folders only (the adapter in {folder} loads with PEFT as it is)")
            model.save_pretrained(args.merge)
            if tokenizer is not None:
                tokenizer.save_pretrained(args.merge)
            print(f"merged model: {args.merge}")
            upload = args.merge
        if args.push:
            print(f"pushed: {push(upload, args.push)}")
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
